"""``MySQL``: :class:`~storages.sql.SqlStorage` for MySQL and MariaDB URLs."""

from __future__ import annotations

from storages.sql import SqlStorage

__all__ = ["MySQL"]


class MySQL(SqlStorage):
    """:class:`~storages.sql.SqlStorage` for MySQL and MariaDB.

    Accepts only ``mysql://`` and ``mariadb://`` URLs (both use PyMySQL, installed by
    ``pip install 'selinon-like[mysql]'``; ``mysql+mysqldb://`` and other drivers work when
    installed). Tables are InnoDB in ``utf8mb4`` with binary collation (keys compare exactly:
    ``A`` is not ``a``), results go to ``LONGBLOB`` columns (up to 4 GB), ``store`` is an
    ``INSERT … ON DUPLICATE KEY UPDATE`` whose values are written into the statement as
    escaped literals (``_binary'…'`` for the result, not PyMySQL's ``X'…'`` of twice its
    size), so a statement is about as large as its result (a single quote, backslash or NUL
    byte takes two bytes: random bytes grow ~1 %). A result over ``max_value_bytes`` (7 MiB)
    is stored by the record layer as chunk rows and a manifest (:mod:`selinon_like.chunks`),
    so results of any size fit the server's ``max_allowed_packet`` at MariaDB's default of
    16 MiB, even hex-encoded; a statement that would still not fit fails at once, before it
    is sent, with a :class:`~selinon_like.StorageError` saying so. With an ``encoding`` other
    than UTF-8 results go hex-encoded. Everything else is as in
    :class:`~storages.sql.SqlStorage`.

    Configuration (``echo``, ``table_name``, ``pool_size`` and ``max_overflow`` as in
    :class:`~storages.sql.SqlStorage`):

    ``connection_string`` (str, required)
        e.g. ``mysql://user:password@host:3306/db`` (the password is never shown).
    ``encoding`` (str, default none)
        the connection ``charset``; ``utf-8`` (and the default) mean ``utf8mb4``.
    ``connect_timeout`` (float, default ``10``)
        seconds to wait for a connection.
    ``statement_timeout`` (float, default none)
        seconds a statement may run (MariaDB ``max_statement_time``; MySQL
        ``max_execution_time``, which limits SELECT statements only). PyMySQL's socket
        read/write timeout is this plus ``connect_timeout`` (300 s plus ``connect_timeout``
        without it), so a silent server never hangs a call.

    Example::

        storages:
          - name: Results
            classname: mysql
            configuration:
              connection_string: mysql://selinon:${MYSQL_PASSWORD}@db:3306/selinon
              pool_size: 10
    """

    schemes = ("mysql", "mariadb")
    # Larger records go in chunks: a 7 MiB chunk stays under MariaDB's default 16 MiB
    # max_allowed_packet even when every byte of it needs escaping (or goes hex-encoded).
    max_value_bytes: int | None = 7 * 1024 * 1024
