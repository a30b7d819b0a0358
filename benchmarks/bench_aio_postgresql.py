"""The async PostgreSQL adapter (``storages.aio.postgresql``) against raw psycopg, and its pool
against ``psycopg_pool``.

    .venv/bin/python -m benchmarks.bench_aio_postgresql [--repeat 2000] [--rounds 5]

Four systems on the same server (SELINON_LIKE_POSTGRESQL_URL, default as in
``tests/conftest.py``), each with tables of its own, dropped at the end:

* ``raw``: one psycopg ``AsyncConnection`` in autocommit, an upsert of the JSON bytes into a
  ``(k text primary key, v bytea)`` table and a ``SELECT v`` by key, ``json.dumps``/``loads``
  around them (the work the suite's raw SQL rows do);
* ``ours``: the adapter as ``AsyncStoragePool.get_connected_storage`` returns it (its own pool,
  :class:`storages.aio.postgresql.Connections`);
* ``psycopg_pool``: the same adapter, statements and call path, each call's connection taken
  from psycopg_pool's ``AsyncConnectionPool`` (``async with pool.connection()``; the same 5
  kept, 15 at most) instead;
* ``sync``: the blocking adapter (``storages.postgresql:PostgreSQL``, its own pool).

Measured: (a) sequential store / retrieve of a ~60-byte result, median µs, the async systems
in interleaved blocks on one event loop, with the client's CPU time per call beside (steadier
than wall time on a shared machine); (b) 1,000 concurrent retrieves (and stores) with
``asyncio.gather`` against the same 1,000 calls of the blocking adapter on 8 threads: ops/s
from wall time, the median of 3 rounds after a warm-up round.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import AwakeCpus
from selinon_like import StoragePool
from selinon_like import deadline as deadlines
from selinon_like.aio import AsyncStoragePool
from selinon_like.watchdog import WATCHDOG
from storages.aio.postgresql import AsyncPostgreSQL
from storages.sql.statements import Sql

POSTGRESQL_URL = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DSN = POSTGRESQL_URL.replace("postgresql+psycopg://", "postgresql://")
RESULT = {"status": "ok", "task": "Task1", "value": 42, "items": [1, 2, 3]}
FLOW, TASK = "bench", "task"
CONCURRENT = 1000

Call = Callable[[int], Awaitable[Any]]


class PsycopgPooled(AsyncPostgreSQL):
    """The adapter with each call's connection from ``psycopg_pool.AsyncConnectionPool``."""

    psycopg_pool: Any = None

    async def _run(self, sql: Sql, values: dict[str, Any], rows: bool = False) -> Any:
        async with self.psycopg_pool.connection() as connection:
            cursor = connection.cursor()
            seconds = deadlines.remaining(self.io_timeout)
            token = WATCHDOG.watch(connection.pgconn.socket, seconds)
            try:
                await cursor.execute(sql.text, sql.args(values))
                if cursor.description is None:
                    return cursor.rowcount
                return await (cursor.fetchall() if rows else cursor.fetchone())
            finally:
                WATCHDOG.release(token)


@contextlib.asynccontextmanager
async def systems(table: str) -> AsyncIterator[dict[str, Any]]:
    import psycopg
    import psycopg_pool

    raw = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    await raw.execute(f"CREATE TABLE {table}_raw (k text PRIMARY KEY, v bytea)")
    upsert = (
        f"INSERT INTO {table}_raw (k, v) VALUES (%s, %s) "
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    )
    select = f"SELECT v FROM {table}_raw WHERE k = %s"

    async def raw_store(key: str, value: Any) -> None:
        await raw.execute(upsert, (key, json.dumps(value).encode()))

    async def raw_retrieve(key: str) -> Any:
        cursor = await raw.execute(select, (key,))
        row = await cursor.fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    entry = {"name": "Bench", "import": "storages.postgresql", "classname": "PostgreSQL"}
    configuration = {"connection_string": POSTGRESQL_URL, "table_name": table}
    pool = AsyncStoragePool.from_dict({"storages": [{**entry, "configuration": configuration}]})
    ours = await pool.get_connected_storage("Bench")
    other = PsycopgPooled(connection_string=POSTGRESQL_URL, table_name=f"{table}_pp")
    await other.connect()
    other.psycopg_pool = psycopg_pool.AsyncConnectionPool(
        DSN, kwargs={"autocommit": True}, min_size=5, max_size=15, open=False
    )
    await other.psycopg_pool.open(wait=True)
    sync_pool = StoragePool.from_dict(
        {"storages": [{**entry, "configuration": {**configuration, "table_name": f"{table}_sync"}}]}
    )
    sync = sync_pool.get_connected_storage("Bench")
    try:
        yield {
            "raw": (raw_store, raw_retrieve),
            "ours": (
                lambda k, v: ours.store(FLOW, TASK, k, v),
                lambda k: ours.retrieve(FLOW, TASK, k),
            ),
            "psycopg_pool": (
                lambda k, v: other.store(FLOW, TASK, k, v),
                lambda k: other.retrieve(FLOW, TASK, k),
            ),
            "sync": sync,
        }
    finally:
        await other.psycopg_pool.close()
        await other.disconnect()
        await pool.disconnect_all()
        sync_pool.disconnect_all()
        for name in (f"{table}_raw", table, f"{table}_pp", f"{table}_sync"):
            for suffix in ("", "_errors"):
                await raw.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
        await raw.close()


async def interleaved(
    calls: dict[str, Call], repeat: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Per system, the median µs per call and the client's CPU µs per call (what the
    process itself spent: steadier than wall time on a shared machine), measured in
    alternating blocks."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    cpu = dict.fromkeys(calls, 0.0)
    for call in calls.values():
        for i in range(50):
            await call(-1 - i)
    block = max(1, repeat // rounds)
    clock = time.perf_counter
    for r in range(rounds):
        for name, call in calls.items():
            into = samples[name]
            began = time.process_time()
            for i in range(r * block, (r + 1) * block):
                started = clock()
                await call(i)
                into.append(clock() - started)
            cpu[name] += time.process_time() - began
    return {
        name: (statistics.median(values) * 1e6, cpu[name] / len(values) * 1e6)
        for name, values in samples.items()
    }


async def gathered(call: Call) -> float:
    """Ops/s of CONCURRENT calls gathered: the median of 3 rounds after a warm-up."""
    rates = []
    for round_ in range(4):
        started = time.perf_counter()
        await asyncio.gather(*(call(i) for i in range(CONCURRENT)))
        if round_:
            rates.append(CONCURRENT / (time.perf_counter() - started))
    return statistics.median(rates)


def threaded(call: Callable[[int], Any]) -> float:
    """Ops/s of CONCURRENT blocking calls on 8 threads: the median of 3 rounds."""
    rates = []
    with concurrent.futures.ThreadPoolExecutor(8) as threads:
        for round_ in range(4):
            started = time.perf_counter()
            list(threads.map(call, range(CONCURRENT)))
            if round_:
                rates.append(CONCURRENT / (time.perf_counter() - started))
    return statistics.median(rates)


async def main(repeat: int, rounds: int) -> None:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    with AwakeCpus() as cpus:
        print(cpus.note)
        async with systems(table) as s:
            names = ("raw", "ours", "psycopg_pool")
            for name in names:
                store, _ = s[name]
                await asyncio.gather(*(store(str(i), RESULT) for i in range(CONCURRENT)))
            sync = s["sync"]
            for i in range(CONCURRENT):
                sync.store(FLOW, TASK, str(i), RESULT)

            def keyed(fn: Callable[..., Awaitable[Any]], store: bool) -> Call:
                if store:
                    return lambda i: fn(str(i % CONCURRENT), RESULT)
                return lambda i: fn(str(abs(i) % CONCURRENT))

            for op, index in (("store", 0), ("retrieve", 1)):
                medians = await interleaved(
                    {name: keyed(s[name][index], op == "store") for name in names},
                    repeat,
                    rounds,
                )
                shown = ", ".join(
                    f"{name} {us:.0f} µs (CPU {cpu:.0f})" for name, (us, cpu) in medians.items()
                )
                raw_us, raw_cpu = medians["raw"]
                ratios = ", ".join(
                    f"{name}/raw {us / raw_us:.3f} (CPU {cpu / raw_cpu:.2f})"
                    for name, (us, cpu) in medians.items()
                    if name != "raw"
                )
                print(f"sequential {op}: {shown}; {ratios}")
            for op, index in (("retrieve", 1), ("store", 0)):
                rates = {
                    name: await gathered(keyed(s[name][index], op == "store"))
                    for name in ("ours", "psycopg_pool")
                }
                if op == "retrieve":
                    rates["sync, 8 threads"] = threaded(lambda i: sync.retrieve(FLOW, TASK, str(i)))
                else:
                    rates["sync, 8 threads"] = threaded(
                        lambda i: sync.store(FLOW, TASK, str(i), RESULT)
                    )
                shown = ", ".join(f"{name} {rate:.0f}/s" for name, rate in rates.items())
                print(f"{CONCURRENT} concurrent {op}s: {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.repeat, args.rounds))
