"""The async PostgreSQL adapter (``storages.aio.postgresql``) against raw psycopg, and its pool
against ``psycopg_pool``.

    .venv/bin/python -m benchmarks.bench_aio_postgresql [--repeat 3000] [--rounds 30]

Four systems on the same server (SELINON_LIKE_POSTGRESQL_URL, default as in
``tests/conftest.py``), each with tables of its own, dropped at the end:

* ``raw``: one psycopg ``AsyncConnection`` in autocommit (``bench_async_raw``'s), an upsert of
  the JSON bytes into a ``(k text primary key, v bytea)`` table and a ``SELECT v`` by key,
  ``json.dumps``/``loads`` around them (the work the suite's raw SQL rows do);
* ``ours``: the adapter as ``AsyncStoragePool.get_connected_storage`` returns it (its own pool,
  :class:`storages.aio.postgresql.Connections`);
* ``psycopg_pool``: the same adapter, statements and call path, each call's connection taken
  from psycopg_pool's ``AsyncConnectionPool`` (``async with pool.connection()``; the same 5
  kept, 15 at most) instead;
* ``sync``: the blocking adapter (``storages.postgresql:PostgreSQL``, its own pool).

Measured: (a) sequential store / retrieve of a ~60-byte result, median µs, the async systems
in interleaved blocks on one event loop (``bench_async_raw.async_interleaved``); (b) 1,000
concurrent retrieves (and stores) with ``asyncio.gather`` against the same 1,000 calls of the
blocking adapter on 8 threads: ops/s from wall time and this process's CPU µs per call (which
a machine busy with other work distorts far less), the median of 3 rounds after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_async_raw import (
    POSTGRESQL_DSN,
    _postgresql_one_connection,
    async_interleaved,
    gathered,
    threaded,
)
from benchmarks.common import AwakeCpus
from selinon_like import StoragePool
from selinon_like import deadline as deadlines
from selinon_like.aio import AsyncStoragePool
from selinon_like.watchdog import WATCHDOG
from storages.aio.postgresql import AsyncPostgreSQL
from storages.sql.statements import Sql

RESULT = {"status": "ok", "task": "Task1", "value": 42, "items": [1, 2, 3]}
FLOW, TASK = "bench", "task"
KEYS = 1000


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
    """Each system's (store(key, result), retrieve(key)); ``sync``: the blocking adapter."""
    import psycopg
    import psycopg_pool

    async with contextlib.AsyncExitStack() as stack:
        admin = await psycopg.AsyncConnection.connect(POSTGRESQL_DSN, autocommit=True)
        stack.push_async_callback(admin.close)

        @stack.push_async_callback
        async def drop() -> None:
            for name in (f"{table}_raw", table, f"{table}_pp", f"{table}_sync"):
                for suffix in ("", "_errors"):
                    await admin.execute(f"DROP TABLE IF EXISTS {name}{suffix}")

        await admin.execute(f"CREATE TABLE {table}_raw (k text PRIMARY KEY, v bytea NOT NULL)")
        raw_store, raw_retrieve, _note = await _postgresql_one_connection(
            stack,
            f"INSERT INTO {table}_raw (k, v) VALUES (%s, %s) "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            f"SELECT v FROM {table}_raw WHERE k = %s",
        )

        async def raw_retrieve_json(key: str) -> Any:
            data = await raw_retrieve(key)
            if data is None:
                raise KeyError(key)
            return json.loads(data)

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
        sync_configuration = {**configuration, "table_name": f"{table}_sync"}
        sync_pool = StoragePool.from_dict(
            {"storages": [{**entry, "configuration": sync_configuration}]}
        )
        stack.callback(sync_pool.disconnect_all)
        yield {
            "raw": (lambda k, v: raw_store(k, json.dumps(v).encode()), raw_retrieve_json),
            "ours": (
                lambda k, v: ours.store(FLOW, TASK, k, v),
                lambda k: ours.retrieve(FLOW, TASK, k),
            ),
            "psycopg_pool": (
                lambda k, v: other.store(FLOW, TASK, k, v),
                lambda k: other.retrieve(FLOW, TASK, k),
            ),
            "sync": sync_pool.get_connected_storage("Bench"),
        }


async def main(repeat: int, rounds: int) -> None:
    with AwakeCpus() as cpus:
        print(cpus.note)
        async with systems(f"bench_{uuid.uuid4().hex[:8]}") as s:
            sync = s.pop("sync")
            for store, _retrieve in s.values():
                await asyncio.gather(*(store(str(i), RESULT) for i in range(KEYS)))
            for i in range(KEYS):
                sync.store(FLOW, TASK, str(i), RESULT)
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
                raw = timings["raw"].median
                shown = "; ".join(
                    f"{name} {timing.median * 1e6:.0f} µs ({timing.median / raw:.3f} × raw)"
                    for name, timing in timings.items()
                )
                print(f"sequential {op}: {shown}")
            for op in ("retrieve", "store"):
                rates = {
                    name: await gathered(keyed(op, fn), KEYS) for name, fn in calls[op].items()
                }
                if op == "retrieve":
                    rates["sync, 8 threads"] = threaded(
                        lambda i: sync.retrieve(FLOW, TASK, str(i)), KEYS
                    )
                else:
                    rates["sync, 8 threads"] = threaded(
                        lambda i: sync.store(FLOW, TASK, str(i), RESULT), KEYS
                    )
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
