"""The SQL adapter's connection pool: one instance's DBAPI connections.

At most ``limit`` connections are open, ``keep`` of them stay open while idle, the others
close after ``SURPLUS_IDLE`` seconds unused. Each connection is opened through the engine (so
the dialect's and the adapter's connect hooks run) and, for a real pool, detached from
SQLAlchemy's. A call takes the most recently used idle connection (a list pop, with the
cursor it used last time: no trip through SQLAlchemy's pool, no new cursor) and takes the
lock only when it has to open one or wait. A connection that failed is closed, never handed
out again.

Why not SQLAlchemy's ``QueuePool`` (``pool_use_lifo=True``, no pre-ping) or ``psycopg_pool``:
measured with ``benchmarks/bench_sql_pool.py`` (the same adapter, statements and call path,
only the pool swapped; CPUs awake; 2026-12-02 on this 2-core VM, which other jobs shared, so
latencies vary between runs by ±50 %; the checkout cost and the order of the rows did not):

=============================  ===========  =========  ===========  ===========  ===========
pool, on PostgreSQL / MariaDB  checkout µs  store µs   retrieve µs  8 thr st/s   8 thr ret/s
=============================  ===========  =========  ===========  ===========  ===========
ours                           0.33 / 0.63  355 / 808  88 / 206     3383 / 1896  5406 / 5281
QueuePool 5 + 10               10.5 / 10.4  385 / 850  108 / 240    2513 / 1086  4827 / 2363
QueuePool 15 + 0               10.6 / 10.1  378 / 828  105 / 240    2746 / 1762  3625 / 5022
psycopg_pool (PostgreSQL)      5.5          381        105          1841         7490
=============================  ===========  =========  ===========  ===========  ===========

A checkout and return costs QueuePool ~10 µs and psycopg_pool 3-5 µs of CPU, against under
1 µs here; every call pays it, and in each of four runs a small retrieve took 13-47 % longer
with either, which alone would take the pool/raw ratio past its 1.15 target. QueuePool also
closes an overflow connection as soon as it is given back: with more threads than
``pool_size`` (8 against the default 5) it reconnects again and again, and MariaDB stores from
8 threads ran at 15-65 % of the rate here; sized to keep all 15 it does not, but then never
closes one. The 8-thread figures are otherwise within the noise. psycopg_pool serves
PostgreSQL only. What this module adds over a plain list is keeping surplus connections
``SURPLUS_IDLE`` seconds and waiting for one with a deadline: about 100 lines, kept.
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
