"""Streaming large results: the content digest shared by every streaming adapter."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["DEFAULT_CHUNK_SIZE", "Digest", "DigestingReader"]

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Digest:
    """What ``store_stream`` returns: the size in bytes and the hex SHA-256 of the content."""

    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "sha256": self.sha256}


class DigestingReader:
    """Iterates byte chunks while hashing them; :meth:`digest` once the stream is consumed.

    Chunks that are not ``bytes``-like raise ``TypeError`` before anything is written."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"store_stream() takes an iterable of bytes, got a {type(chunk).__name__}"
                )
            data = bytes(chunk)
            self._hash.update(data)
            self._size += len(data)
            yield data
        self._done = True

    def digest(self) -> Digest:
        if not self._done:
            raise ValueError("the stream has not been consumed to its end")
        return Digest(self._size, self._hash.hexdigest())
