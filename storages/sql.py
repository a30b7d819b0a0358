"""``SqlStorage``: results in two SQL tables through SQLAlchemy 2 Core (any dialect; SQLite,
PostgreSQL and MySQL/MariaDB tuned), and ``SQLite``, its embedded variant."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from selinon_like import options
from selinon_like.errors import ConfigError, StorageError
from selinon_like.keys import Key, key_digest
from selinon_like.masking import mask_url
from selinon_like.registry import missing_driver
from selinon_like.storage import (
    DataStorage,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
    record_key,
)
from selinon_like.watchdog import WATCHDOG

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import URL, Engine

__all__ = ["SQLite", "SqlStorage"]

# A plain scheme (as in Selinon's docs) means the driver our extras install.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
# 48 characters leave room for "_errors" and constraint names within PostgreSQL's 63.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
# store_many / retrieve_many send one statement per this many rows (or bytes of results).
_BATCH_ROWS = 500
_BATCH_BYTES = 8 * 1024 * 1024
_STATEMENT_BYTES = 64 * 1024  # room for the SQL text around the values in a statement
_KEY_PARTS = ("flow_name", "task_name", "task_id")
_BIND_CASTS = re.compile(r"(?<=\)s)::VARCHAR\b")  # after a %(name)s parameter
# How long a call may wait for the server: statement_timeout (else this) + connect_timeout.
_IO_TIMEOUT = 300.0
_POOL_WAIT = 30.0  # seconds a call waits for one of the instance's connections to be free
_SURPLUS_IDLE = 30.0  # seconds an idle connection beyond pool_size stays open
# Drivers whose connections run in autocommit mode: a call of several statements sends its
# own BEGIN … COMMIT (tested with each; other drivers commit through the DBAPI).
_AUTOCOMMIT_DRIVERS = {
    ("postgresql", "psycopg"),
    ("mysql", "pymysql"),
    ("mariadb", "pymysql"),
    ("sqlite", "pysqlite"),
}
_PAGE = 1000  # iter_keys reads this many keys per short transaction
# Errors drivers raise as OperationalError that retrying cannot fix.
_MYSQL_PERMANENT = {1044, 1045, 1049, 1153, 1698}  # access denied, no database, packet too big
_PG_PERMANENT = ("28", "3D")  # SQLSTATE classes: invalid authorization, unknown database
# What a refused login says when the driver gives no code (psycopg while connecting).
_PERMANENT_TEXT = ("authentication failed", "access denied", "does not exist")


def _scheme(connection_string: str) -> str:
    """``postgresql`` of ``postgresql+psycopg://…`` (no SQLAlchemy import needed)."""
    return connection_string.partition(":")[0].partition("+")[0].lower()


def _tables(table_name: str) -> tuple[Table, Table]:
    """The results table and ``<table_name>_errors``, each keyed by the SHA-256 of the key.

    The digest is the primary key and the only index: an upsert touches one B-tree, and the
    record id ``store`` returns is known without asking the database for it."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    # Keys are unbounded text (binary collation on MySQL so "A" != "a"); the unique index is on
    # their digest, which every dialect can index whatever the key length.
    text = sa.Text().with_variant(
        mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")  # >= 64 MB
    digest = sa.CHAR(64).with_variant(mysql.CHAR(64, charset="ascii"), "mysql", "mariadb")
    metadata = sa.MetaData()

    def table(name: str, data: str) -> Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("key_digest", digest, primary_key=True),
            sa.Column("flow_name", text, nullable=False),
            sa.Column("task_name", text, nullable=False),
            sa.Column("task_id", text, nullable=False),
            sa.Column(data, blob, nullable=False),
            sa.Column(
                "created_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            ),
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            ),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_bin",
        )

    return table(table_name, "result"), table(table_name + "_errors", "error")


def _is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def _row_size(row: dict[str, Any], column: str) -> int:
    """Roughly what a row adds to an INSERT statement, before escaping."""
    key_size = len(row["flow_name"]) + len(row["task_name"]) + len(row["task_id"])
    return len(row[column]) + key_size * 4 + 200


def _batches(
    rows: list[dict[str, Any]], column: str, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = _row_size(row, column)
        if batch and (len(batch) >= _BATCH_ROWS or size + row_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


@dataclasses.dataclass(frozen=True)
class _Sql:
    """A Core statement compiled once for the engine's dialect, then run on DBAPI cursors."""

    text: str
    names: tuple[str, ...] | None  # positional paramstyles: the parameters in order
    bound: dict[str, Any]  # the values bound in the statement itself (IN lists, LIMIT)

    @classmethod
    def compile(cls, stmt: Any, dialect: Any) -> _Sql:
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        # psycopg's dialect casts every string parameter (%(x)s::VARCHAR); psycopg sends str
        # as text already, and the casts cost PostgreSQL ~10 µs a statement.
        text = str(compiled)
        if dialect.name == "postgresql":
            text = _BIND_CASTS.sub("", text)
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        bound = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(text, names, bound)

    def args(self, values: dict[str, Any] | None = None) -> Any:
        """The driver's parameters: ``values`` by name, with the statement's own."""
        if values is None or self.bound:
            values = {**self.bound, **(values or {})}
        return values if self.names is None else tuple(values[name] for name in self.names)


@dataclasses.dataclass(frozen=True)
class _TableSql:
    """The statements of one table (results or errors), compiled at connect()."""

    column: str  # "result" or "error"
    upsert: _Sql | None  # None: the generic update-then-insert
    update: _Sql
    insert: _Sql
    load: _Sql
    delete: _Sql


class _Connections:
    """One instance's DBAPI connections: at most ``limit`` open, ``keep`` of them kept open
    while idle; the others close after ``_SURPLUS_IDLE`` seconds unused.

    Each connection is opened through the engine (so the dialect's and our connect hooks run)
    and, for a real pool, detached from it. A call takes the most recently used idle one (a
    list pop, with the cursor it used last time: no trip through SQLAlchemy's pool, no new
    cursor) and only takes the lock when it has to open one or wait. A connection that failed
    is closed, never handed out again."""

    def __init__(self, engine: Engine, keep: int, limit: int, detach: bool) -> None:
        self._engine, self._keep, self._limit, self._detach = engine, keep, limit, detach
        self._idle: list[tuple[Any, Any, float]] = []  # (connection, cursor, idle since)
        self._open = 0
        self._waiting = 0
        self._changed = threading.Condition(threading.Lock())
        self.closed = False

    def get(self) -> tuple[Any, Any]:
        """A connection and its cursor, for one call; give them back with :meth:`put`."""
        try:
            connection, cursor, _since = self._idle.pop()
            return connection, cursor
        except IndexError:
            pass
        deadline = time.monotonic() + _POOL_WAIT
        with self._changed:
            while True:
                if self._idle:
                    connection, cursor, _since = self._idle.pop()
                    return connection, cursor
                if self._open < self._limit:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"all {self._limit} connections stayed busy for {_POOL_WAIT:g} s; "
                        "raise pool_size or max_overflow"
                    )
                self._waiting += 1
                try:  # short waits: a put() may slip in between our check and the wait
                    self._changed.wait(min(remaining, 0.05))
                finally:
                    self._waiting -= 1
        try:
            connection = self._engine.raw_connection()
            if self._detach:
                connection.detach()
            return connection, connection.cursor()
        except BaseException:
            self._closed_one()
            raise

    def put(self, connection: Any, cursor: Any, broken: bool) -> None:
        if broken or self.closed:
            self._close(connection)
            return
        now = time.monotonic()
        self._idle.append((connection, cursor, now))
        if len(self._idle) > self._keep:  # the least recently used one, if idle too long
            with contextlib.suppress(IndexError, ValueError):  # another thread took it
                oldest = self._idle[0]
                if now - oldest[2] > _SURPLUS_IDLE:
                    self._idle.remove(oldest)
                    self._close(oldest[0])
        if self._waiting:
            with self._changed:
                self._changed.notify()

    def _close(self, connection: Any) -> None:
        with contextlib.suppress(Exception):
            connection.close()
        self._closed_one()

    def _closed_one(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify()

    def drop_idle(self, close: bool = True) -> None:
        """Forget the idle connections (after the server dropped one, or in a forked child,
        where ``close=False``: the parent's sockets are never touched)."""
        idle, self._idle = self._idle, []
        if close:
            for connection, _cursor, _since in idle:
                self._close(connection)


class SqlStorage(DataStorage):
    """Results in a SQL database through SQLAlchemy 2 Core, for any SQLAlchemy URL.

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
    results: pipelined by psycopg, multi-row statements with PyMySQL) and ``retrieve_many`` one
    ``SELECT … WHERE key_digest IN (…)`` per 500 keys.

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
    when ``statement_timeout`` is unset): PyMySQL's socket timeouts, and on PostgreSQL, whose
    driver has none, a watchdog that shuts the socket of an overdue call. A forked child never
    uses or closes its parent's connections.

    URLs: ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (extra
    ``postgresql``), ``mysql://`` means ``mysql+pymysql://`` (extra ``mysql``); any other
    SQLAlchemy URL works with its driver installed. A missing driver is a
    :class:`~selinon_like.ConfigError` naming the extra. On MySQL/MariaDB PyMySQL sends a result
    hex-encoded, so the server's ``max_allowed_packet`` must be twice its size (MariaDB's default
    16 MB takes results up to about 8 MB; a larger one fails at once with a
    :class:`~selinon_like.StorageError` that says so). SQLite: a file database runs in WAL
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
        if self.schemes is not None and _scheme(self.connection_string) not in self.schemes:
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
        self._engine: Engine | None = None
        self._pid = os.getpid()
        self._connections: _Connections | None = None
        self._memory = False  # an in-memory SQLite database: one connection
        self._writer: threading.Lock | None = None  # a SQLite file: this instance's writers queue
        self._autocommit = False
        self._begin = "BEGIN"
        self._watched = False
        self._sql: dict[str, _TableSql] = {}
        self._select_in: dict[tuple[str, str, int], _Sql] = {}  # see _by_digest
        self._upsert_style = ""  # on_conflict, mysql or generic: known once connected
        self._max_packet: int | None = None  # MySQL/MariaDB: the server's max_allowed_packet

    # -- connection -----------------------------------------------------------------------

    def _url(self) -> URL:
        """The URL to connect to, with a plain scheme mapped to the driver we ship."""
        from sqlalchemy.engine import make_url

        url = make_url(self.connection_string)
        driver = _DEFAULT_DRIVERS.get(url.drivername)
        return url.set(drivername=driver) if driver else url

    def connect(self) -> None:
        if self._engine is not None:
            return
        try:
            import sqlalchemy as sa
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        try:
            url = self._url()
            engine = sa.create_engine(url, **self._engine_options(url))
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
            raise ConfigError(
                f"cannot use the URL {mask_url(self.connection_string)!r}: {exc}",
                storage=self.storage_name,
                key="connection_string",
            ) from exc
        self._results, self._errors = _tables(self.table_name)
        backend = url.get_backend_name()
        self._memory = backend == "sqlite" and _is_memory(url)
        # SQLite lets one writer in at a time and makes the others poll, sleeping 1 to 100 ms
        # between tries: this instance's threads queue on a lock instead, and only writers of
        # other processes meet the busy timeout.
        self._writer = threading.Lock() if backend == "sqlite" and not self._memory else None
        try:
            if backend == "sqlite":
                self._prepare_sqlite(engine, url)
            if backend in ("mysql", "mariadb"):
                sa.event.listen(engine, "connect", self._on_mysql_connect)
            self._create_tables(engine)
        except BaseException:
            engine.dispose()
            raise
        dialect = engine.dialect
        if dialect.name in ("postgresql", "sqlite") and dialect.insert_returning:
            self._upsert_style = "on_conflict"
        elif dialect.name in ("mysql", "mariadb"):
            self._upsert_style = "mysql"
        else:
            self._upsert_style = "generic"
        self._autocommit = (backend, url.get_driver_name()) in _AUTOCOMMIT_DRIVERS
        self._begin = "BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN"
        # libpq has no read timeout: the watchdog bounds every call instead.
        self._watched = backend == "postgresql"
        self._sql = {
            name: self._compile(dialect, table, column)
            for name, table, column in (
                ("result", self._results, "result"),
                ("error", self._errors, "error"),
            )
        }
        self._engine, self._pid = engine, os.getpid()
        self._connections = self._new_connections()

    def _new_connections(self) -> _Connections:
        engine = self.engine
        if self._memory:  # one connection, one database: calls take turns on it
            return _Connections(engine, keep=1, limit=1, detach=False)
        limit = self.pool_size + self.max_overflow
        return _Connections(engine, keep=self.pool_size, limit=limit, detach=True)

    def _compile(self, dialect: Any, table: Table, column: str) -> _TableSql:
        import sqlalchemy as sa

        values: dict[str, Any] = {k: sa.bindparam(k) for k in ("key_digest", *_KEY_PARTS, column)}
        by_digest = table.c.key_digest == sa.bindparam("key_digest")
        now = sa.func.now()
        upsert = None
        if self._upsert_style == "on_conflict":
            from sqlalchemy.dialects import postgresql, sqlite

            module: Any = postgresql if dialect.name == "postgresql" else sqlite
            insert = module.insert(table).values(values)
            on_conflict = insert.on_conflict_do_update(
                index_elements=[table.c.key_digest],
                set_={column: insert.excluded[column], "updated_at": now},
            )
            upsert = _Sql.compile(on_conflict, dialect)
        elif self._upsert_style == "mysql":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            my = mysql_insert(table).values(values)
            on_duplicate = my.on_duplicate_key_update(
                {column: my.inserted[column], "updated_at": now}
            )
            upsert = _Sql.compile(on_duplicate, dialect)
        return _TableSql(
            column=column,
            upsert=upsert,
            update=_Sql.compile(
                sa.update(table)
                .where(by_digest)
                .values({column: sa.bindparam(column), "updated_at": now}),
                dialect,
            ),
            insert=_Sql.compile(sa.insert(table).values(values), dialect),
            load=_Sql.compile(sa.select(table.c[column]).where(by_digest), dialect),
            delete=_Sql.compile(sa.delete(table).where(by_digest), dialect),
        )

    def _engine_options(self, url: URL) -> dict[str, Any]:
        import sqlalchemy as sa

        backend, driver, query = url.get_backend_name(), url.get_driver_name(), url.query
        args: dict[str, Any] = {}  # the driver's connect() arguments; the URL's own win

        def default(name: str, value: Any) -> None:
            if name not in query:
                args[name] = value

        engine: dict[str, Any] = {
            "echo": self.echo,
            # Errors and logs show no results or keys, only the statements (unless echo).
            "hide_parameters": not self.echo,
        }
        if (backend, driver) in _AUTOCOMMIT_DRIVERS:
            # A single statement is its own transaction (one round trip); calls of several
            # statements open theirs with BEGIN and always end it (see _cursor).
            engine.update(isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
        if backend == "sqlite":
            args["check_same_thread"] = False  # pooled: one thread at a time, not always one
            default("timeout", self.connect_timeout)
        if backend == "sqlite" and _is_memory(url):
            # One connection, so one database; calls take turns on it.
            engine["poolclass"] = sa.pool.StaticPool
        else:
            engine.update(pool_size=self.pool_size, max_overflow=self.max_overflow)
        if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
            default("connect_timeout", max(2, math.ceil(self.connect_timeout)))
            if self.encoding is not None:
                args["client_encoding"] = self.encoding
            if self.statement_timeout is not None:
                timeout = f"-c statement_timeout={math.ceil(self.statement_timeout * 1000)}"
                args["options"] = f"{query.get('options', '')} {timeout}".strip()
        elif backend in ("mysql", "mariadb") and driver == "pymysql":
            default("connect_timeout", self.connect_timeout)
            # PyMySQL's connect_timeout covers the TCP connect only: without a read timeout a
            # server that accepts and stays silent hangs the handshake (and any call) forever.
            default("read_timeout", self._io_timeout)
            default("write_timeout", self._io_timeout)
            encoding = (self.encoding or "utf8mb4").lower()
            default("charset", "utf8mb4" if encoding in ("utf-8", "utf8") else encoding)
            args["binary_prefix"] = True  # PyMySQL < 1.2: bytes as _binary'…', not as text
            args["max_allowed_packet"] = 1 << 30  # PyMySQL's own limit: leave it to the server
        engine["connect_args"] = args
        return engine

    @property
    def _io_timeout(self) -> float:
        """Seconds a call may wait for the server before the client gives up."""
        return (self.statement_timeout or _IO_TIMEOUT) + self.connect_timeout

    def _prepare_sqlite(self, engine: Engine, url: URL) -> None:
        if _is_memory(url):
            return
        if url.database and "uri" not in url.query:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        with engine.connect() as conn:
            # Persistent in the file: readers never wait for the writer, writers wait in turn.
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def _on_mysql_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION(), @@max_allowed_packet")
            version, max_packet = cursor.fetchone()
            # A statement over the limit makes the server drop the connection ("gone away"),
            # which looks transient: store checks sizes against it first.
            self._max_packet = int(max_packet)
            seconds = self.statement_timeout
            if seconds is None:
                pass
            elif "mariadb" in str(version).lower():
                cursor.execute(f"SET SESSION max_statement_time = {seconds:f}")
            else:  # MySQL: milliseconds, SELECT statements only
                cursor.execute(f"SET SESSION max_execution_time = {math.ceil(seconds * 1000)}")
        finally:
            cursor.close()

    def _check_packet(self, rows: list[dict[str, Any]], column: str) -> None:
        """Refuse, before sending, a row the MySQL server would not accept in one packet."""
        limit = self._max_packet
        if limit is None:
            return
        for row in rows:
            # PyMySQL sends bytes hex-encoded (X'…'): a result takes twice its size.
            needed = 2 * _row_size(row, column) + _STATEMENT_BYTES
            if needed > limit:
                raise StorageError(
                    f"{self.storage_name}: a result of {len(row[column])} bytes does not fit the "
                    f"server's max_allowed_packet of {limit} bytes (it travels hex-encoded and "
                    f"needs {needed}); raise max_allowed_packet in the server configuration"
                )

    def _create_tables(self, engine: Engine) -> None:
        metadata = self._results.metadata
        try:
            metadata.create_all(engine, checkfirst=True)
        except Exception:
            # Another process may have created them between the check and CREATE TABLE.
            import sqlalchemy as sa

            names = set(sa.inspect(engine).get_table_names())
            if not {self._results.name, self._errors.name} <= names:
                raise

    def disconnect(self) -> None:
        engine, self._engine = self._engine, None
        connections, self._connections = self._connections, None
        if engine is not None:
            # A forked child drops the parent's connections without closing them.
            close = os.getpid() == self._pid
            if connections is not None:
                connections.closed = True  # connections still in use close when put back
                connections.drop_idle(close=close)
            engine.dispose(close=close)

    def is_connected(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of this instance (connected storages only)."""
        engine = self._engine
        if engine is None:
            raise RuntimeError(f"{self.storage_name} is not connected: call connect() first")
        if self._pid != os.getpid():
            # Used directly in a forked child (the pool would have built a new instance):
            # forget the parent's connections, never touching them.
            self._pid = os.getpid()
            engine.dispose(close=False)
            if self._connections is not None:
                self._connections.drop_idle(close=False)
            self._connections = self._new_connections()
            if self._writer is not None:  # another thread may have held it at fork()
                self._writer = threading.Lock()
            if self._memory:
                self._create_tables(engine)  # a new in-memory database
        return engine

    def _take(self) -> tuple[_Connections, Any, Any, int | None]:
        """A connection and its cursor for one call, with the call's watchdog token."""
        self.engine  # noqa: B018 - a forked child gets its own connections first
        connections = self._connections
        assert connections is not None
        try:
            connection, cursor = connections.get()
        except Exception as exc:  # the engine's pool raises the driver's own errors
            self._reraise(exc, broken=True)
        token = WATCHDOG.watch(connection.fileno(), self._io_timeout) if self._watched else None
        return connections, connection, cursor, token

    @contextlib.contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[Any]:
        """A DBAPI cursor on one of this instance's connections, for one call.

        With the drivers we ship the connection is in autocommit mode: a single statement is
        its own transaction, one round trip; ``transaction=True`` wraps the call in BEGIN …
        COMMIT. Other drivers commit at the end of every call. On any failure the transaction
        is rolled back, a connection the server dropped (or that timed out) is closed and the
        others idle with it are too; driver errors come out as SQLAlchemy's ``DBAPIError``
        subclasses, as from Core. A transaction writes: on SQLite it waits its turn first."""
        writer = self._writer if transaction else None
        if writer is not None:
            self._wait_turn(writer)
        try:
            connections, connection, cursor, token = self._take()
            try:
                if transaction and self._autocommit:
                    cursor.execute(self._begin)
                yield cursor
                if not self._autocommit:
                    connection.commit()
                elif transaction:
                    cursor.execute("COMMIT")
            except BaseException as exc:
                self._failed(connections, connection, cursor, token, exc, transaction)
            if token is not None:
                WATCHDOG.release(token)
            connections.put(connection, cursor, False)
        finally:
            if writer is not None:
                writer.release()

    def _run(self, sql: _Sql, values: dict[str, Any], write: bool = False) -> Any:
        """One statement as its own call: the first row it returns, or for a statement that
        returns none, the number of rows it changed. What :meth:`_cursor` does, without a
        generator: the code path of every store, retrieve and delete."""
        writer = self._writer if write else None
        if writer is not None:
            self._wait_turn(writer)
        try:
            connections, connection, cursor, token = self._take()
            try:
                cursor.execute(sql.text, sql.args(values))
                outcome = cursor.fetchone() if cursor.description else cursor.rowcount
                if not self._autocommit:
                    connection.commit()
            except BaseException as exc:
                self._failed(connections, connection, cursor, token, exc, False)
            if token is not None:
                WATCHDOG.release(token)
            connections.put(connection, cursor, False)
            return outcome
        finally:
            if writer is not None:
                writer.release()

    def _wait_turn(self, writer: threading.Lock) -> None:
        """Take ``writer``, the SQLite file's write queue of this instance."""
        if not writer.acquire(timeout=self.connect_timeout):
            raise TimeoutError(
                f"{self.storage_name}: other threads kept writing for {self.connect_timeout:g} s "
                "(connect_timeout)"
            )

    def _failed(
        self,
        connections: _Connections,
        connection: Any,
        cursor: Any,
        token: int | None,
        exc: BaseException,
        transaction: bool,
    ) -> NoReturn:
        """After a call failed with ``exc``: roll back, give the connection back (closed, with
        every idle one, if the server dropped it), raise."""
        broken = True
        try:
            broken = self._abort(connection, cursor, exc, transaction)
            if token is not None and WATCHDOG.release(token):
                token, broken = None, True
                raise TimeoutError(
                    f"{self.storage_name}: no answer from the database within "
                    f"{self._io_timeout:g} s (statement_timeout + connect_timeout)"
                ) from exc
            self._reraise(exc, broken)
        finally:
            if token is not None:
                WATCHDOG.release(token)
            connections.put(connection, cursor, broken)
            if broken:
                connections.drop_idle()  # the server may have dropped them all (a restart)

    def _abort(self, connection: Any, cursor: Any, exc: BaseException, transaction: bool) -> bool:
        """Roll back after ``exc``; whether the connection is unusable now."""
        dialect = self.engine.dialect
        if isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
            exc, connection.dbapi_connection, cursor
        ):
            return True
        if not isinstance(exc, Exception):  # interrupted mid-call: the protocol state is unknown
            return True
        try:
            if not self._autocommit:
                connection.rollback()
            elif transaction:
                cursor.execute("ROLLBACK")
        except Exception:
            return True
        return False

    def _reraise(self, exc: BaseException, broken: bool) -> NoReturn:
        """Raise ``exc``, a driver error as SQLAlchemy's DBAPIError subclass (what
        is_transient reads), chained."""
        import sqlalchemy as sa

        dialect = self.engine.dialect
        if not isinstance(exc, dialect.loaded_dbapi.Error):
            raise exc
        raise sa.exc.DBAPIError.instance(
            None,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=broken,
            dialect=dialect,
        ) from exc

    def is_transient(self, exc: BaseException) -> bool:
        errors = sys.modules.get("sqlalchemy.exc")  # never import SQLAlchemy just to classify
        if errors is not None:
            if isinstance(exc, (errors.DisconnectionError, errors.TimeoutError)):
                return True
            if isinstance(exc, errors.DBAPIError):
                if exc.connection_invalidated:
                    return True
                if isinstance(exc, errors.OperationalError):
                    return not _permanent(exc.orig)
                if isinstance(exc, errors.IntegrityError) and self._upsert_style == "generic":
                    return True  # update-then-insert raced another insert: again, it updates
        return super().is_transient(exc)

    def ping(self) -> bool:
        with self._cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True

    # -- rows -----------------------------------------------------------------------------

    @staticmethod
    def _row(
        flow_name: str, task_name: str, task_id: str, column: str, data: bytes
    ) -> dict[str, Any]:
        return {
            "key_digest": key_digest(flow_name, task_name, task_id),
            "flow_name": flow_name,
            "task_name": task_name,
            "task_id": task_id,
            column: data,
        }

    def _write(self, sql: _TableSql, row: dict[str, Any]) -> str:
        """Insert or replace one row; its id (the key digest). One statement where the
        dialect has an upsert."""
        if sql.upsert is None:
            self._write_many(sql, [row])
        else:
            self._check_packet([row], sql.column)
            self._run(sql.upsert, row, write=True)
        return str(row["key_digest"])

    def _write_many(self, sql: _TableSql, rows: list[dict[str, Any]]) -> None:
        """Insert or replace rows of distinct keys in one transaction."""
        self._check_packet(rows, sql.column)
        max_bytes = _BATCH_BYTES
        if self._max_packet is not None:  # hex-encoded on MySQL: twice the size
            max_bytes = min(max_bytes, self._max_packet // 2 - _STATEMENT_BYTES)
        with self._cursor(transaction=True) as cursor:
            for batch in _batches(rows, sql.column, max_bytes):
                if sql.upsert is not None:
                    # psycopg pipelines the statements; PyMySQL sends one multi-row INSERT.
                    cursor.executemany(sql.upsert.text, [sql.upsert.args(r) for r in batch])
                    continue
                for row in batch:
                    cursor.execute(sql.update.text, sql.update.args(row))
                    if cursor.rowcount < 1:
                        cursor.execute(sql.insert.text, sql.insert.args(row))

    def _by_digest(
        self, cursor: Any, table: Table, column: str, digests: list[str]
    ) -> Iterator[tuple[str, Any]]:
        """``(key_digest, column)`` of the rows with these digests: one SELECT … IN per 500,
        each compiled once per table, column and number of digests."""
        for start in range(0, len(digests), _BATCH_ROWS):
            batch = digests[start : start + _BATCH_ROWS]
            stmt = self._select_in.get((table.name, column, len(batch)))
            if stmt is None:
                import sqlalchemy as sa

                query = sa.select(table.c.key_digest, table.c[column])
                stmt = _Sql.compile(query.where(table.c.key_digest.in_(batch)), self.engine.dialect)
                self._select_in[(table.name, column, len(batch))] = stmt
            # The statement's only parameters are the IN list, in order.
            cursor.execute(stmt.text, stmt.args(dict(zip(stmt.bound, batch, strict=True))))
            yield from cursor.fetchall()

    def _load(self, sql: _TableSql, key: Key) -> bytes | None:
        found = self._run(sql.load, {"key_digest": key_digest(*key)})
        return None if found is None else bytes(found[0])

    # -- the contract ---------------------------------------------------------------------

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        row = self._row(flow_name, task_name, task_id, "result", self.serializer.dumps(result))
        return self._write(self._sql["result"], row)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        data = self._load(self._sql["result"], (flow_name, task_name, task_id))
        if data is None:
            raise self.not_found(flow_name, task_name, task_id)
        return self.serializer.loads(data)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        digest = key_digest(flow_name, task_name, task_id)
        if not self._run(self._sql["result"].delete, {"key_digest": digest}, write=True):
            raise self.not_found(flow_name, task_name, task_id)

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        record = make_error_record(node_args, flow_name, task_name, task_id, exc_info)
        return self._write_error(record)

    def store_error_record(self, record: dict[str, Any]) -> str:
        return self._write_error(record)

    def _write_error(self, record: dict[str, Any]) -> str:
        row = self._row(*record_key(record), "error", dump_error_record(record))
        return self._write(self._sql["error"], row)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        data = self._load(self._sql["error"], (flow_name, task_name, task_id))
        if data is None:
            raise self.not_found(flow_name, task_name, task_id, "error record")
        return load_error_record(data)

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        # Serialize everything first: one bad result stores nothing.
        rows = [self._row(f, t, i, "result", self.serializer.dumps(r)) for f, t, i, r in items]
        if not rows:
            return []
        # One row per key (the last result given wins): an upsert may touch a row only once.
        unique = {row["key_digest"]: row for row in rows}
        self._write_many(self._sql["result"], list(unique.values()))
        return [row["key_digest"] for row in rows]

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        by_digest = {key_digest(*key): key for key in keys}
        with self._cursor() as cursor:
            found = {
                by_digest[digest]: bytes(data)
                for digest, data in self._by_digest(cursor, self._results, "result", [*by_digest])
            }
        return {key: self.serializer.loads(data) for key, data in found.items()}

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._results, flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._errors, flow_name)

    def _keys(self, table: Table, flow_name: str | None) -> Iterator[Key]:
        import sqlalchemy as sa

        query = (
            sa.select(table.c.key_digest, table.c.flow_name, table.c.task_name, table.c.task_id)
            .where(table.c.key_digest > sa.bindparam("last"))
            .order_by(table.c.key_digest)
            .limit(_PAGE)
        )
        if flow_name is not None:
            query = query.where(table.c.flow_name == sa.bindparam("flow"))
        page = _Sql.compile(query, self.engine.dialect)
        last = ""
        while True:  # pages by digest, each its own statement: no transaction held between them
            with self._cursor() as cursor:
                cursor.execute(page.text, page.args({"last": last, "flow": flow_name}))
                rows = cursor.fetchall()
            for _digest, flow, task, task_id in rows:
                # Exact match in Python too: a collation may compare "a" and "a " as equal.
                if flow_name is None or flow == flow_name:
                    yield (flow, task, task_id)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]


def _permanent(orig: BaseException | None) -> bool:
    """Whether a driver's OperationalError is one that retrying cannot fix."""
    if orig is None:
        return False
    text = str(orig).lower()
    if any(sign in text for sign in _PERMANENT_TEXT):
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_PG_PERMANENT)
    if type(orig).__module__.startswith("sqlite3"):
        return "locked" not in text and "busy" not in text
    code = orig.args[0] if orig.args else None
    return isinstance(code, int) and code in _MYSQL_PERMANENT


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
    ``echo`` (bool, default ``false``)
        log every SQL statement.
    ``encoding`` (str, default none)
        accepted for Selinon's configurations and ignored: SQLite stores UTF-8.
    ``table_name`` (str, default ``"selinon_results"``)
        the results table; errors go to ``<table_name>_errors``.
    ``pool_size`` (int, default ``5``), ``max_overflow`` (int, default ``10``)
        connections kept open, and extra ones under load (file databases).
    ``connect_timeout`` (float, default ``10``)
        seconds a writer waits for its turn (behind the instance's other writers, or another
        process's: SQLite's busy timeout).

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
        echo: bool = False,
        encoding: str | None = None,
        table_name: str = "selinon_results",
        pool_size: int = 5,
        max_overflow: int = 10,
        connect_timeout: float = 10.0,
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

    def _url(self) -> URL:
        if self.path is None:
            return super()._url()
        from sqlalchemy.engine import URL

        # URL.create, not string formatting: a path may hold "?", "#" or "%".
        return URL.create("sqlite", database=None if self.path == ":memory:" else self.path)
