"""The SQL adapter: ``SqlStorage`` (any SQLAlchemy 2 URL) and ``SQLite``, one job per module.

============================  ==============================================================
``storages.sql.adapter``      ``SqlStorage`` and ``SQLite``: configuration, connect, the
                              record primitives (``RecordStorage`` builds the rest on them)
``storages.sql.statements``   the two tables and their statements, compiled once per dialect
``storages.sql.dialects``     each database's quirks: drivers, engine options, upserts,
                              SQLite's WAL, MySQL's session and packet limit, permanent errors
``storages.sql.execution``    how a call runs on a pooled connection: transactions, rollback,
                              the watchdog, SQLite's write queue, fork safety
``storages.sql.pool``         the instance's DBAPI connections
============================  ==============================================================

Importing the package imports no driver, not even SQLAlchemy: that happens on ``connect()``.
"""

from storages.sql.adapter import SQLite, SqlStorage

__all__ = ["SQLite", "SqlStorage"]
