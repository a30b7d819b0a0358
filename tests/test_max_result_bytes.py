"""``max_result_bytes`` (SPEC §9): a serialized result over a storage's ceiling raises
``ResultTooLarge`` (a ``StorageError``) before any I/O: nothing is stored, the previous result
stays, on a record adapter, a five-method adapter and the built-in ones."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import selinon_like
from selinon_like import ConfigError, DataStorage, ResultTooLarge, StorageError, StoragePool
from selinon_like.keys import Key, pack_key
from selinon_like.records import Kind, RecordStorage

LIMIT = 1_000
BIG = "x" * 2_000  # 2,002 bytes as JSON
FITS = "y" * (LIMIT - 2)  # exactly LIMIT bytes as JSON


class CountingRecords(RecordStorage):
    """A record adapter that counts every call that reaches its service."""

    def __init__(self) -> None:
        self.records: dict[tuple[Kind, Key], bytes] = {}
        self.calls = 0
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def is_connected(self) -> bool:
        return self.connected

    def read(self, kind: Kind, key: Key) -> bytes | None:
        self.calls += 1
        return self.records.get((kind, key))

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        self.calls += 1
        self.records[(kind, key)] = data
        return pack_key(*key)


class CountingFiveMethods(DataStorage):
    """Selinon's five methods, serializing with ``self.serializer`` as Selinon's adapters do."""

    def __init__(self) -> None:
        self.results: dict[Key, bytes] = {}
        self.calls = 0
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def is_connected(self) -> bool:
        return self.connected

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        self.calls += 1
        try:
            data = self.results[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        data = self.serializer.dumps(result)
        self.calls += 1
        self.results[(flow_name, task_name, task_id)] = data
        return pack_key(flow_name, task_name, task_id)


def pool_of(tmp_path: Path, **keys: Any) -> StoragePool:
    entries: list[dict[str, Any]] = [
        {"name": "Records", "import": "test_max_result_bytes", "classname": "CountingRecords"},
        {"name": "Five", "import": "test_max_result_bytes", "classname": "CountingFiveMethods"},
        {"name": "Memory", "classname": "memory"},
        {"name": "Files", "classname": "filesystem", "configuration": {"path": str(tmp_path)}},
    ]
    return StoragePool.from_dict({"storages": [{**entry, **keys} for entry in entries]})


NAMES = ["Records", "Five", "Memory", "Files"]


@pytest.mark.parametrize("name", NAMES)
def test_a_result_over_the_ceiling_is_refused_before_any_io(tmp_path: Path, name: str) -> None:
    pool = pool_of(tmp_path, max_result_bytes=LIMIT)
    storage = pool.get_connected_storage(name)
    storage.store("f", "t", "id", FITS)  # exactly the ceiling is allowed
    calls = getattr(storage, "calls", None)
    with pytest.raises(ResultTooLarge) as info:
        storage.store("f", "t", "id", BIG)
    assert isinstance(info.value, StorageError)
    assert (info.value.size, info.value.limit) == (2_002, LIMIT)
    assert "2,002 bytes" in str(info.value) and "max_result_bytes of 1,000" in str(info.value)
    assert getattr(storage, "calls", None) == calls  # not one call reached the service
    assert storage.retrieve("f", "t", "id") == FITS  # the previous result stays
    pool.disconnect_all()


@pytest.mark.parametrize("name", NAMES)
def test_one_result_over_the_ceiling_in_store_many_stores_nothing(
    tmp_path: Path, name: str
) -> None:
    pool = pool_of(tmp_path, max_result_bytes=LIMIT)
    storage = pool.get_connected_storage(name)
    with pytest.raises(ResultTooLarge):
        storage.store_many([("f", "t", "a", 1), ("f", "t", "b", BIG), ("f", "t", "c", 3)])
    assert storage.retrieve_many([("f", "t", "a"), ("f", "t", "b"), ("f", "t", "c")]) == {}
    pool.disconnect_all()


def test_the_ceiling_is_on_the_serialized_result_before_compression(tmp_path: Path) -> None:
    pool = pool_of(tmp_path, max_result_bytes=LIMIT, compression="gzip")
    storage = pool.get_connected_storage("Memory")
    with pytest.raises(ResultTooLarge):
        storage.store("f", "t", "id", BIG)  # compresses to a few dozen bytes: still refused
    pool.disconnect_all()


def test_without_the_key_there_is_no_ceiling(tmp_path: Path) -> None:
    pool = pool_of(tmp_path)
    for name in NAMES:
        pool.get_connected_storage(name).store("f", "t", "id", "z" * 100_000)
    pool.disconnect_all()


@pytest.mark.parametrize("value", [0, -5, "many", True, 1.5, [1]])
def test_a_bad_value_is_a_located_config_error(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        StoragePool.from_dict(
            {"storages": [{"name": "Memory", "classname": "memory", "max_result_bytes": value}]}
        )
    assert info.value.storage == "Memory" and info.value.key == "max_result_bytes"


def test_set_record_format_checks_the_value() -> None:
    storage = CountingRecords()
    with pytest.raises(ValueError, match="max_result_bytes"):
        storage.set_record_format(max_result_bytes=0)
    storage.set_record_format(max_result_bytes=10)
    assert storage.record_codec.max_result_bytes == 10
    storage.set_record_format(max_result_bytes=None)
    assert storage.record_codec.max_result_bytes is None


def test_result_too_large_is_exported_and_survives_pickling() -> None:
    assert selinon_like.ResultTooLarge is ResultTooLarge
    error = pickle.loads(pickle.dumps(ResultTooLarge(5, 4)))
    assert (error.size, error.limit, str(error)) == (5, 4, str(ResultTooLarge(5, 4)))
