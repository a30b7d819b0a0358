"""examples/celery_worker under a real Celery worker: prefork pool, concurrency 2, Redis broker.

The worker runs as a subprocess on a queue of its own; the test sends 50 tasks (every 5th fails
on purpose) and reads every result and error record back from the filesystem storage."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_service

from selinon_like import ResultNotFound, StoragePool

pytestmark = [pytest.mark.celery, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "celery_worker"
BROKER_URL = os.environ.get("SELINON_LIKE_CELERY_BROKER", "redis://127.0.0.1:6379/5")
TASK = "selinon_like_example.square"
GRACE = 30.0  # seconds a warm shutdown may take before SIGKILL
DEADLINE = 90.0  # seconds 50 tiny tasks may take to be stored


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    queue: str
    data: Path
    log: Path

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def _broker() -> Any:
    import redis

    return redis.Redis.from_url(BROKER_URL, socket_timeout=5)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _wait_gone(pgid: int) -> list[int]:
    """The group's processes still alive after a short grace (children exit after the main
    process has waited for them, but the kernel may take a moment to reap them)."""
    deadline = time.monotonic() + 10
    while (members := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return members


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry))
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL to the whole group after GRACE."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    require_service("Redis (Celery broker)", lambda: _broker().ping())
    queue = f"selinon-like-test-{uuid.uuid4().hex}"
    data = tmp_path / "data"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SELINON_LIKE_CONFIG": str(EXAMPLE / "storages.yml"),
        "SELINON_LIKE_DATA": str(data),
        "SELINON_LIKE_CELERY_BROKER": BROKER_URL,
        "SELINON_LIKE_CELERY_QUEUE": queue,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "worker_app", "worker",
        "--pool=prefork", "--concurrency=2", "--loglevel=INFO",
        f"--hostname={queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=EXAMPLE,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nothing of it can outlive the test
        )
    try:
        yield Worker(process, queue, data, log)
    finally:
        _stop(process)
        leftovers = _wait_gone(process.pid)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        client = _broker()
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
        client.close()
        assert not leftovers, f"worker processes left after the worker stopped: {leftovers}"


def _send(queue: str, flow: str, count: int) -> dict[int, str]:
    """Send ``square(n)`` for n in range(count); the Celery task id of each."""
    from celery import Celery

    app = Celery("selinon-like-test-sender", broker=BROKER_URL)
    try:
        with app.connection_for_write() as connection:
            return {
                n: app.send_task(
                    TASK, kwargs={"flow_name": flow, "n": n}, queue=queue, connection=connection
                ).id
                for n in range(count)
            }
    finally:
        app.close()


def _wait_for(worker: Worker, what: str, done: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited ({worker.process.returncode}):\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not stored within {DEADLINE} s; worker log:\n{worker.log_tail()}")
        time.sleep(0.2)


def test_prefork_worker_stores_every_result_and_error(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = f"celery-{uuid.uuid4().hex[:8]}"
    ids = _send(worker.queue, flow, 50)
    failing = {n for n in ids if n % 5 == 0}
    assert len(failing) == 10

    monkeypatch.setenv("SELINON_LIKE_DATA", str(worker.data))  # the worker's storage
    pool = StoragePool.from_yaml(EXAMPLE / "storages.yml")
    with pool:
        storage = pool.get_connected_storage(pool.storage_for_task("square"))
        result_keys = {n: (flow, "square", ids[n]) for n in ids if n not in failing}
        found: dict[Any, Any] = {}

        def all_results() -> bool:
            found.update(storage.retrieve_many([k for k in result_keys.values() if k not in found]))
            return len(found) == len(result_keys)

        errors: dict[int, dict[str, Any]] = {}

        def all_errors() -> bool:
            for n in failing - set(errors):
                with contextlib.suppress(ResultNotFound):
                    errors[n] = storage.retrieve_error(flow, "square", ids[n])
            return len(errors) == len(failing)

        _wait_for(worker, "results", all_results)
        _wait_for(worker, "error records", all_errors)
        children = _children(worker.process.pid)

        for n, key in result_keys.items():
            result = found[key]
            assert (result["n"], result["square"]) == (n, n * n)
        for n in failing:
            record = errors[n]
            assert record["exception_type"] == "builtins.ValueError"
            assert record["message"] == f"{n} is a multiple of 5: refused on purpose"
            assert record["node_args"] == {"n": n}
            assert (record["flow_name"], record["task_id"]) == (flow, ids[n])
            assert "refused on purpose" in record["traceback"]
            with pytest.raises(ResultNotFound):
                storage.retrieve(flow, "square", ids[n])
        for n in result_keys:
            with pytest.raises(ResultNotFound):
                storage.retrieve_error(flow, "square", ids[n])
        assert sorted(key for key in storage.iter_keys(flow)) == sorted(result_keys.values())

    # Stored by the prefork children, never the main process (which connected first).
    pids = {result["pid"] for result in found.values()}
    assert worker.process.pid not in pids
    assert len(children) == 2 and pids <= children, (pids, children)
    log = worker.log.read_text(errors="replace")
    assert "INFO/MainProcess] storage Results (storages.filesystem.Filesystem) ok" in log

    _stop(worker.process)
    assert worker.process.returncode == 0, worker.log_tail()
    assert _wait_gone(worker.process.pid) == []
