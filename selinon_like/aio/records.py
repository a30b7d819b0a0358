"""``AsyncRecordStorage``: every async operation on a few ``async def`` primitives on bytes.

The async twin of :class:`selinon_like.records.RecordStorage`, with the same primitives and
contract (see that module's docstring), written as coroutines: ``async def read(kind, key)``,
``async def write(kind, key, data[, expires_at])``, ``async def remove``, and ``scan`` an async
generator; ``read_many``, ``write_many``, ``remove_many``, ``remove_expired`` (coroutines) and
``purge`` (an async generator of counts) when the service does better than one by one. The
operations are :class:`~selinon_like.records.RecordLogic`'s steps — serialization, expiry,
compression, error records, chunks and streams — awaited: not a line of them is written here.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import Any

from selinon_like import chunks as chunking
from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.error_records import ErrorRecord, ExcInfo
from selinon_like.keys import Key, Kind
from selinon_like.layers import drives
from selinon_like.records import (
    ERRORS,
    RESULTS,
    RecordLogic,
    StepsLogic,
    placeholder,
    retrieve_steps,
    store_steps,
)
from selinon_like.steps import aiterate, arun
from selinon_like.streams import Digest

__all__ = ["AsyncRecordStorage", "AwaitsSteps"]


class AsyncRecordStorage(RecordLogic, AsyncDataStorage):
    """Base class of an async adapter written as primitives on bytes (module docstring)."""

    # -- primitives -------------------------------------------------------------------------

    @abc.abstractmethod
    async def read(self, kind: Kind, key: Key) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""

    @abc.abstractmethod
    async def write(self, kind: Kind, key: Key, data: bytes) -> str:
        """Store ``data`` under ``key``, replacing what was there; a record id (an adapter
        with native expiry adds ``expires_at: float | None = None``)."""

    @placeholder
    async def remove(self, kind: Kind, key: Key) -> bool:
        """Delete what is stored under ``key``; ``False`` when there was nothing."""
        raise self._not_implemented("remove")

    @placeholder
    def scan(self, kind: Kind, flow_name: str | None) -> AsyncIterator[Key]:
        """Every stored key, or those of ``flow_name`` (others may be yielded too), once each:
        an async generator."""
        raise self._not_implemented("scan")

    @placeholder
    async def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        """:meth:`read` of every key, in order."""
        return await arun(self._default_read_many_steps(kind, keys))

    @placeholder
    async def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        """:meth:`write` of every item, in order; their record ids."""
        return await arun(self._default_write_many_steps(kind, items, expires_at))

    @placeholder
    async def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        """:meth:`remove` of every key; how many had something stored."""
        return await arun(self._default_remove_many_steps(kind, keys))

    @placeholder
    async def purge(self, kind: Kind, now: float, dry_run: bool) -> AsyncIterator[int]:
        """Remove the expired records of ``kind``, yielding each batch's count: an async
        generator (the default: :meth:`scan`, headers read in batches,
        :meth:`remove_expired`)."""
        async for count in await aiterate(self._default_purge_steps(kind, now, dry_run, None)):
            yield count

    @placeholder
    async def remove_expired(self, kind: Kind, keys: Sequence[Key], now: float) -> int:
        """Remove those of ``keys`` whose record is expired at ``now``; how many."""
        return await arun(self._default_remove_expired_steps(kind, keys, now))

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        return cls._record_capabilities(super().capabilities())

    # -- the public operations, on the primitives -------------------------------------------

    @drives(retrieve_steps)
    async def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        return await arun(self._retrieve_steps((flow_name, task_name, task_id)))

    @drives(store_steps)
    async def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return await arun(self._store_steps((flow_name, task_name, task_id), result))

    async def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        await arun(self._delete_steps((flow_name, task_name, task_id)))

    async def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        return await arun(self._store_many_steps(items))

    async def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        return await arun(self._retrieve_many_steps(keys))

    async def delete_many(self, keys: Iterable[Key]) -> int:
        return await arun(self._delete_many_steps(keys))

    def iter_keys(self, flow_name: str | None = None) -> AsyncIterator[Key]:
        return _of_flow(self.scan(RESULTS, flow_name), flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> AsyncIterator[Key]:
        return _of_flow(self.scan(ERRORS, flow_name), flow_name)

    async def purge_expired(
        self, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        return await arun(self._purge_steps(dry_run, progress))

    @placeholder
    async def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Any
    ) -> Digest:
        """Store a blob given in chunks (an iterable or async iterable of bytes) as chunk
        records and a manifest; its :class:`Digest`."""
        return await arun(self._store_stream_steps((flow_name, task_name, task_id), chunks))

    async def retrieve_stream(
        self, flow_name: str, task_name: str, task_id: str
    ) -> AsyncIterator[bytes]:
        """The chunks of a blob, checked against its manifest at the end; ``ResultNotFound``
        at the ``await`` when there is none."""
        return await aiterate(self._retrieve_stream_steps((flow_name, task_name, task_id)))

    async def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        key = (flow_name, task_name, task_id)
        return await arun(self._store_error_steps(node_args, key, exc_info))

    async def store_error_record(self, record: ErrorRecord) -> str:
        return await arun(self._store_error_record_steps(record))

    async def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        return await arun(self._retrieve_error_steps((flow_name, task_name, task_id)))


async def _of_flow(keys: AsyncIterator[Key], flow_name: str | None) -> AsyncIterator[Key]:
    # Chunks and chunk indexes (selinon_like.chunks) are never shown.
    async for key in keys:
        if (flow_name is None or key[0] == flow_name) and not chunking.is_internal(key):
            yield key


class AwaitsSteps(StepsLogic):
    """:class:`AsyncRecordStorage`'s primitives, the steps of a
    :class:`~selinon_like.records.StepsLogic` awaited: a base class before
    ``AsyncRecordStorage``, after the logic class. A primitive the adapter writes itself
    overrides the one here; an adapter that awaits steps its own way (a bound of its own on a
    request made outside a call: AsyncMongoDB's) gives ``_awaited`` instead of writing them."""

    # How read, write, remove and the *_many await their steps: arun itself, a static method
    # (no call more than naming arun, only the attribute's lookup: ~300 instructions).
    _awaited = staticmethod(arun)

    # The primitives are plain functions that give the coroutine to await (the driver's),
    # not coroutines themselves: one coroutine less a request, awaited the same way.

    def read(self, kind: Kind, key: Key) -> Coroutine[Any, Any, bytes | None]:
        return self._awaited(self._read_io(kind, key))

    def write(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None
    ) -> Coroutine[Any, Any, str]:
        return self._awaited(self._write_io(kind, key, data, expires_at))

    def remove(self, kind: Kind, key: Key) -> Coroutine[Any, Any, bool]:
        return self._awaited(self._remove_io(kind, key))

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> Coroutine[Any, Any, list[bytes | None]]:
        return self._awaited(self._read_many_io(kind, keys))

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> Coroutine[Any, Any, list[str]]:
        return self._awaited(self._write_many_io(kind, items, expires_at))

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> Coroutine[Any, Any, int]:
        return self._awaited(self._remove_many_io(kind, keys))

    async def purge(self, kind: Kind, now: float, dry_run: bool) -> AsyncIterator[int]:
        async for count in await aiterate(self._purge_io(kind, now, dry_run)):
            yield count

    async def scan(self, kind: Kind, flow_name: str | None) -> AsyncIterator[Key]:
        async for key in await aiterate(self._scan_io(kind, flow_name)):
            yield key
