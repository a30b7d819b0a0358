"""The streaming suite: ``store_stream`` / ``retrieve_stream`` of blobs given in chunks."""

from __future__ import annotations

import gc
import hashlib
import random
from collections.abc import Iterable, Iterator
from typing import ClassVar

import pytest

from selinon_like.errors import ResultNotFound, StorageError
from selinon_like.storage import DataStorage
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest
from selinon_like.testing.base import ContractBase, offers, require

__all__ = ["StreamingContract", "blob", "digest_of"]

MiB = 1024 * 1024


def blob(size: int, chunk: int = MiB + 7, seed: int = 1) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in chunks of an awkward size, made as they are consumed."""
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        sent += n
        yield rng.randbytes(n)


def digest_of(chunks: Iterable[bytes]) -> Digest:
    """The :class:`Digest` of the concatenated ``chunks``."""
    sha, size = hashlib.sha256(), 0
    for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
    return Digest(size, sha.hexdigest())


def _failing(size: int, exc: BaseException) -> Iterator[bytes]:
    yield from blob(size)
    raise exc


class StreamingContract(ContractBase):
    """A stream round-trips with its :class:`Digest`, comes back in bounded chunks, and a
    stream that fails midway (the producer raises, a chunk is not bytes) leaves the previous
    blob in place and no new one. Runs when the adapter offers ``store_stream`` and
    ``retrieve_stream``; skips naming the missing one otherwise.

    ``stream_bytes`` sizes the large stream (above 8 MiB, so it spans more than one chunk
    and, on S3, more than one part)."""

    stream_bytes: ClassVar[int] = 9 * MiB + 7

    def test_a_large_stream_round_trips_with_its_digest(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "store_stream", "retrieve_stream")
        size = self.stream_bytes
        digest = storage.store_stream(flow, "task", "big", blob(size))
        assert digest == digest_of(blob(size))
        assert digest.to_dict() == {"size": size, "sha256": digest.sha256}
        chunks = list(storage.retrieve_stream(flow, "task", "big"))
        assert all(isinstance(chunk, bytes) for chunk in chunks)
        assert max(map(len, chunks)) <= DEFAULT_CHUNK_SIZE, "chunks must stay bounded"
        assert digest_of(chunks) == digest
        assert b"".join(chunks) == b"".join(blob(size))

    @pytest.mark.parametrize("size", [0, 1, MiB + 1])
    def test_small_and_empty_streams_round_trip(
        self, storage: DataStorage, flow: str, size: int
    ) -> None:
        require(storage, "store_stream", "retrieve_stream")
        digest = storage.store_stream(flow, "task", "small", blob(size, chunk=MiB))
        assert digest == digest_of(blob(size, chunk=MiB))
        assert b"".join(storage.retrieve_stream(flow, "task", "small")) == b"".join(
            blob(size, chunk=MiB)
        )

    def test_a_stream_replaces_the_previous_one(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_stream", "retrieve_stream")
        storage.store_stream(flow, "task", "s", [b"first version, longer"])
        storage.store_stream(flow, "task", "s", [b"second"])
        assert b"".join(storage.retrieve_stream(flow, "task", "s")) == b"second"

    def test_missing_stream_raises_when_called_not_when_iterated(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "retrieve_stream")
        with pytest.raises(ResultNotFound):
            storage.retrieve_stream(flow, "task", "absent")  # no next(): the call itself raises

    def test_a_stream_never_iterated_leaves_nothing_open(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "store_stream", "retrieve_stream")
        storage.store_stream(flow, "task", "x", [b"abc"])
        stream = storage.retrieve_stream(flow, "task", "x")
        del stream
        gc.collect()  # an open file or socket would warn here (an error under -W error)
        started = storage.retrieve_stream(flow, "task", "x")
        assert next(started) == b"abc"
        del started
        gc.collect()

    def test_a_failing_stream_leaves_the_previous_blob(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "store_stream", "retrieve_stream")
        storage.store_stream(flow, "task", "kept", [b"old ", b"content"])
        boom = RuntimeError("producer died")
        with pytest.raises(StorageError) as info:
            storage.store_stream(flow, "task", "kept", _failing(self.stream_bytes, boom))
        assert info.value.__cause__ is boom
        assert b"".join(storage.retrieve_stream(flow, "task", "kept")) == b"old content"
        with pytest.raises(StorageError):
            storage.store_stream(flow, "task", "fresh", _failing(MiB, RuntimeError("again")))
        with pytest.raises(ResultNotFound):
            storage.retrieve_stream(flow, "task", "fresh")

    def test_a_non_bytes_chunk_stores_nothing(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_stream", "retrieve_stream")
        with pytest.raises(StorageError) as info:
            storage.store_stream(flow, "task", "typed", [b"ok", "not bytes"])  # type: ignore[list-item]
        assert isinstance(info.value.__cause__, TypeError)
        with pytest.raises(ResultNotFound):
            storage.retrieve_stream(flow, "task", "typed")

    def test_streams_live_with_the_results(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_stream", "retrieve_stream")
        chunks = iter([b"a", bytearray(b"b"), memoryview(b"c")])
        storage.store_stream(flow, "task", "s", chunks)  # type: ignore[arg-type]
        assert b"".join(storage.retrieve_stream(flow, "task", "s")) == b"abc"
        if offers(storage, "iter_keys"):
            assert list(storage.iter_keys(flow)) == [(flow, "task", "s")]
        if offers(storage, "delete"):
            storage.delete(flow, "task", "s")
            with pytest.raises(ResultNotFound):
                storage.retrieve_stream(flow, "task", "s")

    def test_odd_keys_stream(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_stream", "retrieve_stream")
        key = (flow + "/../..", "a/b", "../../etc/passwd")
        other = (flow + "/../..", "a", "b/../../etc/passwd")
        storage.store_stream(*key, [b"x"])
        storage.store_stream(*other, [b"y"])
        assert list(storage.retrieve_stream(*key)) == [b"x"]
        assert list(storage.retrieve_stream(*other)) == [b"y"]
