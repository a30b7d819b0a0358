"""Real Selinon 1.4 flows on the drop-in adapters of ``selinon_like.selinon``.

Every flow runs in a subprocess of its own (Selinon's configuration is process-global): the
example ``examples/selinon_flow`` (Sum -> Scale, stored as ``Scaled`` -> Report -> Refuse, which
fails on purpose) with its ``nodes.yml`` pointed at one storage, eagerly on memory, filesystem,
SQLite, PostgreSQL and Redis, then once in a real prefork Celery worker with two children on
the machine's Redis. Results are read back through Selinon's own storage instances (in the
subprocess) and, for the persistent storages, through ``StoragePool.from_selinon`` here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import (
    POSTGRESQL_URL,
    REDIS_URL,
    delete_redis_keys,
    drop_tables,
    require_service,
    sql_probe,
)

from selinon_like import ResultNotFound, StoragePool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "selinon_flow"
FLOW = "arithmetic"
NUMBERS, FACTOR = [4, 5, 6], 7
ARGS = [*map(str, NUMBERS), "--factor", str(FACTOR)]  # the example scripts' arguments
BROKER_URL = os.environ.get("SELINON_LIKE_CELERY_BROKER", "redis://127.0.0.1:6379/5")
EAGER_SECONDS = 30.0  # a subprocess flow takes 1-2 s on an idle machine; this bounds a hang
WORKER_DEADLINE = 60.0


def _env(nodes: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SELINON_FLOW_NODES": str(nodes),
        "SELINON_FLOW_FLOWS": str(EXAMPLE / "flows.yml"),
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
    }


def write_nodes(directory: Path, storage: dict[str, Any], **more: Any) -> Path:
    """The example's nodes.yml with its one storage replaced by ``storage`` (named Results)."""
    nodes = yaml.safe_load((EXAMPLE / "nodes.yml").read_text())
    nodes["storages"] = [{"name": "Results", **storage}]
    nodes.update(more)
    path = directory / "nodes.yml"
    path.write_text(yaml.safe_dump(nodes, sort_keys=False))
    return path


def run_eager(nodes: Path, cwd: Path) -> dict[str, Any]:
    """Run the example flow eagerly in a subprocess; what it stored, as run_eager.py reports."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_eager.py"), *ARGS, "--json"],
        cwd=cwd,
        env=_env(nodes),
        capture_output=True,
        text=True,
        timeout=EAGER_SECONDS,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def by_task(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        flow, task, _task_id = item["key"]
        assert flow == FLOW
        assert task not in found, f"{task} stored twice"
        found[task] = item
    return found


def check_flow(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's results and error records are what the example's tasks compute; returns them
    by task name."""
    results = by_task(report["results"])
    errors = by_task(report["errors"])
    total = sum(NUMBERS)
    # Scale is stored under its storage_task_name; nothing is stored under "Scale" itself.
    assert sorted(results) == ["Report", "Scaled", "Sum"]
    assert results["Sum"]["result"]["sum"] == total
    assert results["Scaled"]["result"]["scaled"] == total * FACTOR
    # Report got Scale's result from Selinon's StoragePool.retrieve(flow, "Scale", id): the
    # drop-in found it under "Scaled".
    assert results["Report"]["result"]["report"] == (
        f"the sum of {NUMBERS} times {FACTOR} is {total * FACTOR}"
    )
    assert sorted(errors) == ["Refuse"]
    record = errors["Refuse"]["record"]
    assert record["exception_type"] == "builtins.ValueError"
    assert record["message"] == f"refused on purpose after {NUMBERS}"
    assert record["node_args"] == {"numbers": NUMBERS, "factor": FACTOR}
    assert record["task_id"] == errors["Refuse"]["key"][2]
    assert 'raise ValueError(f"refused on purpose' in record["traceback"]
    return results, errors


def check_through_pool(nodes: Path, results: dict[str, Any], errors: dict[str, Any]) -> None:
    """What the flow stored, read here with ``StoragePool.from_selinon`` by task name."""
    with StoragePool.from_selinon(nodes) as pool:
        for task in ("Sum", "Report"):
            _flow, _task, task_id = results[task]["key"]
            assert pool.retrieve(FLOW, task, task_id) == results[task]["result"]
        _flow, _task, scale_id = results["Scaled"]["key"]
        # by the task's name (the pool applies storage_task_name) and by the alias
        assert pool.retrieve(FLOW, "Scale", scale_id) == results["Scaled"]["result"]
        assert pool.retrieve(FLOW, "Scaled", scale_id) == results["Scaled"]["result"]
        _flow, _task, refuse_id = errors["Refuse"]["key"]
        assert pool.retrieve_error(FLOW, "Refuse", refuse_id) == errors["Refuse"]["record"]
        with pytest.raises(ResultNotFound):
            pool.retrieve(FLOW, "Refuse", refuse_id)
        keys: set[tuple[str, ...]] = set()
        for name in pool.names():
            keys.update(pool.get_connected_storage(name).iter_keys(FLOW))
        assert keys == {tuple(item["key"]) for item in results.values()}


# -- storages ----------------------------------------------------------------------------------


@dataclass
class Backend:
    storage: dict[str, Any]  # the nodes.yml storage entry (without its name)
    persistent: bool
    env: dict[str, str]


def _redis_client(url: str = REDIS_URL) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _selinon_import(module: str, classname: str) -> dict[str, str]:
    return {"import": module, "classname": classname}


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgresql", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    drop_in = "selinon_like.selinon"
    if kind == "memory":
        yield Backend(
            {**_selinon_import(drop_in, "InMemoryStorage"), "configuration": {"echo": False}},
            False,
            {},
        )
    elif kind == "filesystem":
        # Selinon's {NAME} expansion from the environment, as its own adapters did it
        yield Backend(
            {
                **_selinon_import(drop_in, "Filesystem"),
                "configuration": {"path": "{SELINON_TEST_DATA}/results"},
            },
            True,
            {"SELINON_TEST_DATA": str(tmp_path / "data")},
        )
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
        yield Backend(
            {**_selinon_import(drop_in, "SqlStorage"), "configuration": {"connection_string": url}},
            True,
            {},
        )
    elif kind == "postgresql":
        require_service("PostgreSQL", sql_probe(POSTGRESQL_URL))
        table = f"sl_selinon_{uuid.uuid4().hex[:10]}"
        try:
            yield Backend(
                {
                    **_selinon_import(drop_in, "PostgreSQL"),
                    "configuration": {
                        "connection_string": POSTGRESQL_URL,
                        "encoding": "utf-8",
                        "table_name": table,
                    },
                },
                True,
                {},
            )
        finally:
            drop_tables(POSTGRESQL_URL, table)
    else:
        require_service("Redis", lambda: _redis_client().ping())
        parts = urlsplit(REDIS_URL)
        prefix = f"test-selinon-{uuid.uuid4().hex[:10]}:"
        try:
            yield Backend(
                {
                    **_selinon_import(drop_in, "Redis"),
                    "configuration": {
                        "host": parts.hostname or "localhost",
                        "port": parts.port or 6379,
                        "db": int(parts.path.strip("/") or 0),
                        "charset": "utf-8",
                        "key_prefix": prefix,
                    },
                },
                True,
                {},
            )
        finally:
            delete_redis_keys(prefix)


def test_flow_runs_on_the_drop_in_adapters(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)  # for the subprocess and for from_selinon here
    nodes = write_nodes(tmp_path, backend.storage)
    report = run_eager(nodes, tmp_path)
    results, errors = check_flow(report)
    # eager: every task ran in the subprocess itself
    assert len({item["result"]["pid"] for item in results.values()}) == 1
    if backend.persistent:
        check_through_pool(nodes, results, errors)


SELINON_DB = 11  # the Redis database of the test with Selinon's keys only (no key_prefix)


def _clear_selinon_db() -> None:
    import redis

    parts = urlsplit(REDIS_URL)
    client = redis.Redis(host=parts.hostname or "localhost", port=parts.port or 6379, db=SELINON_DB)
    try:
        doomed = list(client.scan_iter(match=f"selinon:*{FLOW}*"))
        if doomed:
            client.delete(*doomed)
    finally:
        client.close()


def test_a_nodes_file_of_selinons_adapters_runs_after_changing_its_import_lines(
    tmp_path: Path,
) -> None:
    """A nodes.yml written for Selinon's own adapters (Selinon keys only) runs once its
    ``import:`` lines name selinon_like.selinon; both files read back through from_selinon."""
    require_service("Redis", lambda: _redis_client().ping())
    parts = urlsplit(REDIS_URL)
    nodes = yaml.safe_load((EXAMPLE / "nodes.yml").read_text())
    for task in nodes["tasks"]:
        task["storage"] = "Files" if task["name"] in ("Sum", "Refuse") else "Cache"
    nodes["storages"] = [
        {
            "name": "Files",
            "import": "selinon.storages.filesystem",
            "classname": "Filesystem",
            "configuration": {"path": str(tmp_path / "files")},
        },
        {
            "name": "Cache",
            "import": "selinon.storages.redis",
            "classname": "Redis",
            "configuration": {
                "host": parts.hostname or "localhost",
                "port": parts.port or 6379,
                "db": SELINON_DB,
                "charset": "utf-8",
            },
        },
    ]
    original = tmp_path / "selinon-nodes.yml"
    original.write_text(yaml.safe_dump(nodes, sort_keys=False))
    _clear_selinon_db()  # Selinon's keys carry no prefix of this test: the database is its own
    migrated_text = (
        original.read_text()
        .replace("import: selinon.storages.filesystem", "import: selinon_like.selinon")
        .replace("import: selinon.storages.redis", "import: selinon_like.selinon")
    )
    changed = [
        (old, new)
        for old, new in zip(
            original.read_text().splitlines(), migrated_text.splitlines(), strict=True
        )
        if old != new
    ]
    assert [new.strip() for _old, new in changed] == ["import: selinon_like.selinon"] * 2
    migrated = tmp_path / "nodes.yml"
    migrated.write_text(migrated_text)
    try:
        results, errors = check_flow(run_eager(migrated, tmp_path))
        assert {item["storage"] for item in results.values()} == {"Files", "Cache"}
        for path in (original, migrated):
            check_through_pool(path, results, errors)
    finally:
        _clear_selinon_db()


# -- a real prefork worker ---------------------------------------------------------------------


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


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry))
    return alive


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL to the whole group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait(what: str, done: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WORKER_DEADLINE
    while not done():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}):\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not done within {WORKER_DEADLINE} s; worker log:\n{tail}")
        time.sleep(0.2)


@pytest.mark.celery
@pytest.mark.redis
def test_flow_in_a_prefork_worker_with_two_children(tmp_path: Path) -> None:
    require_service("Redis (Celery broker)", lambda: _redis_client().ping())
    queue = f"selinon-like-selinon-{uuid.uuid4().hex}"
    prefix = f"test-selinon-worker-{uuid.uuid4().hex[:10]}:"
    parts = urlsplit(REDIS_URL)
    nodes = write_nodes(
        tmp_path,
        {
            "import": "selinon_like.selinon",
            "classname": "Redis",
            "configuration": {
                "host": parts.hostname or "localhost",
                "port": parts.port or 6379,
                "db": int(parts.path.strip("/") or 0),
                "key_prefix": prefix,
            },
        },
        **{"global": {"default_task_queue": queue, "default_dispatcher_queue": queue}},
    )
    env = {**_env(nodes), "SELINON_LIKE_CELERY_BROKER": BROKER_URL}
    log = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "worker_app", "worker",
        "--pool=prefork", "--concurrency=2", "--loglevel=INFO", f"--queues={queue}",
        f"--hostname={queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            command,
            cwd=EXAMPLE,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nothing of it outlives the test
        )
    task_ids: list[str] = []  # Celery keeps their states in the result backend
    try:
        sent = subprocess.run(
            [sys.executable, "worker_app.py", *ARGS],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=EAGER_SECONDS,
        )
        assert sent.returncode == 0, sent.stderr
        dispatcher_id = sent.stdout.split("dispatcher ")[-1].strip()
        task_ids.append(dispatcher_id)

        from celery import Celery

        client = Celery("selinon-like-test-reader", broker=BROKER_URL, backend=BROKER_URL)
        try:
            # The dispatcher ends in FAILURE once Refuse failed: the whole flow ran.
            _wait(
                "the flow",
                lambda: client.AsyncResult(dispatcher_id).state == "FAILURE",
                worker,
                log,
            )
        finally:
            client.close()
        children = _children(worker.pid)

        with StoragePool.from_selinon(nodes) as pool:
            storage = pool.get_connected_storage("Results")
            keys = sorted(storage.iter_keys(FLOW))
            error_keys = sorted(storage.iter_error_keys(FLOW))
            report = {
                "results": [{"key": list(k), "result": storage.retrieve(*k)} for k in keys],
                "errors": [
                    {"key": list(k), "record": storage.retrieve_error(*k)} for k in error_keys
                ],
            }
            task_ids.extend(key[2] for key in keys + error_keys)
            results, _errors = check_flow(report)
            _flow, _task, scale_id = results["Scaled"]["key"]
            assert pool.retrieve(FLOW, "Scale", scale_id) == results["Scaled"]["result"]

        # Stored by the prefork children, never by the main process (which connected and
        # pinged the storage before forking them).
        pids = {item["result"]["pid"] for item in results.values()}
        assert worker.pid not in pids
        assert len(children) == 2 and pids <= children, (pids, children)
        text = log.read_text(errors="replace")
        assert f"connected in the main process {worker.pid}" in text
        assert "refused on purpose" in text

        _stop(worker)
        assert worker.returncode == 0, text[-3000:]
    finally:
        _stop(worker)
        leftovers = _group_alive(worker.pid)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        delete_redis_keys(prefix)
        broker = _redis_client(BROKER_URL)
        try:
            doomed = list(broker.scan_iter(match=f"*{queue}*"))
            doomed += [f"celery-task-meta-{task_id}" for task_id in task_ids if task_id]
            if doomed:
                broker.delete(*doomed)
        finally:
            broker.close()
        assert not leftovers, f"worker processes left after the worker stopped: {leftovers}"
