"""``SqlStorage`` and ``SQLite``: the adapter itself — its configuration (:class:`SqlSettings`,
shared with the async PostgreSQL adapter), connect and disconnect, and the record primitives
on the compiled statements (:mod:`~storages.sql.statements`), run by the
:class:`~storages.sql.execution.Executor` on the instance's connections
(:mod:`~storages.sql.pool`), with each database's quirks from :mod:`~storages.sql.dialects`."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from selinon_like import options
from selinon_like.errors import ConfigError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, key_digest
from selinon_like.masking import mask_url
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage
from selinon_like.storage import StorageBase
from storages.sql.dialects import (
    MySqlByDigest,
    MySqlSession,
    MySqlUpsert,
    PgArrayUpsert,
    Quirks,
    engine_options,
    is_permanent,
    prepare_sqlite,
    scheme,
    with_default_driver,
)
from storages.sql.execution import Executor
from storages.sql.statements import (
    BATCH_BYTES,
    BATCH_ROWS,
    PAGE,
    PURGE_ROWS,
    Sql,
    TableSql,
    add_expiry_column,
    batches,
    make_row,
    tables,
)

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import URL, Engine

__all__ = ["SQLite", "SqlSettings", "SqlStorage"]

# 48 characters leave room for "_errors" and constraint names within PostgreSQL's 63.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
# How long a call may wait for the server: statement_timeout (else this) + connect_timeout.
_IO_TIMEOUT = 300.0


class SqlSettings(StorageBase):
    """What the SQL adapters share, blocking (:class:`SqlStorage`) and async
    (:class:`storages.aio.postgresql.AsyncPostgreSQL`): the configuration (its keys, checks and
    errors; documented on :class:`SqlStorage`), the URL and its engine, the timeouts, the
    tables and their compiled statements."""

    _results: Table
    _errors: Table
    # URL schemes a named variant accepts (None: any).
    schemes: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        connection_string: str,
        echo: bool = False,
        encoding: str | None = None,
        table_name: str = "selinon_results",
        pool_size: int = 5,
        max_overflow: int = 10,
        connect_timeout: float = 10.0,
        statement_timeout: float | None = None,
    ) -> None:
        self.connection_string = options.as_str("connection_string", connection_string)
        if self.schemes is not None and scheme(self.connection_string) not in self.schemes:
            raise ConfigError(
                f"{type(self).__name__} needs a {' or '.join(self.schemes)} URL, not "
                f"{mask_url(self.connection_string)!r}; use storages.sql:SqlStorage for others",
                key="connection_string",
            )
        self.echo = options.as_bool("echo", echo)
        self.encoding = None if encoding is None else options.as_str("encoding", encoding)
        self.table_name = options.as_str("table_name", table_name)
        if not _TABLE_NAME.fullmatch(self.table_name):
            raise ConfigError(
                "must be 1 to 48 letters, digits or '_', not starting with a digit, "
                f"not {self.table_name!r}",
                key="table_name",
            )
        self.pool_size = options.as_int("pool_size", pool_size, minimum=1)
        self.max_overflow = options.as_int("max_overflow", max_overflow, minimum=0)
        self.connect_timeout = options.as_float("connect_timeout", connect_timeout, minimum=0.001)
        self.statement_timeout = (
            None
            if statement_timeout is None
            else options.as_float("statement_timeout", statement_timeout, minimum=0.001)
        )
        self._sql: dict[Kind, TableSql] = {}  # by connect()

    # -- connection -----------------------------------------------------------------------

    def _url(self) -> URL:
        """The URL to connect to, with a plain scheme mapped to the driver we ship."""
        return with_default_driver(self.connection_string)

    @property
    def io_timeout(self) -> float:
        """Seconds a call may wait for the server before the client gives up: statement_timeout
        (else 300 s) + connect_timeout, at most the operation_timeout."""
        wait = (self.statement_timeout or _IO_TIMEOUT) + self.connect_timeout
        return min(wait, self.operation_timeout)

    def default_operation_timeout(self) -> float:
        """``connect_timeout`` + ``statement_timeout`` (else 300 s) + ``connect_timeout``: a
        new connection, then the longest wait for the server."""
        return self.connect_timeout + (self.statement_timeout or _IO_TIMEOUT) + self.connect_timeout

    def _new_engine(self) -> tuple[URL, Engine]:
        """An engine for the configured URL; a URL SQLAlchemy cannot use is a ConfigError."""
        import sqlalchemy as sa

        try:
            url = self._url()
            return url, sa.create_engine(url, **engine_options(url, self))
        except (sa.exc.ArgumentError, ValueError) as exc:  # NoSuchModuleError included
            raise ConfigError(
                f"cannot use the URL {mask_url(self.connection_string)!r}: {exc}",
                storage=self.storage_name,
                key="connection_string",
            ) from exc

    def _create_tables(self, engine: Engine) -> None:
        import sqlalchemy as sa

        with engine.connect() as conn:  # a server that cannot be reached fails here, once
            try:
                with conn.begin():
                    self._results.metadata.create_all(conn, checkfirst=True)
            except sa.exc.DBAPIError:
                # Another process may have created them between the check and CREATE TABLE.
                names = set(sa.inspect(conn).get_table_names())
                if not {self._results.name, self._errors.name} <= names:
                    raise
            for table in (self._results, self._errors):
                add_expiry_column(conn, table)  # tables of the first release have none

    def _compile(self, dialect: Any, upsert: str) -> dict[Kind, TableSql]:
        """The statements of both tables for ``dialect`` (``upsert`` as in
        :class:`~storages.sql.dialects.Quirks`), by kind."""
        return {
            kind: TableSql.compile(dialect, table, column, upsert)
            for kind, table, column in (
                (RESULTS, self._results, "result"),
                (ERRORS, self._errors, "error"),
            )
        }


class SqlStorage(SqlSettings, RecordStorage):
    """Results in a SQL database through SQLAlchemy 2 Core, for any SQLAlchemy URL.

    A :class:`~selinon_like.records.RecordStorage`: it writes the primitives on bytes (``read``,
    ``write``, ``remove``, ``scan`` and their ``*_many`` forms; ``kind`` picks the table) and
    inherits every public operation, serialization and error records included.

    Two tables, created on ``connect()`` when missing: ``<table_name>`` for results and
    ``<table_name>_errors`` for error records (one row per key: the last error), so errors never
    shadow results. Each row holds ``flow_name``, ``task_name``, ``task_id`` (unbounded text, kept
    exactly), ``key_digest`` (SHA-256 of the key, the primary key), the serializer's bytes
    (``LargeBinary``: ``bytea`` on PostgreSQL, ``BLOB`` on SQLite, ``LONGBLOB`` on MySQL/MariaDB —
    room for results of 64 MB and more), ``created_at`` and ``updated_at``. ``store`` is one
    atomic upsert (``ON CONFLICT`` on PostgreSQL/SQLite, ``ON DUPLICATE KEY`` on MySQL/MariaDB,
    update-then-insert in one transaction elsewhere) and returns the row's ``key_digest`` (64 hex
    digits), the same for every store of the same key.
    ``store_many`` is one transaction of batched upserts (500 rows each, fewer for big
    results: with psycopg one statement on arrays per batch, ``INSERT … SELECT * FROM
    unnest(…)``, with PyMySQL multi-row statements), ``retrieve_many`` one
    ``SELECT … WHERE key_digest IN (…)`` per 500 keys and ``delete_many`` one transaction of
    ``DELETE … WHERE key_digest IN (…)`` per 500 keys.

    One engine and one pool of connections per instance; each call takes a connection for
    itself, so calls from many threads run concurrently. With the drivers we ship (psycopg,
    PyMySQL, sqlite3) connections run in autocommit mode and ``store``, ``retrieve`` and
    ``delete`` are one statement and one round trip each, on statements compiled once;
    ``store_many`` is one ``BEGIN … COMMIT``. Any failure rolls back. Connections are not
    pinged before use: a connection the server dropped (a restart, an idle timeout) fails its
    call, is closed with every idle one, and the call is retried under the storage's
    ``retry`` policy on a new connection. Dropped connections, timeouts and lock waits are
    transient: retried, then :class:`~selinon_like.StorageUnavailable`. No call waits for the
    server longer than ``statement_timeout`` + ``connect_timeout`` (300 s + ``connect_timeout``
    when ``statement_timeout`` is unset), nor past the call's deadline (the storage's
    ``operation_timeout``, by default ``connect_timeout`` + that wait: one attempt with its
    connection): PyMySQL's socket timeouts (at most ``operation_timeout``), and on PostgreSQL,
    whose driver has none, a watchdog that shuts the socket of an overdue call; a connection
    opened during a call waits at most what the deadline leaves (libpq: 2 s at least). A
    forked child never uses or closes its parent's connections.

    URLs: ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (extra
    ``postgresql``), ``mysql://`` means ``mysql+pymysql://`` (extra ``mysql``); any other
    SQLAlchemy URL works with its driver installed. A missing driver is a
    :class:`~selinon_like.ConfigError` naming the extra. On MySQL/MariaDB through PyMySQL a
    result is written into its statement as an escaped ``_binary'…'`` literal, about its own
    size, so the server's ``max_allowed_packet`` bounds a result (MariaDB's default 16 MiB takes
    a 15 MiB one); a statement that would not fit fails at once, before it is sent, with a
    :class:`~selinon_like.StorageError` that says so. SQLite: a file database runs in WAL
    mode with a busy timeout and a write queue per instance, so many threads and processes
    share it; an in-memory one (``sqlite://``) is private to the instance, which then
    serialises its calls.

    Configuration:

    ``connection_string`` (str, required)
        the SQLAlchemy URL, e.g. ``postgresql://user:password@host:5432/db`` (the password
        never appears in a repr, log line or error).
    ``echo`` (bool, default ``false``)
        log every SQL statement (SQLAlchemy's ``echo``).
    ``encoding`` (str, default none)
        the client encoding: PostgreSQL ``client_encoding``, MySQL ``charset`` (``utf-8`` means
        ``utf8mb4``, the default); SQLite always uses UTF-8 and ignores it.
    ``table_name`` (str, default ``"selinon_results"``)
        the results table; errors go to ``<table_name>_errors``. Letters, digits and ``_``.
    ``pool_size`` (int, default ``5``), ``max_overflow`` (int, default ``10``)
        connections kept open, and extra ones opened under load (not for in-memory SQLite).
    ``connect_timeout`` (float, default ``10``)
        seconds to wait for a connection (PostgreSQL/MySQL ``connect_timeout``); for SQLite
        how long a writer waits for its turn (the write queue, then the busy timeout).
    ``statement_timeout`` (float, default none)
        seconds a statement may run: PostgreSQL ``statement_timeout``, MariaDB
        ``max_statement_time``, MySQL ``max_execution_time``; ignored by other dialects.
        The client gives up on a call after this plus ``connect_timeout`` (300 s plus
        ``connect_timeout`` without it), so a silent or hung server never hangs a call.

    Example::

        storages:
          - name: Results
            import: storages.sql
            classname: SqlStorage
            configuration:
              connection_string: postgresql://selinon:${PGPASSWORD}@db:5432/selinon
              table_name: selinon_results
              pool_size: 10
              connect_timeout: 5
    """

    thread_safe = True  # an engine per instance; no connection or session is shared by calls
    _executor: Executor | None = None
    _mysql: MySqlSession | None = None

    def connect(self) -> None:
        if self._executor is not None:
            return
        try:  # SQLAlchemy and the URL's driver are imported here, not before
            url, engine = self._new_engine()
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        self._results, self._errors = tables(self.table_name)
        quirks = Quirks.of(url, engine.dialect)
        self._mysql = None
        try:
            if quirks.backend == "sqlite":
                prepare_sqlite(engine, url)
            if quirks.backend in ("mysql", "mariadb"):
                from sqlalchemy import event

                self._mysql = MySqlSession(self.storage_name, self.statement_timeout)
                event.listen(engine, "connect", self._mysql.on_connect)
            self._create_tables(engine)
        except BaseException:
            engine.dispose()
            raise
        self._sql = self._compile(engine.dialect, quirks.upsert)
        driver = url.get_driver_name()
        for kind, sql in self._sql.items():
            upsert: Sql
            if sql.upsert is None:
                continue
            if self._mysql is not None and driver == "pymysql":
                # Results as _binary'…' literals, not PyMySQL's X'…' of twice their size.
                upsert = MySqlUpsert.of(sql.upsert, self._mysql, sql.column)
            elif quirks.backend == "postgresql" and driver == "psycopg":
                # store_many: one statement on arrays per batch, not one per row.
                upsert = PgArrayUpsert.of(sql.upsert, sql.table, engine.dialect)
            else:
                continue
            self._sql[kind] = dataclasses.replace(sql, upsert=upsert)
        if self._mysql is not None and driver == "pymysql":
            for kind, sql in self._sql.items():  # a read and a delete: the digest written in
                load, delete = MySqlByDigest.of(sql.load), MySqlByDigest.of(sql.delete)
                self._sql[kind] = dataclasses.replace(sql, load=load, delete=delete)
        self._executor = Executor(
            sa_engine=engine,
            quirks=quirks,
            name=self.storage_name,
            keep=self.pool_size,
            limit=self.pool_size + self.max_overflow,
            io_timeout=self.io_timeout,
            write_wait=self.connect_timeout,
            new_database=self._create_tables,
        )

    def is_connected(self) -> bool:
        return self._executor is not None

    def disconnect(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.close()

    @property
    def _calls(self) -> Executor:
        executor = self._executor
        if executor is None:
            raise RuntimeError(f"{self.storage_name} is not connected: call connect() first")
        return executor

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of this instance (connected storages only)."""
        return self._calls.engine

    def is_transient(self, exc: BaseException) -> bool:
        errors = sys.modules.get("sqlalchemy.exc")  # never import SQLAlchemy just to classify
        if errors is not None:
            if isinstance(exc, (errors.DisconnectionError, errors.TimeoutError)):
                return True
            if isinstance(exc, errors.DBAPIError):
                if exc.connection_invalidated:
                    return True
                if isinstance(exc, errors.OperationalError):
                    return not is_permanent(exc.orig)
                if isinstance(exc, errors.IntegrityError) and self._generic_upsert():
                    return True  # update-then-insert raced another insert: again, it updates
        return super().is_transient(exc)

    def _generic_upsert(self) -> bool:
        return any(sql.upsert is None for sql in self._sql.values())

    def ping(self) -> bool:
        with self._calls.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True

    # -- the primitives of RecordStorage ---------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        found = self._calls.run(self._sql[kind].load, {"key_digest": key_digest(*key)})
        return None if found is None else bytes(found[0])

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        sql = self._sql[kind]
        row = make_row(key, sql.column, data, expires_at)
        if sql.upsert is None:  # update-then-insert: a transaction of its own
            self._write_rows(sql, [row])
        else:
            self._calls.run(sql.upsert, row, write=True)
        return str(row["key_digest"])

    def remove(self, kind: Kind, key: Key) -> bool:
        digest = key_digest(*key)
        return bool(self._calls.run(self._sql[kind].delete, {"key_digest": digest}, write=True))

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        page = self._sql[kind].key_page(by_flow=flow_name is not None)
        last = ""
        while True:  # pages by digest, each its own statement: no transaction held between them
            with self._calls.cursor() as cursor:
                cursor.execute(page.text, page.args({"last": last, "flow": flow_name}))
                rows = cursor.fetchall()
            for _digest, flow, task, task_id in rows:
                yield (flow, task, task_id)
            if len(rows) < PAGE:
                return
            last = rows[-1][0]

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        """By the ``expires_at`` index: ``DELETE`` of at most ``PURGE_ROWS`` due rows per
        statement (each its own transaction), until one deletes fewer."""
        sql = self._sql[kind]
        due = {"now": math.floor(now * 1000)}
        if dry_run:
            found = self._calls.run(sql.count_due(), due)
            yield int(found[0])
            return
        purge = sql.purge()
        while True:
            removed = int(self._calls.run(purge, due, write=True))
            yield removed
            if removed < PURGE_ROWS:
                return

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        digests = [key_digest(*key) for key in keys]
        found: dict[str, bytes] = {}
        sql = self._sql[kind]
        with self._calls.cursor() as cursor:
            for batch in _in_batches(list(dict.fromkeys(digests))):
                stmt = sql.select_in(len(batch))
                cursor.execute(stmt.text, stmt.in_list(batch))
                found.update((digest, bytes(data)) for digest, data in cursor.fetchall())
        return [found.get(digest) for digest in digests]

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        sql = self._sql[kind]
        rows = [make_row(key, sql.column, data, expires_at) for key, data in items]
        # One row per key (the last one given wins): an upsert may touch a row only once.
        unique = {row["key_digest"]: row for row in rows}
        self._write_rows(sql, list(unique.values()))
        return [row["key_digest"] for row in rows]

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        digests = list(dict.fromkeys(key_digest(*key) for key in keys))
        sql = self._sql[kind]
        removed = 0
        with self._calls.cursor(transaction=True) as cursor:
            for batch in _in_batches(digests):
                stmt = sql.delete_in(len(batch))
                cursor.execute(stmt.text, stmt.in_list(batch))
                removed += cursor.rowcount
        return removed

    def _write_rows(self, sql: TableSql, rows: list[dict[str, Any]]) -> None:
        """Insert or replace rows of distinct keys in one transaction."""
        with self._calls.cursor(transaction=True) as cursor:
            for batch in batches(rows, sql.column, BATCH_BYTES):
                if sql.upsert is not None:
                    sql.upsert.execute_many(cursor, batch)
                    continue
                for row in batch:
                    cursor.execute(sql.update.text, sql.update.args(row))
                    if cursor.rowcount < 1:
                        cursor.execute(sql.insert.text, sql.insert.args(row))


def _in_batches(digests: list[str]) -> Iterator[list[str]]:
    """``digests`` in IN lists of at most ``BATCH_ROWS``."""
    for start in range(0, len(digests), BATCH_ROWS):
        yield digests[start : start + BATCH_ROWS]


class SQLite(SqlStorage):
    """:class:`SqlStorage` on SQLite, the embedded default: no server, one file.

    A file database runs in WAL mode (readers never wait for the writer); the instance's
    writers queue for their turn in the process, and writers of other processes wait on
    SQLite's busy timeout, both up to ``connect_timeout``. Its directory is created on
    ``connect()``. ``path: ":memory:"`` keeps the results in this instance's memory: one
    connection, calls take turns, nothing survives the process, and a forked child starts
    empty. Everything else is as in :class:`SqlStorage`.

    Configuration (``path`` or ``connection_string``, not both):

    ``path`` (str, default none)
        the database file (``":memory:"`` for an in-memory database).
    ``connection_string`` (str, default none)
        a ``sqlite://`` URL instead, e.g. ``sqlite:////var/lib/app/results.sqlite``.
    ``table_name`` (str, default ``"selinon_results"``)
        the results table; errors go to ``<table_name>_errors``.
    ``pool_size`` (int, default ``5``), ``max_overflow`` (int, default ``10``)
        connections kept open, and extra ones under load (file databases).
    ``connect_timeout`` (float, default ``10``)
        seconds a writer waits for its turn (behind the instance's other writers, or another
        process's: SQLite's busy timeout). The default ``operation_timeout`` is three times
        this: the queue, the busy timeout and the statement.
    ``echo`` (bool, default ``false``)
        log every SQL statement.
    ``encoding`` (str, default none)
        accepted for Selinon's configurations and ignored: SQLite stores UTF-8.

    Example::

        storages:
          - name: Embedded
            classname: sqlite
            configuration:
              path: ${SELINON_LIKE_DATA:-./var}/results.sqlite
    """

    schemes = ("sqlite",)

    def __init__(
        self,
        path: str | None = None,
        connection_string: str | None = None,
        table_name: str = "selinon_results",
        pool_size: int = 5,
        max_overflow: int = 10,
        connect_timeout: float = 10.0,
        echo: bool = False,
        encoding: str | None = None,
    ) -> None:
        if (path is None) == (connection_string is None):
            raise ConfigError("give either 'path' or 'connection_string' (one of them)", key="path")
        self.path = None if path is None else options.as_str("path", path)
        super().__init__(
            connection_string=connection_string if connection_string is not None else "sqlite://",
            echo=echo,
            encoding=encoding,
            table_name=table_name,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_timeout=connect_timeout,
        )

    def default_operation_timeout(self) -> float:
        """Three times ``connect_timeout``: the write queue, the busy timeout, the statement."""
        return 3 * self.connect_timeout

    def _url(self) -> URL:
        if self.path is None:
            return super()._url()
        from sqlalchemy.engine import URL

        # URL.create, not string formatting: a path may hold "?", "#" or "%".
        return URL.create("sqlite", database=None if self.path == ":memory:" else self.path)
