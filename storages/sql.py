"""``SqlStorage``: results in two SQL tables through SQLAlchemy 2 Core (any dialect; SQLite,
PostgreSQL and MySQL/MariaDB tuned), and ``SQLite``, its embedded variant."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import URL, Connection, Engine

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
_MYSQL_IO_TIMEOUT = 300.0  # PyMySQL socket read/write: statement_timeout, else this
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
    """The results table and ``<table_name>_errors``, each keyed by the SHA-256 of the key."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    # Keys are unbounded text (binary collation on MySQL so "A" != "a"); the unique index is on
    # their digest, which every dialect can index whatever the key length.
    text = sa.Text().with_variant(
        mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")  # >= 64 MB
    digest = sa.CHAR(64).with_variant(mysql.CHAR(64, charset="ascii"), "mysql", "mariadb")
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid alias
    metadata = sa.MetaData()

    def table(name: str, data: str) -> Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("id", ident, primary_key=True, autoincrement=True),
            sa.Column("key_digest", digest, nullable=False),
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
            sa.UniqueConstraint("key_digest", name=f"uq_{name}_key"),
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
    return len(row[column]) + sum(len(row[part]) for part in _KEY_PARTS) * 4 + 200


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


class SqlStorage(DataStorage):
    """Results in a SQL database through SQLAlchemy 2 Core, for any SQLAlchemy URL.

    Two tables, created on ``connect()`` when missing: ``<table_name>`` for results and
    ``<table_name>_errors`` for error records (one row per key: the last error), so errors never
    shadow results. Each row holds ``flow_name``, ``task_name``, ``task_id`` (unbounded text, kept
    exactly), ``key_digest`` (SHA-256 of the key, the unique key), the serializer's bytes
    (``LargeBinary``: ``bytea`` on PostgreSQL, ``BLOB`` on SQLite, ``LONGBLOB`` on MySQL/MariaDB —
    room for results of 64 MB and more), ``created_at`` and ``updated_at``. ``store`` is one
    atomic upsert (``ON CONFLICT`` on PostgreSQL/SQLite, ``ON DUPLICATE KEY`` on MySQL/MariaDB,
    update-then-insert in one transaction elsewhere) and returns the row id.
    ``store_many`` is one transaction of multi-row upserts (500 rows each, fewer for big
    results) and ``retrieve_many`` one ``SELECT … WHERE key_digest IN (…)`` per 500 keys.

    One engine per instance, with its own connection pool, ``pool_pre_ping`` and one short
    transaction per call (rolled back on any failure), so calls from many threads run
    concurrently. Dropped connections, timeouts and lock waits are transient: retried under
    the storage's ``retry`` policy, then :class:`~selinon_like.StorageUnavailable`. A forked
    child never uses or closes its parent's connections.

    URLs: ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (extra
    ``postgresql``), ``mysql://`` means ``mysql+pymysql://`` (extra ``mysql``); any other
    SQLAlchemy URL works with its driver installed. A missing driver is a
    :class:`~selinon_like.ConfigError` naming the extra. On MySQL/MariaDB PyMySQL sends a result
    hex-encoded, so the server's ``max_allowed_packet`` must be twice its size (MariaDB's default
    16 MB takes results up to about 8 MB; a larger one fails at once with a
    :class:`~selinon_like.StorageError` that says so). SQLite: a file database
    runs in WAL mode with a busy timeout, so many threads and processes share it; an in-memory
    one (``sqlite://``) is private to the instance, which then serialises its calls.

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
        the busy timeout, how long a writer waits for another one's lock.
    ``statement_timeout`` (float, default none)
        seconds a statement may run: PostgreSQL ``statement_timeout``, MariaDB
        ``max_statement_time``, MySQL ``max_execution_time``; ignored by other dialects.
        With PyMySQL the socket read/write timeout is this plus ``connect_timeout`` (300 s
        plus ``connect_timeout`` without it), so a silent server never hangs a call.

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
        self._serial: threading.Lock | None = None  # set for in-memory SQLite (one connection)
        self._upsert_style = "generic"
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
        memory = url.get_backend_name() == "sqlite" and _is_memory(url)
        self._serial = threading.Lock() if memory else None
        try:
            if url.get_backend_name() == "sqlite":
                self._prepare_sqlite(engine, url)
            if url.get_backend_name() in ("mysql", "mariadb"):
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
        self._engine, self._pid = engine, os.getpid()

    def _engine_options(self, url: URL) -> dict[str, Any]:
        import sqlalchemy as sa

        backend, driver, query = url.get_backend_name(), url.get_driver_name(), url.query
        args: dict[str, Any] = {}  # the driver's connect() arguments; the URL's own win

        def default(name: str, value: Any) -> None:
            if name not in query:
                args[name] = value

        engine: dict[str, Any] = {
            "echo": self.echo,
            "pool_pre_ping": True,
            # Errors and logs show no results or keys, only the statements (unless echo).
            "hide_parameters": not self.echo,
        }
        if backend == "sqlite":
            args["check_same_thread"] = False  # pooled: one thread at a time, not always one
            default("timeout", self.connect_timeout)
        if backend == "sqlite" and _is_memory(url):
            # One connection, so one database; calls take turns on it (self._serial).
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
            io_timeout = (self.statement_timeout or _MYSQL_IO_TIMEOUT) + self.connect_timeout
            default("read_timeout", io_timeout)
            default("write_timeout", io_timeout)
            encoding = (self.encoding or "utf8mb4").lower()
            default("charset", "utf8mb4" if encoding in ("utf-8", "utf8") else encoding)
            args["binary_prefix"] = True  # PyMySQL < 1.2: bytes as _binary'…', not as text
            args["max_allowed_packet"] = 1 << 30  # PyMySQL's own limit: leave it to the server
        engine["connect_args"] = args
        return engine

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
        if engine is not None:
            # A forked child drops the parent's pooled connections without closing them.
            engine.dispose(close=os.getpid() == self._pid)

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
            engine.dispose(close=False)
            self._pid = os.getpid()
            if self._serial is not None:
                self._serial = threading.Lock()
                self._create_tables(engine)  # a new in-memory database
        return engine

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One short transaction: committed on success, rolled back on any failure."""
        engine = self.engine
        serial = self._serial
        with serial if serial is not None else contextlib.nullcontext(), engine.begin() as conn:
            yield conn

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
        return super().is_transient(exc)

    def ping(self) -> bool:
        import sqlalchemy as sa

        with self._transaction() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
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

    def _upsert(
        self, conn: Connection, table: Table, column: str, rows: list[dict[str, Any]]
    ) -> dict[str, str]:
        """Insert or replace rows of distinct keys; their row ids by key digest.

        Many rows go as one ``executemany``, which SQLAlchemy ("insertmanyvalues") and PyMySQL
        send as multi-row statements: one compiled statement, a few round trips."""
        import sqlalchemy as sa

        now = sa.func.now()
        if self._upsert_style == "on_conflict":
            from sqlalchemy.dialects import postgresql, sqlite

            dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.key_digest],
                set_={column: stmt.excluded[column], "updated_at": now},
            )
            if len(rows) == 1 or conn.dialect.insert_executemany_returning:
                returning = stmt.returning(table.c.key_digest, table.c.id)
                return {digest: str(row_id) for digest, row_id in conn.execute(returning, rows)}
            conn.execute(stmt, rows)
        elif self._upsert_style == "mysql":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            my = mysql_insert(table)
            # LAST_INSERT_ID(id) makes the driver report the id of an updated row too.
            result = conn.execute(
                my.on_duplicate_key_update(
                    id=sa.func.last_insert_id(table.c.id),
                    **{column: my.inserted[column], "updated_at": now},
                ),
                rows,
            )
            if len(rows) == 1 and result.lastrowid:
                return {rows[0]["key_digest"]: str(result.lastrowid)}
        else:
            for row in rows:
                self._update_or_insert(conn, table, column, row)
        return self._ids(conn, table, [row["key_digest"] for row in rows])

    def _update_or_insert(
        self, conn: Connection, table: Table, column: str, row: dict[str, Any]
    ) -> None:
        import sqlalchemy as sa

        update = (
            sa.update(table)
            .where(table.c.key_digest == row["key_digest"])
            .values({column: row[column], "updated_at": sa.func.now()})
        )
        if conn.execute(update).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(table).values(row))
        except sa.exc.IntegrityError:  # a concurrent store inserted the key first
            conn.execute(update)

    def _ids(self, conn: Connection, table: Table, digests: list[str]) -> dict[str, str]:
        import sqlalchemy as sa

        query = sa.select(table.c.key_digest, table.c.id).where(table.c.key_digest.in_(digests))
        return {digest: str(row_id) for digest, row_id in conn.execute(query)}

    def _load(self, table: Table, column: str, key: Key) -> bytes | None:
        import sqlalchemy as sa

        query = sa.select(table.c[column]).where(table.c.key_digest == key_digest(*key))
        with self._transaction() as conn:
            data = conn.execute(query).scalar()
        return None if data is None else bytes(data)

    # -- the contract ---------------------------------------------------------------------

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        row = self._row(flow_name, task_name, task_id, "result", self.serializer.dumps(result))
        self._check_packet([row], "result")
        with self._transaction() as conn:
            return self._upsert(conn, self._results, "result", [row])[row["key_digest"]]

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        data = self._load(self._results, "result", (flow_name, task_name, task_id))
        if data is None:
            raise self.not_found(flow_name, task_name, task_id)
        return self.serializer.loads(data)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        import sqlalchemy as sa

        table = self._results
        query = sa.delete(table).where(
            table.c.key_digest == key_digest(flow_name, task_name, task_id)
        )
        with self._transaction() as conn:
            deleted = conn.execute(query).rowcount
        if not deleted:
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
        return self._write_error((flow_name, task_name, task_id), record)

    def store_error_record(self, record: dict[str, Any]) -> str:
        return self._write_error(record_key(record), record)

    def _write_error(self, key: Key, record: dict[str, Any]) -> str:
        row = self._row(*key, "error", dump_error_record(record))
        self._check_packet([row], "error")
        with self._transaction() as conn:
            return self._upsert(conn, self._errors, "error", [row])[row["key_digest"]]

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        data = self._load(self._errors, "error", (flow_name, task_name, task_id))
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
        self._check_packet(rows, "result")
        max_bytes = _BATCH_BYTES
        if self._max_packet is not None:  # hex-encoded on MySQL: twice the size
            max_bytes = min(max_bytes, self._max_packet // 2 - _STATEMENT_BYTES)
        ids: dict[str, str] = {}
        with self._transaction() as conn:
            for batch in _batches(list(unique.values()), "result", max_bytes):
                ids.update(self._upsert(conn, self._results, "result", batch))
        return [ids[row["key_digest"]] for row in rows]

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        import sqlalchemy as sa

        by_digest = {key_digest(*key): key for key in keys}
        digests = list(by_digest)
        table = self._results
        found: dict[Key, Any] = {}
        with self._transaction() as conn:
            for start in range(0, len(digests), _BATCH_ROWS):
                batch = digests[start : start + _BATCH_ROWS]
                query = sa.select(table.c.key_digest, table.c.result).where(
                    table.c.key_digest.in_(batch)
                )
                for digest, data in conn.execute(query):
                    found[by_digest[digest]] = bytes(data)
        return {key: self.serializer.loads(data) for key, data in found.items()}

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._results, flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._errors, flow_name)

    def _keys(self, table: Table, flow_name: str | None) -> Iterator[Key]:
        import sqlalchemy as sa

        last = 0
        while True:  # pages by id, each its own short transaction
            query = (
                sa.select(table.c.id, table.c.flow_name, table.c.task_name, table.c.task_id)
                .where(table.c.id > last)
                .order_by(table.c.id)
                .limit(_PAGE)
            )
            if flow_name is not None:
                query = query.where(table.c.flow_name == flow_name)
            with self._transaction() as conn:
                rows = conn.execute(query).all()
            for _id, flow, task, task_id in rows:
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

    A file database runs in WAL mode (readers never wait for the writer) with a busy timeout
    (writers from many threads and processes wait their turn, up to ``connect_timeout``); its
    directory is created on ``connect()``. ``path: ":memory:"`` keeps the results in this
    instance's memory: one connection, calls take turns, nothing survives the process, and a
    forked child starts empty. Everything else is as in :class:`SqlStorage`.

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
        the busy timeout: seconds a writer waits for another writer's lock.

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
