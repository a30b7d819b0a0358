"""The async PostgreSQL adapter's own connection pool against ``psycopg_pool``.

    .venv/bin/python -m benchmarks.bench_aio_postgresql [--repeat 3000] [--rounds 30]

Two systems on the same server (SELINON_LIKE_POSTGRESQL_URL, default as in
``tests/conftest.py``), each with tables of its own, dropped at the end:

* ``ours``: the adapter as ``AsyncStoragePool.get_connected_storage`` returns it (its own pool,
  :class:`storages.aio.postgresql.Connections`);
* ``psycopg_pool``: the same adapter, statements and call path, each call's connection taken
  from psycopg_pool's ``AsyncConnectionPool`` (``async with pool.connection()``; the same 5
  kept, 15 at most) instead.

Measured: (a) sequential store / retrieve of a ~60-byte result, median µs, in interleaved
blocks on one event loop (``bench_async_raw.async_interleaved``); (b) 1,000 concurrent
retrieves (and stores) with ``asyncio.gather``: ops/s from wall time and this process's CPU µs
per call (which a machine busy with other work distorts far less), the median of 3 rounds
after a warm-up. The adapter against raw psycopg and against the blocking adapter on 8
threads are rows of ``python -m benchmarks --only aio-postgresql`` (``bench_aio.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_async_raw import POSTGRESQL_DSN, async_interleaved, gathered
from benchmarks.common import AwakeCpus
from selinon_like import deadline as deadlines
from selinon_like.aio import AsyncStoragePool
from selinon_like.watchdog import WATCHDOG
from storages.aio.postgresql import ONE, AsyncPostgreSQL
from storages.sql.statements import Sql

RESULT = {"status": "ok", "task": "Task1", "value": 42, "items": [1, 2, 3]}
FLOW, TASK = "bench", "task"
KEYS = 1000


class PsycopgPooled(AsyncPostgreSQL):
    """The adapter with each call's connection from ``psycopg_pool.AsyncConnectionPool``."""

    psycopg_pool: Any = None

    async def _run(self, sql: Sql, values: dict[str, Any], fetch: str | None = None) -> Any:
        async with self.psycopg_pool.connection() as connection:
            cursor = connection.cursor()
            seconds = deadlines.remaining(self.io_timeout)
            token = WATCHDOG.watch(connection.pgconn.socket, seconds)
            try:
                await cursor.execute(sql.text, sql.args(values))
                if fetch is None:
                    return cursor.rowcount
                return await (cursor.fetchone() if fetch is ONE else cursor.fetchall())
            finally:
                WATCHDOG.release(token)


@contextlib.asynccontextmanager
async def systems(table: str) -> AsyncIterator[dict[str, Any]]:
    """Each system's (store(key, result), retrieve(key))."""
    import psycopg
    import psycopg_pool

    async with contextlib.AsyncExitStack() as stack:
        admin = await psycopg.AsyncConnection.connect(POSTGRESQL_DSN, autocommit=True)
        stack.push_async_callback(admin.close)

        @stack.push_async_callback
        async def drop() -> None:
            for name in (table, f"{table}_pp"):
                for suffix in ("", "_errors"):
                    await admin.execute(f"DROP TABLE IF EXISTS {name}{suffix}")

        entry = {"name": "Bench", "import": "storages.postgresql", "classname": "PostgreSQL"}
        configuration = {"connection_string": POSTGRESQL_DSN, "table_name": table}
        pool = AsyncStoragePool.from_dict({"storages": [{**entry, "configuration": configuration}]})
        stack.push_async_callback(pool.disconnect_all)
        ours = await pool.get_connected_storage("Bench")
        other = PsycopgPooled(connection_string=POSTGRESQL_DSN, table_name=f"{table}_pp")
        await other.connect()
        stack.push_async_callback(other.disconnect)
        other.psycopg_pool = psycopg_pool.AsyncConnectionPool(
            POSTGRESQL_DSN, kwargs={"autocommit": True}, min_size=5, max_size=15, open=False
        )
        await other.psycopg_pool.open(wait=True)
        stack.push_async_callback(other.psycopg_pool.close)
        yield {
            "ours": (
                lambda k, v: ours.store(FLOW, TASK, k, v),
                lambda k: ours.retrieve(FLOW, TASK, k),
            ),
            "psycopg_pool": (
                lambda k, v: other.store(FLOW, TASK, k, v),
                lambda k: other.retrieve(FLOW, TASK, k),
            ),
        }


async def main(repeat: int, rounds: int) -> None:
    with AwakeCpus() as cpus:
        print(cpus.note)
        async with systems(f"bench_{uuid.uuid4().hex[:8]}") as s:
            for store, _retrieve in s.values():
                await asyncio.gather(*(store(str(i), RESULT) for i in range(KEYS)))
            calls = {
                "store": {name: store for name, (store, _) in s.items()},
                "retrieve": {name: retrieve for name, (_, retrieve) in s.items()},
            }

            def keyed(op: str, fn: Any) -> Any:
                if op == "store":
                    return lambda i: fn(str(abs(i) % KEYS), RESULT)
                return lambda i: fn(str(abs(i) % KEYS))

            for op, fns in calls.items():
                timings = await async_interleaved(
                    {name: keyed(op, fn) for name, fn in fns.items()}, repeat, rounds
                )
                base = timings["psycopg_pool"].median
                shown = "; ".join(
                    f"{name} {timing.median * 1e6:.0f} µs ({timing.median / base:.3f} ×)"
                    for name, timing in timings.items()
                )
                print(f"sequential {op}: {shown}")
            for op in ("retrieve", "store"):
                rates = {
                    name: await gathered(keyed(op, fn), KEYS) for name, fn in calls[op].items()
                }
                shown = "; ".join(
                    f"{name} {rate.ops_per_second:.0f}/s (CPU {rate.cpu_us:.0f} µs a call)"
                    for name, rate in rates.items()
                )
                print(f"{KEYS} concurrent {op}s: {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.repeat, args.rounds))
