"""A blocking adapter used from asyncio: each call runs in a bounded thread pool.

The async pool uses it for every storage whose adapter has no async form (a custom
``DataStorage``, SQLite, MySQL, the filesystem): the event loop never blocks on I/O, and at
most ``max_threads`` calls run at once per storage. The blocking adapter keeps its own layers
(retries, cache, statistics, its lock when it is not thread-safe); this wrapper adds none, so
nothing is counted or retried twice.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.steps import END
from selinon_like.storage import (
    ALWAYS_LOCKED,
    ITER_OPS,
    WRAPPED_OPS,
    DataStorage,
    call_builder,
    mark_wrapped,
)

__all__ = ["DEFAULT_THREADS", "ThreadedStorage"]

DEFAULT_THREADS = 8
"""Threads per storage: as many blocking calls as the async pool runs at once on one storage
(more would queue; a connection pool of that size suits a thread-safe adapter)."""


class _Setting:
    """An attribute of a :class:`ThreadedStorage` that is its blocking adapter's: read from it
    and set on it (the base class's set-up, before there is an adapter, sets nothing)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, threaded: ThreadedStorage | None, owner: type | None = None) -> Any:
        if threaded is None:
            return self
        return getattr(threaded.storage, self.name)

    def __set__(self, threaded: ThreadedStorage, value: Any) -> None:
        storage = threaded.__dict__.get("storage")
        if storage is not None:
            setattr(storage, self.name, value)


class ThreadedStorage(AsyncDataStorage):
    """``storage`` (a blocking :class:`~selinon_like.DataStorage`, configured) as an async
    adapter: ``await threaded.store(...)`` runs ``storage.store(...)`` in a pool of at most
    ``max_threads`` threads. Its operations, capabilities and settings (``serializer``,
    ``set_record_format``, ``retry_policy``, ``operation_timeout``, ``cache``, ``observer``,
    ``storage_name``) are the blocking adapter's; use :meth:`of` for the class of a given
    adapter class."""

    wrapped_class: ClassVar[type[DataStorage] | None] = None  # set by of()

    def __init__(self, storage: DataStorage, *, max_threads: int = DEFAULT_THREADS) -> None:
        if not isinstance(storage, DataStorage):
            raise TypeError(f"ThreadedStorage wraps a DataStorage, not {type(storage).__name__}")
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a whole number above 0, not {max_threads!r}")
        self.storage = storage
        self._max_threads = max_threads
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    @functools.cache
    def of(cls, adapter: type[DataStorage]) -> type[ThreadedStorage]:
        """The threaded class of blocking adapters of class ``adapter`` (its capabilities)."""
        return type(f"Threaded{adapter.__name__}", (cls,), {"wrapped_class": adapter})

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        wrapped = cls.wrapped_class
        return super().capabilities() if wrapped is None else wrapped.capabilities()

    # The settings are the blocking adapter's, whose layers use them: its name, serializer and
    # record format, retries, timeout, cache, observer (which counts the calls), configuration.
    storage_name = _Setting()
    serializer = _Setting()
    record_codec = _Setting()
    retry_policy = _Setting()
    operation_timeout = _Setting()
    cache = _Setting()
    observer = _Setting()
    _configuration = _Setting()
    _secrets = _Setting()

    def set_record_format(self, **settings: Any) -> None:
        self.storage.set_record_format(**settings)

    def default_operation_timeout(self) -> float:
        return self.storage.default_operation_timeout()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.storage!r}>"

    def is_connected(self) -> bool:
        return self.storage.is_connected()

    def _threads(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(
                self._max_threads, thread_name_prefix=f"selinon-like-{self.storage_name}"
            )
        return executor

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads(), functools.partial(fn, *args, **kwargs))

    async def _listed(
        self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        iterator = await self._in_thread(getattr(self.storage, op), *args, **kwargs)
        async for item in self._iterate(iterator):
            yield item

    async def _iterate(self, iterator: Iterator[Any]) -> AsyncIterator[Any]:
        while True:
            item = await self._in_thread(next, iterator, END)
            if item is END:
                return
            yield item


def _delegate(op: str) -> Callable[..., Any]:
    if op in ALWAYS_LOCKED:

        async def connection(self: ThreadedStorage) -> None:
            await self._in_thread(getattr(self.storage, op))
            if op == "disconnect" and self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

        return mark_wrapped(connection)
    if op in ITER_OPS:
        check = call_builder(getattr(DataStorage, op), op)

        def listing(self: ThreadedStorage, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            check(self, args, kwargs)  # a bad flow_name: raised here, at the call
            return self._listed(op, args, kwargs)

        return mark_wrapped(listing)
    if op == "retrieve_stream":

        async def streaming(self: ThreadedStorage, *args: Any) -> AsyncIterator[bytes]:
            return self._iterate(await self._in_thread(self.storage.retrieve_stream, *args))

        return mark_wrapped(streaming)
    if op == "store_stream":

        async def storing(self: ThreadedStorage, *args: Any) -> Any:
            *key, chunks = args
            if hasattr(chunks, "__aiter__"):
                chunks = _blocking_iter(chunks, asyncio.get_running_loop())
            return await self._in_thread(self.storage.store_stream, *key, chunks)

        return mark_wrapped(storing)

    async def operation(self: ThreadedStorage, *args: Any, **kwargs: Any) -> Any:
        return await self._in_thread(getattr(self.storage, op), *args, **kwargs)

    return mark_wrapped(operation)


def _blocking_iter(chunks: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """An async iterable read from a worker thread, each item fetched on ``loop``."""
    iterator = aiter(chunks)
    while True:
        item = asyncio.run_coroutine_threadsafe(anext(iterator, END), loop).result()
        if item is END:
            return
        yield item


for _op in WRAPPED_OPS:
    setattr(ThreadedStorage, _op, _delegate(_op))
ThreadedStorage.__abstractmethods__ = frozenset()
