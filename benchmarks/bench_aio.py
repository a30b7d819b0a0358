"""The async pool's rows of ``python -m benchmarks`` (issue 19): ``--only aio-redis``,
``aio-postgresql``, ``aio-mongodb``, ``aio-s3`` (all four in the full run).

Per service, on the raw async drivers of :mod:`benchmarks.bench_async_raw` (their servers,
namespaces, connection counts and clean-up) and a ~100-byte JSON result:

* ``raw``: the native async driver doing the same work (``json.dumps`` and a store of the
  bytes; a retrieve and ``json.loads``), ``--connections`` connections;
* ``pool``: our async adapter, as ``await AsyncStoragePool.get_connected_storage`` returns it
  for the YAML entry of the blocking adapter (``RawService.adapter_entry``: as many
  connections as raw), taken once;
* ``sync pool``: the blocking adapter from ``StoragePool`` for the same entry;
* extras (S3: obstore), raw async clients beside raw, for context.

Measured: (a) sequential store / retrieve, raw, pool and the extras taking turns call by call on
one event loop (``bench_async_raw.async_interleaved``, as the blocking rows' raw, adapter and
pool): median µs, pool/raw, and this process's CPU µs a call. In blocks of 400 calls instead,
the MongoDB retrieve's pool/raw read anywhere from 1.05 to 1.46 on this VM from run to run
(the server, pure Python, and the VM's CPU slow down for longer than a call); call by call
it read 1.088, 1.092 and 1.091 in three runs. (b) ``concurrency`` (1,000) retrieves, then
stores, started at once with ``asyncio.gather`` through the async pool, against the same calls
of the sync pool on 8 threads (``bench_async_raw.gathered`` / ``threaded``: ops/s from wall
time and CPU µs a call, the median of 3 rounds after a warm-up), raw's gathered figure beside.
Every value read is compared with the one stored: a wrong one counts as an error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks.bench_async_raw import (
    CONCURRENCY,
    CONNECTIONS,
    KEYS,
    SMALL,
    THREADS,
    AsyncCall,
    Rate,
    RawRetrieve,
    RawService,
    async_interleaved,
    gathered,
    threaded,
)
from benchmarks.bench_async_raw import SERVICES as RAW
from selinon_like import StoragePool
from selinon_like.aio import AsyncStoragePool

SERVICES = {f"aio-{name}": name for name in RAW}
RESULT: Any = json.loads(SMALL)
FLOW, TASK = "BenchFlow", "Task1"
# the keys a system's calls rotate over (a concurrent batch: one each)
SPAN = max(KEYS, CONCURRENCY)

Calls = tuple[AsyncCall, AsyncCall]  # store(i), retrieve(i)


def _raw_calls(store: Callable[[str, bytes], Awaitable[object]], retrieve: RawRetrieve) -> Calls:
    """The raw driver's store(i) of RESULT's JSON under :func:`_key`, and its retrieve(i)
    (``json.loads``, checked)."""

    async def store_i(i: int) -> None:
        await store(_key(i), json.dumps(RESULT).encode())

    async def retrieve_i(i: int) -> None:
        data = await retrieve(_key(i))
        if data is None or json.loads(data) != RESULT:
            raise LookupError(f"{_key(i)}: not what was stored")

    return store_i, retrieve_i


def _key(i: int) -> str:
    """Call ``i``'s key: one of :data:`SPAN`, all stored before the first measured call."""
    return f"k{i % SPAN}"


async def measure(
    raw: RawService, repeat: int, concurrency: int, threads: int = THREADS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sequential rows, concurrent rows) of one service: see the module docstring."""
    entry = {"name": "Bench", **raw.adapter_entry}
    mapping = {"storages": [entry]}
    blocking = StoragePool.from_dict(mapping)
    async with AsyncStoragePool.from_dict(mapping) as pool:
        ours = await pool.get_connected_storage("Bench")
        sync = blocking.get_connected_storage("Bench")
        try:

            async def pool_store(i: int) -> None:
                await ours.store(FLOW, TASK, _key(i), RESULT)

            async def pool_retrieve(i: int) -> None:
                if await ours.retrieve(FLOW, TASK, _key(i)) != RESULT:
                    raise LookupError(f"{_key(i)}: not what was stored")

            def sync_store(i: int) -> None:
                sync.store(FLOW, TASK, _key(i), RESULT)

            def sync_retrieve(i: int) -> None:
                if sync.retrieve(FLOW, TASK, _key(i)) != RESULT:
                    raise LookupError(f"{_key(i)}: not what was stored")

            systems: dict[str, Calls] = {
                "raw": _raw_calls(raw.raw_store, raw.raw_retrieve),
                "pool": (pool_store, pool_retrieve),
            }
            systems |= {label: _raw_calls(*calls) for label, calls in raw.extras.items()}
            for store, _retrieve in systems.values():
                await asyncio.gather(*(store(i) for i in range(SPAN)))
            return (
                await _sequential(raw, systems, repeat),
                await _concurrent(raw, systems, (sync_store, sync_retrieve), concurrency, threads),
            )
        finally:
            blocking.disconnect_all()


async def _sequential(
    raw: RawService, systems: dict[str, Calls], repeat: int
) -> list[dict[str, Any]]:
    rows = []
    for n, op in enumerate(("store", "retrieve")):
        cpu: dict[str, float] = {}
        calls = {name: pair[n] for name, pair in systems.items()}
        # call by call (module docstring)
        timings = await async_interleaved(calls, repeat, rounds=repeat, cpu_us=cpu)
        base, ours = timings["raw"], timings["pool"]
        row: dict[str, Any] = {
            "service": raw.name,
            "op": f"{op} small",
            "raw µs": _us(base.median),
            "pool µs": _us(ours.median),
            "pool/raw": round(ours.median / base.median, 3),
            "raw CPU µs": _us(cpu["raw"] / 1e6),
            "pool CPU µs": _us(cpu["pool"] / 1e6),
            "pool/raw CPU": round(cpu["pool"] / cpu["raw"], 3),
            "errors raw/pool": f"{base.errors}/{ours.errors}",
        }
        for name in calls.keys() - {"raw", "pool"}:
            row[f"{name} µs"] = _us(timings[name].median)
        rows.append(row)
    return rows


async def _concurrent(
    raw: RawService,
    systems: dict[str, Calls],
    sync: tuple[Callable[[int], None], Callable[[int], None]],
    concurrency: int,
    threads: int,
) -> list[dict[str, Any]]:
    rows = []
    for n, op in ((1, "retrieve"), (0, "store")):
        ours = await gathered(systems["pool"][n], concurrency)
        blocking = threaded(sync[n], concurrency, threads)
        base = await gathered(systems["raw"][n], concurrency)
        rows.append(
            {
                "service": raw.name,
                "op": f"{concurrency:,} concurrent {op}s",
                "async pool ops/s": _ops(ours),
                f"sync pool {threads} threads ops/s": _ops(blocking),
                "async/sync": round(ours.ops_per_second / blocking.ops_per_second, 2),
                "raw async ops/s": _ops(base),
                "CPU µs a call: async pool / sync threads / raw async": (
                    f"{ours.cpu_us:.0f} / {blocking.cpu_us:.0f} / {base.cpu_us:.0f}"
                ),
            }
        )
    return rows


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def _ops(rate: Rate) -> int:
    return round(rate.ops_per_second)


async def _run(
    names: Sequence[str], repeat: int, concurrency: int, connections: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    sequential: list[dict[str, Any]] = []
    concurrent: list[dict[str, Any]] = []
    failures = []
    for name in names:
        print(f"== {name}", flush=True)
        try:
            async with RAW[SERVICES[name]](connections) as raw:
                one, many = await measure(raw, repeat, concurrency)
                sequential += [{**row, "raw driver": raw.note} for row in one]
                concurrent += many
        except Exception as exc:  # a service that does not answer is left out, saying so
            failures.append(f"{name}: service skipped: {exc!r}"[:300])
            print(f"   skipped: {exc!r}", flush=True)
    return sequential, concurrent, failures


def run(
    names: Sequence[str], quick: bool = False, connections: int = CONNECTIONS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(sequential rows, concurrent rows, services skipped) of ``names`` (keys of
    :data:`SERVICES`), on an event loop of its own; ``quick``: small counts."""
    repeat, concurrency = (200, 200) if quick else (2000, min(CONCURRENCY, SPAN))
    return asyncio.run(_run(names, repeat, concurrency, connections))
