"""Redis adapter against raw redis-py on the same server, measured side by side in one run.

    .venv/bin/python benchmarks/bench_redis.py [--repeat 5000] [--profile] [--cluster]

1. Single ``store``/``retrieve`` through ``pool.get_connected_storage(name)`` and through
   ``pool.store``/``pool.retrieve`` (routed by a ``tasks`` entry) against redis-py's
   ``SET``/``GET`` of the same JSON bytes: medians of interleaved blocks
   (``benchmarks.common.interleaved``), so machine drift hits every system alike. Rows with
   a serializer in the raw call show what a caller of raw redis-py pays to get the same
   bytes (plain ``json.dumps``, and this project's JSON serializer).
2. ``store_many`` of 1,000 small results against 1,000 ``store`` calls, interleaved rounds,
   and the CPU cost of store_many's parts.
3. Where the time above raw redis-py goes: each layer of ``selinon_like.layers`` (and the
   wrapper entering them, ``selinon_like.storage._enter``), the record layer and the adapter's
   own primitives, each timed alone with the driver replaced by a stub (no network), best of
   several runs, so the figures are per-call CPU costs.
   ``--profile`` adds a cProfile listing of the adapter's ``store``.

4. With ``--cluster``: sections 1 and 2 on a private 6-node Redis Cluster (started with the test
   suite's ``tests.servers`` helpers, stopped at the end): the adapter against raw redis-py
   ``RedisCluster``, and store_many across hash slots (one pipeline per node).

The server is ``SELINON_LIKE_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); every key
lives under a prefix of its own, deleted at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import json
import os
import pstats
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from benchmarks.common import interleaved
from selinon_like import StoragePool, layers, serializers, storage
from selinon_like import pool as pool_module
from selinon_like.keys import check_key, pack_key
from selinon_like.records import RESULTS, RecordStorage
from storages.redis import Redis

REDIS_URL = os.environ.get("SELINON_LIKE_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULT = {"status": "ok", "task": "Task1", "value": 42, "items": [1, 2, 3]}
FLOW, TASK = "BenchFlow", "Task1"
DATA = json.dumps(RESULT, separators=(",", ":")).encode()


def _table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _where(obj: Any, needle: str | None = None) -> str:
    """``file.py:line`` of ``obj``'s definition, or of the line in it containing ``needle``."""
    lines, first = inspect.getsourcelines(obj)
    line = first
    if needle is not None:
        line += next(i for i, text in enumerate(lines) if needle in text)
    return f"{Path(inspect.getsourcefile(obj) or '?').name}:{line}"


def _single_calls(pool: StoragePool, raw: Any, prefix: str, repeat: int) -> tuple[float, float]:
    """Interleaved single calls; prints the table and returns the raw SET and GET medians."""
    raw_key = f"{prefix}raw:{FLOW}/{TASK}/"
    stores: dict[str, Callable[[int], Any]] = {
        "raw SET (same JSON bytes)": lambda i: raw.set(raw_key + str(i), DATA),
        "raw json.dumps + SET": lambda i: raw.set(
            raw_key + str(i), json.dumps(RESULT, separators=(",", ":")).encode()
        ),
        "raw selinon_like JSON.dumps + SET": lambda i: raw.set(
            raw_key + str(i), serializers.JSON.dumps(RESULT)
        ),
        "pool.get_connected_storage().store": lambda i: pool.get_connected_storage("Results").store(
            FLOW, TASK, str(i), RESULT
        ),
        "pool.store (tasks)": lambda i: pool.store(FLOW, TASK, str(i), RESULT),
    }
    retrieves: dict[str, Callable[[int], Any]] = {
        "raw GET": lambda i: raw.get(raw_key + str(i % 1000)),
        "raw GET + json.loads": lambda i: json.loads(raw.get(raw_key + str(i % 1000))),
        "pool.get_connected_storage().retrieve": lambda i: pool.get_connected_storage(
            "Results"
        ).retrieve(FLOW, TASK, str(i % 1000)),
        "pool.retrieve (tasks)": lambda i: pool.retrieve(FLOW, TASK, str(i % 1000)),
    }
    store_t = interleaved(stores, repeat, rounds=10)
    retrieve_t = interleaved(retrieves, repeat, rounds=10)
    rows = []
    for timings, base in ((store_t, "raw SET (same JSON bytes)"), (retrieve_t, "raw GET")):
        for timing in timings.values():
            row = timing.row()
            row["vs_raw"] = f"{timing.median / timings[base].median:.3f}x"
            rows.append(row)
    errors = sum(t.errors for t in (*store_t.values(), *retrieve_t.values()))
    print(f"1. single calls: {repeat} each, medians of 10 interleaved blocks ({REDIS_URL})")
    _table(rows)
    if errors:
        raise SystemExit(f"{errors} calls failed")
    return store_t["raw SET (same JSON bytes)"].median, retrieve_t["raw GET"].median


def _bulk(pool: StoragePool, rounds: int = 7) -> None:
    storage_: Any = pool.get_connected_storage("Results")
    loop, bulk = [], []
    for r in range(rounds):
        items = [(FLOW, "bulk", f"{r}-{i}", {"i": i}) for i in range(1000)]
        started = time.perf_counter()
        for item in items:
            storage_.store(*item)
        loop.append(time.perf_counter() - started)
        started = time.perf_counter()
        storage_.store_many(items)
        bulk.append(time.perf_counter() - started)
    ratios = sorted(a / b for a, b in zip(loop, bulk, strict=True))
    # Where store_many's time goes, per 1,000 results (CPU only, best of 20 runs).
    stubbed: Any = Redis.from_client(_Stub())
    stubbed.connect()
    connection = storage_._client.connection_pool.make_connection()  # packs, never connects
    results = [(item[3],) for item in items]
    keys = [item[:3] for item in items]
    packed: list[Any] = ["MSET"]
    for item in items:
        packed += (
            stubbed._prefixes[RESULTS] + pack_key(*item[:3]),
            serializers.JSON.dumps(item[3]),
        )
    parts = _costs(
        {
            "store_many, driver stubbed": lambda: stubbed.store_many(items),
            "  JSON.dumps x 1,000 (serializers.py)": lambda: [
                serializers.JSON.dumps(item[3]) for item in items
            ],
            "    of which _check_json_keys": lambda: _each(serializers._check_json_keys, results),
            "  check_key x 1,000 (layers.checked)": lambda: _each(check_key, keys),
            "redis-py packing the MSET (pure Python)": lambda: connection.pack_command(*packed),
        },
        rounds=20,
        number=5,
    )
    print(f"\n2. bulk: 1,000 small results, {rounds} interleaved rounds (medians)")
    rows: list[dict[str, Any]] = [
        {"name": "1,000 x store", "ms": round(statistics.median(loop) * 1e3, 2)},
        {"name": "store_many(1,000)", "ms": round(statistics.median(bulk) * 1e3, 2)},
        {
            "name": "speed-up (median of per-round ratios)",
            "ms": f"{statistics.median(ratios):.1f}x",
        },
    ]
    rows += [{"name": name, "ms": f"{us / 1e3:.2f}"} for name, us in parts.items()]
    _table(rows)


def _each(fn: Callable[..., None], calls: list[tuple[Any, ...]]) -> None:
    for args in calls:
        fn(*args)


class _Stub:
    """Stands in for redis-py (and for the serializer): answers at once."""

    def execute_command(self, *args: Any) -> Any:
        return DATA

    def dumps(self, obj: Any) -> bytes:
        return DATA

    def loads(self, data: bytes) -> Any:
        return RESULT


def _costs(
    calls: dict[str, Callable[[], Any]], rounds: int = 15, number: int = 10000
) -> dict[str, float]:
    """Microseconds per call of each: the best of ``rounds`` interleaved runs (the machine's
    quietest moment, so the figures are CPU costs, not load)."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], timeit.timeit(call, number=number) / number * 1e6)
    return best


def _breakdown(raw_set: float, raw_get: float) -> None:
    """Per-layer CPU cost of one store/retrieve beyond raw redis-py, each layer timed alone."""
    stub = _Stub()
    adapter: Any = Redis.from_client(stub)
    adapter.connect()
    adapter.serializer = stub  # times the adapter's own lines, without serializer or driver
    stub_pool = StoragePool.from_dict(
        {
            "storages": [{"name": "S", "import": "storages.redis", "classname": "Redis"}],
            "tasks": [{"name": TASK, "storage": "S"}],
        }
    )
    stub_pool.get_connected_storage("S")
    # The record layer's public operations, unwrapped: what runs inside the layers.
    store_body = RecordStorage.__dict__["store"].__wrapped__
    retrieve_body = RecordStorage.__dict__["retrieve"].__wrapped__
    key_of = storage._key_of
    args, key = (FLOW, TASK, "123", RESULT), (FLOW, TASK, "123")
    name = adapter._prefixes[RESULTS] + pack_key(*key)

    def noop(self: Any, *args: Any) -> None:
        return None

    call = layers.Call(adapter, "store", noop, args, {}, key, None)
    # The layers this instance's chain holds (layers.chain leaves out the cache, observer and
    # lock layers of a storage that has no use for them), each composed alone.
    unused: dict[Callable[[layers.Handler], layers.Handler], bool] = {
        layers.cached: adapter.cache is None,
        layers.observed: adapter.observer is None,
        layers.locked: adapter.thread_safe,
    }
    used = [layer for layer in layers.LAYERS if not unused.get(layer, False)]
    alone = {layer.__name__: layers.compose([layer]) for layer in used}

    c = _costs(
        {
            "json.dumps": lambda: json.dumps(
                RESULT, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode(),
            "JSON.dumps": lambda: serializers.JSON.dumps(RESULT),
            "_check_json_keys": lambda: serializers._check_json_keys(RESULT),
            "json.loads": lambda: json.loads(DATA),
            "JSON.loads": lambda: serializers.JSON.loads(DATA),
            "_key_of": lambda: key_of("store", 0, args, {}),
            "Call": lambda: layers.Call(adapter, "store", noop, args, {}, key, None),
            "invoke": lambda: layers.invoke(call),
            **{f"layer {n}": functools.partial(handler, call) for n, handler in alone.items()},
            "chain": lambda: adapter._op_chain(call),
            "_enter": lambda: storage._enter(adapter, call),
            "store body": lambda: store_body(adapter, *args),
            "retrieve body": lambda: retrieve_body(adapter, *key),
            "write": lambda: adapter.write(RESULTS, key, DATA),
            "read": lambda: adapter.read(RESULTS, key),
            "bare SET": lambda: stub.execute_command("SET", name, DATA),
            "bare GET": lambda: stub.execute_command("GET", name),
            "wrapped store": lambda: adapter.store(*args),
            "get_connected_storage": lambda: stub_pool.get_connected_storage("S"),
            "storage_for_task": lambda: stub_pool.storage_for_task(TASK),
        }
    )
    keyed = storage._wrap_keyed
    # keyed() = its own frame + _key_of + Call + _enter(run(layers) -> the body)
    frame = c["wrapped store"] - c["store body"] - c["_key_of"] - c["Call"]
    frame -= c["_enter"] - c["invoke"]
    rows = [
        ("store", "json.dumps (a raw caller pays it too)", c["json.dumps"], "-"),
        ("store", "JSON.dumps: _check_json_keys walk", c["_check_json_keys"],
         _where(serializers.JsonSerializer.dumps, "_check_json_keys(obj)")),
        ("store", "JSON.dumps: the rest", c["JSON.dumps"] - c["json.dumps"] - c["_check_json_keys"],
         _where(serializers.JsonSerializer.dumps)),
        ("retrieve", "json.loads (a raw caller pays it too)", c["json.loads"], "-"),
        ("retrieve", "JSON.loads beyond json.loads", c["JSON.loads"] - c["json.loads"],
         _where(serializers.JsonSerializer.loads)),
        ("both", "keyed() frame: *args/**kwargs, return", frame, _where(keyed, "def keyed")),
        ("both", "_key_of", c["_key_of"], _where(storage._key_of)),
        ("both", "Call(...) built", c["Call"], _where(layers.Call.__init__)),
        ("both", "_enter: re-entrance bookkeeping", c["_enter"] - c["chain"],
         _where(storage._enter)),
    ]  # fmt: skip
    for layer in used:
        what = f"layer {layer.__name__}"
        rows.append(("both", what, c[what] - c["invoke"], _where(layer)))
    rows += [
        ("both", "the chain beyond its layers' sum", c["chain"] - c["invoke"]
         - sum(c[f"layer {layer.__name__}"] - c["invoke"] for layer in used),
         _where(layers.chain.__wrapped__)),
        ("store", "RecordStorage.store's own lines", c["store body"] - c["write"],
         _where(store_body)),
        ("store", "Redis.write's own lines", c["write"] - c["bare SET"], _where(Redis.write)),
        ("retrieve", "RecordStorage.retrieve's own lines", c["retrieve body"] - c["read"],
         _where(retrieve_body)),
        ("retrieve", "Redis.read's own lines", c["read"] - c["bare GET"], _where(Redis.read)),
        ("both", "pool.get_connected_storage(name)", c["get_connected_storage"],
         f"{_where(pool_module._PoolMethod.__get__, 'MethodType')}, "
         f"{_where(pool_module.StoragePool.__dict__['get_connected_storage'].fn)}"),
        ("routed", "pool.store/retrieve: storage_for_task", c["storage_for_task"],
         _where(pool_module.StoragePool.storage_for_task)),
    ]  # fmt: skip
    print(
        "\n3. CPU cost per call beyond raw redis-py: each layer timed alone, best of 15 "
        "interleaved runs (quiet-machine figures; a thread-safe adapter with no cache and no "
        "observer: its chain holds " + ", ".join(layer.__name__ for layer in used) + ")"
    )
    _table([{"op": o, "layer": n, "us": f"{us:.2f}", "where": w} for o, n, us, w in rows])
    routed = c["storage_for_task"]
    for op, raw in (("store", raw_set), ("retrieve", raw_get)):
        extra = sum(us for o, n, us, _ in rows if o in (op, "both") and "raw caller" not in n)
        print(
            f"   {op} via get_connected_storage: {extra:.2f} us beyond raw redis-py "
            f"(+{routed:.2f} routed; + json.{'dumps' if op == 'store' else 'loads'}); the 1.15x "
            f"budget on this run's raw median ({raw * 1e6:.1f} us) is {raw * 1e6 * 0.15:.2f} us"
        )


def _cluster(repeat: int, rounds: int = 7) -> None:
    """Section 4: the same on a private 6-node Redis Cluster the suite's helpers start
    (``tests.servers``): single calls against raw ``RedisCluster`` SET/GET, and store_many of
    1,000 results spread over the hash slots against 1,000 single stores."""
    from tests.servers import start_redis_cluster

    started = time.perf_counter()
    cluster = start_redis_cluster()
    prefix = f"bench-{uuid.uuid4().hex}:"
    host, port = cluster.startup_nodes[0]
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Results",
                    "import": "storages.redis",
                    "classname": "Redis",
                    "configuration": {
                        "cluster": True,
                        "host": host,
                        "port": port,
                        "key_prefix": prefix,
                    },
                }
            ]
        }
    )
    raw = cluster.client()
    try:
        up = time.perf_counter() - started
        print(f"\n4. Redis Cluster: 3 primaries, 3 replicas (up in {up:.1f} s)")
        raw_key = f"{prefix}raw:{FLOW}/{TASK}/"
        adapter: Any = pool.get_connected_storage("Results")
        stores: dict[str, Callable[[int], Any]] = {
            "raw RedisCluster SET (same JSON bytes)": lambda i: raw.set(raw_key + str(i), DATA),
            "pool.get_connected_storage().store": lambda i: pool.get_connected_storage(
                "Results"
            ).store(FLOW, TASK, str(i), RESULT),
        }
        retrieves: dict[str, Callable[[int], Any]] = {
            "raw RedisCluster GET": lambda i: raw.get(raw_key + str(i % 1000)),
            "pool.get_connected_storage().retrieve": lambda i: pool.get_connected_storage(
                "Results"
            ).retrieve(FLOW, TASK, str(i % 1000)),
        }
        rows = []
        for calls, base in ((stores, "raw RedisCluster SET (same JSON bytes)"),
                            (retrieves, "raw RedisCluster GET")):  # fmt: skip
            timings = interleaved(calls, repeat, rounds=10)
            for timing in timings.values():
                row = timing.row()
                row["vs_raw"] = f"{timing.median / timings[base].median:.3f}x"
                rows.append(row)
        _table(rows)
        loop, bulk = [], []
        for r in range(rounds):
            items = [(FLOW, "bulk", f"{r}-{i}", {"i": i}) for i in range(1000)]
            begun = time.perf_counter()
            for item in items:
                adapter.store(*item)
            loop.append(time.perf_counter() - begun)
            begun = time.perf_counter()
            adapter.store_many(items)
            bulk.append(time.perf_counter() - begun)
        ratios = sorted(a / b for a, b in zip(loop, bulk, strict=True))
        keyslot: Callable[[str], int] = raw.keyslot
        slots = len({keyslot(prefix + "r:" + pack_key(*item[:3])) for item in items})
        _table(
            [
                {"name": "1,000 x store", "ms": round(statistics.median(loop) * 1e3, 2)},
                {
                    "name": f"store_many(1,000) over {slots} slots",
                    "ms": round(statistics.median(bulk) * 1e3, 2),
                },
                {
                    "name": "speed-up (median of per-round ratios)",
                    "ms": f"{statistics.median(ratios):.1f}x",
                },
            ]
        )
    finally:
        pool.disconnect_all()
        raw.close()
        cluster.stop()


def _profile(storage_: Any) -> None:
    n = 20000
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        storage_.store(FLOW, TASK, str(i % 1000), RESULT)
    profiler.disable()
    print(f"\ncProfile of {n} adapter stores (tottime and cumtime, us per store):")
    entries = sorted(pstats.Stats(profiler).stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    for (path, line, func), (_cc, _nc, tottime, cumtime, _callers) in entries[:20]:
        print(
            f"  {tottime / n * 1e6:7.2f} {cumtime / n * 1e6:7.2f}  {Path(path).name}:{line} {func}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5000, help="calls per system (default 5000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the adapter's store")
    parser.add_argument(
        "--cluster", action="store_true", help="also on a private Redis Cluster (starts 6 nodes)"
    )
    args = parser.parse_args()

    prefix = f"bench-{uuid.uuid4().hex}:"
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Results",
                    "import": "storages.redis",
                    "classname": "Redis",
                    "configuration": {"url": REDIS_URL, "key_prefix": prefix},
                }
            ],
            "tasks": [{"name": TASK, "storage": "Results"}],
        }
    )
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        raw_set, raw_get = _single_calls(pool, raw, prefix, args.repeat)
        _bulk(pool)
        _breakdown(raw_set, raw_get)
        if args.profile:
            _profile(pool.get_connected_storage("Results"))
        if args.cluster:
            _cluster(args.repeat)
    finally:
        doomed = list(raw.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(doomed), 1000):
            raw.delete(*doomed[start : start + 1000])
        pool.disconnect_all()
        raw.close()


if __name__ == "__main__":
    main()
