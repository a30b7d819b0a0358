"""Compression and purging (issue 16), per service.

    python -m benchmarks.bench_expiry [--quick] [--only SERVICE ...]

Compression: a ~1 MB JSON result made of task-like records (ids, states, times, worker names,
small nested results: what a flow's results look like, not a repeated string) stored and read
back through the adapter with each codec at its default level and threshold; bytes stored
(what the service keeps: header included), median store and retrieve time. The codecs take
turns call by call (``common.interleaved``), each on its own instance of the same storage.

Purge: N records stored with a one-hour ttl (``store_many`` in 1,000s) and one without,
then one timed ``purge_expired()`` by a clock two hours ahead (so the services' own expiry,
Redis' and MongoDB's, stays out of it); records/s, and a check that every expiring one went
and the other stayed.

``python -m benchmarks`` runs this module too (``run()``) and adds its tables to RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.bench_s3 import moto_server
from benchmarks.common import AwakeCpus, interleaved
from benchmarks.suite import MYSQL_URL, POSTGRESQL_URL, REDIS_URL
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry
from selinon_like.records import RESULTS, RecordStorage

CODECS = ("none", "gzip", "zstd", "lz4")
FLOW = "BenchExpiry"


def task_records(size: int = 1_000_000, seed: int = 16) -> list[dict[str, Any]]:
    """Task-like records making about ``size`` bytes of JSON, reproducible: a flow's tasks
    as a worker logs them, each with a random id, a start time after the previous one, a
    state, a worker, a duration and a small result."""
    rng = random.Random(seed)
    states = ("SUCCESS",) * 8 + ("FAILURE", "RETRY")
    records: list[dict[str, Any]] = []
    total = 2  # the list's brackets
    clock = 1_796_000_000_000  # ms
    n = 0
    while total < size:
        clock += rng.randrange(40)
        duration = int(rng.expovariate(1 / 250))
        record = {
            "task_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "task_name": f"Task{rng.randrange(40)}",
            "state": rng.choice(states),
            "worker": f"worker-{rng.randrange(16)}@node{rng.randrange(4)}",
            "started_ms": clock,
            "finished_ms": clock + duration,
            "retries": rng.choice((0, 0, 0, 1, 2)),
            "result": {"rows": rng.randrange(10**5), "path": f"s3://data/part-{n:06d}.parquet"},
        }
        records.append(record)
        total += len(json.dumps(record, separators=(",", ":"))) + 1
        n += 1
    return records


# -- storages --------------------------------------------------------------------------------


Factory = Callable[[], Iterator[Callable[[], RecordStorage]]]


@contextlib.contextmanager
def _memory() -> Iterator[Callable[[], RecordStorage]]:
    from storages.memory import InMemoryStorage

    shared = InMemoryStorage()  # one dict: every "instance" sees the same records

    def make() -> RecordStorage:
        instance = InMemoryStorage()
        instance._records = shared._records
        instance._expiry = shared._expiry
        return instance

    yield make


@contextlib.contextmanager
def _filesystem() -> Iterator[Callable[[], RecordStorage]]:
    from storages.filesystem import Filesystem

    with tempfile.TemporaryDirectory() as directory:
        yield lambda: Filesystem(directory)


@contextlib.contextmanager
def _sqlite() -> Iterator[Callable[[], RecordStorage]]:
    from storages.sql import SQLite

    with tempfile.TemporaryDirectory() as directory:
        yield lambda: SQLite(path=f"{directory}/bench.sqlite")


def _sql(url: str) -> Factory:
    @contextlib.contextmanager
    def factory() -> Iterator[Callable[[], RecordStorage]]:
        import sqlalchemy as sa

        from storages.sql import SqlStorage

        table = f"bench_expiry_{uuid.uuid4().hex[:8]}"
        try:
            yield lambda: SqlStorage(connection_string=url, table_name=table)
        finally:
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                for name in (table, table + "_errors"):
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            engine.dispose()

    return factory


@contextlib.contextmanager
def _redis() -> Iterator[Callable[[], RecordStorage]]:
    import redis

    from storages.redis import Redis

    prefix = f"bench-expiry-{uuid.uuid4().hex[:8]}:"
    try:
        yield lambda: Redis(url=REDIS_URL, key_prefix=prefix)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])
        client.close()


@contextlib.contextmanager
def _mongomock() -> Iterator[Callable[[], RecordStorage]]:
    from storages.mongodb import MongoDB
    from tests.mongomock_client import mongomock_client

    client = mongomock_client()
    yield lambda: MongoDB.from_client(client, db_name="bench", collection_name="expiry")


@contextlib.contextmanager
def _s3() -> Iterator[Callable[[], RecordStorage]]:
    from storages.s3 import S3Storage

    with moto_server() as (endpoint, _pid):
        prefix = f"expiry-{uuid.uuid4().hex[:8]}"
        yield lambda: S3Storage(
            bucket="selinon-like-bench",
            endpoint_url=endpoint,
            aws_access_key_id="AKIABENCHMARK",
            aws_secret_access_key="benchmark-secret",
            region_name="us-east-1",
            create_bucket=True,
            prefix=prefix,
        )


SERVICES: dict[str, tuple[str, Factory, int]] = {
    # name: (label, storage factory, records purged)
    "memory": ("memory", _memory, 20_000),
    "filesystem": ("filesystem", _filesystem, 20_000),
    "sqlite": ("SQLite file", _sqlite, 20_000),
    "postgresql": ("PostgreSQL", _sql(POSTGRESQL_URL), 20_000),
    "mariadb": ("MariaDB", _sql(MYSQL_URL), 20_000),
    "redis": ("Redis", _redis, 20_000),
    # mongomock scans its collection on every query; moto spends ~3 ms of CPU per request.
    "mongodb": ("MongoDB (mongomock)", _mongomock, 2_000),
    "s3": ("S3 (moto server)", _s3, 1_000),
}


@contextlib.contextmanager
def connected(make: Callable[[], RecordStorage], **record_format: Any) -> Iterator[RecordStorage]:
    storage = make()
    storage.storage_name = "bench"
    if record_format:
        storage.set_record_format(**record_format)
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()


# -- measurements ----------------------------------------------------------------------------


def compression(label: str, make: Callable[[], RecordStorage], repeat: int) -> list[dict[str, Any]]:
    result = task_records()
    with contextlib.ExitStack() as stack:
        storages = {
            codec: stack.enter_context(connected(make, compression=Compression(codec)))
            for codec in CODECS
        }
        run = uuid.uuid4().hex[:6]

        def key(codec: str, i: int) -> tuple[str, str, str]:
            return (FLOW, f"compress-{run}", f"{codec}-{i if i >= 0 else 'warm'}")

        stores = {
            codec: (lambda i, c=codec, s=storage: s.store(*key(c, i), result))
            for codec, storage in storages.items()
        }
        stored = interleaved(stores, repeat, warmup=2)
        gets = {
            codec: (lambda i, c=codec, s=storage: s.retrieve(*key(c, max(i, 0))))
            for codec, storage in storages.items()
        }
        fetched = interleaved(gets, repeat, warmup=2)
        rows = []
        plain_size = 0
        for codec, storage in storages.items():
            data = storage.read(RESULTS, key(codec, 0)) or b""
            plain_size = plain_size or len(data)
            intact = storage.retrieve(*key(codec, 0)) == result
            rows.append(
                {
                    "service": label,
                    "codec": codec,
                    "bytes stored": len(data),
                    "% of plain": round(100 * len(data) / plain_size, 1),
                    "store ms": round(stored[codec].median * 1e3, 2),
                    "store ×plain": round(stored[codec].median / stored["none"].median, 2),
                    "retrieve ms": round(fetched[codec].median * 1e3, 2),
                    "retrieve ×plain": round(fetched[codec].median / fetched["none"].median, 2),
                    "intact": intact,
                }
            )
            for i in range(-1, repeat):
                with contextlib.suppress(Exception):
                    storage.delete(*key(codec, i))
        return rows


def purge(label: str, make: Callable[[], RecordStorage], count: int) -> dict[str, Any]:
    # Stored with a one-hour ttl, purged by a clock two hours ahead: the services' own expiry
    # (Redis PX, MongoDB's TTL index, mongomock's emulation of it) stays an hour away.
    with connected(make, ttl=Expiry(results=3600)) as storage:
        run = uuid.uuid4().hex[:6]
        task = f"purge-{run}"
        for start in range(0, count, 1000):
            end = min(count, start + 1000)
            storage.store_many([(FLOW, task, str(n), {"n": n}) for n in range(start, end)])
        storage.set_record_format(ttl=Expiry())
        storage.store(FLOW, task, "kept", "kept")
        storage.set_record_format(clock=lambda: time.time() + 7200)
        began = time.perf_counter()
        removed = storage.purge_expired()
        seconds = time.perf_counter() - began
        left = [key for key in storage.iter_keys(FLOW) if key[1] == task]
        storage.delete(FLOW, task, "kept")
    return {
        "service": label,
        "records": count,
        "removed": removed,
        "seconds": round(seconds, 3),
        "records/s": round(removed / seconds),
        "left": "only the unexpired one" if left == [(FLOW, task, "kept")] else left[:3],
    }


def run(
    quick: bool = False, only: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The compression rows, the purge rows and the services skipped (with why)."""
    repeat = 5 if quick else 15
    packed: list[dict[str, Any]] = []
    purged: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in only or list(SERVICES):
        label, factory, count = SERVICES[name]
        if quick:
            count = min(count, 2_000)
        print(f"== {label}", flush=True)
        try:
            with factory() as make:
                packed += compression(label, make, repeat)
                purged.append(purge(label, make, count))
        except Exception as exc:
            skipped.append(f"{label}: {exc!r}"[:300])
            print(f"   skipped: {exc!r}", flush=True)
    return packed, purged, skipped


def markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_expiry")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=sorted(SERVICES), action="append")
    args = parser.parse_args()
    with AwakeCpus() as cpus:
        packed, purged, skipped = run(args.quick, args.only)
    print(f"\n{cpus.note}\n\n## Compression of a ~1 MB result of task records\n")
    print(markdown(packed))
    print("## purge_expired throughput\n")
    print(markdown(purged))
    for line in skipped:
        print(f"- skipped {line}")


if __name__ == "__main__":
    main()
