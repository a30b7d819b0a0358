"""Per-dialect quirks of the SQL adapter, in one place.

Which driver a plain URL scheme means (:func:`with_default_driver`); the engine and driver
options of each database (:func:`engine_options`: autocommit, timeouts, charset, pool); what
the call path must know once connected (:class:`Quirks`: the upsert a dialect has, whether
calls send their own BEGIN, which need a watchdog, SQLite's write queue); SQLite's WAL file
(:func:`prepare_sqlite`); MySQL's session settings and packet limit (:class:`MySqlSession`)
and the upsert PyMySQL sends with its result as an escaped binary literal, not hex
(:class:`MySqlUpsert`), and its statements by digest without PyMySQL's escaping
(:class:`MySqlByDigest`); psycopg's upsert of many rows as one statement on arrays
(:class:`PgArrayUpsert`); and which driver errors retrying cannot fix (:func:`is_permanent`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from selinon_like.errors import StorageError
from storages.sql.statements import BATCH_BYTES, STATEMENT_BYTES, Sql, row_size

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import URL, Dialect, Engine

__all__ = [
    "MySqlByDigest",
    "MySqlSession",
    "MySqlUpsert",
    "PgArrayUpsert",
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

    def refuse(self, size: int, needed: int, how: str) -> StorageError:
        """The error for a result of ``size`` bytes whose statement needs ``needed``."""
        return StorageError(
            f"{self.storage_name}: a result of {size} bytes does not fit the server's "
            f"max_allowed_packet of {self.max_packet} bytes ({how}, the statement needs "
            f"{needed}); raise max_allowed_packet in the server configuration"
        )

    def check_hex(self, row: dict[str, Any], column: str) -> None:
        """Refuse, before sending, a row that PyMySQL's own escaping (``X'…'``: twice the
        size) would take past the limit."""
        limit = self.max_packet
        needed = 2 * row_size(row, column) + STATEMENT_BYTES
        if limit is not None and needed > limit:
            raise self.refuse(len(row[column]), needed, "hex-encoded")


_VALUES = re.compile(rb"\bVALUES\s*(\((?:[^()]|%\(\w+\)s)*\))", re.IGNORECASE)  # (%(a)s, …)
_PARAM = re.compile(rb"%\((\w+)\)s")


def _values_row(sql: Sql) -> tuple[bytes, re.Match[bytes]]:
    """``sql``'s text as bytes and the match of its VALUES row; a ValueError unless ``sql`` is
    a one-row INSERT with named parameters and nothing bound."""
    text = sql.text.encode("utf-8")
    found = _VALUES.search(text)
    if found is None or sql.names is not None or sql.bound:
        raise ValueError(f"not a one-row INSERT with named parameters: {sql.text!r}")
    return text, found


_NO_BACKSLASH_ESCAPES = 512  # PyMySQL's SERVER_STATUS_NO_BACKSLASH_ESCAPES bit


def _quoted(data: bytes, backslashes: bool) -> bytes:
    """``data`` as the inside of a '…' literal: the characters the server's lexer reads
    specially escaped (just the quote, doubled, where backslashes are not escapes)."""
    if not backslashes:
        return data.replace(b"'", b"''")
    return data.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\0", b"\\0")


@dataclasses.dataclass(frozen=True)
class MySqlUpsert(Sql):
    """An ``INSERT … ON DUPLICATE KEY UPDATE`` that PyMySQL sends with its values written in
    as ``_binary'…'`` literals, escaped, not as PyMySQL's ``X'…'``: a result travels at about
    its own size instead of twice it, so MariaDB's default ``max_allowed_packet`` of 16 MiB
    takes results of nearly 16 MiB (escaping grows random bytes ~1 %, JSON hardly).
    Many rows go in multi-row statements cut to fit the packet, each checked before sending.

    Only on a connection whose character set is UTF-8 (``utf8mb4``, the default): there no
    byte of a multi-byte character can be a quote or a backslash, so escaping bytes is safe.
    With any other character set the values go through PyMySQL as usual (hex)."""

    session: MySqlSession | None = None
    column: str = ""
    head: bytes = b""  # the statement up to its VALUES row
    pieces: tuple[bytes, ...] = ()  # the VALUES row around its parameters, in ``order``
    tail: bytes = b""  # ON DUPLICATE KEY UPDATE …
    order: tuple[str, ...] = ()

    @classmethod
    def of(cls, sql: Sql, session: MySqlSession, column: str) -> MySqlUpsert:
        text, found = _values_row(sql)
        row = found.group(1)
        split = _PARAM.split(row)  # text, name, text, name, …, text
        return cls(
            text=sql.text,
            names=None,
            bound={},
            rows=False,
            session=session,
            column=column,
            # No parameters outside the row: "% ()" only turns a literal %% into %.
            head=text[: found.start(1)] % (),
            pieces=tuple(piece % () for piece in split[0::2]),
            tail=text[found.end(1) :] % (),
            order=tuple(name.decode() for name in split[1::2]),
        )

    def execute(self, cursor: Any, values: dict[str, Any]) -> None:
        connection = cursor.connection
        if connection.encoding != "utf8":
            self._session.check_hex(values, self.column)
            super().execute(cursor, values)
            return
        parts = [self.head]
        self._row(parts, values, connection)
        parts.append(self.tail)
        statement = b"".join(parts)  # the one copy of the result
        self._check(len(statement), values)
        cursor.execute(statement)

    def execute_many(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        connection = cursor.connection
        if connection.encoding != "utf8":
            for values in rows:
                self._session.check_hex(values, self.column)
            super().execute_many(cursor, rows)
            return
        around = len(self.head) + len(self.tail)
        limit = min(BATCH_BYTES, (self._session.max_packet or BATCH_BYTES) - 1)
        parts = [self.head]
        size = around
        for values in rows:
            literal: list[bytes] = []
            self._row(literal, values, connection)
            row_size = sum(map(len, literal)) + 1  # and a comma
            if len(parts) > 1 and size + row_size > limit:
                parts[-1] = self.tail  # the last comma
                cursor.execute(b"".join(parts))
                parts, size = [self.head], around
            self._check(around + row_size - 1, values)
            parts += literal
            parts.append(b",")
            size += row_size
        if len(parts) > 1:
            parts[-1] = self.tail
            cursor.execute(b"".join(parts))

    @property
    def _session(self) -> MySqlSession:
        if self.session is None:
            raise RuntimeError("MySqlUpsert built without a session")
        return self.session

    def _row(self, parts: list[bytes], values: dict[str, Any], connection: Any) -> None:
        """Append the VALUES row of ``values`` to ``parts``, piece by piece."""
        backslashes = not connection.server_status & _NO_BACKSLASH_ESCAPES
        pieces = self.pieces
        for n, name in enumerate(self.order):
            parts.append(pieces[n])
            value = values[name]
            if isinstance(value, str):
                parts += (b"'", _quoted(value.encode("utf-8"), backslashes), b"'")
            elif isinstance(value, (bytes, bytearray, memoryview)):
                parts += (b"_binary'", _quoted(bytes(value), backslashes), b"'")
            elif value is None:
                parts.append(b"NULL")
            elif isinstance(value, int) and not isinstance(value, bool):
                parts.append(b"%d" % value)  # expires_at: digits need no quoting
            else:
                raise TypeError(f"no literal for a {type(value).__name__} value of {name!r}")
        parts.append(pieces[-1])

    def _check(self, needed: int, values: dict[str, Any]) -> None:
        """Refuse a statement the server would not take in one packet (it would drop the
        connection, which looks like a lost server); the command byte counts too."""
        limit = self._session.max_packet
        if limit is not None and needed + 1 > limit:
            raise self._session.refuse(len(values[self.column]), needed + 1, "escaped")


@dataclasses.dataclass(frozen=True)
class MySqlByDigest(Sql):
    """A statement whose one parameter is a key's digest (``load``, ``delete``), as PyMySQL
    would send it: the digest, 64 hex digits, written in quoted, which is what PyMySQL's
    escaping writes for it, without the escaping (its ``mogrify``: the value escaped through
    its encoders, the text formatted with a dict of them, the statement encoded). A retrieve
    through the pool took 244.1k client instructions with it, 233.1k without (callgrind,
    2,000 calls). A digest of anything but ASCII letters and digits goes through PyMySQL as
    usual."""

    head: bytes = b""  # up to the digest's opening quote
    tail: bytes = b""  # from its closing quote

    @classmethod
    def of(cls, sql: Sql) -> Sql:
        """``sql`` as one of these, or itself when its one parameter is not ``key_digest``."""
        if sql.bound or sql.names is not None or not sql.text.isascii():
            return sql
        pieces = _PARAM.split(sql.text.encode("ascii"))
        if len(pieces) != 3 or pieces[1] != b"key_digest":
            return sql
        # No other parameters: "% ()" only turns a literal %% into %, as PyMySQL's % would.
        head, tail = pieces[0] % () + b"'", b"'" + pieces[2] % ()
        return cls(sql.text, None, {}, sql.rows, head=head, tail=tail)

    def execute(self, cursor: Any, values: dict[str, Any]) -> None:
        digest = values["key_digest"]
        if type(digest) is str and digest.isascii() and digest.isalnum():
            cursor.execute(self.head + digest.encode("ascii") + self.tail)
        else:
            super().execute(cursor, values)


@dataclasses.dataclass(frozen=True)
class PgArrayUpsert(Sql):
    """PostgreSQL through psycopg: the ``INSERT … ON CONFLICT`` upsert, and for many rows the
    same statement on arrays, ``INSERT … SELECT * FROM unnest(%(a)b::T[], …) ON CONFLICT …``:
    one statement per batch, each column one array sent in binary (results as they are, no
    escaping). psycopg's ``executemany`` sends the row statement once per row instead
    (pipelined), its parameters converted in Python row by row.

    Measured 2026-12-02 on this 2-core VM, 1,000 small results a call, arrays against
    ``executemany`` on the same instance in alternating rounds: ``write_many`` costs the
    client 36.8k instructions a row against 73.4k (callgrind), and a ``store_many`` through
    the pool 72.7k against 109.8k (raw psycopg's ``executemany`` of a two-column upsert:
    73.9k); ``store_many`` takes 17-22 µs a row against 24-29, which makes it 13.7-15.7 times
    as fast as 1,000 ``store`` calls against 9.6-11.1 (CPUs kept awake; 21-26 against 16-20
    with their idle states on).

    The rows of one statement must have distinct keys (ON CONFLICT changes a row once per
    statement): the adapter's ``write_many`` keeps the last of each key."""

    many: str = ""  # the statement on one array per column
    order: tuple[str, ...] = ()  # its parameters, the columns of the VALUES row

    @classmethod
    def of(cls, sql: Sql, table: Table, dialect: Dialect) -> PgArrayUpsert:
        text, found = _values_row(sql)
        order = tuple(name.decode() for name in _PARAM.findall(found.group(1)))
        arrays = ", ".join(
            f"%({name})b::{table.c[name].type.compile(dialect=dialect)}[]" for name in order
        )
        many = b"%sSELECT * FROM unnest(%s)%s" % (
            text[: found.start()],
            arrays.encode("utf-8"),
            text[found.end() :],
        )
        return cls(sql.text, None, {}, False, many=many.decode("utf-8"), order=order)

    def execute_many(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        cursor.execute(self.many, {name: [row[name] for row in rows] for name in self.order})


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
