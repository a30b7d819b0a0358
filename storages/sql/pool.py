"""The SQL adapter's connection pool: one instance's DBAPI connections.

At most ``limit`` connections are open, ``keep`` of them stay open while idle, the others
close after ``SURPLUS_IDLE`` seconds unused. Each connection is opened through the engine (so
the dialect's and the adapter's connect hooks run) and, for a real pool, detached from
SQLAlchemy's. A call takes the most recently used idle connection (a list pop, with the
cursor it used last time: no trip through SQLAlchemy's pool, no new cursor) and takes the
lock only when it has to open one or wait. A connection that failed is closed, never handed
out again.

Why not SQLAlchemy's ``QueuePool`` (``pool_use_lifo=True``, no pre-ping) or ``psycopg_pool``:
measured with ``benchmarks/bench_sql_pool.py`` (same adapter, same statements, only the pool
swapped; CPUs awake; 2026-12-02, a 2-core VM shared with other jobs, so the latencies are
high and noisy, the checkout costs are not):

==============================  ===========  =========  ===========  ========  ==========
pool (PostgreSQL / MariaDB)     checkout µs  store µs   retrieve µs  8 thr     8 thr
                                                                     store/s   retrieve/s
==============================  ===========  =========  ===========  ========  ==========
ours                            0.3 / 0.6    4749/7619  223 / 121    2005/2216 7019/5733
QueuePool (5 + 10 overflow)     10.6 / 10.1  5049/6925  327 / 140    1493/326  2333/522
QueuePool (15, no overflow)     8.5 / 10.2   5068/7479  254 / 137    1460/2025 2184/4377
psycopg_pool (PostgreSQL)       3.4          4884       280          1032      5613
==============================  ===========  =========  ===========  ========  ==========

A checkout and return costs QueuePool ~10 µs of CPU and psycopg_pool ~3 µs, against ~0.5 µs
here: on a small retrieve (~45 µs with the CPUs awake) QueuePool alone would add ~20 %, past
the 1.15 pool/raw target. And QueuePool closes an overflow connection the moment it is given
back, so with more threads than ``pool_size`` (8 against the default 5) it reconnects on
nearly every call: MariaDB ran 326 stores/s against 2216. Keeping surplus connections for
``SURPLUS_IDLE`` seconds is what this module adds; about 100 lines, kept.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["POOL_WAIT", "SURPLUS_IDLE", "Connections"]

POOL_WAIT = 30.0  # seconds a call waits for one of the instance's connections to be free
SURPLUS_IDLE = 30.0  # seconds an idle connection beyond ``keep`` stays open


class Connections:
    """One instance's DBAPI connections, each with its cursor (see the module docstring)."""

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
        wait = POOL_WAIT
        deadline = time.monotonic() + wait
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
                        f"all {self._limit} connections stayed busy for {wait:g} s; "
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
        """Give back what :meth:`get` gave; a ``broken`` connection is closed."""
        if broken or self.closed:
            self._close(connection)
            return
        now = time.monotonic()
        self._idle.append((connection, cursor, now))
        if len(self._idle) > self._keep:  # the least recently used one, if idle too long
            with contextlib.suppress(IndexError, ValueError):  # another thread took it
                oldest = self._idle[0]
                if now - oldest[2] > SURPLUS_IDLE:
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
