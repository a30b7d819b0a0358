"""Issue 16 in the core: the record header, compression, ttl, purge, the read cache, five-method
adapters, the YAML keys and the pool (the services' own expiry: test_expiry_services.py)."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from selinon_like import StoragePool
from selinon_like.cache import ResultCache
from selinon_like.compression import CODEC_IDS, Compression, decompress
from selinon_like.envelope import (
    EXPIRY_OFFSET,
    MAGIC,
    NEVER,
    CorruptRecord,
    Expiry,
    RecordCodec,
    expiry_bytes,
    expiry_of,
    has_header,
    header_length,
)
from selinon_like.errors import ConfigError, ResultNotFound, SerializationError, StorageError
from selinon_like.keys import Key
from selinon_like.records import ERRORS, RESULTS
from selinon_like.serializers import JSON, PICKLE, get_serializer
from selinon_like.storage import DataStorage
from selinon_like.testing import MovableClock
from storages.filesystem import Filesystem
from storages.memory import InMemoryStorage

BIG = {"rows": [{"id": n, "status": "done", "tags": ["x", "y"]} for n in range(2000)]}


def memory(**format: Any) -> InMemoryStorage:
    storage = InMemoryStorage()
    storage.storage_name = "Mem"
    if format:
        storage.set_record_format(**format)
    storage.connect()
    return storage


# -- the header --------------------------------------------------------------------------------


def test_a_default_record_is_the_first_releases_bytes() -> None:
    storage = memory()
    storage.store("f", "t", "i", {"v": 1})
    assert storage.read(RESULTS, ("f", "t", "i")) == b'{"v":1}'


def test_the_header_layout_is_as_documented() -> None:
    clock = MovableClock()
    codec = RecordCodec(ttl=Expiry(results=10), clock=clock)
    data = codec.dumps([1, 2])
    assert data[:3] == MAGIC and data[3] == 1 and data[4] == 0  # version 1, no codec
    name_length = data[5]
    (expires,) = struct.unpack_from(">Q", data, EXPIRY_OFFSET)
    assert expires == int((clock.now + 10) * 1000) or expires == int((clock.now + 10) * 1000) + 1
    assert data[14 : 14 + name_length] == b"json"
    (crc,) = struct.unpack_from(">I", data, 14 + name_length)
    assert crc == zlib.crc32(data[: 14 + name_length])
    assert data[header_length(data) :] == b"[1,2]"
    assert expiry_of(data) == pytest.approx(clock.now + 10, abs=0.002)
    assert expiry_bytes(expires / 1000) == data[EXPIRY_OFFSET : EXPIRY_OFFSET + 8]


def test_a_header_is_never_a_first_release_payload() -> None:
    # JSON is UTF-8, where 0xFF never occurs; pickles start with 0x80 or a printable opcode.
    for value in [None, 0, -1, "\xff", "ÿSL", [{"ÿ": "x"}], 1.5, True]:
        assert not has_header(JSON.dumps(value))
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert not has_header(pickle.dumps(value, protocol=protocol))
    assert MAGIC[0] == 0xFF
    with pytest.raises(UnicodeDecodeError):
        MAGIC.decode("utf-8")


def test_a_first_release_record_reads_whatever_the_configuration_says_now() -> None:
    storage = memory(ttl=Expiry(results=60), compression=Compression("gzip", threshold=0))
    storage.write(RESULTS, ("f", "t", "old"), b'{"written": "by the first release"}')
    assert storage.retrieve("f", "t", "old") == {"written": "by the first release"}
    storage.serializer = PICKLE  # a first-release JSON record still reads (JSON, no code run)
    assert storage.retrieve("f", "t", "old") == {"written": "by the first release"}
    storage.write(RESULTS, ("f", "t", "pickled"), pickle.dumps({"a", "b"}))
    assert storage.retrieve("f", "t", "pickled") == {"a", "b"}  # first-release pickle storage


def test_a_json_storage_never_loads_a_pickle_or_imports_what_a_header_names() -> None:
    storage = memory()
    writer = memory()
    writer.serializer = PICKLE
    writer.store("f", "t", "p", {"x"})
    storage.write(RESULTS, ("f", "t", "p"), writer.read(RESULTS, ("f", "t", "p")) or b"")
    with pytest.raises(SerializationError) as info:
        storage.retrieve("f", "t", "p")
    message = str(info.value)
    assert "'pickle'" in message and "serializer: pickle" in message and "'p'" in message
    custom = memory()
    custom.serializer = get_serializer("marshal")
    custom.store("f", "t", "m", [1])
    storage.write(RESULTS, ("f", "t", "m"), custom.read(RESULTS, ("f", "t", "m")) or b"")
    with pytest.raises(SerializationError, match="'marshal'"):
        storage.retrieve("f", "t", "m")
    custom.serializer = get_serializer("marshal")
    assert custom.retrieve("f", "t", "m") == [1]


def test_a_corrupted_header_names_the_storage_and_the_key() -> None:
    storage = memory(ttl=Expiry(results=60, errors=60))
    storage.store("f", "t", "id", {"v": 1})
    storage.store_error(None, "f", "t", "id", ValueError("boom"))
    for kind in (RESULTS, ERRORS):
        data = storage.read(kind, ("f", "t", "id"))
        assert data is not None
        storage.write(kind, ("f", "t", "id"), data[:9] + bytes([data[9] ^ 1]) + data[10:])
    with pytest.raises(StorageError) as info:
        storage.retrieve("f", "t", "id")
    assert isinstance(info.value, CorruptRecord) and not isinstance(info.value, ResultNotFound)
    assert str(info.value).startswith("Mem: the result stored for flow 'f', task 't', task id 'id'")
    assert "checksum" in str(info.value)
    with pytest.raises(StorageError, match="Mem: the error record stored for flow 'f'"):
        storage.retrieve_error("f", "t", "id")
    with pytest.raises(StorageError, match="task id 'id'"):
        storage.retrieve_many([("f", "t", "id")])


def test_a_damaged_compressed_payload_names_its_codec() -> None:
    storage = memory(compression=Compression("gzip", threshold=0))
    storage.store("f", "t", "id", BIG)
    data = storage.read(RESULTS, ("f", "t", "id"))
    assert data is not None
    storage.write(RESULTS, ("f", "t", "id"), data[:-40] + b"\0" * 40)
    with pytest.raises(StorageError, match=r"task id 'id' is unreadable: its gzip payload"):
        storage.retrieve("f", "t", "id")


# -- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4"])
def test_each_codec_round_trips_and_shrinks_a_compressible_result(codec: str) -> None:
    storage = memory(compression=Compression(codec))
    storage.store("f", "t", "big", BIG)
    storage.store("f", "t", "small", {"v": 1})
    stored = storage.read(RESULTS, ("f", "t", "big"))
    assert stored is not None and stored[4] == CODEC_IDS[codec]
    assert len(stored) < len(JSON.dumps(BIG)) / 5
    assert storage.read(RESULTS, ("f", "t", "small")) == b'{"v":1}'  # under the threshold
    assert storage.retrieve("f", "t", "big") == BIG
    assert storage.retrieve_many([("f", "t", "big")]) == {("f", "t", "big"): BIG}


def test_gzip_records_are_plain_gzip_and_incompressible_ones_stay_uncompressed() -> None:
    storage = memory(compression=Compression("gzip", level=9, threshold=0))
    storage.store("f", "t", "big", BIG)
    stored = storage.read(RESULTS, ("f", "t", "big")) or b""
    assert json.loads(gzip.decompress(stored[header_length(stored) :])) == BIG
    noise = os.urandom(3000).hex()  # hex of random bytes: gzip gains little, but something
    storage.store("f", "t", "random", noise)
    storage.serializer = PICKLE
    storage.store("f", "t", "bytes", os.urandom(5000))  # incompressible: stored as it is
    raw = storage.read(RESULTS, ("f", "t", "bytes")) or b""
    assert raw[4] == 0 and has_header(raw)  # a header for pickle, but no codec
    assert storage.retrieve("f", "t", "random") == noise


def test_compression_config_is_checked() -> None:
    assert Compression.from_config(None).codec == "none"
    assert Compression.from_config("ZSTD") == Compression("zstd")
    assert Compression.from_config({"codec": "lz4", "level": 9, "threshold": 0}).level == 9
    for value, key in [
        ("brotli", "compression.codec"),
        ({"codec": "zstd", "level": 30}, "compression.level"),
        ({"codec": "gzip", "level": "9"}, "compression.level"),
        ({"codec": "gzip", "threshold": -1}, "compression.threshold"),
        ({"codec": "gzip", "ratio": 2}, "compression.ratio"),
        ({"codec": "none", "level": 1}, "compression.level"),
        ([1], "compression"),
    ]:
        with pytest.raises(ConfigError) as info:
            Compression.from_config(value)
        assert info.value.key == key, value
    with pytest.raises(ValueError, match="unknown compression codec number 9"):
        decompress(9, b"x")


def test_a_missing_codec_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails as if not installed
    storage = memory(compression=Compression("zstd", threshold=0))
    with pytest.raises(StorageError, match=r"pip install 'selinon-like\[zstd\]'"):
        storage.store("f", "t", "i", BIG)


# -- ttl -------------------------------------------------------------------------------------


def test_ttl_config_is_checked() -> None:
    assert Expiry.from_config(None) == Expiry()
    assert Expiry.from_config(86400) == Expiry(86400, 86400)
    assert Expiry.from_config("1.5") == Expiry(1.5, 1.5)
    assert Expiry.from_config({"results": 10}) == Expiry(10, None)
    for value, key in [
        (0, "ttl"),
        (-3, "ttl"),
        (True, "ttl"),
        ("soon", "ttl"),
        (float("inf"), "ttl"),
        ({"results": 0}, "ttl.results"),
        ({"result": 1}, "ttl.result"),
    ]:
        with pytest.raises(ConfigError) as info:
            Expiry.from_config(value)
        assert info.value.key == key, value


def test_expiry_is_exact_to_the_millisecond() -> None:
    clock = MovableClock()
    storage = memory(ttl=Expiry(results=1), clock=clock)
    storage.store("f", "t", "i", 1)
    clock.advance(0.998)
    assert storage.retrieve("f", "t", "i") == 1
    clock.advance(0.003)
    with pytest.raises(ResultNotFound, match=r"Mem: no result stored .* \(it expired\)"):
        storage.retrieve("f", "t", "i")


def test_a_record_that_never_expires_carries_never() -> None:
    storage = memory(ttl=Expiry(errors=5))
    storage.serializer = PICKLE
    storage.store("f", "t", "i", 1)
    data = storage.read(RESULTS, ("f", "t", "i")) or b""
    assert data[EXPIRY_OFFSET : EXPIRY_OFFSET + 8] == struct.pack(">Q", NEVER)
    assert expiry_of(data) is None


def test_memory_purges_from_its_own_bookkeeping_in_batches() -> None:
    clock = MovableClock()
    storage = memory(ttl=Expiry(results=1), clock=clock)
    storage.store_many([("f", "t", str(n), n) for n in range(1200)])
    storage.set_record_format(ttl=Expiry())
    storage.store("f", "t", "0", "renewed without ttl")
    clock.advance(2)
    batches: list[int] = []
    assert storage.purge_expired(progress=batches.append) == 1199
    assert batches == [500, 500, 199]
    assert storage._expiry == {RESULTS: {}, ERRORS: {}}
    assert list(storage.iter_keys("f")) == [("f", "t", "0")]


def test_a_default_purge_works_on_any_record_storage_with_scan_and_remove(
    tmp_path: Path,
) -> None:
    from examples.custom_adapter.dbm_storage import DbmStorage

    clock = MovableClock()
    storage = DbmStorage(str(tmp_path / "db"))
    storage.set_record_format(ttl=Expiry(results=1, errors=1), clock=clock)
    storage.connect()
    try:
        assert "purge_expired" in DbmStorage.capabilities()
        storage.store_many([("f", "t", str(n), n) for n in range(3)])
        storage.store_error(None, "f", "t", "0", ValueError("x"))
        clock.advance(5)
        storage.set_record_format(ttl=Expiry())
        storage.store("f", "t", "kept", 1)
        assert storage.purge_expired(dry_run=True) == 4
        assert storage.purge_expired() == 4
        assert list(storage.iter_keys()) == [("f", "t", "kept")]
    finally:
        storage.disconnect()


def test_an_adapter_without_listing_or_purge_does_not_offer_purge_expired() -> None:
    from selinon_like.records import RecordStorage

    class ReadWrite(RecordStorage):
        def __init__(self) -> None:
            self.data: dict[Key, bytes] = {}

        def connect(self) -> None: ...

        def disconnect(self) -> None: ...

        def is_connected(self) -> bool:
            return True

        def read(self, kind: Any, key: Key) -> bytes | None:
            return self.data.get(key)

        def write(self, kind: Any, key: Key, data: bytes) -> str:
            self.data[key] = data
            return "id"

    assert "purge_expired" not in ReadWrite.capabilities()
    assert ReadWrite._native_expiry is False
    with pytest.raises(NotImplementedError, match=r"ReadWrite.scan\(\)"):
        ReadWrite().purge_expired()
    assert InMemoryStorage._native_expiry and InMemoryStorage._native_expiry_many


# -- five-method adapters ----------------------------------------------------------------------


class Dictionary(DataStorage):
    """A five-method adapter as Selinon's documentation writes one."""

    def __init__(self) -> None:
        self.values: dict[Key, bytes] = {}

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def is_connected(self) -> bool:
        return True

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            data = self.values[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self.values[(flow_name, task_name, task_id)] = self.serializer.dumps(result)
        return task_id


def test_a_five_method_adapter_gets_ttl_and_compression_through_its_serializer() -> None:
    clock = MovableClock()
    storage = Dictionary()
    storage.storage_name = "Dict"
    storage.set_record_format(ttl=Expiry(results=1), compression=Compression("zstd"), clock=clock)
    storage.store("f", "t", "big", BIG)
    assert len(storage.values[("f", "t", "big")]) < len(JSON.dumps(BIG)) / 5
    assert storage.retrieve("f", "t", "big") == BIG
    assert storage.retrieve_many([("f", "t", "big")]) == {("f", "t", "big"): BIG}
    clock.advance(2)
    with pytest.raises(ResultNotFound) as info:
        storage.retrieve("f", "t", "big")
    assert str(info.value).startswith("Dict: no result stored for flow 'f', task 't', task id")
    assert storage.retrieve_many([("f", "t", "big")]) == {}
    storage.values[("f", "t", "bad")] = b"\xffSL\x01" + b"\0" * 20
    with pytest.raises(StorageError, match=r"Dict: the result stored .* task id 'bad'"):
        storage.retrieve("f", "t", "bad")
    assert "purge_expired" not in Dictionary.capabilities()


def test_serializer_reads_as_the_codec_and_takes_a_plain_serializer() -> None:
    storage = Dictionary()
    assert isinstance(storage.serializer, RecordCodec)
    storage.serializer = PICKLE
    assert storage.record_codec.serializer is PICKLE
    storage.serializer = memory().serializer  # a codec: the serializer inside it is taken
    assert storage.record_codec == RecordCodec()
    with pytest.raises(TypeError, match="ttl must be an Expiry"):
        storage.set_record_format(ttl=5)  # type: ignore[arg-type]


# -- the read cache --------------------------------------------------------------------------


def test_the_cache_keeps_the_stored_bytes_and_the_records_expiry() -> None:
    clock = MovableClock()
    storage = memory(ttl=Expiry(results=1), compression=Compression("gzip"), clock=clock)
    cache = ResultCache(10)
    storage.cache = cache
    storage.store("f", "t", "i", BIG)
    entry = cache._entries[("f", "t", "i")]
    assert entry[1] == storage.read(RESULTS, ("f", "t", "i"))  # compressed, as stored
    assert storage.retrieve("f", "t", "i") == BIG and cache.hits == 1
    cache.clear()
    clock.advance(0.5)
    assert storage.retrieve("f", "t", "i") == BIG  # a miss: cached from the stored record
    assert cache._entries[("f", "t", "i")][1] == storage.read(RESULTS, ("f", "t", "i"))
    clock.advance(0.6)  # past the record's expiry, though the cache has no ttl of its own
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "i")
    assert ("f", "t", "i") not in cache._entries


def test_the_cache_reports_only_the_calling_threads_record() -> None:
    storage = memory(compression=Compression("gzip", threshold=0))
    storage.cache = ResultCache(100)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for round_ in range(50):
                storage.store("f", "t", f"{n}", {"n": n, "round": round_})
                assert storage.retrieve("f", "t", f"{n}") == {"n": n, "round": round_}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- YAML, pool ------------------------------------------------------------------------------


def test_ttl_and_compression_from_yaml_reach_the_storage(tmp_path: Path) -> None:
    pool = StoragePool.from_yaml(
        io.StringIO(
            "storages:\n"
            "  - name: Mem\n"
            "    classname: memory\n"
            "    ttl: {results: 60, errors: 600}\n"
            "    compression: {codec: gzip, level: 1, threshold: 100}\n"
        )
    )
    codec = pool.get_connected_storage("Mem").record_codec
    assert codec.ttl == Expiry(60, 600)
    assert codec.compression == Compression("gzip", level=1, threshold=100)


def test_a_bad_ttl_or_codec_in_yaml_is_located(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n"
        "  - name: Mem\n"
        "    classname: memory\n"
        "    ttl:\n"
        "      results: never\n"
        "    compression: {codec: zip}\n"
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    message = str(info.value)
    assert "line 5" in message and "key 'ttl.results'" in message
    assert "key 'compression.codec'" in message and "'zip'" in message


def test_pool_purge_expired_purges_every_storage_that_can(tmp_path: Path) -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {"name": "Mem", "classname": "memory", "ttl": 60},
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path)},
                    "ttl": 60,
                },
                {"name": "Dict", "import": "test_expiry", "classname": "Dictionary"},
            ]
        }
    )
    clock = MovableClock()
    for name in ("Mem", "Files"):
        storage = pool.get_connected_storage(name)
        storage.set_record_format(clock=clock)
        storage.store_many([("f", "t", str(n), n) for n in range(3)])
    clock.advance(61)
    seen: list[tuple[str, int]] = []
    assert pool.purge_expired(dry_run=True) == {"Mem": 3, "Files": 3}
    assert pool.purge_expired(progress=lambda name, n: seen.append((name, n))) == {
        "Mem": 3,
        "Files": 3,
    }
    assert seen == [("Mem", 3), ("Files", 3)]
    assert pool.purge_expired("Mem") == {"Mem": 0}
    with pytest.raises(NotImplementedError, match=r"Dictionary.purge_expired\(\)"):
        pool.purge_expired("Dict")


# -- filesystem bookkeeping ------------------------------------------------------------------


def test_filesystem_files_carry_their_expiry_as_mtime(tmp_path: Path) -> None:
    clock = MovableClock()
    storage = Filesystem(str(tmp_path))
    storage.set_record_format(ttl=Expiry(results=30), clock=clock)
    storage.connect()
    storage.store("f", "t", "i", 1)
    path = storage._path(RESULTS, ("f", "t", "i"))
    assert path.stat().st_mtime == pytest.approx(clock.now + 30, abs=0.01)
    storage.set_record_format(ttl=Expiry())
    storage.store("f", "t", "i", 2)
    assert path.stat().st_mtime == pytest.approx(time.time(), abs=5)


def test_filesystem_purge_puts_back_a_record_stored_between_its_read_and_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = MovableClock()
    storage = Filesystem(str(tmp_path))
    storage.set_record_format(ttl=Expiry(results=1), clock=clock)
    storage.connect()
    storage.store("f", "t", "raced", "old")
    storage.store("f", "t", "gone", "old")
    clock.advance(2)
    writer = Filesystem(str(tmp_path))
    writer.connect()
    rename = os.rename

    def store_first(source: str, destination: str, **dir_fds: int) -> None:
        if source.endswith("_raced"):  # a writer gets in just before purge's rename
            writer.store("f", "t", "raced", "new")
        rename(source, destination, **dir_fds)

    monkeypatch.setattr(os, "rename", store_first)
    assert storage.purge_expired() == 1
    monkeypatch.undo()
    assert storage.retrieve("f", "t", "raced") == "new"
    assert list(storage.iter_keys("f")) == [("f", "t", "raced")]
    assert not [p for p in tmp_path.rglob(".purge-*")]
