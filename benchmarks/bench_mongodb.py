"""MongoDB adapter benchmark.

1. ``store`` / ``retrieve`` medians through the adapter against raw pymongo calls on the same
   kind of collection (no index but ``_id``, same document, the same serialized bytes computed
   beforehand): the difference is the adapter's cost (key checks, digest, serializer, layers).
2. ``store_many`` / ``retrieve_many`` of 1,000 results against 1,000 ``store`` / ``retrieve``
   calls.

On a real server: the one ``SELINON_LIKE_MONGODB_URL`` names, else a private SecantusDB (the
MongoDB-compatible server the test suite starts, ``tests/servers``), stopped at the end. Then
on mongomock, an in-process fake that scans the whole collection on every write: its figures
are NOT a server's, they show the adapter's CPU overhead alone.

Run from the repository root: ``.venv/bin/python benchmarks/bench_mongodb.py``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Timing, interleaved
from selinon_like.keys import key_digest
from storages.mongodb import MongoDB

KEYS = 200  # rotating key set: mongomock's cost grows with the collection, keep it fixed
REPEAT = 2000
BULK = 1000
BULK_ROUNDS = 3
RESULT = {"status": "ok", "items": list(range(20)), "name": "task result", "score": 0.5}


def _raw_document(i: int, data: bytes) -> dict[str, Any]:
    key = ("flow", "task", str(i % KEYS))
    return {
        "_id": key_digest(*key),
        "flow_name": key[0],
        "task_name": key[1],
        "task_id": key[2],
        "result": data,
    }


def _row(timing: Timing, baseline: Timing | None) -> str:
    ratio = f"{timing.median / baseline.median:6.2f}x" if baseline else "      -"
    return (
        f"  {timing.name:<28} {timing.median * 1e6:10.1f} {timing.p99 * 1e6:10.1f} "
        f"{timing.ops_per_second:10.0f} {ratio} {timing.errors:6d}"
    )


def _single_calls(label: str, storage: MongoDB, raw_collection: Any) -> None:
    data = storage.serializer.dumps(RESULT)
    for i in range(KEYS):
        storage.store("flow", "task", str(i), RESULT)
        document = _raw_document(i, data)
        raw_collection.replace_one({"_id": document["_id"]}, document, upsert=True)

    def adapter_store(i: int) -> None:
        storage.store("flow", "task", str(i % KEYS), RESULT)

    def raw_store(i: int) -> None:
        document = _raw_document(i, data)
        raw_collection.replace_one({"_id": document["_id"]}, document, upsert=True)

    def adapter_retrieve(i: int) -> None:
        storage.retrieve("flow", "task", str(i % KEYS))

    def raw_retrieve(i: int) -> None:
        raw_collection.find_one(
            {"_id": key_digest("flow", "task", str(i % KEYS))}, {"_id": 0, "result": 1}
        )

    timings = interleaved(
        {
            "store (adapter)": adapter_store,
            "store (raw pymongo)": raw_store,
            "retrieve (adapter)": adapter_retrieve,
            "retrieve (raw pymongo)": raw_retrieve,
        },
        repeat=REPEAT,
    )
    print(f"\n{label}: {KEYS} keys, {REPEAT} calls each, interleaved in 5 rounds")
    print(
        f"  {'operation':<28} {'median_us':>10} {'p99_us':>10} {'ops_s':>10} {'vs raw':>7}"
        f" {'errors':>6}"
    )
    for op in ("store", "retrieve"):
        raw = timings[f"{op} (raw pymongo)"]
        print(_row(timings[f"{op} (adapter)"], raw))
        print(_row(raw, None))


def _bulk_calls(label: str, storage: MongoDB, *, fake: bool) -> None:
    items = [("bulk", "task", str(i), RESULT) for i in range(BULK)]
    keys = [item[:3] for item in items]
    storage.store_many(items)  # the same keys exist in every round: replaces, not inserts
    calls: dict[str, Callable[[], Any]] = {
        f"store_many({BULK})": lambda: storage.store_many(items),
        f"{BULK} x store": lambda: [storage.store(*item) for item in items],
        f"retrieve_many({BULK})": lambda: storage.retrieve_many(keys),
        f"{BULK} x retrieve": lambda: [storage.retrieve(*key) for key in keys],
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _round in range(BULK_ROUNDS):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\n{label}: {BULK} results, median of {BULK_ROUNDS} rounds")
    for name, seconds in median.items():
        print(f"  {name:<28} {seconds * 1e3:10.1f} ms")
    for op in ("store", "retrieve"):
        speed_up = median[f"{BULK} x {op}"] / median[f"{op}_many({BULK})"]
        print(f"  {op}_many speed-up{'':<12} {speed_up:10.1f}x")
    if fake:
        print("  (mongomock's bulk_write loops over single writes, so no speed-up shows here;")
        print("   on a server store_many is one round trip per batch instead of one per result)")


def run(label: str, storage: MongoDB, raw_collection: Any, *, fake: bool = False) -> None:
    storage.connect()
    try:
        _single_calls(label, storage, raw_collection)
        _bulk_calls(label, storage, fake=fake)
    finally:
        storage._results.drop()
        storage._errors.drop()
        raw_collection.drop()
        storage.disconnect()


@contextlib.contextmanager
def mongodb_server() -> Iterator[tuple[str, str]]:
    """``(label, url)`` of the server to measure: SELINON_LIKE_MONGODB_URL's, else a private
    SecantusDB stopped on exit."""
    url = os.environ.get("SELINON_LIKE_MONGODB_URL")
    if url:
        yield "MongoDB server at SELINON_LIKE_MONGODB_URL", url
        return
    from tests.servers import start_mongodb

    with start_mongodb() as server:
        yield "SecantusDB (private, MongoDB wire protocol, pure Python)", server.url


def main() -> None:
    import pymongo

    # The tests' mongomock client: it carries the shim mongomock needs for bulk_write.
    from tests.mongomock_client import mongomock_client

    suffix = uuid.uuid4().hex[:8]
    with mongodb_server() as (label, url):
        client: Any = pymongo.MongoClient(url)
        try:
            run(
                label,
                MongoDB(url=url, db_name="selinon_like_bench", collection_name=f"bench_{suffix}"),
                client["selinon_like_bench"][f"raw_{suffix}"],
            )
        finally:
            client.close()
    fake_server = mongomock_client()
    run(
        "mongomock (in-process fake, not a server)",
        MongoDB.from_client(fake_server, db_name=f"bench_{suffix}"),
        fake_server[f"bench_{suffix}"]["raw"],
        fake=True,
    )


if __name__ == "__main__":
    main()
