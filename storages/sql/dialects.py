"""Per-dialect quirks of the SQL adapter, in one place.

Which driver a plain URL scheme means (:func:`with_default_driver`); the engine and driver
options of each database (:func:`engine_options`: autocommit, timeouts, charset, pool); what
the call path must know once connected (:class:`Quirks`: the upsert a dialect has, whether
calls send their own BEGIN, which need a watchdog, SQLite's write queue); SQLite's WAL file
(:func:`prepare_sqlite`); MySQL's session settings and packet limit (:class:`MySqlSession`);
and which driver errors retrying cannot fix (:func:`is_permanent`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from selinon_like.errors import StorageError
from storages.sql.statements import BATCH_BYTES, STATEMENT_BYTES, row_size

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Dialect, Engine

__all__ = [
    "MySqlSession",
    "Quirks",
    "engine_options",
    "is_memory",
    "is_permanent",
    "prepare_sqlite",
    "scheme",
    "with_default_driver",
]

# A plain scheme (as in Selinon's docs) means the driver our extras install.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
# Drivers whose connections run in autocommit mode: a call of several statements sends its
# own BEGIN … COMMIT (tested with each; other drivers commit through the DBAPI).
_AUTOCOMMIT_DRIVERS = {
    ("postgresql", "psycopg"),
    ("mysql", "pymysql"),
    ("mariadb", "pymysql"),
    ("sqlite", "pysqlite"),
}
# Errors drivers raise as OperationalError that retrying cannot fix.
_MYSQL_PERMANENT = {1044, 1045, 1049, 1153, 1698}  # access denied, no database, packet too big
_PG_PERMANENT = ("28", "3D")  # SQLSTATE classes: invalid authorization, unknown database
# What a refused login says when the driver gives no code (psycopg while connecting).
_PERMANENT_TEXT = ("authentication failed", "access denied", "does not exist")


def scheme(connection_string: str) -> str:
    """``postgresql`` of ``postgresql+psycopg://…`` (no SQLAlchemy import needed)."""
    return connection_string.partition(":")[0].partition("+")[0].lower()


def with_default_driver(connection_string: str) -> URL:
    """The URL to connect to, with a plain scheme mapped to the driver we ship."""
    from sqlalchemy.engine import make_url

    url = make_url(connection_string)
    driver = _DEFAULT_DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


def is_memory(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


class Settings(Protocol):
    """The adapter options the engine is built from (SqlStorage has them)."""

    echo: bool
    encoding: str | None
    pool_size: int
    max_overflow: int
    connect_timeout: float
    statement_timeout: float | None

    @property
    def io_timeout(self) -> float: ...


def engine_options(url: URL, settings: Settings) -> dict[str, Any]:
    """``create_engine`` keyword arguments for ``url``: the driver's ``connect()`` arguments
    (the URL's own query arguments win over our defaults), autocommit, the pool's size."""
    import sqlalchemy as sa

    backend, driver, query = url.get_backend_name(), url.get_driver_name(), url.query
    args: dict[str, Any] = {}

    def default(name: str, value: Any) -> None:
        if name not in query:
            args[name] = value

    engine: dict[str, Any] = {
        "echo": settings.echo,
        # Errors and logs show no results or keys, only the statements (unless echo).
        "hide_parameters": not settings.echo,
    }
    if (backend, driver) in _AUTOCOMMIT_DRIVERS:
        # A single statement is its own transaction (one round trip); calls of several
        # statements open theirs with BEGIN and always end it (see Executor.cursor).
        engine.update(isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    if backend == "sqlite":
        args["check_same_thread"] = False  # pooled: one thread at a time, not always one
        default("timeout", settings.connect_timeout)
    if backend == "sqlite" and is_memory(url):
        # One connection, so one database; calls take turns on it.
        engine["poolclass"] = sa.pool.StaticPool
    else:
        engine.update(pool_size=settings.pool_size, max_overflow=settings.max_overflow)
    statement_timeout = settings.statement_timeout
    if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        default("connect_timeout", max(2, math.ceil(settings.connect_timeout)))
        if settings.encoding is not None:
            args["client_encoding"] = settings.encoding
        if statement_timeout is not None:
            timeout = f"-c statement_timeout={math.ceil(statement_timeout * 1000)}"
            args["options"] = f"{query.get('options', '')} {timeout}".strip()
    elif backend in ("mysql", "mariadb") and driver == "pymysql":
        default("connect_timeout", settings.connect_timeout)
        # PyMySQL's connect_timeout covers the TCP connect only: without a read timeout a
        # server that accepts and stays silent hangs the handshake (and any call) forever.
        default("read_timeout", settings.io_timeout)
        default("write_timeout", settings.io_timeout)
        encoding = (settings.encoding or "utf8mb4").lower()
        default("charset", "utf8mb4" if encoding in ("utf-8", "utf8") else encoding)
        args["binary_prefix"] = True  # PyMySQL < 1.2: bytes as _binary'…', not as text
        args["max_allowed_packet"] = 1 << 30  # PyMySQL's own limit: leave it to the server
    engine["connect_args"] = args
    return engine


@dataclasses.dataclass(frozen=True)
class Quirks:
    """What the call path needs to know about the connected database."""

    backend: str  # SQLAlchemy's backend name: sqlite, postgresql, mysql, mariadb, ...
    autocommit: bool  # connections in autocommit mode: transactions send their own BEGIN
    begin: str  # how a transaction starts (SQLite: IMMEDIATE, the write lock at once)
    watched: bool  # the driver has no read timeout: the watchdog bounds every call
    memory: bool  # an in-memory SQLite database: one connection, calls take turns
    write_queue: bool  # a SQLite file: this instance's writers queue on a lock
    upsert: str  # on_conflict, mysql or generic (update, then insert if nothing changed)

    @classmethod
    def of(cls, url: URL, dialect: Dialect) -> Quirks:
        backend = url.get_backend_name()
        memory = backend == "sqlite" and is_memory(url)
        if dialect.name in ("postgresql", "sqlite") and dialect.insert_returning:
            upsert = "on_conflict"
        elif dialect.name in ("mysql", "mariadb"):
            upsert = "mysql"
        else:
            upsert = "generic"
        return cls(
            backend=backend,
            autocommit=(backend, url.get_driver_name()) in _AUTOCOMMIT_DRIVERS,
            begin="BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN",
            # libpq has no read timeout.
            watched=backend == "postgresql",
            memory=memory,
            # SQLite lets one writer in at a time and makes the others poll, sleeping 1 to
            # 100 ms between tries: this instance's threads queue on a lock instead, and only
            # writers of other processes meet the busy timeout.
            write_queue=backend == "sqlite" and not memory,
            upsert=upsert,
        )


def prepare_sqlite(engine: Engine, url: URL) -> None:
    """Create a file database's directory and put the file in WAL mode."""
    if is_memory(url):
        return
    if url.database and "uri" not in url.query:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        # Persistent in the file: readers never wait for the writer, writers wait in turn.
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


class MySqlSession:
    """MySQL/MariaDB: the statement timeout set on every new connection, and the server's
    ``max_allowed_packet``, read there, against which writes are checked before sending."""

    def __init__(self, storage_name: str, statement_timeout: float | None) -> None:
        self.storage_name = storage_name
        self.statement_timeout = statement_timeout
        self.max_packet: int | None = None  # known once the first connection is open

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        """SQLAlchemy's ``connect`` event."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION(), @@max_allowed_packet")
            version, max_packet = cursor.fetchone()
            # A statement over the limit makes the server drop the connection ("gone away"),
            # which looks transient: writes check sizes against it first.
            self.max_packet = int(max_packet)
            seconds = self.statement_timeout
            if seconds is None:
                pass
            elif "mariadb" in str(version).lower():
                cursor.execute(f"SET SESSION max_statement_time = {seconds:f}")
            else:  # MySQL: milliseconds, SELECT statements only
                cursor.execute(f"SET SESSION max_execution_time = {math.ceil(seconds * 1000)}")
        finally:
            cursor.close()

    def batch_bytes(self) -> int:
        """How many bytes of data one bulk statement may carry."""
        if self.max_packet is None:
            return BATCH_BYTES
        return min(BATCH_BYTES, self.max_packet // 2 - STATEMENT_BYTES)  # hex: twice the size

    def check(self, rows: list[dict[str, Any]], column: str) -> None:
        """Refuse, before sending, a row the server would not accept in one packet."""
        limit = self.max_packet
        if limit is None:
            return
        for row in rows:
            # PyMySQL sends bytes hex-encoded (X'…'): a result takes twice its size.
            needed = 2 * row_size(row, column) + STATEMENT_BYTES
            if needed > limit:
                raise StorageError(
                    f"{self.storage_name}: a result of {len(row[column])} bytes does not fit the "
                    f"server's max_allowed_packet of {limit} bytes (it travels hex-encoded and "
                    f"needs {needed}); raise max_allowed_packet in the server configuration"
                )


def is_permanent(orig: BaseException | None) -> bool:
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
