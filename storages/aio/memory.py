"""``AsyncInMemoryStorage``: :class:`storages.memory.InMemoryStorage` for asyncio programs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from selinon_like.aio.records import AsyncRecordStorage
from selinon_like.keys import Key, Kind
from storages.memory import MemoryRecords

__all__ = ["AsyncInMemoryStorage"]


class AsyncInMemoryStorage(MemoryRecords, AsyncRecordStorage):
    """Results kept in a dict of this process, as serialized copies: the async form of
    :class:`~storages.memory.InMemoryStorage`, with its configuration (``echo``) and its dicts
    and their handling (:class:`~storages.memory.MemoryRecords`).

    Each instance has its own dicts: the async pool makes one per event loop, so results
    stored from one loop are not seen from another (as those of one process are not seen
    from another). No primitive awaits anything, so a call is never interleaved with another
    task's: a purge checks and removes with no store in between, as the blocking adapter's
    lock ensures there.
    """

    deadline_in_driver = True  # no I/O: nothing to cut at a deadline

    def __init__(self, echo: bool = False) -> None:
        self._hold(echo)

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    async def read(self, kind: Kind, key: Key) -> bytes | None:
        return self._records[kind].get(key)

    async def write(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None
    ) -> str:
        return self._put(kind, key, data, expires_at)

    async def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        return self._put_many(kind, items, expires_at)

    async def remove(self, kind: Kind, key: Key) -> bool:
        return self._drop(kind, key)

    async def purge(self, kind: Kind, now: float, dry_run: bool) -> AsyncIterator[int]:
        for count in self._purged(kind, now, dry_run):
            yield count

    async def scan(self, kind: Kind, flow_name: str | None) -> AsyncIterator[Key]:
        for key in self._keys(kind, flow_name):
            yield key
