"""The quickstart (``make demo``, ``selinon-like demo``, ``examples/quickstart.py``).

Four threads store 100 results through one pool (the tasks the configuration routes, else one
task per storage), read them back, record a task failure with ``store_error`` apart from
results, clean up, then check every storage with a scratch round trip.

A storage whose driver is not installed (the embedded default's SQLite storage after a plain
``pip install selinon-like``, without the ``sql`` extra) is left out, with the command that
installs it, instead of failing the whole demo.

The embedded default configuration ships inside the package (:func:`default_config`), so the
demo runs from any directory after a plain ``pip install``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selinon_like.errors import ConfigError, ResultNotFound
from selinon_like.health import StorageHealth
from selinon_like.pool import StoragePool
from selinon_like.storage import DataStorage

__all__ = ["DEFAULT_CONFIG_NAME", "QuickstartReport", "default_config", "report", "run"]

# The embedded default, inside the package: selinon_like/data/storages.yml.
DEFAULT_CONFIG_NAME = "storages.yml"

_THREADS = 4
_PER_THREAD = 25


@contextlib.contextmanager
def default_config() -> Iterator[Path]:
    """The path of the embedded default configuration (memory, files, SQLite; no server),
    valid inside the ``with`` block (a zipped install extracts it to a temporary file)."""
    resource = importlib.resources.files("selinon_like") / "data" / DEFAULT_CONFIG_NAME
    with importlib.resources.as_file(resource) as path:
        yield path


@dataclass
class QuickstartReport:
    """What the quickstart did: ``stored`` results and how many were ``read_back`` intact,
    the ``error_record`` it stored (type, message, time), every storage's ``checks`` row, and
    the storages ``skipped`` because their driver is not installed (name -> why)."""

    config: str
    storages: list[str]
    routed_to: list[str] = field(default_factory=list)
    stored: int = 0
    read_back: int = 0
    error_record: dict[str, Any] = field(default_factory=dict)
    checks: list[StorageHealth] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every result came back intact and every storage checked passed."""
        return (
            self.stored > 0 and self.read_back == self.stored and all(row.ok for row in self.checks)
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``selinon-like demo --json``)."""
        return {
            "config": self.config,
            "storages": self.storages,
            "routed_to": self.routed_to,
            "stored": self.stored,
            "read_back": self.read_back,
            "error_record": self.error_record,
            "checks": [
                {
                    "storage": row.name,
                    "adapter": row.adapter,
                    "ok": row.ok,
                    "latency_ms": row.latency_ms,
                    "error": row.error,
                    "note": row.note,
                }
                for row in self.checks
            ],
            "skipped": self.skipped,
            "ok": self.ok,
        }


def run(pool: StoragePool, label: str, echo: Callable[[str], Any] = print) -> bool:
    """Run the quickstart on ``pool``, telling each step to ``echo``; True when every result
    came back intact and every storage passed its check."""
    return report(pool, label, echo).ok


def report(
    pool: StoragePool, label: str, echo: Callable[[str], Any] | None = None
) -> QuickstartReport:
    """Run the quickstart on ``pool``; what it did (each step also told to ``echo``, if any)."""
    say: Callable[[str], Any] = echo if echo is not None else (lambda _text: None)
    done = QuickstartReport(config=label, storages=pool.names())
    say(f"configured {label}: storages {', '.join(pool.names())}")
    for name in pool.names():
        why = _missing_driver(pool, name)
        if why is not None:
            done.skipped[name] = why
            say(f"skipped {name}: {why}")
    usable = [name for name in pool.names() if name not in done.skipped]
    if not usable:
        return done
    # Tasks the file routes (as StoragePool.store does), else one task per storage.
    routes = {
        task: name for task, name in pool.config.tasks.items() if name not in done.skipped
    } or {f"demo-{name}": name for name in usable}
    tasks = list(routes)
    flow = f"selinon-like-demo-{uuid.uuid4().hex[:8]}"

    def target(task: str) -> DataStorage:
        return pool.get_connected_storage(routes[task])

    def expected(number: int, i: int) -> tuple[str, str, dict[str, int]]:
        return tasks[i % len(tasks)], f"w{number}-{i}", {"worker": number, "i": i}

    def worker(number: int) -> None:
        for i in range(_PER_THREAD):
            task, task_id, result = expected(number, i)
            target(task).store(flow, task, task_id, result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.stored = _THREADS * _PER_THREAD
    for number in range(_THREADS):
        for i in range(_PER_THREAD):
            task, task_id, result = expected(number, i)
            done.read_back += target(task).retrieve(flow, task, task_id) == result
    done.routed_to = sorted(set(routes.values()))
    say(
        f"{_THREADS} threads stored {done.stored} results in {', '.join(done.routed_to)}; "
        f"read back intact: {done.read_back}/{done.stored}"
    )

    task = tasks[0]
    try:
        raise ConnectionError("upstream timed out")
    except ConnectionError:
        target(task).store_error(
            {"url": "https://example.org"}, flow, task, "failed-1", sys.exc_info()
        )
    record = target(task).retrieve_error(flow, task, "failed-1")
    done.error_record = {
        "storage": routes[task],
        "key": [flow, task, "failed-1"],
        "exception_type": record["exception_type"],
        "message": record["message"],
        "time": record["time"],
    }
    say(f"error recorded: {record['exception_type']}: {record['message']} at {record['time']}")
    try:
        target(task).retrieve(flow, task, "failed-1")
    except ResultNotFound:
        say("the failed task has no result, as expected")

    for number in range(_THREADS):  # leave no demo results behind in a real storage
        for i in range(_PER_THREAD):
            task_name, task_id, _result = expected(number, i)
            target(task_name).delete(flow, task_name, task_id)
    done.checks = [row for row in pool.check(write=True) if row.name not in done.skipped]
    for row in done.checks:
        status = f"ok in {row.latency_ms:.2f} ms" if row.ok else f"FAILED: {row.error}"
        if row.ok and row.note:
            status += f" ({row.note})"
        say(f"check {row.name:<10} {row.adapter:<34} {status}")
    return done


def _missing_driver(pool: StoragePool, name: str) -> str | None:
    """Why storage ``name`` cannot be used here when its driver is not installed, else None
    (any other failure is the check's to report)."""
    try:
        pool.get_connected_storage(name)
    except Exception as exc:  # any other failure: the check at the end reports it
        if isinstance(exc, ConfigError) and isinstance(exc.__cause__, ModuleNotFoundError):
            return exc.message
    return None
