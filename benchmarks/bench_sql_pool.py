"""The SQL adapter's own connection pool against SQLAlchemy's QueuePool and psycopg_pool.

    .venv/bin/python -m benchmarks.bench_sql_pool [--repeat 2000] [--threads 8] [--rounds 3]

The same adapter (``storages.sql``), the same compiled statements and the same call path
(``Executor.run``), with only the object that lends connections swapped:

- **ours**: ``storages.sql.pool.Connections`` (connections detached from SQLAlchemy's pool, a
  list of idle ones, each with its cursor kept);
- **QueuePool**: SQLAlchemy's ``QueuePool`` with ``pool_use_lifo=True`` and no pre-ping, a
  connection checked out per call and given back with ``close()`` (its cursor kept in the
  pool record's ``info``, so the pools differ by the pool alone), sized as the adapter's
  (``pool_size`` 5, ``max_overflow`` 10) and, as **QueuePool 15**, with all 15 kept
  (``pool_size`` 15, ``max_overflow`` 0: QueuePool closes an overflow connection as soon as
  it is given back, so more threads than ``pool_size`` reconnect all the time);
- **psycopg_pool** (PostgreSQL; ``psycopg-pool`` comes with the ``bench`` extra):
  ``psycopg_pool.ConnectionPool``, ``getconn``/``putconn`` (cursor kept the same way).

What a checkout and return cost alone (a connection lent and given back, no statement: the
median of 20,000 on one thread), small store and retrieve latency on one thread (the variants
take turns call by call), and throughput with ``--threads`` threads sharing one instance
(each variant in turn, ``--rounds`` times; the median). The CPUs are kept awake as in the suite
(``common.AwakeCpus``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from benchmarks.common import AwakeCpus, interleaved
from benchmarks.suite import MYSQL_URL, POSTGRESQL_URL
from storages.sql import SqlStorage
from storages.sql.dialects import engine_options

SMALL = {"status": "ok", "task": "Task1", "value": 42, "items": list(range(30)), "name": "x" * 40}


class QueuePoolConnections:
    """SQLAlchemy's QueuePool behind the interface of ``storages.sql.pool.Connections``."""

    closed = False

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def get(self) -> tuple[Any, Any]:
        fairy = self._engine.raw_connection()
        cursor = fairy.info.get("cursor")
        if cursor is None:
            cursor = fairy.info["cursor"] = fairy.cursor()
        return fairy, cursor

    def put(self, fairy: Any, cursor: Any, broken: bool) -> None:
        if broken:
            fairy.invalidate()
        fairy.close()

    def drop_idle(self, close: bool = True) -> None:
        self._engine.dispose(close=close)


class PsycopgPoolConnections:
    """psycopg_pool's ConnectionPool behind the same interface."""

    closed = False

    def __init__(self, url: str, keep: int, limit: int) -> None:
        from psycopg_pool import ConnectionPool

        parts = sa.engine.make_url(url)
        conninfo = f"host={parts.host} port={parts.port or 5432} user={parts.username} "
        conninfo += f"dbname={parts.database}"
        self._pool = ConnectionPool(
            conninfo, min_size=keep, max_size=limit, kwargs={"autocommit": True}, open=True
        )
        self._pool.wait()

    def get(self) -> tuple[Any, Any]:
        conn = self._pool.getconn()
        cursor = getattr(conn, "kept_cursor", None)
        if cursor is None:
            cursor = conn.kept_cursor = conn.cursor()
        return conn, cursor

    def put(self, conn: Any, cursor: Any, broken: bool) -> None:
        if broken:
            conn.close()
        self._pool.putconn(conn)

    def drop_idle(self, close: bool = True) -> None:
        pass

    def close(self) -> None:
        self._pool.close()


@contextmanager
def variants(backend: str) -> Iterator[dict[str, SqlStorage]]:
    """One connected adapter per pool, each on tables of its own."""
    url = POSTGRESQL_URL if backend == "postgresql" else MYSQL_URL
    made: dict[str, SqlStorage] = {}
    closers: list[Callable[[], None]] = []
    names = ["ours", "QueuePool", "QueuePool 15"]
    if backend == "postgresql" and importlib.util.find_spec("psycopg_pool") is not None:
        names.append("psycopg_pool")  # the bench extra installs psycopg-pool
    try:
        for name in names:
            storage = SqlStorage(connection_string=url, table_name=f"bp_{uuid.uuid4().hex[:8]}")
            storage.connect()
            made[name] = storage
            executor = storage._calls
            if name.startswith("QueuePool"):
                sa_url = storage._url()
                options = engine_options(sa_url, storage)
                if name == "QueuePool 15":
                    options.update(pool_size=storage.pool_size + storage.max_overflow)
                    options.update(max_overflow=0)
                engine = sa.create_engine(sa_url, **options, pool_use_lifo=True)
                if storage._mysql is not None:
                    sa.event.listen(engine, "connect", storage._mysql.on_connect)
                executor.connections = QueuePoolConnections(engine)  # type: ignore[assignment]
                closers.append(engine.dispose)
            elif name == "psycopg_pool":
                limit = storage.pool_size + storage.max_overflow
                pooled = PsycopgPoolConnections(url, storage.pool_size, limit)
                executor.connections = pooled  # type: ignore[assignment]
                closers.append(pooled.close)
        yield made
    finally:
        for close in closers:
            close()
        for storage in made.values():
            table = storage.table_name
            with storage.engine.begin() as conn:
                for name in (table, table + "_errors"):
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            storage.disconnect()


def checkout(storages: dict[str, SqlStorage], repeat: int = 20000) -> dict[str, float]:
    """Median µs of lending a connection and taking it back, per variant."""
    out = {}
    for name, storage in storages.items():
        connections = storage._calls.connections
        samples = []
        clock = time.perf_counter
        for _ in range(repeat):
            started = clock()
            connection, cursor = connections.get()
            connections.put(connection, cursor, False)
            samples.append(clock() - started)
        out[name] = statistics.median(samples) * 1e6
    return out


def one_thread(storages: dict[str, SqlStorage], repeat: int) -> dict[str, tuple[float, float]]:
    """Median µs of a small store and retrieve per variant, taking turns call by call."""
    run = uuid.uuid4().hex[:6]
    stores = {
        name: (lambda i, s=s: s.store("F", run, str(i), SMALL)) for name, s in storages.items()
    }
    gets = {
        name: (lambda i, s=s: s.retrieve("F", run, str(max(i, 0)))) for name, s in storages.items()
    }
    st = interleaved(stores, repeat, rounds=repeat, warmup=20)
    rt = interleaved(gets, repeat, rounds=repeat, warmup=20)
    return {name: (st[name].median * 1e6, rt[name].median * 1e6) for name in storages}


def many_threads(
    storages: dict[str, SqlStorage], calls: int, threads: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Median ops/s of ``calls`` small stores, then retrieves, from ``threads`` threads."""
    ops: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in storages}
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            for name, storage in storages.items():
                run = uuid.uuid4().hex[:6]
                keys = [str(i) for i in range(calls)]
                started = time.perf_counter()
                list(pool.map(lambda k, s=storage, r=run: s.store("F", r, k, SMALL), keys))
                ops[name][0].append(calls / (time.perf_counter() - started))
                started = time.perf_counter()
                list(pool.map(lambda k, s=storage, r=run: s.retrieve("F", r, k), keys))
                ops[name][1].append(calls / (time.perf_counter() - started))
    return {name: (statistics.median(s), statistics.median(r)) for name, (s, r) in ops.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="single calls per variant")
    parser.add_argument("--calls", type=int, default=800, help="calls per threaded round")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="postgresql,mariadb")
    args = parser.parse_args()
    with AwakeCpus() as cpus:
        print(cpus.note)
        for backend in args.only.split(","):
            with variants(backend) as storages:
                lend = checkout(storages)
                single = one_thread(storages, args.repeat)
                threaded = many_threads(storages, args.calls, args.threads, args.rounds)
            print(f"\n{backend}: median µs on 1 thread; ops/s on {args.threads} threads")
            head = ("pool", "checkout µs", "store µs", "retrieve µs", "store/s", "retrieve/s")
            print("{:14}{:>12}{:>10}{:>13}{:>10}{:>12}".format(*head))
            for name in storages:
                (s_us, r_us), (s_ops, r_ops) = single[name], threaded[name]
                row = (name, lend[name], s_us, r_us, s_ops, r_ops)
                print("{:14}{:12.2f}{:10.1f}{:13.1f}{:10.0f}{:12.0f}".format(*row))


if __name__ == "__main__":
    main()
