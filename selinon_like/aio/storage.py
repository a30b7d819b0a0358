"""``AsyncDataStorage``: the adapter contract for asyncio programs (SPEC §10).

The async twin of :class:`selinon_like.DataStorage`: the same operations, as coroutines
(``await storage.store(...)``), and ``iter_keys``/``iter_error_keys`` as async iterators.
Everything around the I/O is the blocking API's own, not a copy: the settings and helpers of
:class:`~selinon_like.storage.StorageBase`, and the layers of :mod:`selinon_like.layers`
(key check, read cache, observer, error translation, retries under the deadline), which yield
their I/O as steps that :func:`selinon_like.steps.arun` awaits. There is no per-call lock:
an instance belongs to one event loop, whose tasks interleave only at ``await``; a client
that cannot take concurrent requests must queue them itself.

Write an adapter by subclassing this class and writing ``async def`` ``connect``,
``disconnect``, ``retrieve`` and ``store`` and a plain ``is_connected``; or, better,
:class:`selinon_like.aio.AsyncRecordStorage` and its primitives on bytes. ``recover(exc)``,
called between retries, may be a coroutine.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from selinon_like.envelope import RecordError
from selinon_like.error_records import ErrorRecord, ExcInfo
from selinon_like.keys import Key
from selinon_like.layers import Call, aguarded_iter
from selinon_like.steps import arun
from selinon_like.storage import (
    ALWAYS_LOCKED,
    ITER_OPS,
    StorageBase,
    call_builder,
    located,
    mark_wrapped,
    placeholder,
    wrap_operations,
)
from selinon_like.streams import Digest

__all__ = ["AsyncDataStorage"]

A = TypeVar("A", bound="AsyncDataStorage")

# The instances (by id) whose operation the current task is running: a call from inside one
# (a default store_many calling store) is part of it.
_ACTIVE: ContextVar[frozenset[int]] = ContextVar("selinon_like_active", default=frozenset())


class AsyncDataStorage(StorageBase):
    """Base class of an async adapter. See the module docstring; the operations and their
    errors are those of :class:`selinon_like.DataStorage`, awaited."""

    _op_connecting: asyncio.Lock | None = None

    deadline_in_driver: ClassVar[bool] = False
    """Whether the adapter itself ends every request in time: it gives its driver what is
    left of the call's deadline (:func:`selinon_like.deadline.remaining`) as timeouts, or
    does no I/O. Otherwise (the default) the layers cancel each attempt at the deadline
    (:func:`selinon_like.cutoff.within`: an entry in the event loop's heap of deadlines,
    ~2 µs of CPU a call)."""
    _op_connecting_task: asyncio.Task[Any] | None = None  # the task holding it

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrap_operations(cls, _wrap)

    def _needs_lock(self) -> bool:
        return False

    def _times_attempts(self) -> bool:
        return not self.deadline_in_driver

    async def __aenter__(self: A) -> A:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    # -- the contract --------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection. Idempotent."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close the connection. Idempotent."""

    @abc.abstractmethod
    def is_connected(self) -> bool:
        """True between a successful ``connect()`` and ``disconnect()``."""

    @abc.abstractmethod
    async def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """The stored result; raises :class:`~selinon_like.ResultNotFound` when there is none."""

    @abc.abstractmethod
    async def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        """Store (replacing any result under the same key) and return a record id."""

    @placeholder
    async def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure; a record id."""
        raise self._not_implemented("store_error")

    @placeholder
    async def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The last error record stored for the key; ``ResultNotFound`` when none."""
        raise self._not_implemented("retrieve_error")

    @placeholder
    async def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Remove the result; ``ResultNotFound`` when there is none."""
        raise self._not_implemented("delete")

    # -- optional capabilities -------------------------------------------------------------

    async def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        """Store ``(flow_name, task_name, task_id, result)`` items; their record ids in order
        (the default: :meth:`store` one by one, after serializing every result)."""
        return await arun(self._store_many_steps(list(items)))

    async def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """The results of the keys that have one, by key (missing keys are left out)."""
        return await arun(self._retrieve_many_steps(keys))

    async def delete_many(self, keys: Iterable[Key]) -> int:
        """Remove the results of ``keys``; how many there were."""
        return await arun(self._delete_many_steps(keys))

    async def ping(self) -> bool:
        """One real round trip to the service; True, or raises ``StorageError``."""
        return await arun(self._ping_steps())

    @placeholder
    def iter_keys(self, flow_name: str | None = None) -> AsyncIterator[Key]:
        """Every stored result key (of one flow when ``flow_name`` is given), as an async
        iterator: ``async for key in storage.iter_keys(): ...``."""
        raise self._not_implemented("iter_keys")

    @placeholder
    def iter_error_keys(self, flow_name: str | None = None) -> AsyncIterator[Key]:
        """Every key that has an error record, as an async iterator."""
        raise self._not_implemented("iter_error_keys")

    @placeholder
    async def store_error_record(self, record: ErrorRecord) -> str:
        """Store a record as :meth:`retrieve_error` returns it, verbatim; a record id."""
        raise self._not_implemented("store_error_record")

    @placeholder
    async def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Any
    ) -> Digest:
        """Store a large blob given in chunks (an iterable or an async iterable of bytes);
        its :class:`~selinon_like.streams.Digest`."""
        raise self._not_implemented("store_stream")

    @placeholder
    async def retrieve_stream(
        self, flow_name: str, task_name: str, task_id: str
    ) -> AsyncIterator[bytes]:
        """The chunks of a blob stored with :meth:`store_stream`: ``async for chunk in await
        storage.retrieve_stream(...)`` (``ResultNotFound`` at the ``await``)."""
        raise self._not_implemented("retrieve_stream")

    @placeholder
    async def purge_expired(
        self, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Remove the records past their expiry; how many (see the blocking API's)."""
        raise self._not_implemented("purge_expired")

    async def recover(self, exc: BaseException) -> None:
        """Called before a retry after a transient error; adapters may reset a connection."""


# -- wrapping --------------------------------------------------------------------------------


async def _enter(storage: AsyncDataStorage, call: Call) -> Any:
    """Run ``call`` through every layer, or as part of the operation this task is running
    on ``storage`` already."""
    active = _ACTIVE.get()
    me = id(storage)
    nested = me in active
    token = None if nested else _ACTIVE.set(active | {me})
    try:
        return await arun(storage._op_nested(call) if nested else storage._op_chain(call))
    except RecordError as exc:
        raise located(storage, call, exc) from exc.__cause__
    finally:
        if token is not None:
            _ACTIVE.reset(token)


def _wrap(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    """``fn`` (the async adapter's own ``op``) run through the layers, awaited."""
    build = call_builder(fn, op)
    wrapper: Callable[..., Any]
    if op in ALWAYS_LOCKED:

        async def connecting(self: AsyncDataStorage, *args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            if task is not None and self._op_connecting_task is task:
                # Re-entered by the task holding the lock (a connect whose retry calls
                # recover(), which disconnects): an asyncio.Lock is not an RLock.
                return await _enter(self, build(self, args, kwargs))
            lock = self._op_connecting
            if lock is None:
                lock = self._op_connecting = asyncio.Lock()
            async with lock:
                self._op_connecting_task = task
                try:
                    return await _enter(self, build(self, args, kwargs))
                finally:
                    self._op_connecting_task = None

        wrapper = connecting
    elif op in ITER_OPS:

        def listing(self: AsyncDataStorage, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            call = build(self, args, kwargs)  # a bad flow_name: raised here, at the call
            return _listed(self, op, call)

        wrapper = listing
    elif op == "retrieve_stream":

        async def streaming(self: AsyncDataStorage, *args: Any, **kwargs: Any) -> Any:
            chunks = await _enter(self, build(self, args, kwargs))
            return aguarded_iter(self, op, chunks)

        wrapper = streaming
    else:

        async def operation(self: AsyncDataStorage, *args: Any, **kwargs: Any) -> Any:
            return await _enter(self, build(self, args, kwargs))

        wrapper = operation
    return mark_wrapped(functools.wraps(fn)(wrapper))


async def _listed(storage: AsyncDataStorage, op: str, call: Call) -> AsyncIterator[Any]:
    # The adapter's iter_keys is an async generator function: calling it (through the
    # layers, which count and time the listing's start) gives the iterator.
    iterator = await _enter(storage, call)
    async for item in aguarded_iter(storage, op, aiter(iterator)):
        yield item


# The base's own default implementations go through the same plumbing.
for _op in ("store_many", "retrieve_many", "delete_many", "ping"):
    setattr(AsyncDataStorage, _op, placeholder(_wrap(AsyncDataStorage.__dict__[_op], _op)))
