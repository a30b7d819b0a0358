"""AsyncStoragePool (SPEC section 10): the blocking pool's YAML, routing and errors; one
instance per storage per event loop per process (threads, later ``asyncio.run`` calls and
forked children get their own; racing first calls connect once); ``async with``; stats,
purging, error records; ``ttl`` and ``compression`` from the YAML; nothing left unclosed."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import warnings
from pathlib import Path
from typing import ClassVar

import pytest

from selinon_like import ConfigError, ResultNotFound, StoragePool, UnknownStorageError
from selinon_like.aio import AsyncDataStorage, AsyncStoragePool, ThreadedStorage, build_async
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry, expiry_of
from selinon_like.records import RESULTS
from selinon_like.serializers import JSON
from selinon_like.testing import MovableClock
from selinon_like.testing.aio import LoopThread, no_unclosed_resources
from storages.aio.memory import AsyncInMemoryStorage
from storages.filesystem import Filesystem
from storages.memory import InMemoryStorage

# -- adapters ------------------------------------------------------------------------------------


class CountingAsync(AsyncInMemoryStorage):
    """Counts instances and connects; connecting takes a while, to widen any race."""

    instances: ClassVar[int] = 0
    connects: ClassVar[int] = 0

    def __init__(self, echo: bool = False) -> None:
        super().__init__(echo)
        type(self).instances += 1

    async def connect(self) -> None:
        await asyncio.sleep(0.05)
        type(self).connects += 1
        await super().connect()


class Counting(InMemoryStorage):
    async_adapter = "test_aio_pool:CountingAsync"


class LoggedAsync(AsyncInMemoryStorage):
    """Appends ``<pid> <id> <event>`` to the file ``log`` on each connect and disconnect."""

    def __init__(self, log: str) -> None:
        super().__init__()
        self.log = log

    def _note(self, event: str) -> None:
        with open(self.log, "a") as file:
            file.write(f"{os.getpid()} {id(self)} {event}\n")

    async def connect(self) -> None:
        self._note("connect")
        await super().connect()

    async def disconnect(self) -> None:
        self._note("disconnect")
        await super().disconnect()


class Logged(InMemoryStorage):
    async_adapter = "test_aio_pool:LoggedAsync"

    def __init__(self, log: str) -> None:
        super().__init__()


class NoOwnAsyncForm(InMemoryStorage):
    """Inherits InMemoryStorage's async_adapter, which names another class's async form."""


class NamesABlockingClass(InMemoryStorage):
    async_adapter = "storages.memory:InMemoryStorage"


MEMORY = {"name": "Memory", "classname": "memory"}
YAML = """\
storages:
  - name: Memory
    classname: memory
  - name: Files
    classname: filesystem
    configuration:
      path: {path}
tasks:
  - name: Task1
    storage: Memory
  - name: Task2
    storage: Files
"""


def test_from_yaml_reads_the_blocking_pools_file_and_routes_tasks(tmp_path: Path) -> None:
    config = tmp_path / "storages.yml"
    config.write_text(YAML.format(path=tmp_path / "files"))
    blocking = StoragePool.from_yaml(config)
    pool = AsyncStoragePool.from_yaml(config)
    assert pool.names() == blocking.names() == ["Memory", "Files"]
    assert pool.storage_for_task("Task2") == blocking.storage_for_task("Task2") == "Files"

    async def main() -> None:
        async with pool:
            memory = await pool.get_connected_storage("Memory")
            files = await pool.get_connected_storage("Files")
            assert isinstance(memory, AsyncInMemoryStorage) and memory.storage_name == "Memory"
            assert isinstance(files, ThreadedStorage) and isinstance(files.storage, Filesystem)
            assert files.storage_name == "Files"
            assert await pool.store("flow", "Task1", "1", {"r": 1})
            await pool.store("flow", "Task2", "1", {"r": 2})
            assert await memory.retrieve("flow", "Task1", "1") == {"r": 1}
            assert await pool.retrieve("flow", "Task2", "1") == {"r": 2}
            await pool.delete("flow", "Task1", "1")
            with pytest.raises(ResultNotFound):
                await pool.retrieve("flow", "Task1", "1")

    asyncio.run(main())
    # The files were written where the blocking pool reads them: same adapter, same layout.
    assert blocking.retrieve("flow", "Task2", "1") == {"r": 2}
    blocking.disconnect_all()


def test_from_a_stream_and_from_dict() -> None:
    text = "storages:\n  - name: Memory\n    classname: memory\n"
    mapping = {"storages": [MEMORY], "tasks": [{"name": "T", "storage": "Memory"}]}
    assert AsyncStoragePool.from_yaml(io.StringIO(text)).names() == ["Memory"]
    pool = AsyncStoragePool.from_dict(mapping)
    assert mapping == {"storages": [MEMORY], "tasks": [{"name": "T", "storage": "Memory"}]}
    assert pool.storage_for_task("T") == "Memory"


def test_task_names_store_a_task_under_another_name() -> None:
    routed = {"storages": [MEMORY], "tasks": [{"name": "Task2", "storage": "Memory"}]}
    pool = AsyncStoragePool(AsyncStoragePool.from_dict(routed).config, {"Task2": "Task1"})
    assert pool.storage_task_name("Task2") == "Task1"

    async def main() -> None:
        async with pool:
            await pool.store("flow", "Task2", "1", "aliased")
            storage = await pool.get_connected_storage("Memory")
            assert await storage.retrieve("flow", "Task1", "1") == "aliased"
            assert await pool.retrieve("flow", "Task2", "1") == "aliased"
            assert await pool.retrieve("flow", "Task1", "1") == "aliased"  # routed too

    asyncio.run(main())


def test_errors_are_the_blocking_pools() -> None:
    pool = AsyncStoragePool.from_dict(
        {"storages": [MEMORY], "tasks": [{"name": "T", "storage": "Memory"}]}
    )
    blocking = StoragePool.from_dict(
        {"storages": [MEMORY], "tasks": [{"name": "T", "storage": "Memory"}]}
    )

    async def main() -> None:
        with pytest.raises(UnknownStorageError, match="'Memory'") as unknown:
            await pool.get_connected_storage("Nope")
        with pytest.raises(UnknownStorageError) as sync_unknown:
            blocking.get_connected_storage("Nope")
        assert str(unknown.value) == str(sync_unknown.value)
        with pytest.raises(UnknownStorageError, match="'Unmapped'"):
            await pool.store("flow", "Unmapped", "1", 1)
        await pool.disconnect_all()

    asyncio.run(main())
    bad = {"storages": [{"name": "Memory", "classname": "memory", "configuration": {"nope": 1}}]}
    with pytest.raises(ConfigError) as sync_error:
        StoragePool.from_dict(bad)
    with pytest.raises(ConfigError) as async_error:
        AsyncStoragePool.from_dict(bad)
    assert str(async_error.value) == str(sync_error.value)


def test_an_async_adapter_that_is_not_one_is_a_config_error() -> None:
    spec = {"name": "Bad", "import": "test_aio_pool", "classname": "NamesABlockingClass"}
    pool = AsyncStoragePool.from_dict({"storages": [spec]})
    with pytest.raises(ConfigError, match=r"not a selinon_like\.aio\.AsyncDataStorage"):
        asyncio.run(pool.get_connected_storage("Bad"))


def test_async_adapter_is_read_from_the_class_itself() -> None:
    inherited = StoragePool.from_dict(
        {"storages": [{"name": "M", "import": "test_aio_pool", "classname": "NoOwnAsyncForm"}]}
    ).config.storages["M"]
    built = build_async(inherited)
    assert isinstance(built, ThreadedStorage) and isinstance(built.storage, NoOwnAsyncForm)
    native = build_async(StoragePool.from_dict({"storages": [MEMORY]}).config.storages["Memory"])
    assert type(native) is AsyncInMemoryStorage and native.storage_name == "Memory"


# -- one instance per storage per event loop per process -----------------------------------------


def counting_pool() -> AsyncStoragePool:
    CountingAsync.instances = CountingAsync.connects = 0
    spec = {"name": "C", "import": "test_aio_pool", "classname": "Counting"}
    return AsyncStoragePool.from_dict({"storages": [spec]})


def test_racing_first_calls_on_one_loop_connect_one_instance() -> None:
    pool = counting_pool()

    async def main() -> list[AsyncDataStorage]:
        async with pool:
            got = await asyncio.gather(*(pool.get_connected_storage("C") for _ in range(16)))
            assert await pool.get_connected_storage("C") is got[0]
            return got

    got = asyncio.run(main())
    assert len({id(storage) for storage in got}) == 1
    assert CountingAsync.instances == 1 and CountingAsync.connects == 1
    assert not got[0].is_connected()  # async with pool disconnected it


def test_each_loop_and_each_asyncio_run_get_their_own_instance() -> None:
    pool = counting_pool()

    async def main() -> AsyncDataStorage:
        async with pool:
            storage = await pool.get_connected_storage("C")
            await storage.store("f", "t", "1", threading.get_ident())
            return storage

    first, second = asyncio.run(main()), asyncio.run(main())
    assert first is not second
    got: list[AsyncDataStorage] = []
    threads = [threading.Thread(target=lambda: got.append(asyncio.run(main()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(storage) for storage in [first, second, *got]}) == 4
    assert CountingAsync.instances == CountingAsync.connects == 4


def test_a_loop_keeps_its_instance_while_another_loop_uses_its_own() -> None:
    pool = counting_pool()
    other = LoopThread()
    try:
        theirs = other.run(pool.get_connected_storage("C"))
        other.run(theirs.store("f", "t", "1", "theirs"))

        async def main() -> None:
            async with pool:
                mine = await pool.get_connected_storage("C")
                assert mine is not theirs
                with pytest.raises(ResultNotFound):  # each loop's memory is its own
                    await mine.retrieve("f", "t", "1")

        asyncio.run(main())
        assert theirs.is_connected()  # the other loop's instance was left alone
        assert other.run(pool.get_connected_storage("C")) is theirs
        other.run(pool.disconnect_all())
        assert not theirs.is_connected()
    finally:
        other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_builds_its_own_and_never_closes_the_parents(tmp_path: Path) -> None:
    log = tmp_path / "log"
    spec = {
        "name": "L",
        "import": "test_aio_pool",
        "classname": "Logged",
        "configuration": {"log": str(log)},
    }
    pool = AsyncStoragePool.from_dict({"storages": [spec]})
    parent_loop = LoopThread()  # the parent's instance stays connected on a running loop
    try:
        parent = parent_loop.run(pool.get_connected_storage("L"))
        parent_loop.run(parent.store("f", "t", "1", "parent"))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            outcome = b"no"
            try:

                async def child() -> bool:
                    async with pool:
                        own = await pool.get_connected_storage("L")
                        try:
                            await own.retrieve("f", "t", "1")
                            empty = False
                        except ResultNotFound:
                            empty = True
                        await own.store("f", "t", "1", "child")
                        return id(own) != id(parent) and empty

                outcome = b"ok" if asyncio.run(child()) else b"no"
            finally:
                os.write(write, outcome)
                os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with os.fdopen(read, "rb") as pipe:
            assert pipe.read() == b"ok"
        assert parent.is_connected()
        assert parent_loop.run(parent.retrieve("f", "t", "1")) == "parent"
        events = [line.split() for line in log.read_text().splitlines()]
        assert [str(os.getpid()), str(id(parent)), "connect"] in events
        assert [str(pid), str(id(parent)), "disconnect"] not in events  # never the parent's
        child_events = [event for p, _id, event in events if p == str(pid)]
        assert child_events == ["connect", "disconnect"]
        assert parent_loop.run(pool.get_connected_storage("L")) is parent
        parent_loop.run(pool.disconnect_all())
    finally:
        parent_loop.close()


# -- operating ---------------------------------------------------------------------------------


def test_error_records_stats_and_purge_through_the_pool(tmp_path: Path) -> None:
    pool = AsyncStoragePool.from_dict(
        {
            "storages": [
                {**MEMORY, "ttl": {"results": 1, "errors": 1}},
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path)},
                },
            ],
            "tasks": [
                {"name": "Task1", "storage": "Memory"},
                {"name": "Task2", "storage": "Files"},
            ],
        }
    )
    clock = MovableClock()

    async def main() -> None:
        async with pool:
            memory = await pool.get_connected_storage("Memory")
            memory.set_record_format(clock=clock)
            await pool.store_error({"a": 1}, "flow", "Task1", "1", ValueError("bad"))
            record = await pool.retrieve_error("flow", "Task1", "1")
            assert record["message"] == "bad" and record["task_name"] == "Task1"
            await pool.store("flow", "Task1", "2", 2)
            await pool.store("flow", "Task2", "1", 1)
            with pytest.raises(ResultNotFound):
                await pool.retrieve("flow", "Task1", "nope")
            stats = pool.stats()
            assert set(stats) == {"Memory", "Files"}
            memory_ops = stats["Memory"]["operations"]
            assert memory_ops["store"]["count"] == 1 and memory_ops["store_error"]["count"] == 1
            retrieve = memory_ops["retrieve"]
            assert (retrieve["count"], retrieve["errors"]) == (1, 0)  # not found is no error
            assert stats["Files"]["operations"]["store"]["count"] == 1
            clock.advance(2)
            seen: list[tuple[str, int]] = []
            found = await pool.purge_expired(dry_run=True)
            assert found["Memory"] == 2
            removed = await pool.purge_expired(progress=lambda name, n: seen.append((name, n)))
            assert removed["Memory"] == 2 and sum(n for name, n in seen if name == "Memory") == 2
            assert await pool.purge_expired("Memory") == {"Memory": 0}
            assert await pool.retrieve("flow", "Task2", "1") == 1

    asyncio.run(main())


def test_ttl_and_compression_from_the_yaml_are_honoured() -> None:
    pool = AsyncStoragePool.from_dict(
        {
            "storages": [
                {
                    **MEMORY,
                    "ttl": {"results": 60},
                    "compression": {"codec": "gzip", "threshold": 100},
                }
            ],
            "tasks": [{"name": "Task1", "storage": "Memory"}],
        }
    )
    big = {"rows": [{"id": n, "status": "done"} for n in range(500)]}
    clock = MovableClock()

    async def main() -> None:
        async with pool:
            storage = await pool.get_connected_storage("Memory")
            assert isinstance(storage, AsyncInMemoryStorage)
            assert storage.record_codec.ttl == Expiry(results=60)
            assert storage.record_codec.compression == Compression("gzip", threshold=100)
            storage.set_record_format(clock=clock)
            await pool.store("flow", "Task1", "big", big)
            stored = await storage.read(RESULTS, ("flow", "Task1", "big"))
            assert stored is not None and len(stored) < len(JSON.dumps(big)) // 3
            assert expiry_of(stored) == pytest.approx(clock.now + 60)
            assert await pool.retrieve("flow", "Task1", "big") == big
            clock.advance(61)
            with pytest.raises(ResultNotFound):
                await pool.retrieve("flow", "Task1", "big")

    asyncio.run(main())


def test_records_of_the_blocking_memory_adapter_read_back_through_the_async_one() -> None:
    blocking, native = InMemoryStorage(), AsyncInMemoryStorage()
    for storage in (blocking, native):
        storage.set_record_format(
            ttl=Expiry(results=60), compression=Compression("gzip", threshold=0)
        )
    blocking.connect()
    blocking.store("flow", "t", "1", {"from": "blocking"})
    blocking.store_error(None, "flow", "t", "1", ValueError("boom"))

    async def main() -> None:
        async with native:
            native._records[RESULTS].update(blocking._records[RESULTS])
            native._records["errors"].update(blocking._records["errors"])
            assert await native.retrieve("flow", "t", "1") == {"from": "blocking"}
            assert (await native.retrieve_error("flow", "t", "1"))["message"] == "boom"
            await native.store("flow", "t", "2", ["from", "async"])
            blocking._records[RESULTS].update(native._records[RESULTS])

    asyncio.run(main())
    assert blocking.retrieve("flow", "t", "2") == ["from", "async"]


def test_nothing_is_left_unclosed(tmp_path: Path) -> None:
    pool = AsyncStoragePool.from_dict(
        {
            "storages": [
                MEMORY,
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path)},
                },
                {
                    "name": "Lite",
                    "classname": "sqlite",
                    "configuration": {"path": str(tmp_path / "db")},
                },
            ],
            "tasks": [
                {"name": "A", "storage": "Memory"},
                {"name": "B", "storage": "Files"},
                {"name": "C", "storage": "Lite"},
            ],
        }
    )

    async def main() -> None:
        async with pool:
            for task in ("A", "B", "C"):
                await asyncio.gather(*(pool.store("f", task, str(i), i) for i in range(20)))
                assert await pool.retrieve("f", task, "7") == 7
            lite = await pool.get_connected_storage("Lite")
            assert len([key async for key in lite.iter_keys("f")]) == 20
            instances = [await pool.get_connected_storage(name) for name in pool.names()]
        assert not any(instance.is_connected() for instance in instances)

    with no_unclosed_resources(), warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
