"""Quickstart: the embedded default configuration, no server needed.

Loads ``config/storages.yml``, stores and reads results from several threads, records a task
failure with ``store_error`` and prints what it did. Run it with ``make demo``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from selinon_like import ResultNotFound, StoragePool

CONFIG = Path(__file__).resolve().parent.parent / "config" / "storages.yml"


def main() -> int:
    # The default config keeps its files under $SELINON_LIKE_DATA (./var by default).
    os.environ.setdefault("SELINON_LIKE_DATA", tempfile.mkdtemp(prefix="selinon-like-demo-"))
    pool = StoragePool.configure(CONFIG)
    print(f"configured {CONFIG.name}: storages {', '.join(pool.names())}")

    # Several worker threads share one pool: one connected instance per storage.
    def worker(number: int) -> None:
        for i in range(25):
            task = "fetch" if i % 2 else "parse"
            StoragePool.store("quickstart", task, f"w{number}-{i}", {"worker": number, "i": i})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    back = sum(
        StoragePool.retrieve("quickstart", "fetch" if i % 2 else "parse", f"w{n}-{i}")
        == {"worker": n, "i": i}
        for n in range(4)
        for i in range(25)
    )
    print(f"4 threads stored 100 results; read back intact: {back}/100")

    # A failing task: its error is recorded apart from results.
    try:
        raise ConnectionError("upstream timed out")
    except ConnectionError:
        StoragePool.store_error(
            {"url": "https://example.org"}, "quickstart", "fetch", "w9-1", sys.exc_info()
        )
    record = StoragePool.retrieve_error("quickstart", "fetch", "w9-1")
    print(f"error recorded: {record['exception_type']}: {record['message']} at {record['time']}")
    try:
        StoragePool.retrieve("quickstart", "fetch", "w9-1")
    except ResultNotFound:
        print("the failed task has no result, as expected")

    for row in pool.check():
        status = f"ok in {row.latency * 1000:.2f} ms" if row.ok else f"FAILED: {row.error}"
        print(f"check {row.name:<10} {row.adapter:<16} {status}")
    pool.disconnect_all()
    return 0 if back == 100 else 1


if __name__ == "__main__":
    sys.exit(main())
