"""Chunked records and streams in the record layer (SPEC §9, selinon_like.chunks): a record
over the adapter's ``max_value_bytes`` goes as chunk records and a manifest written last; a
reader sees the old or the new record, never a mix; a failed or killed store leaves the
previous record readable and no chunk visible to ``iter_keys``; orphaned chunks are reclaimed
by a later store of the same key and by ``purge_expired``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import REDIS_URL, redis_probe, require_service

from selinon_like import ResultNotFound, StorageError
from selinon_like.chunks import INTERNAL_PREFIX
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry
from selinon_like.keys import Key
from selinon_like.records import RESULTS, Kind, RecordStorage
from selinon_like.retry import NO_RETRY
from selinon_like.testing import StreamingContract
from selinon_like.testing.expiry import MovableClock
from storages.memory import InMemoryStorage
from storages.sql import SQLite

CEILING = 1_000


class SmallValues(InMemoryStorage):
    """Memory with a service-like ceiling, and a switch that fails writes of chunks."""

    max_value_bytes = CEILING
    fail_chunk: int | None = None  # index of the chunk whose write raises
    fail_removes = False

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        name = key[2]
        if name.startswith(INTERNAL_PREFIX + "chunk:") and name.endswith(f":{self.fail_chunk}"):
            raise ConnectionError("the service went away")
        return super().write(kind, key, data, expires_at)

    def remove(self, kind: Kind, key: Key) -> bool:
        if self.fail_removes:
            raise ConnectionError("the service went away")
        return super().remove(kind, key)


def raw_keys(storage: InMemoryStorage) -> list[Key]:
    return list(storage.scan(RESULTS, None))


def internal(storage: InMemoryStorage) -> list[Key]:
    return [key for key in raw_keys(storage) if key[2].startswith(INTERNAL_PREFIX)]


def chunk_keys(storage: InMemoryStorage) -> list[Key]:
    return [key for key in internal(storage) if key[2].startswith(INTERNAL_PREFIX + "chunk:")]


def big(tag: str, size: int = 10_000) -> dict[str, Any]:
    return {"tag": tag, "rows": [f"{tag}-{n}" for n in range(size // 8)]}


@pytest.fixture
def storage() -> Iterator[SmallValues]:
    instance = SmallValues()
    instance.connect()
    instance.set_record_format(clock=MovableClock())
    instance.retry_policy = NO_RETRY  # one attempt: its orphans are counted
    yield instance
    instance.disconnect()


def test_a_large_record_round_trips_as_chunks_and_a_manifest(storage: SmallValues) -> None:
    value = big("a")
    storage.store("f", "t", "id", value)
    assert len(chunk_keys(storage)) >= 10  # ~10 KB in pieces under 1,000 bytes
    assert all(len(data) <= CEILING for data in storage._records[RESULTS].values())
    assert storage.retrieve("f", "t", "id") == value
    assert list(storage.iter_keys()) == [("f", "t", "id")]
    assert list(storage.iter_keys("f")) == [("f", "t", "id")]


def test_overwrites_keep_one_version_of_chunks(storage: SmallValues) -> None:
    storage.store("f", "t", "id", big("a"))
    first = set(chunk_keys(storage))
    storage.store("f", "t", "id", big("b", 20_000))
    assert storage.retrieve("f", "t", "id") == big("b", 20_000)
    assert not first & set(chunk_keys(storage))  # the old version's chunks are gone
    storage.store("f", "t", "id", "small")
    assert storage.retrieve("f", "t", "id") == "small"
    assert list(storage.iter_keys()) == [("f", "t", "id")]


def test_bulk_calls_mix_chunked_and_small_records(storage: SmallValues) -> None:
    ids = storage.store_many([("f", "t", "1", 1), ("f", "t", "2", big("x")), ("f", "t", "3", 3)])
    assert len(ids) == 3 and all(ids)
    assert storage.retrieve_many([("f", "t", "1"), ("f", "t", "2"), ("f", "t", "3")]) == {
        ("f", "t", "1"): 1,
        ("f", "t", "2"): big("x"),
        ("f", "t", "3"): 3,
    }
    assert sorted(storage.iter_keys()) == [("f", "t", "1"), ("f", "t", "2"), ("f", "t", "3")]


def test_a_failed_store_leaves_the_previous_record_and_no_chunk(storage: SmallValues) -> None:
    storage.store("f", "t", "id", big("old"))
    before = set(chunk_keys(storage))
    storage.fail_chunk = 3
    with pytest.raises(StorageError):
        storage.store("f", "t", "id", big("new"))
    assert storage.retrieve("f", "t", "id") == big("old")
    assert set(chunk_keys(storage)) == before  # the failed writer cleaned up after itself
    with pytest.raises(StorageError):
        storage.store("f", "t", "fresh", big("new"))
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "fresh")
    assert list(storage.iter_keys()) == [("f", "t", "id")]


def test_orphans_of_a_writer_that_could_not_clean_up_are_reclaimed(
    storage: SmallValues,
) -> None:
    clock = storage.record_codec.clock
    assert isinstance(clock, MovableClock)
    storage.store("f", "t", "id", big("old"))
    kept = set(chunk_keys(storage))
    storage.fail_chunk, storage.fail_removes = 5, True  # as good as a crash
    with pytest.raises(StorageError):
        storage.store("f", "t", "id", big("new"))
    storage.fail_chunk, storage.fail_removes = None, False
    assert len(set(chunk_keys(storage)) - kept) == 5  # orphans, hidden from iter_keys
    assert list(storage.iter_keys()) == [("f", "t", "id")]
    assert storage.retrieve("f", "t", "id") == big("old")
    # a store soon after leaves them (they could be a live writer's) ...
    storage.store("f", "t", "id", big("newer"))
    assert len(chunk_keys(storage)) > len(kept)
    orphans = set(chunk_keys(storage))
    # ... one after orphan_age reclaims them
    clock.advance(storage.orphan_age + 1)
    storage.store("f", "t", "id", big("newest"))
    assert not orphans & set(chunk_keys(storage))
    assert storage.retrieve("f", "t", "id") == big("newest")


def test_purge_expired_reclaims_chunks_no_manifest_names(storage: SmallValues) -> None:
    clock = storage.record_codec.clock
    assert isinstance(clock, MovableClock)
    storage.store("f", "t", "replaced", big("a"))
    storage.store("f", "t", "replaced", "small now")  # the chunks stay behind for now
    storage.store("f", "t", "deleted", big("b"))
    storage.delete("f", "t", "deleted")
    storage.store("f", "t", "kept", big("c"))
    kept = [key for key in chunk_keys(storage)]
    assert storage.purge_expired() == 0  # nothing expired, and the orphans are too young
    clock.advance(storage.orphan_age + 1)
    assert storage.purge_expired() == 0  # no record expired; the orphans went
    assert storage.retrieve("f", "t", "kept") == big("c")
    assert storage.retrieve("f", "t", "replaced") == "small now"
    remaining = set(chunk_keys(storage))
    assert remaining and remaining <= set(kept)
    assert len(remaining) == len(chunk_keys(storage))
    assert len([k for k in internal(storage) if "index:" in k[2]]) == 1  # kept's index only


def test_a_chunked_record_expires_with_its_chunks(storage: SmallValues) -> None:
    clock = storage.record_codec.clock
    assert isinstance(clock, MovableClock)
    storage.set_record_format(ttl=Expiry(results=60, errors=60))
    storage.store("f", "t", "id", big("a"))
    clock.advance(61)
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "id")
    assert storage.retrieve_many([("f", "t", "id")]) == {}
    assert storage.purge_expired() >= 11  # the manifest and every chunk
    assert chunk_keys(storage) == []


def test_compressed_records_are_chunked_after_compression(storage: SmallValues) -> None:
    storage.set_record_format(compression=Compression.from_config("gzip"))
    value = {"noise": os.urandom(6_000).hex()}  # hex: compresses to half, still chunked
    storage.store("f", "t", "id", value)
    assert chunk_keys(storage)
    assert storage.retrieve("f", "t", "id") == value


def test_a_reader_that_meets_a_new_version_starts_again(storage: SmallValues) -> None:
    storage.store("f", "t", "id", big("old"))
    real_read_many = storage.read_many
    swapped = False

    def read_many(kind: Kind, keys: Any) -> list[bytes | None]:
        nonlocal swapped
        if not swapped and keys and keys[0][2].startswith(INTERNAL_PREFIX):
            swapped = True  # a writer replaces the record between manifest and chunks
            storage.store("f", "t", "id", big("new", 12_000))
        return real_read_many(kind, keys)

    storage.read_many = read_many  # type: ignore[method-assign]
    assert storage.retrieve("f", "t", "id") == big("new", 12_000)
    assert swapped


def test_a_manifest_whose_chunks_do_not_add_up_is_a_storage_error(storage: SmallValues) -> None:
    storage.store("f", "t", "id", big("a"))
    key = chunk_keys(storage)[0]
    data = storage._records[RESULTS][key]
    storage._records[RESULTS][key] = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(StorageError, match="digest"):
        storage.retrieve("f", "t", "id")


def test_streams_are_chunked_too_and_read_back_a_few_chunks_at_a_time(
    storage: SmallValues,
) -> None:
    pieces = [os.urandom(700) for _ in range(20)]
    digest = storage.store_stream("f", "t", "blob", pieces)
    assert digest.size == 14_000
    chunks = list(storage.retrieve_stream("f", "t", "blob"))
    assert b"".join(chunks) == b"".join(pieces)
    assert max(map(len, chunks)) <= CEILING
    assert list(storage.iter_keys()) == [("f", "t", "blob")]


class TestStreamingOnChunkedMemory(StreamingContract):
    """The kit's streaming suite on memory whose values are capped at 1 MiB."""

    stream_bytes: ClassVar[int] = 3 * 1024 * 1024 + 7

    @pytest.fixture
    def storage(self) -> Iterator[InMemoryStorage]:
        class OneMiB(InMemoryStorage):
            max_value_bytes = 1024 * 1024

        instance = OneMiB()
        instance.connect()
        yield instance
        instance.disconnect()


# -- a writer killed midway: a child process SIGKILLed, on SQLite in a file and on Redis -------


def _kill_at(storage: RecordStorage, index: int) -> None:
    """Make ``storage`` SIGKILL its own process as it writes chunk ``index``."""
    write = storage.write

    def dying(kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        if key[2].startswith(INTERNAL_PREFIX + "chunk:") and key[2].endswith(f":{index}"):
            os.kill(os.getpid(), signal.SIGKILL)
        return write(kind, key, data, expires_at)  # type: ignore[call-arg]

    storage.write = dying  # type: ignore[method-assign]


def _small_valued(backend: str, target: str) -> RecordStorage:
    instance: RecordStorage
    if backend == "sqlite":
        instance = SQLite(connection_string=target)
    else:
        from storages.redis import Redis

        instance = Redis(url=REDIS_URL, key_prefix=target)
    instance.max_value_bytes = 4_096
    return instance


def _store_and_die(backend: str, target: str) -> None:
    storage = _small_valued(backend, target)
    _kill_at(storage, 6)
    storage.connect()
    storage.store("f", "t", "id", big("new", 60_000))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_store_killed_midway_leaves_the_previous_result(tmp_path: Path, backend: str) -> None:
    if backend == "redis":
        require_service("Redis", redis_probe)
    target = (
        f"sqlite:///{tmp_path / 'results.db'}"
        if backend == "sqlite"
        else f"sl-killed-{uuid.uuid4().hex}:"
    )
    storage = _small_valued(backend, target)
    storage.connect()
    clock = MovableClock()
    storage.set_record_format(clock=clock)
    storage.store("f", "t", "id", big("old", 30_000))
    before = set(storage.scan(RESULTS, None))
    child = multiprocessing.get_context("spawn").Process(
        target=_store_and_die, args=(backend, target)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert storage.retrieve("f", "t", "id") == big("old", 30_000)
    assert list(storage.iter_keys()) == [("f", "t", "id")]
    orphans = set(storage.scan(RESULTS, None)) - before
    assert len([key for key in orphans if ":chunk:" in key[2]]) == 6
    clock.now += storage.orphan_age + 600  # the child started after the clock: some margin
    storage.purge_expired()
    assert set(storage.scan(RESULTS, None)) == before
    assert storage.retrieve("f", "t", "id") == big("old", 30_000)
    storage.delete("f", "t", "id")
    storage.orphan_age = 0.0
    storage.purge_expired()  # nothing of this test left on a shared server
    assert list(storage.scan(RESULTS, None)) == []
    storage.disconnect()


def test_a_read_cache_keeps_the_whole_chunked_record(tmp_path: Path) -> None:
    from selinon_like import StoragePool

    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Small",
                    "import": "test_chunks",
                    "classname": "SmallValues",
                    "cache": {"max_size": 10},
                }
            ]
        }
    )
    storage = pool.get_connected_storage("Small")
    storage.store("f", "t", "id", big("cached"))
    assert storage.retrieve("f", "t", "id") == big("cached")
    assert storage.retrieve("f", "t", "id") == big("cached")  # from the cache
    storage.store("f", "t", "id", big("again"))
    assert storage.retrieve("f", "t", "id") == big("again")
    pool.disconnect_all()
