"""StoragePool: one instance per process, routing, the default pool, fork safety, health."""

from __future__ import annotations

import copy
import io
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from selinon_like import (
    ConfigError,
    DataStorage,
    ResultNotFound,
    StorageHealth,
    StoragePool,
    StorageUnavailable,
    UnknownStorageError,
)
from selinon_like.config import load_with_instances
from storages.memory import InMemoryStorage


class CountingStorage(InMemoryStorage):
    """Counts instances and connects; connecting is slow, to widen any race."""

    instances: ClassVar[int] = 0
    connects: ClassVar[int] = 0

    def __init__(self, echo: bool = False) -> None:
        super().__init__(echo)
        type(self).instances += 1

    def connect(self) -> None:
        time.sleep(0.05)
        type(self).connects += 1
        super().connect()


class ReadOnlyStorage(InMemoryStorage):
    """Answers pings and reads, refuses every store."""

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        raise PermissionError("this storage is read-only")


class BrokenStorage(InMemoryStorage):
    """Cannot connect: the password is wrong."""

    def __init__(self, password: str) -> None:
        super().__init__()
        self.password = password

    def connect(self) -> None:
        raise PermissionError(f"authentication failed for password {self.password}")


def memory_pool(**extra: Any) -> StoragePool:
    return StoragePool.from_dict(
        {
            "storages": [{"name": "Memory", "classname": "memory"}, *extra.get("storages", [])],
            "tasks": [{"name": "Task1", "storage": "Memory"}],
        }
    )


def test_get_connected_storage_returns_the_one_connected_instance() -> None:
    pool = memory_pool()
    storage = pool.get_connected_storage("Memory")
    assert isinstance(storage, InMemoryStorage)
    assert storage.is_connected()
    assert pool.get_connected_storage("Memory") is storage
    assert storage.storage_name == "Memory"
    assert pool.names() == ["Memory"]


def test_unknown_storage_lists_the_known_names() -> None:
    with pytest.raises(UnknownStorageError, match="'Memory'"):
        memory_pool().get_connected_storage("Nope")


def test_racing_first_calls_create_and_connect_exactly_one_instance() -> None:
    CountingStorage.instances = CountingStorage.connects = 0
    pool = StoragePool.from_dict(
        {"storages": [{"name": "C", "import": "test_pool", "classname": "CountingStorage"}]}
    )
    built_at_load = CountingStorage.instances
    got: list[DataStorage] = []
    barrier = threading.Barrier(16)

    def first_call() -> None:
        barrier.wait()
        got.append(pool.get_connected_storage("C"))

    threads = [threading.Thread(target=first_call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(storage) for storage in got}) == 1
    assert CountingStorage.instances == built_at_load == 1
    assert CountingStorage.connects == 1


def test_disconnected_instance_is_reconnected_on_next_get() -> None:
    pool = memory_pool()
    storage = pool.get_connected_storage("Memory")
    storage.disconnect()
    assert pool.get_connected_storage("Memory") is storage
    assert storage.is_connected()


def test_tasks_route_retrieve_store_and_errors() -> None:
    pool = memory_pool()
    record_id = pool.store("flow", "Task1", "id1", {"r": 1})
    assert isinstance(record_id, str)
    assert pool.retrieve("flow", "Task1", "id1") == {"r": 1}
    pool.store_error({"a": 1}, "flow", "Task1", "id2", ValueError("bad"))
    assert pool.retrieve_error("flow", "Task1", "id2")["message"] == "bad"
    pool.delete("flow", "Task1", "id1")
    with pytest.raises(ResultNotFound):
        pool.retrieve("flow", "Task1", "id1")
    with pytest.raises(UnknownStorageError, match="'Unmapped'"):
        pool.store("flow", "Unmapped", "1", 1)


def test_class_level_calls_use_the_configured_default_pool(tmp_path: Path) -> None:
    config = tmp_path / "storages.yml"
    config.write_text(
        "storages:\n  - name: Memory\n    classname: memory\n"
        "tasks:\n  - name: Task1\n    storage: Memory\n"
    )
    pool = StoragePool.configure(str(config))
    StoragePool.store("flow", "Task1", "1", [1, 2])
    assert StoragePool.retrieve("flow", "Task1", "1") == [1, 2]
    assert StoragePool.get_connected_storage("Memory") is pool.get_connected_storage("Memory")
    assert StoragePool.names() == ["Memory"]


def test_default_pool_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "env.yml"
    config.write_text("storages:\n  - name: FromEnv\n    classname: memory\n")
    monkeypatch.setenv("SELINON_LIKE_CONFIG", str(config))
    StoragePool.reset_default()
    assert StoragePool.names() == ["FromEnv"]


def test_no_default_configuration_says_how_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELINON_LIKE_CONFIG", raising=False)
    StoragePool.reset_default()
    with pytest.raises(ConfigError, match="SELINON_LIKE_CONFIG") as info:
        StoragePool.get_connected_storage("Anything")
    assert "StoragePool.configure" in str(info.value)


def test_configure_replaces_and_disconnects_the_previous_default() -> None:
    first = StoragePool.configure({"storages": [{"name": "A", "classname": "memory"}]})
    storage = StoragePool.get_connected_storage("A")
    StoragePool.configure(io.StringIO("storages:\n  - name: B\n    classname: memory\n"))
    assert not storage.is_connected()
    assert StoragePool.names() == ["B"]
    assert first.names() == ["A"]


def test_context_manager_disconnects_everything() -> None:
    with memory_pool() as pool:
        storage = pool.get_connected_storage("Memory")
        assert storage.is_connected()
    assert not storage.is_connected()


def test_check_reports_each_storage_without_secrets() -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {"name": "Memory", "classname": "memory"},
                {
                    "name": "Broken",
                    "import": "test_pool",
                    "classname": "BrokenStorage",
                    "configuration": {"password": "hunter2-secret"},
                    "retry": {"attempts": 1},
                },
            ]
        }
    )
    rows = {row.name: row for row in pool.check()}
    assert rows["Memory"].ok and rows["Memory"].latency is not None
    assert not rows["Broken"].ok and rows["Broken"].error
    assert "authentication failed" in rows["Broken"].error
    assert "hunter2-secret" not in rows["Broken"].error
    assert "hunter2-secret" not in repr(pool.get_connected_storage("Memory"))


def test_check_with_write_round_trips_a_scratch_result(tmp_path: Path) -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {"name": "Memory", "classname": "memory"},
                {"name": "ReadOnly", "import": "test_pool", "classname": "ReadOnlyStorage"},
            ]
        }
    )
    pinged = {row.name: row for row in pool.check()}
    assert pinged["ReadOnly"].ok  # a ping does not write
    written = {row.name: row for row in pool.check(write=True)}
    memory, read_only = written["Memory"], written["ReadOnly"]
    assert memory == StorageHealth(
        "Memory", "storages.memory.InMemoryStorage", True, memory.latency, None
    )
    assert memory.latency is not None and memory.latency_ms == memory.latency * 1000
    assert list(pool.get_connected_storage("Memory").iter_keys()) == []  # scratch deleted
    assert (read_only.ok, read_only.latency, read_only.latency_ms) == (False, None, None)
    assert read_only.adapter == "test_pool.ReadOnlyStorage"
    assert read_only.error is not None and read_only.error.startswith("ReadOnly: store of")
    assert read_only.error.endswith("failed: PermissionError: this storage is read-only")


def test_the_pool_leaves_its_config_and_instances_as_given() -> None:
    CountingStorage.instances = 0
    loaded = load_with_instances(
        {"storages": [{"name": "C", "import": "test_pool", "classname": "CountingStorage"}]}
    )
    config, instances = loaded.config, loaded.instances
    before = {field: copy.copy(value) for field, value in vars(config).items()}
    given = dict(instances)
    first = StoragePool(config, instances)
    assert first.get_connected_storage("C") is given["C"]  # the instance built to validate
    assert vars(config) == before and instances == given
    assert CountingStorage.instances == 1

    # A second pool on the same config builds its own instance, never the first pool's.
    second = StoragePool(config)
    assert second.get_connected_storage("C") is not first.get_connected_storage("C")
    assert CountingStorage.instances == 2
    first.disconnect_all()
    assert vars(config) == before and instances == given


def test_a_pool_starts_with_the_instances_it_is_given() -> None:
    config = memory_pool().config
    given = InMemoryStorage()
    pool = StoragePool(config, {"Memory": given})
    assert pool.get_connected_storage("Memory") is given and given.is_connected()
    with pytest.raises(UnknownStorageError, match=r"\['Nope'\].*'Memory'"):
        StoragePool(config, {"Nope": InMemoryStorage()})
    with pytest.raises(TypeError, match=r"'Memory' is a dict, not a selinon_like\.DataStorage"):
        StoragePool(config, {"Memory": {}})  # type: ignore[dict-item]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_get_their_own_instances(tmp_path: Path) -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path)},
                }
            ]
        }
    )
    parent_storage = pool.get_connected_storage("Files")
    parent_storage.store("parent", "t", "before", 0)
    pids = []
    for child in range(4):
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                storage = pool.get_connected_storage("Files")
                if storage is parent_storage:
                    os._exit(3)
                for i in range(200):
                    storage.store("children", f"child{child}", str(i), {"c": child, "i": i})
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for i in range(200):  # the parent keeps working while the children run
        parent_storage.store("parent", "t", str(i), {"p": i})
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert pool.get_connected_storage("Files") is parent_storage
    assert parent_storage.is_connected()
    children = sum(
        parent_storage.retrieve("children", f"child{c}", str(i)) == {"c": c, "i": i}
        for c in range(4)
        for i in range(200)
    )
    assert children == 800
    assert all(parent_storage.retrieve("parent", "t", str(i)) == {"p": i} for i in range(200))
    assert parent_storage.retrieve("parent", "t", "before") == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_never_disconnects_the_parents_instance() -> None:
    pool = memory_pool()
    parent_storage = pool.get_connected_storage("Memory")
    parent_storage.store("f", "t", "1", "parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child_storage = pool.get_connected_storage("Memory")
            fresh = child_storage is not parent_storage
            try:
                child_storage.retrieve("f", "t", "1")
                empty = False
            except ResultNotFound:
                empty = True
            pool.disconnect_all()
            os.write(write, b"ok" if fresh and empty else b"no")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok"
    assert parent_storage.is_connected()
    assert parent_storage.retrieve("f", "t", "1") == "parent"


# -- what the base class does for every adapter -----------------------------------------------


class FlakyStorage(InMemoryStorage):
    """Fails with a transient error ``failures`` times, then works."""

    def __init__(self, failures: int = 2) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionResetError("connection reset by peer")
        return super().store(flow_name, task_name, task_id, result)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        raise KeyError("a driver bug")


def flaky(failures: int, attempts: int) -> Any:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Flaky",
                    "import": "test_pool",
                    "classname": "FlakyStorage",
                    "configuration": {"failures": failures},
                    "retry": {"attempts": attempts, "backoff": 0.001},
                }
            ]
        }
    )
    return pool.get_connected_storage("Flaky")


def test_transient_errors_are_retried() -> None:
    storage = flaky(failures=2, attempts=3)
    storage.store("f", "t", "1", "ok")
    assert storage.calls == 3


def test_retries_run_out_as_storage_unavailable_with_the_cause() -> None:
    storage = flaky(failures=5, attempts=3)
    with pytest.raises(StorageUnavailable, match="after 3 attempts") as info:
        storage.store("f", "t", "1", "ok")
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert storage.calls == 3


def test_other_driver_errors_are_wrapped_not_retried() -> None:
    from selinon_like import StorageError

    storage = flaky(failures=0, attempts=3)
    with pytest.raises(StorageError) as info:
        storage.retrieve("f", "t", "1")
    assert not isinstance(info.value, StorageUnavailable)
    assert isinstance(info.value.__cause__, KeyError)
    assert "'Flaky'" not in str(info.value) and "Flaky" in str(info.value)


class ConcurrencyProbe(InMemoryStorage):
    """Records how many calls are inside the adapter at once."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.most = 0

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self.inside += 1
        self.most = max(self.most, self.inside)
        time.sleep(0.001)
        self.inside -= 1
        return super().store(flow_name, task_name, task_id, result)


class ThreadSafeProbe(ConcurrencyProbe):
    thread_safe = True


@pytest.mark.parametrize(
    ("cls", "expect_serial"), [(ConcurrencyProbe, True), (ThreadSafeProbe, False)]
)
def test_non_thread_safe_adapters_are_serialised_however_reached(
    cls: type[ConcurrencyProbe], expect_serial: bool
) -> None:
    storage: Any = cls()  # reached directly, not through a pool
    storage.connect()

    def work(worker: int) -> None:
        for i in range(20):
            storage.store("f", str(worker), str(i), i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (storage.most == 1) is expect_serial


class MinimalStorage(DataStorage):
    """Only the five methods of Selinon's documentation."""

    def __init__(self, host: str, port: int = 1) -> None:
        self.host, self.port = host, port
        self.data: dict[Any, Any] = {}
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def is_connected(self) -> bool:
        return self.connected

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            return self.data[flow_name, task_name, task_id]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self.data[flow_name, task_name, task_id] = result
        return task_id


def test_optional_methods_name_the_class_and_method() -> None:
    storage: Any = MinimalStorage(host="h")
    for method, args in [
        ("delete", ("f", "t", "1")),
        ("retrieve_error", ("f", "t", "1")),
        ("store_error", (None, "f", "t", "1", ValueError())),
        ("iter_keys", ()),
    ]:
        with pytest.raises(NotImplementedError, match=rf"MinimalStorage\.{method}\(\)"):
            result = getattr(storage, method)(*args)
            list(result)
    storage.store("f", "t", "1", 1)
    assert storage.ping() is True
    assert storage.retrieve_many([("f", "t", "1"), ("f", "t", "2")]) == {("f", "t", "1"): 1}


def test_constructor_arguments_are_checked_by_name() -> None:
    base = {"name": "Min", "import": "test_pool", "classname": "MinimalStorage"}
    with pytest.raises(ConfigError, match="'host'") as info:
        StoragePool.from_dict({"storages": [base]})
    assert "Min" in str(info.value)
    with pytest.raises(ConfigError, match=r"'hots'.*did you mean 'host'"):
        StoragePool.from_dict({"storages": [{**base, "configuration": {"hots": "x"}}]})


# -- the read cache ------------------------------------------------------------------------------


def cached_pool(tmp_path: Path, ttl: float | None = None) -> StoragePool:
    cache: dict[str, Any] = {"max_size": 2}
    if ttl is not None:
        cache["ttl"] = ttl
    return StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "cache": cache,
                    "configuration": {"path": str(tmp_path)},
                }
            ]
        }
    )


def test_cache_reads_through_refreshes_on_store_and_evicts_on_delete(tmp_path: Path) -> None:
    storage: Any = cached_pool(tmp_path).get_connected_storage("Files")
    storage.store("f", "t", "1", {"v": 1})
    first = storage.retrieve("f", "t", "1")
    first["v"] = "mutated by the caller"
    assert storage.retrieve("f", "t", "1") == {"v": 1}
    assert storage.cache.hits == 2
    storage.store("f", "t", "1", {"v": 2})
    assert storage.retrieve("f", "t", "1") == {"v": 2}
    storage.delete("f", "t", "1")
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "1")


def test_cache_is_bounded_and_expires(tmp_path: Path) -> None:
    storage: Any = cached_pool(tmp_path, ttl=0.05).get_connected_storage("Files")
    for i in range(3):
        storage.store("f", "t", str(i), i)
    assert len(storage.cache) == 2
    time.sleep(0.06)
    misses = storage.cache.misses
    assert storage.retrieve("f", "t", "2") == 2
    assert storage.cache.misses == misses + 1


def test_cache_keys_are_the_full_triple(tmp_path: Path) -> None:
    storage: Any = cached_pool(tmp_path).get_connected_storage("Files")
    storage.store("a:b", "c", "d", "first")
    storage.store("a", "b:c", "d", "second")
    assert storage.retrieve("a:b", "c", "d") == "first"
    assert storage.retrieve("a", "b:c", "d") == "second"
