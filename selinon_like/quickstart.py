"""The quickstart (``make demo``, ``selinon-like demo``, ``examples/quickstart.py``).

Four threads store 100 results through one pool (the tasks the configuration routes, else one
task per storage), read them back, record a task failure with ``store_error`` apart from
results, clean up, then check every storage with a scratch round trip.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from selinon_like.errors import ResultNotFound
from selinon_like.pool import StoragePool
from selinon_like.storage import DataStorage

__all__ = ["run"]


def run(pool: StoragePool, label: str, echo: Callable[[str], Any] = print) -> bool:
    """Run the quickstart on ``pool``; True when every result came back intact and every
    storage passed its check."""
    echo(f"configured {label}: storages {', '.join(pool.names())}")
    # Tasks the file routes (as StoragePool.store does), else one task per storage.
    routes = dict(pool.config.tasks) or {f"demo-{name}": name for name in pool.names()}
    tasks = list(routes)
    flow = f"selinon-like-demo-{uuid.uuid4().hex[:8]}"

    def target(task: str) -> DataStorage:
        return pool.get_connected_storage(routes[task])

    def expected(number: int, i: int) -> tuple[str, str, dict[str, int]]:
        return tasks[i % len(tasks)], f"w{number}-{i}", {"worker": number, "i": i}

    def worker(number: int) -> None:
        for i in range(25):
            task, task_id, result = expected(number, i)
            target(task).store(flow, task, task_id, result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    back = 0
    for number in range(4):
        for i in range(25):
            task, task_id, result = expected(number, i)
            back += target(task).retrieve(flow, task, task_id) == result
    echo(
        f"4 threads stored 100 results in {', '.join(sorted(set(routes.values())))}; "
        f"read back intact: {back}/100"
    )

    task = tasks[0]
    try:
        raise ConnectionError("upstream timed out")
    except ConnectionError:
        target(task).store_error(
            {"url": "https://example.org"}, flow, task, "failed-1", sys.exc_info()
        )
    record = target(task).retrieve_error(flow, task, "failed-1")
    echo(f"error recorded: {record['exception_type']}: {record['message']} at {record['time']}")
    try:
        target(task).retrieve(flow, task, "failed-1")
    except ResultNotFound:
        echo("the failed task has no result, as expected")

    for number in range(4):  # leave no demo results behind in a real storage
        for i in range(25):
            task_name, task_id, _result = expected(number, i)
            target(task_name).delete(flow, task_name, task_id)
    rows = pool.check(write=True)
    for row in rows:
        status = f"ok in {row.latency_ms:.2f} ms" if row.ok else f"FAILED: {row.error}"
        echo(f"check {row.name:<10} {row.adapter:<34} {status}")
    return back == 100 and all(row.ok for row in rows)
