"""One bound per call, measured: each adapter's private server is SIGSTOPped (its kernel still
accepts connections and acknowledges bytes; the server never answers) while 8 calls from 4
threads run on a storage whose own driver timeouts are far longer than its operation_timeout.
Every call must fail with StorageUnavailable within operation_timeout + 10%, and the same
instance must work again once the server resumes.

Figures per adapter are printed (``pytest -s``) and written to benchmarks/out/bounds.json."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from selinon_like import StoragePool
from selinon_like.errors import StorageError, StorageUnavailable

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OPERATION_TIMEOUT = 5.0
BOUND = OPERATION_TIMEOUT * 1.1
THREADS = 4
OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "out" / "bounds.json"

# Each adapter with driver timeouts well past OPERATION_TIMEOUT: the bound must come from the
# deadline, not from them.
ENTRIES: dict[str, tuple[str, Any]] = {
    "redis": (
        "redis_server",
        lambda server: {
            "import": "storages.redis",
            "classname": "Redis",
            "configuration": {
                "url": server.url,
                "socket_timeout": 20,
                "socket_connect_timeout": 20,
            },
        },
    ),
    "postgresql": (
        "postgresql_server",
        lambda server: {
            "import": "storages.postgresql",
            "classname": "PostgreSQL",
            "configuration": {
                "connection_string": server.url,
                "connect_timeout": 20,
                "statement_timeout": 20,
            },
        },
    ),
    "mariadb": (
        "mariadb_server",
        lambda server: {
            "import": "storages.mysql",
            "classname": "MySQL",
            "configuration": {
                "connection_string": server.url,
                "connect_timeout": 20,
                "statement_timeout": 20,
            },
        },
    ),
    "mongodb": (
        "mongodb_private",
        lambda server: {
            "import": "storages.mongodb",
            "classname": "MongoDB",
            "configuration": {
                "url": server.url,
                "db_name": "bounds",
                "server_selection_timeout_ms": 20_000,
                "connect_timeout_ms": 20_000,
                "socket_timeout_ms": 60_000,
            },
        },
    ),
    "s3": (
        "seaweedfs_s3",
        lambda server: {
            "import": "storages.s3",
            "classname": "S3Storage",
            "configuration": {
                **server.extra["options"],
                "addressing_style": "path",
                "connect_timeout": 20,
                "read_timeout": 60,
            },
        },
    ),
}


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _record(figures: dict[str, Any]) -> None:
    print(f"\nBOUNDS {json.dumps(figures)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    previous[figures["adapter"]] = figures
    OUT.write_text(json.dumps(previous, indent=2) + "\n")


@pytest.mark.parametrize("adapter", sorted(ENTRIES))
def test_no_call_outlasts_operation_timeout_on_a_stopped_server(
    adapter: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    fixture, entry = ENTRIES[adapter]
    server = request.getfixturevalue(fixture)
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "hung",
                    "retry": {"attempts": 5, "backoff": 0.05, "max_backoff": 0.2},
                    "operation_timeout": OPERATION_TIMEOUT,
                    **entry(server),
                }
            ]
        }
    )
    try:
        storage = pool.get_connected_storage("hung")
        # Open connections on several threads: some calls meet an open connection, others
        # must open one while the server is stopped.
        warm = [
            threading.Thread(target=storage.store, args=("F", "t", f"warm{n}", n)) for n in range(2)
        ]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()
        storage.store("F", "t", "before", {"n": 1})
        outcomes: list[tuple[str, float, BaseException | None]] = []
        lock = threading.Lock()

        def calls(number: int) -> None:
            for op, call in (
                ("store", lambda: storage.store("F", "t", f"hung{number}", number)),
                ("retrieve", lambda: storage.retrieve("F", "t", "before")),
            ):
                began = time.monotonic()
                error: BaseException | None = None
                try:
                    call()
                except BaseException as exc:
                    error = exc
                with lock:
                    outcomes.append((op, time.monotonic() - began, error))

        pids = server.pids()
        threads = [threading.Thread(target=calls, args=(n,)) for n in range(THREADS)]
        _signal(pids, signal.SIGSTOP)
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=OPERATION_TIMEOUT * 6)
            hanging = sum(thread.is_alive() for thread in threads)
        finally:
            _signal(pids, signal.SIGCONT)
        for thread in threads:
            thread.join(timeout=60)
        assert not hanging, f"{hanging} threads still in a call after {OPERATION_TIMEOUT * 6} s"

        durations = [elapsed for _op, elapsed, _error in outcomes]
        figures = {
            "adapter": adapter,
            "operation_timeout_s": OPERATION_TIMEOUT,
            "calls": len(outcomes),
            "longest_call_s": round(max(durations), 3),
            "shortest_call_s": round(min(durations), 3),
            "longest_over_timeout": round(max(durations) / OPERATION_TIMEOUT, 3),
            "errors": sorted({type(error).__name__ for _op, _t, error in outcomes}),
        }
        _record(figures)
        assert len(outcomes) == 2 * THREADS
        for op, elapsed, error in outcomes:
            assert isinstance(error, StorageUnavailable), (op, elapsed, error)
            assert elapsed <= BOUND, (op, elapsed, error)

        # Resumed: the same instance works again, nothing stored before is lost.
        deadline = time.monotonic() + 60
        while True:
            try:
                storage.store("F", "t", "after", {"n": 2})
                break
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert storage.retrieve("F", "t", "after") == {"n": 2}
        assert storage.retrieve("F", "t", "before") == {"n": 1}
    finally:
        pool.disconnect_all()
