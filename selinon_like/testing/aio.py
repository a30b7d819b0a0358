"""The contract kit for async adapters (SPEC section 10): the blocking suites, written once, run
on an async adapter through a :class:`BlockingFacade`, and the tests only asyncio has.

Prove that an async adapter behaves like the built-in ones by subclassing
:class:`~selinon_like.testing.AsyncStorageContract` and supplying one fixture,
``async_storage``, that returns a zero-argument callable building a new, **unconnected**
instance::

    import pytest
    from selinon_like.testing import AsyncStorageContract
    from myapp.storages import MyAsyncStorage

    class TestMyAsyncStorage(AsyncStorageContract):
        @pytest.fixture
        def async_storage(self):
            return lambda: MyAsyncStorage(url="redis://localhost")

The instance is an :class:`~selinon_like.aio.AsyncDataStorage`: a native async adapter, or a
blocking one in a :class:`~selinon_like.aio.ThreadedStorage`. The kit calls the callable on
the event loop it runs the instance on (so a client that binds to the running loop when it is
built may), connects the instance there, and disconnects it after the test. It calls it again
wherever it needs another instance on the same service: a forked child builds its own (on its
own loop), and the async-only tests build fresh ones under ``asyncio.run``. Calls the callable
makes must therefore reach the same service (the same server, table, directory, prefix).

Every test of :class:`~selinon_like.testing.StorageContract` runs on a :class:`BlockingFacade`:
the instance, its coroutines run on an event loop in a thread of its own, behind the methods of
a blocking :class:`~selinon_like.DataStorage`. The blocking tests' threads are then concurrent
tasks on that one loop, ``iter_keys`` and ``retrieve_stream`` pull the adapter's async
iterators item by item, ``store_stream`` hands the adapter its chunks as an async iterable, and
the capabilities the tests check are the async class's (a test of an operation it does not
offer skips, naming it). Besides, :class:`AsyncContract` checks what only asyncio has: 200
calls gathered on one instance, a call cancelled midway, and ``async with``.

An async adapter that talks to a service adds :class:`AsyncUnreachableServiceContract`: the
tests of :class:`~selinon_like.testing.UnreachableServiceContract` (secrets, an unreachable
service within its timeout) on a facade, and an unreachable service failing within
``operation_timeout``. It needs one more fixture:

``unreachable_async_storage``
    a zero-argument callable building an unconnected instance pointed at ``unreachable_port``
    on 127.0.0.1, with ``secret`` in its configuration and timeouts small enough to fail within
    ``unreachable_timeout``: the async form of
    :class:`~selinon_like.testing.UnreachableServiceContract`'s ``unreachable_storage`` (which
    the kit builds from it).
``unreachable_port``, ``secret``, ``unreachable_timeout``
    as in :class:`~selinon_like.testing.UnreachableServiceContract`.

::

    class TestMyAsyncStorage(AsyncStorageContract, AsyncUnreachableServiceContract):
        @pytest.fixture
        def async_storage(self):
            return lambda: MyAsyncStorage(url="redis://localhost")

        @pytest.fixture
        def unreachable_async_storage(self, unreachable_port, secret):
            return lambda: MyAsyncStorage(
                url=f"redis://user:{secret}@127.0.0.1:{unreachable_port}", timeout=1
            )

Or compose: :class:`AsyncContract` (the fixtures and the async-only tests) first, then the
blocking suites of what the adapter offers::

    class TestMyAsyncStorage(AsyncContract, ResultsContract, BulkContract): ...

Class attributes size the async-only tests: ``gathered_calls`` (200), ``cancelled_items``
(the ``store_many`` cancelled midway, 3,000); the blocking suites' knobs apply to theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import sys
import threading
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import pytest

from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.error_records import ErrorRecord
from selinon_like.errors import ResultNotFound
from selinon_like.keys import Key
from selinon_like.retry import RetryPolicy
from selinon_like.serializers import Serializer
from selinon_like.steps import END
from selinon_like.storage import DataStorage, mark_wrapped
from selinon_like.streams import Digest
from selinon_like.testing.base import ContractBase, failure, offers
from selinon_like.testing.unreachable import (
    UNREACHABLE_RETRY,
    UnreachableServiceContract,
    _unavailable,
)

__all__ = [
    "AsyncContract",
    "AsyncFactory",
    "AsyncUnreachableServiceContract",
    "BlockingFacade",
    "LoopThread",
    "no_unclosed_resources",
]

T = TypeVar("T")

AsyncFactory = Callable[[], AsyncDataStorage]
"""What the ``async_storage`` fixture returns: a new, unconnected async instance per call."""

# How long closing a facade waits for its instance to disconnect and its loop to stop.
CLOSE_WAIT = 10.0


class LoopThread:
    """An event loop running in a daemon thread of its own: :meth:`run` runs a coroutine there
    and blocks the calling thread until it is done. Calls from many threads run as concurrent
    tasks of that one loop."""

    def __init__(self, name: str = "selinon-like-kit-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def running_here(self) -> bool:
        """Whether the loop is open and this process's (not a forked child's copy)."""
        return not self.loop.is_closed() and os.getpid() == self._pid

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """What ``coro`` returns (or raises, the same exception), run on the loop."""
        if not self.running_here() or self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "called from the loop's own thread, it would wait for itself"
                if self.running_here()
                else "the event loop is closed, or another process's"
            )
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the loop without waiting for it (from any thread, the loop's too)."""
        if self.loop.is_closed():
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Cancel what still runs on the loop, finish its async generators, stop and close it
        (waiting at most about ``wait`` seconds). In a forked child, does nothing: the loop is
        the parent's."""
        if not self.running_here():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_wind_down(wait), self.loop).result(wait * 2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(wait)
        if not self._thread.is_alive():
            self.loop.close()


async def _wind_down(wait: float) -> None:
    loop = asyncio.get_running_loop()
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=wait)
    await loop.shutdown_asyncgens()
    await asyncio.wait_for(loop.shutdown_default_executor(), wait)  # getaddrinfo's threads


async def _next(iterator: AsyncIterator[T]) -> T | Any:
    return await anext(iterator, END)


async def _fed(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` (an iterable) as an async iterable, pulled as the adapter reads it."""
    for chunk in chunks:
        yield chunk


class BlockingFacade(DataStorage):
    """A blocking :class:`~selinon_like.DataStorage` in front of an async adapter: each
    operation runs the adapter's coroutine on ``loop`` (a :class:`LoopThread`) and waits for
    it. It adds no layer (the adapter's own run, once); its settings (``storage_name``,
    ``serializer``, ``set_record_format``/``record_codec``, ``retry_policy``,
    ``operation_timeout``, ``cache``, ``observer``) are the adapter's, and so are the
    capabilities of its class (:meth:`of` makes the facade class of an async class, named
    after it). ``async_storage`` is the adapter, ``run(coro)`` runs a coroutine of yours on its
    loop.

    ``iter_keys``/``iter_error_keys`` (whose argument errors are raised by the call) and the
    iterator ``retrieve_stream`` returns pull the adapter's async iterator one item per
    round trip to the loop, and close it when dropped; ``store_stream`` gives the adapter an
    async iterable of the chunks, pulled as it reads them.
    """

    async_class: ClassVar[type[AsyncDataStorage] | None] = None  # set by of()

    def __new__(cls, *args: Any, **kwargs: Any) -> BlockingFacade:
        # Not StorageBase's set-up: every setting is the async adapter's.
        return object.__new__(cls)

    def __init__(self, async_storage: AsyncDataStorage, loop: LoopThread) -> None:
        if not isinstance(async_storage, AsyncDataStorage):
            raise TypeError(
                f"BlockingFacade wraps an AsyncDataStorage, not {type(async_storage).__name__}"
            )
        self.async_storage = async_storage
        self.loop = loop

    @classmethod
    @functools.cache
    def of(cls, async_class: type[AsyncDataStorage]) -> type[BlockingFacade]:
        """The facade class of instances of ``async_class``: its name and capabilities."""
        return type(
            async_class.__name__,
            (cls,),
            {"async_class": async_class, "__qualname__": f"BlockingFacade[{async_class.__name__}]"},
        )

    @classmethod
    def around(cls, factory: AsyncFactory) -> BlockingFacade:
        """A facade, with a loop of its own, of the instance ``factory`` builds on that loop
        (unconnected, as built). :meth:`close` stops the loop."""
        loop = LoopThread()
        try:
            instance = loop.run(_built(factory))
        except BaseException:
            loop.close()
            raise
        return cls.of(type(instance))(instance, loop)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        inner = cls.async_class
        return super().capabilities() if inner is None else inner.capabilities()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """What ``coro`` returns, run on the adapter's event loop."""
        return self.loop.run(coro)

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Disconnect the adapter (waiting at most ``wait`` seconds) and stop the loop."""
        if self.loop.running_here():
            with contextlib.suppress(Exception):
                self.run(asyncio.wait_for(self.async_storage.disconnect(), wait))
        self.loop.close(wait)

    def __repr__(self) -> str:
        return f"<BlockingFacade of {self.async_storage!r}>"

    # -- the adapter's settings -----------------------------------------------------------

    @property
    def storage_name(self) -> str:
        return self.async_storage.storage_name

    @storage_name.setter
    def storage_name(self, name: str) -> None:
        self.async_storage.storage_name = name

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.async_storage.retry_policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self.async_storage.retry_policy = policy

    @property
    def serializer(self) -> Serializer:
        return self.async_storage.serializer

    @serializer.setter
    def serializer(self, serializer: Serializer) -> None:
        self.async_storage.serializer = serializer

    @property
    def record_codec(self) -> Any:
        return self.async_storage.record_codec

    def set_record_format(self, **settings: Any) -> None:
        self.async_storage.set_record_format(**settings)

    @property
    def cache(self) -> Any:
        return self.async_storage.cache

    @cache.setter
    def cache(self, cache: Any) -> None:
        self.async_storage.cache = cache

    @property
    def observer(self) -> Any:
        return self.async_storage.observer

    @observer.setter
    def observer(self, observer: Any) -> None:
        self.async_storage.observer = observer

    @property
    def operation_timeout(self) -> float:
        return self.async_storage.operation_timeout

    @operation_timeout.setter
    def operation_timeout(self, seconds: float | None) -> None:
        self.async_storage.operation_timeout = seconds

    def default_operation_timeout(self) -> float:
        return self.async_storage.default_operation_timeout()

    @property
    def _configuration(self) -> dict[str, Any]:  # type: ignore[override]
        return self.async_storage._configuration

    @property
    def _secrets(self) -> list[str]:  # type: ignore[override]
        return self.async_storage._secrets

    # -- the operations, run on the loop ----------------------------------------------------

    @mark_wrapped
    def connect(self) -> None:
        self.run(self.async_storage.connect())

    @mark_wrapped
    def disconnect(self) -> None:
        self.run(self.async_storage.disconnect())

    def is_connected(self) -> bool:
        return self.async_storage.is_connected()

    @mark_wrapped
    def retrieve(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.async_storage.retrieve(*args, **kwargs))

    @mark_wrapped
    def store(self, *args: Any, **kwargs: Any) -> str:
        return self.run(self.async_storage.store(*args, **kwargs))

    @mark_wrapped
    def store_error(self, *args: Any, **kwargs: Any) -> str:
        return self.run(self.async_storage.store_error(*args, **kwargs))

    @mark_wrapped
    def retrieve_error(self, *args: Any, **kwargs: Any) -> ErrorRecord:
        return self.run(self.async_storage.retrieve_error(*args, **kwargs))

    @mark_wrapped
    def delete(self, *args: Any, **kwargs: Any) -> None:
        self.run(self.async_storage.delete(*args, **kwargs))

    @mark_wrapped
    def store_many(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.run(self.async_storage.store_many(*args, **kwargs))

    @mark_wrapped
    def retrieve_many(self, *args: Any, **kwargs: Any) -> dict[Key, Any]:
        return self.run(self.async_storage.retrieve_many(*args, **kwargs))

    @mark_wrapped
    def delete_many(self, *args: Any, **kwargs: Any) -> int:
        return self.run(self.async_storage.delete_many(*args, **kwargs))

    @mark_wrapped
    def ping(self) -> bool:
        return self.run(self.async_storage.ping())

    @mark_wrapped
    def store_error_record(self, *args: Any, **kwargs: Any) -> str:
        return self.run(self.async_storage.store_error_record(*args, **kwargs))

    @mark_wrapped
    def purge_expired(self, *args: Any, **kwargs: Any) -> int:
        return self.run(self.async_storage.purge_expired(*args, **kwargs))

    @mark_wrapped
    def iter_keys(self, *args: Any, **kwargs: Any) -> Iterator[Key]:
        return self._pulled(self.async_storage.iter_keys(*args, **kwargs))

    @mark_wrapped
    def iter_error_keys(self, *args: Any, **kwargs: Any) -> Iterator[Key]:
        return self._pulled(self.async_storage.iter_error_keys(*args, **kwargs))

    @mark_wrapped
    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        fed = chunks if isinstance(chunks, AsyncIterable) else _fed(chunks)
        return self.run(self.async_storage.store_stream(flow_name, task_name, task_id, fed))

    @mark_wrapped
    def retrieve_stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return self._pulled(self.run(self.async_storage.retrieve_stream(*args, **kwargs)))

    def _pulled(self, iterable: AsyncIterable[T]) -> Iterator[T]:
        """``iterable`` pulled one item at a time from the loop; closed when dropped."""
        iterator = aiter(iterable)
        try:
            while (item := self.run(_next(iterator))) is not END:
                yield item
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                if not self.loop.running_here():
                    close().close()  # a closed loop, or a forked child's copy: nothing to run
                elif self.loop.in_loop_thread():
                    self.loop.start(close())  # collected on the loop's thread: do not wait
                else:
                    self.run(close())


async def _built(factory: AsyncFactory) -> AsyncDataStorage:
    instance = factory()
    if not isinstance(instance, AsyncDataStorage):
        raise TypeError(
            "the async_storage fixture must return a callable building an "
            f"AsyncDataStorage; it built {instance!r}"
        )
    return instance


# -- the async-only tests ------------------------------------------------------------------------


@contextlib.contextmanager
def no_unclosed_resources() -> Iterator[None]:
    """Fail when the block (or the garbage it leaves) warns of an unclosed resource
    (``ResourceWarning``, raised or not, in a ``__del__`` too). What code run before the block
    left is collected first and is not the block's: its warnings are written to stderr."""
    earlier: list[str] = []
    unraisable: list[str] = []
    found = earlier  # where the hook puts what it is given: earlier's, then the block's
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        found.append(f"{info.exc_type.__name__}: {info.exc_value} ({info.object!r})")

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            gc.collect()
            earlier += [str(w.message) for w in seen]
            del seen[:]
            found = unraisable
            yield
            gc.collect()
    finally:
        sys.unraisablehook = previous
    if earlier:
        sys.stderr.write("left before the block, not its own:\n" + "\n".join(earlier) + "\n")
    leaks = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    leaks += [text for text in unraisable if "ResourceWarning" in text or "unclosed" in text]
    assert not leaks, "unclosed resources:\n" + "\n".join(leaks)


async def _settled(
    awaitable: Coroutine[Any, Any, Any], seconds: float, name: str
) -> BaseException | None:
    """What ``awaitable`` raised (None if nothing); fails the test when it still runs after
    ``seconds`` (cancelling it)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        pytest.fail(f"{name} against an unreachable service still runs after {seconds} s")
    return task.exception()


class AsyncContract(ContractBase):
    """The fixtures that run the blocking suites on an async adapter (module docstring), and
    the tests only asyncio has: ``gathered_calls`` calls gathered on one instance; a
    ``store_many`` of ``cancelled_items`` items cancelled midway and calls cut by
    ``asyncio.wait_for`` leave the instance working and every earlier result whole; ``async
    with`` connects and closes, leaving no unclosed resource. (An unreachable service is
    :class:`AsyncUnreachableServiceContract`'s.)"""

    gathered_calls: ClassVar[int] = 200
    cancelled_items: ClassVar[int] = 3000

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def async_storage(self) -> AsyncFactory:
        """A zero-argument callable building a new, unconnected async instance."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define an async_storage fixture returning a "
            "zero-argument callable that builds an unconnected async adapter"
        )

    @pytest.fixture
    def storage(self, async_storage: AsyncFactory) -> Iterator[BlockingFacade]:
        """The instance ``async_storage`` builds, connected, behind a :class:`BlockingFacade`."""
        facade = BlockingFacade.around(async_storage)
        try:
            facade.connect()
            yield facade
        finally:
            facade.close()

    @pytest.fixture
    def storage_factory(
        self, storage: BlockingFacade, async_storage: AsyncFactory
    ) -> Callable[[], DataStorage]:
        """A new facade (with a loop of its own) of a new instance: what a forked child uses."""

        def make() -> DataStorage:
            fresh = BlockingFacade.around(async_storage)
            fresh.serializer = storage.serializer
            fresh.retry_policy = storage.retry_policy
            return fresh

        return make

    # -- tests ------------------------------------------------------------------------------

    def test_gathered_calls_share_one_instance(self, storage: BlockingFacade, flow: str) -> None:
        errors = offers(storage, "store_error", "retrieve_error")
        count = self.gathered_calls

        async def one(s: AsyncDataStorage, i: int) -> None:
            task = f"t{i % 7}"
            await s.store(flow, task, str(i), {"first": i})
            assert await s.retrieve(flow, task, str(i)) == {"first": i}
            await s.store(flow, task, str(i), {"i": i})
            if errors and i % 10 == 0:
                await s.store_error(None, flow, task, str(i), failure())
                assert (await s.retrieve_error(flow, task, str(i)))["task_id"] == str(i)

        async def scenario(s: AsyncDataStorage) -> None:
            await asyncio.gather(*(one(s, i) for i in range(count)))
            keys = [(flow, f"t{i % 7}", str(i)) for i in range(count)]
            values = await asyncio.gather(*(s.retrieve(*key) for key in keys))
            assert values == [{"i": i} for i in range(count)]
            assert await s.retrieve_many(keys) == {key: {"i": i} for i, key in enumerate(keys)}
            if offers(storage, "iter_keys"):
                assert sorted([key async for key in s.iter_keys(flow)]) == sorted(keys)

        storage.run(scenario(storage.async_storage))

    def test_a_cancelled_call_leaves_the_instance_usable(
        self, storage: BlockingFacade, flow: str
    ) -> None:
        count = self.cancelled_items
        old = {(flow, "bulk", str(i)): {"old": i} for i in range(0, count, 50)}
        new = {(flow, "bulk", str(i)): {"new": i, "pad": "x" * 200} for i in range(count)}

        async def scenario(s: AsyncDataStorage) -> None:
            await s.store(flow, "task", "kept", {"kept": True})
            await s.store_many([(*key, value) for key, value in old.items()])
            bulk = asyncio.ensure_future(s.store_many([(*key, v) for key, v in new.items()]))
            await asyncio.sleep(0.005)
            bulk.cancel()  # midway, or done already: either way nothing breaks
            with contextlib.suppress(asyncio.CancelledError):
                await bulk
            for seconds in (0, 0.0001, 0.001, 0.01):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.store(flow, "task", "cut", seconds), seconds)
                with contextlib.suppress(TimeoutError, ResultNotFound):
                    await asyncio.wait_for(s.retrieve(flow, "task", "kept"), seconds)
            # The instance works, and every result is whole: the old or the new one.
            assert await s.ping() is True
            await s.store(flow, "task", "after", [1])
            assert await s.retrieve(flow, "task", "after") == [1]
            assert await s.retrieve(flow, "task", "kept") == {"kept": True}
            got = await s.retrieve_many(list(new))
            assert set(old) <= set(got), "a cancelled store_many lost earlier results"
            for key, value in got.items():
                assert value == new[key] or value == old.get(key), f"{key}: {value!r:.100}"
            if offers(storage, "iter_keys"):
                # (A blocking adapter in threads may still be writing the cancelled batch.)
                others = {(flow, "task", "kept"), (flow, "task", "after")}
                listed = {key async for key in s.iter_keys(flow)}
                assert set(got) | others <= listed <= set(new) | others | {(flow, "task", "cut")}

        storage.run(scenario(storage.async_storage))

    def test_async_with_connects_and_closes(self, async_storage: AsyncFactory, flow: str) -> None:
        async def scenario() -> None:
            instance = async_storage()
            assert instance.is_connected() is False
            async with instance as entered:
                assert entered is instance and instance.is_connected() is True
                await instance.store(flow, "task", "id", {"v": 1})
                assert await instance.retrieve(flow, "task", "id") == {"v": 1}
            assert instance.is_connected() is False
            await instance.disconnect()  # idempotent
            async with instance:  # and again, connected anew
                assert await instance.ping() is True
            assert instance.is_connected() is False

        with no_unclosed_resources():
            asyncio.run(scenario())


class AsyncUnreachableServiceContract(UnreachableServiceContract):
    """:class:`~selinon_like.testing.UnreachableServiceContract` on an async adapter, and its
    async-only test: a call against an unreachable service fails with ``StorageUnavailable``
    within the ``operation_timeout`` set on the instance (half of ``unreachable_timeout``),
    whatever the driver's own timeouts. Add it to the test class of an async adapter that
    talks to a service, with an ``unreachable_async_storage`` fixture (module docstring);
    the kit builds the suite's ``unreachable_storage`` from it, behind a
    :class:`BlockingFacade`."""

    @pytest.fixture
    def unreachable_async_storage(self) -> AsyncFactory:
        """A callable building an instance on ``unreachable_port`` with ``secret`` in its
        configuration."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define an unreachable_async_storage fixture: a "
            "zero-argument callable building an unconnected instance on "
            "127.0.0.1:unreachable_port with secret in its configuration (see "
            "AsyncUnreachableServiceContract)"
        )

    @pytest.fixture
    def unreachable_storage(
        self, unreachable_async_storage: AsyncFactory, unreachable_timeout: float
    ) -> Iterator[BlockingFacade]:
        """The facade of the instance ``unreachable_async_storage`` builds (unconnected)."""
        facade = BlockingFacade.around(unreachable_async_storage)
        yield facade
        facade.close(unreachable_timeout)

    def test_an_unreachable_service_fails_within_operation_timeout(
        self, unreachable_async_storage: AsyncFactory, unreachable_timeout: float
    ) -> None:
        async def scenario() -> None:
            storage = unreachable_async_storage()
            storage.retry_policy = UNREACHABLE_RETRY
            storage.operation_timeout = unreachable_timeout / 2  # the driver's may be longer
            try:
                error = await _settled(storage.connect(), unreachable_timeout, "connect()")
                if error is not None:
                    _unavailable(error, "connect()")
                    assert not storage.is_connected()
                    return
                calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
                    "store()": lambda: storage.store("flow", "task", "id", 1),
                    "retrieve()": lambda: storage.retrieve("flow", "task", "id"),
                    "ping()": storage.ping,
                }
                for name, call in calls.items():
                    _unavailable(await _settled(call(), unreachable_timeout, name), name)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(storage.disconnect(), unreachable_timeout)

        asyncio.run(scenario())
