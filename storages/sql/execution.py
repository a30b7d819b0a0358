"""How the SQL adapter's calls run on its pooled connections.

:meth:`Executor.run` sends one statement as a call of its own (every store, retrieve and
delete: one round trip on an autocommit connection); :meth:`Executor.cursor` lends a cursor
for a call of several statements, in one transaction if asked. Both bound the call with the
watchdog where the driver has no read timeout (at the call's deadline when that comes first),
queue SQLite writers, roll back on failure, close a connection the server dropped (and every
idle one with it), and raise driver errors as SQLAlchemy's ``DBAPIError`` subclasses, which
``SqlStorage.is_transient`` reads. In a forked child the parent's connections are forgotten,
never used or closed: every call reads a count of forks that ``os.register_at_fork`` bumps in
the child (a fork by C code that skips Python's fork hooks goes unseen), where asking
``os.getpid()`` would cost a system call.

What a call costs: client instructions a call through the pool against the raw driver doing
the same with a new cursor a call (callgrind, 2,000 calls of the benchmarks' ``SMALL`` result
counted inside the loop alone, ``PYTHONHASHSEED=0``, address randomisation off: a few hundred
instructions of noise). "Before" is 2026-12-02's code, "now" 2026-12-03's: JSON reads through
``json.loads``'s own scanner, ``key_digest`` on CPython's own SHA-256, PyMySQL's read and
delete by digest without its escaping (:class:`~storages.sql.dialects.MySqlByDigest`) and a
blocking adapter's layers as plain calls (:func:`selinon_like.layers.blocking_chain`). Earlier
on 2026-12-02, measured over whole runs of 1,000 calls, calls had stopped asking
``cursor.description``, ``os.getpid()`` and the watchdog's lock, and the layers had become one
generator: a PostgreSQL retrieve 190k -> 164k against raw psycopg's 136k, a MariaDB retrieve
251k -> 247k against raw PyMySQL's 193k.

=====================  ============  ============  ============  ============
instructions a call    PG retrieve   PG store      Maria ret.    Maria store
=====================  ============  ============  ============  ============
raw driver             152.9k        151.1k        208.8k        140.2k
pool, before           176.8k        205.6k        260.2k        220.4k
pool, now              162.0k        201.5k        232.0k        215.4k
=====================  ============  ============  ============  ============

A read's own statement on its connection, what runs here, costs less than the raw driver's
call: with the CPUs awake a MariaDB retrieve's statement through :meth:`Executor.run` took
70.7 µs against raw PyMySQL's whole call (new cursor and ``json.loads`` included) 70.3 µs.
The rest is the record layer's (record, serializer, layers). Wall time, CPUs awake, blocks
of 100 calls taking turns with the raw driver (medians of 30 blocks, two runs, load average
1.5-2.4): a small retrieve's pool/raw 1.15-1.17 on MariaDB (1.35-1.37 before the 2026-12-03
cuts) and 1.04-1.07 on PostgreSQL (1.11-1.20 before). Since then :meth:`Executor.run` takes
its connection through :meth:`Executor._take` again instead of a copy of its lines: one call
more, well under 1k instructions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from selinon_like import deadline
from selinon_like.watchdog import WATCHDOG
from storages.sql.pool import Connections

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from storages.sql.dialects import Quirks
    from storages.sql.statements import Sql

__all__ = ["Executor"]

# Forks between the process that imported this module and this one (each child bumps it):
# an executor made before a fork sees it change.
_forks = 0


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclasses.dataclass(eq=False, kw_only=True)
class Executor:
    """Runs one connected instance's calls on at most ``limit`` connections (``keep`` kept
    open while idle). ``io_timeout``: seconds a call may wait for the server; ``write_wait``:
    seconds a SQLite writer waits for its turn; ``new_database`` makes the tables again where
    a forked child gets a new, empty in-memory database."""

    sa_engine: Engine  # use .engine, which first deals with a fork
    quirks: Quirks
    name: str
    keep: int
    limit: int
    io_timeout: float
    write_wait: float
    new_database: Callable[[Engine], None]
    connections: Connections = dataclasses.field(init=False)
    _socket_timeouts: bool = dataclasses.field(init=False)
    writer: threading.Lock | None = dataclasses.field(init=False)
    _pid: int = dataclasses.field(init=False)
    _seen_forks: int = dataclasses.field(init=False)  # _forks when these connections were made

    def __post_init__(self) -> None:
        if self.quirks.memory:  # one connection, one database: calls take turns on it
            self.keep = self.limit = 1
        self._pid, self._seen_forks = os.getpid(), _forks
        self.connections = self._new_connections()
        self.writer = threading.Lock() if self.quirks.write_queue else None
        # PyMySQL's read and write timeouts, set per call to what the deadline leaves.
        self._socket_timeouts = self.sa_engine.dialect.driver == "pymysql"
        if self.sa_engine.dialect.driver in _CONNECT_TIMEOUTS:
            from sqlalchemy import event

            event.listen(self.sa_engine, "do_connect", _connect_by_the_deadline)

    def _new_connections(self) -> Connections:
        detach = not self.quirks.memory  # StaticPool's one connection stays with it
        return Connections(self.sa_engine, keep=self.keep, limit=self.limit, detach=detach)

    @property
    def engine(self) -> Engine:
        """The engine, after forgetting the parent's connections in a forked child."""
        if self._seen_forks != _forks:
            self._adopt()
        return self.sa_engine

    def _adopt(self) -> None:
        """Used directly in a forked child (the pool would have built a new instance): forget
        the parent's connections, never touching them; a lock of our own for SQLite writers
        (another thread may have held the parent's at fork()), a new in-memory database."""
        engine = self.sa_engine
        self._pid, self._seen_forks = os.getpid(), _forks
        engine.dispose(close=False)
        self.connections.drop_idle(close=False)
        self.connections = self._new_connections()
        if self.writer is not None:
            self.writer = threading.Lock()
        if self.quirks.memory:
            self.new_database(engine)

    def close(self) -> None:
        """Close every connection; those in use close when given back. A forked child drops
        the parent's connections without closing them."""
        close = os.getpid() == self._pid
        self.connections.closed = True
        self.connections.drop_idle(close=close)
        self.sa_engine.dispose(close=close)

    def _take(self) -> tuple[Connections, Any, Any, int | None]:
        """A connection and its cursor for one call, with the call's watchdog token (the
        caller has dealt with a fork: see :meth:`_writer`)."""
        connections = self.connections
        try:
            connection, cursor = connections.get()
        except Exception as exc:  # the engine's pool raises the driver's own errors
            self._reraise(exc, broken=True)
        token = None
        if self.quirks.watched:
            seconds = deadline.remaining(self.io_timeout)
            # the DBAPI connection's own fileno(): not through the pool proxy's __getattr__
            token = WATCHDOG.watch(connection.dbapi_connection.fileno(), seconds)
        elif self._socket_timeouts:
            _set_pymysql_timeouts(connection.dbapi_connection, self.io_timeout)
        return connections, connection, cursor, token

    def _writer(self, write: bool) -> threading.Lock | None:
        """The write queue a call takes (``None`` for a read or where there is none), after
        dealing with a fork: in a forked child, the lock and connections replacing those
        inherited. Every call starts here."""
        if self._seen_forks != _forks:
            self._adopt()
        return self.writer if write else None

    def _wait_turn(self, writer: threading.Lock) -> None:
        """Take ``writer``, the SQLite file's write queue of this instance."""
        if not writer.acquire(timeout=deadline.remaining(self.write_wait)):
            raise TimeoutError(
                f"{self.name}: other threads kept writing for {self.write_wait:g} s "
                "(connect_timeout)"
            )

    @contextlib.contextmanager
    def cursor(self, transaction: bool = False) -> Iterator[Any]:
        """A DBAPI cursor on one of the instance's connections, for one call.

        With the drivers we ship the connection is in autocommit mode: a single statement is
        its own transaction, one round trip; ``transaction=True`` wraps the call in BEGIN …
        COMMIT. Other drivers commit at the end of every call. A transaction writes: on
        SQLite it waits its turn first."""
        writer = self._writer(transaction)
        if writer is not None:
            self._wait_turn(writer)
        try:
            connections, connection, cursor, token = self._take()
            autocommit = self.quirks.autocommit
            try:
                if transaction and autocommit:
                    cursor.execute(self.quirks.begin)
                yield cursor
                if not autocommit:
                    connection.commit()
                elif transaction:
                    cursor.execute("COMMIT")
            except BaseException as exc:
                self._failed(connections, connection, cursor, token, exc, transaction)
            # Cut as it ended (the watchdog fired just after the last read): the socket is
            # shut, so the connection is closed, never handed to the next call.
            connections.put(connection, cursor, token is not None and WATCHDOG.release(token))
        finally:
            if writer is not None:
                writer.release()

    def run(self, sql: Sql, values: dict[str, Any], write: bool = False) -> Any:
        """One statement as its own call: the first row it returns, or for a statement that
        returns none, the number of rows it changed. What :meth:`cursor` does, without a
        generator: the code path of every store, retrieve and delete (:meth:`_writer` written
        out: a call less)."""
        if self._seen_forks != _forks:
            self._adopt()
        writer = self.writer if write else None
        if writer is not None:
            self._wait_turn(writer)
        try:
            connections, connection, cursor, token = self._take()
            quirks = self.quirks
            try:
                sql.execute(cursor, values)
                rows = sql.rows
                if rows is None:
                    rows = cursor.description is not None
                outcome = cursor.fetchone() if rows else cursor.rowcount
                if not quirks.autocommit:
                    connection.commit()
            except BaseException as exc:
                self._failed(connections, connection, cursor, token, exc, False)
            # Cut as it ended (the watchdog fired just after the last read): the socket is
            # shut, so the connection is closed, never handed to the next call.
            connections.put(connection, cursor, token is not None and WATCHDOG.release(token))
            return outcome
        finally:
            if writer is not None:
                writer.release()

    def _failed(
        self,
        connections: Connections,
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
                    f"{self.name}: no answer from the database {_within(self)}"
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
        dialect = self.sa_engine.dialect
        if isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
            exc, connection.dbapi_connection, cursor
        ):
            return True
        if not isinstance(exc, Exception):  # interrupted mid-call: the protocol state is unknown
            return True
        try:
            if not self.quirks.autocommit:
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

        dialect = self.sa_engine.dialect
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


# The drivers whose connect() takes a timeout, and the least each accepts (libpq: 2 s).
_CONNECT_TIMEOUTS = {"psycopg": 2, "psycopg2": 2, "pymysql": 0}


def _connect_by_the_deadline(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """SQLAlchemy's ``do_connect``: a connection opened during a call waits for the server no
    longer than the call's deadline leaves (at least the driver's least timeout). Returns the
    new connection, or None to let SQLAlchemy connect as configured (outside a call, or when
    the configured timeout is the shorter)."""
    left = deadline.remaining()
    configured = cparams.get("connect_timeout")
    if left is None or configured is None:
        return None
    least = _CONNECT_TIMEOUTS[dialect.driver]
    # libpq counts whole seconds: rounding down keeps within the deadline.
    seconds = max(least, int(left)) if least else left
    if seconds >= float(configured):
        return None
    bounded = {**cparams, "connect_timeout": seconds}
    if dialect.driver == "pymysql":  # its handshake waits read_timeout, not connect_timeout
        for name in ("read_timeout", "write_timeout"):
            bounded[name] = min(left, float(cparams.get(name) or left))
    return dialect.connect(*cargs, **bounded)


def _set_pymysql_timeouts(connection: Any, longest: float) -> None:
    """Let a PyMySQL connection wait for the server no longer than the call's deadline leaves
    (at most ``longest``). PyMySQL has no public way to change a connection's timeouts: it
    reads these two attributes before each socket read and write (a test checks they exist)."""
    seconds = deadline.remaining(longest)
    connection._read_timeout = connection._write_timeout = seconds


def _within(executor: Executor) -> str:
    """How long the watchdog waited, for the message of a call it cut."""
    end = deadline.current()
    if end is not None and end <= time.monotonic() + 0.05:
        return "before the call's deadline (operation_timeout)"
    return f"within {executor.io_timeout:g} s (statement_timeout + connect_timeout)"
