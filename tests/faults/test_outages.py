"""Fault injection: 4 threads store continuously while a private server is killed and
restarted (tests/faults/conftest.py): Redis, PostgreSQL, MariaDB, MongoDB (SecantusDB) and S3
(SeaweedFS). Every store that returned is retrievable afterwards (0 acknowledged writes lost);
every store that did not return raised StorageUnavailable; no call outlasted the storage's
operation_timeout by more than 10%; the same pool instance recovers by itself.

Figures per service are printed (``pytest -s``) and written to benchmarks/out/faults.json."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from selinon_like import StoragePool
from selinon_like.errors import StorageError, StorageUnavailable

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

THREADS = 4
RETRY = {"attempts": 3, "backoff": 0.05, "max_backoff": 0.5}
OPERATION_TIMEOUT = 5.0
OUTAGE_SECONDS = 1.5
OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "out" / "faults.json"


def _pool(entry: dict[str, Any]) -> StoragePool:
    entry = {"name": "faulty", "retry": RETRY, "operation_timeout": OPERATION_TIMEOUT, **entry}
    return StoragePool.from_dict({"storages": [entry]})


def _run_outage(server: Any, pool: StoragePool, durable: bool = True) -> dict[str, Any]:
    storage = pool.get_connected_storage("faulty")
    storage.store("warm", "up", "0", 0)
    stop = threading.Event()
    restarted = threading.Event()
    lock = threading.Lock()
    acknowledged: list[tuple[str, str, str, Any]] = []
    after_restart: list[int] = []
    raised: list[BaseException] = []
    longest = [0.0]
    unexpected: list[BaseException] = []

    def writer(number: int) -> None:
        count = 0
        while not stop.is_set():
            count += 1
            key = ("faults", f"t{number}", f"{count}-{uuid.uuid4().hex[:6]}")
            value = {"thread": number, "count": count}
            began = time.monotonic()
            try:
                pool.get_connected_storage("faulty").store(*key, value)
            except StorageError as exc:  # StorageUnavailable is a StorageError
                with lock:
                    raised.append(exc)
            except BaseException as exc:  # pragma: no cover - reported by the assertion
                with lock:
                    unexpected.append(exc)
            else:
                with lock:
                    acknowledged.append((*key, value))
                    if restarted.is_set():
                        after_restart.append(1)
            finally:
                with lock:
                    longest[0] = max(longest[0], time.monotonic() - began)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    server.stop()
    down = time.monotonic()
    time.sleep(OUTAGE_SECONDS)
    server.start()
    outage = time.monotonic() - down
    restarted.set()
    time.sleep(1.5)
    # Give the writers the time to get through one successful store after the restart.
    deadline = time.monotonic() + 30
    while not after_restart and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a call hangs"
    assert not unexpected, unexpected[:3]
    assert after_restart, "the pool did not recover after the restart"
    retries = storage.observer.retries if storage.observer is not None else 0
    # Noticed: calls failed, were retried, or waited the outage out inside the driver (pymongo
    # retries within its own timeoutMS, which is the storage's operation_timeout).
    assert raised or retries or longest[0] >= OUTAGE_SECONDS / 2, "the outage went unnoticed"
    if durable:  # a server that keeps its data: every failure is "unavailable", retried first
        assert all(isinstance(exc, StorageUnavailable) for exc in raised), raised[:3]
    assert longest[0] <= OPERATION_TIMEOUT * 1.1, longest[0]

    # Same pool, same instance, no user action.
    assert pool.get_connected_storage("faulty") is storage
    storage.store("after", "restart", "1", {"ok": True})
    assert storage.retrieve("after", "restart", "1") == {"ok": True}

    read_back = 0
    if durable:
        for flow, task, task_id, value in acknowledged:
            assert storage.retrieve(flow, task, task_id) == value
            read_back += 1
    figures = {
        "service": server.name,
        "outage_s": round(outage, 2),
        "writes_acknowledged": len(acknowledged),
        "writes_read_back": read_back if durable else "n/a (the server loses data on restart)",
        "calls_raised": len(raised),
        "retries": retries,
        "raised_types": sorted({type(exc).__name__ for exc in raised}),
        "longest_call_s": round(longest[0], 2),
        "operation_timeout_s": OPERATION_TIMEOUT,
    }
    print(f"\nFAULTS {json.dumps(figures)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    previous[server.name] = figures
    OUT.write_text(json.dumps(previous, indent=2) + "\n")
    return figures


def test_redis_restart(redis_server: Any) -> None:
    pool = _pool(
        {
            "import": "storages.redis",
            "classname": "Redis",
            "configuration": {
                "url": redis_server.url,
                "socket_timeout": 2,
                "socket_connect_timeout": 1,
            },
        }
    )
    try:
        _run_outage(redis_server, pool, durable=True)
    finally:
        pool.disconnect_all()


def test_postgresql_restart(postgresql_server: Any) -> None:
    pool = _pool(
        {
            "import": "storages.postgresql",
            "classname": "PostgreSQL",
            "configuration": {
                "connection_string": postgresql_server.url,
                "connect_timeout": 2,
                "statement_timeout": 5,
            },
        }
    )
    try:
        _run_outage(postgresql_server, pool, durable=True)
    finally:
        pool.disconnect_all()


def test_mariadb_restart(mariadb_server: Any) -> None:
    pool = _pool(
        {
            "import": "storages.mysql",
            "classname": "MySQL",
            "configuration": {
                "connection_string": mariadb_server.url,
                "connect_timeout": 2,
                "statement_timeout": 5,
            },
        }
    )
    try:
        _run_outage(mariadb_server, pool)
    finally:
        pool.disconnect_all()


def test_mongodb_restart(mongodb_private: Any) -> None:
    pool = _pool(
        {
            "import": "storages.mongodb",
            "classname": "MongoDB",
            "configuration": {
                "url": mongodb_private.url,
                "db_name": "faults",
                "server_selection_timeout_ms": 2000,
                "connect_timeout_ms": 1000,
                "socket_timeout_ms": 3000,
            },
        }
    )
    try:
        _run_outage(mongodb_private, pool)
    finally:
        pool.disconnect_all()


def test_s3_restart(seaweedfs_s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    pool = _pool(
        {
            "import": "storages.s3",
            "classname": "S3Storage",
            "configuration": {
                **seaweedfs_s3.extra["options"],
                "addressing_style": "path",
                "connect_timeout": 1,
                "read_timeout": 3,
            },
        }
    )
    try:
        _run_outage(seaweedfs_s3, pool)
    finally:
        pool.disconnect_all()
