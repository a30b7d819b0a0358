"""Fault injection: 4 threads store continuously while a private server is killed and
restarted (tests/faults/conftest.py). Every store that returned is retrievable afterwards
(except on moto, which keeps its data in memory and loses it on restart: there only the
errors and the recovery are checked); every store that did not return raised
StorageUnavailable or StorageError; the same pool instance recovers by itself.

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
OUTAGE_SECONDS = 1.5
OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "out" / "faults.json"


def _pool(entry: dict[str, Any]) -> StoragePool:
    entry = {"name": "faulty", "retry": RETRY, **entry}
    return StoragePool.from_dict({"storages": [entry]})


def _run_outage(server: Any, pool: StoragePool, durable: bool) -> dict[str, Any]:
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
    assert raised, "the outage was not noticed by any call"
    if durable:  # a server that keeps its data: every failure is "unavailable", retried first
        assert all(isinstance(exc, StorageUnavailable) for exc in raised), raised[:3]

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
        "writes_read_back": read_back if durable else "n/a (moto loses data on restart)",
        "calls_raised": len(raised),
        "raised_types": sorted({type(exc).__name__ for exc in raised}),
        "longest_call_s": round(longest[0], 2),
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


def test_s3_restart(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto keeps everything in memory: after the restart the bucket is gone. A real S3 keeps
    # it, so the restart recreates the bucket (as the operator's S3 would still have it); we
    # check errors during the outage and recovery, not durability.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    pool = _pool(
        {
            "import": "storages.s3",
            "classname": "S3Storage",
            "configuration": {
                "bucket": "faults",
                "endpoint_url": moto_server.url,
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
                "region_name": "us-east-1",
                "create_bucket": True,
                "connect_timeout": 1,
                "read_timeout": 3,
            },
        }
    )
    original_start = moto_server._start

    def start_and_recreate_bucket() -> None:
        import boto3

        original_start()
        moto_server.wait_ready()
        boto3.client(
            "s3",
            endpoint_url=moto_server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="faults")

    moto_server._start = start_and_recreate_bucket
    try:
        _run_outage(moto_server, pool, durable=False)
    finally:
        pool.disconnect_all()
