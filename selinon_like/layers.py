"""The layers every storage operation passes through, composed once, outermost first:

1. :func:`checked` — the key (or every key of a bulk call) is validated before anything else:
   a bad key is a ``TypeError``/``ValueError`` that never reaches the service, the cache or
   the statistics.
2. :func:`cached` — a ``retrieve`` may be served from the storage's read cache (a hit costs no
   lock and no I/O); a write refreshes or evicts what it changed. The cache keeps a record as
   stored (the codec reports its bytes: compressed, with its expiry), not the value serialized
   again.
3. :func:`observed` — the trace/stats observer sees the operation once, with its duration and
   outcome (the error it raised, already translated).
4. :func:`translated` — a driver exception becomes :class:`StorageError`, or
   :class:`StorageUnavailable` when the adapter calls it transient, chained with ``from``, its
   text scrubbed of the storage's secrets (as is the text of an error of ours raised inside,
   such as an adapter's :class:`ConfigError` quoting a driver).
5. :func:`retried` — the call gets its deadline, ``operation_timeout`` seconds away
   (:mod:`selinon_like.deadline`), which adapters give their drivers as timeouts; a transient
   driver error is retried under the storage's :class:`~selinon_like.retry.RetryPolicy`, with
   ``recover()`` between attempts, while the deadline leaves room for the backoff and for an
   attempt as long as the last one; past it the call raises :class:`StorageUnavailable`.
   Streams (``store_stream``, ``retrieve_stream``) are neither retried nor bounded as a whole:
   each of their driver requests is, by the adapter's own timeouts.
6. :func:`bounded` — each attempt runs inside the adapter's ``bound_attempt(seconds)``, given
   what is left of the deadline (None for a stream), for a driver that bounds a whole
   operation itself (pymongo); only for an adapter that overrides it.
7. :func:`locked` — an adapter with ``thread_safe = False`` runs each attempt under the
   instance's ``RLock``; the lock is not held while a retry waits. (``connect`` and
   ``disconnect`` are always locked, by the storage's wrapper.)

Then the adapter's own method runs. Each layer is a function taking the next handler and
returning its own, so each can be tested alone. A handler takes the :class:`Call` and returns
a generator of steps (:mod:`selinon_like.steps`): the layers do no I/O themselves, they yield
it (the adapter's method, a retry's backoff, ``recover()``), so the same layers run a blocking
adapter under :func:`~selinon_like.steps.run` and an async one under
:func:`~selinon_like.steps.arun`. A layer that acts only before the call (the key check)
returns the next handler's generator itself, adding no frame. :func:`chain` composes, once
per combination, the layers a storage needs: no cache layer without a cache, no observer
layer without an observer, no lock layer for a thread-safe (or async) adapter, no attempt
bound for an adapter without one — a layer that would only pass the call on
still costs a call on every operation — and runs :func:`observed`, :func:`translated` and
:func:`retried` as one generator, which does what the three composed do with one frame a
call. A blocking adapter's operations go through :func:`blocking_chain`, which does the
same with plain calls: the first attempt is called directly, and only a retry (its backoff and
``recover()`` are steps) runs the generators, under :func:`~selinon_like.steps.run`; ~2k
client instructions less a call (callgrind, a MariaDB store or retrieve through the pool).
A call made from inside an operation on the same
instance and thread (an adapter's ``store`` calling ``super().store()``, a default
``store_many`` calling ``store``) is part of the outer operation: :func:`nested_chain` runs it
with the key check and the lock only.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from selinon_like.cutoff import within
from selinon_like.deadline import DEADLINE, remaining
from selinon_like.envelope import seen_stored, watch_stored
from selinon_like.errors import (
    ConfigError,
    ResultNotFound,
    SelinonLikeError,
    StorageError,
    StorageUnavailable,
)
from selinon_like.keys import Key, check_key
from selinon_like.masking import scrub
from selinon_like.retry import RetryPolicy
from selinon_like.steps import Sleep, Steps, arun, run

if TYPE_CHECKING:
    from selinon_like.cache import ResultCache
    from selinon_like.serializers import Serializer
    from selinon_like.tracing import Observer

__all__ = [
    "LAYERS",
    "Call",
    "Handler",
    "aguarded_iter",
    "blocking_chain",
    "bounded",
    "chain",
    "checked",
    "drives",
    "guarded_iter",
    "locked",
    "nested_chain",
    "observed",
    "retried",
    "translated",
]

log = logging.getLogger("selinon_like")

F = TypeVar("F", bound=Callable[..., Any])

# Operations whose input cannot be replayed: never retried.
NOT_RETRIED = frozenset({"store_stream", "retrieve_stream"})
# Writes whose keys the read cache must forget (or refresh, for ``store``).
_CACHE_WRITES = frozenset({"store", "delete", "store_many", "delete_many", "store_stream"})
# Errors that are ours (or the adapter's "not offered"), never translated or retried.
_OURS = (SelinonLikeError, NotImplementedError)


class Operated(Protocol):
    """What the layers use of a storage (``DataStorage`` has all of it)."""

    storage_name: str
    serializer: Serializer
    retry_policy: RetryPolicy
    cache: ResultCache | None
    observer: Observer | None
    _lock: threading.RLock
    _secrets: list[str]
    _op_timeout: float | None

    @property
    def thread_safe(self) -> bool: ...

    def default_operation_timeout(self) -> float: ...

    def bound_attempt(self, seconds: float | None) -> AbstractContextManager[object]: ...

    def is_transient(self, exc: BaseException) -> bool: ...

    def recover(self, exc: BaseException) -> Any: ...


class Call:
    """One operation on its way through the layers."""

    __slots__ = ("args", "fn", "items", "key", "kwargs", "op", "steps", "storage")

    def __init__(
        self,
        storage: Operated,
        op: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: Key | None,
        items: Sequence[tuple[Any, ...]] | None,
        steps: Callable[[Call], Steps[Any]] | None = None,
    ) -> None:
        self.storage = storage
        self.op = op
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.key = key
        self.items = items  # the tuples of a bulk call, each starting with a key triple
        # The steps ``fn`` drives (see drives()): run by the layers' own driver, inline.
        self.steps = steps

    def invoke(self) -> Any:
        """Run the adapter's own method (an awaitable, for an async adapter's)."""
        return self.fn(self.storage, *self.args, **self.kwargs)

    def describe(self) -> str:
        """``store of flow 'f', task 't', task id 'i'``: the operation and the key as the caller
        gave it (as ``not_found`` names it), each part cut to 80 characters, for messages."""
        if self.key is None:
            return self.op
        flow, task, task_id = (_shown(part) for part in self.key)
        return f"{self.op} of flow {flow}, task {task}, task id {task_id}"

    def failure(self, exc: BaseException) -> str:
        """The driver error's text, scrubbed of the storage's secrets."""
        return scrub(f"{type(exc).__name__}: {exc}", self.storage._secrets)


def _shown(part: object) -> str:
    # A key part may be anything until the key check has run (a message about a bad key too).
    text = repr(part)
    return text if len(text) <= 80 else text[:79] + "…"


Handler = Callable[[Call], Steps[Any]]
Layer = Callable[[Handler], Handler]


def checked(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        if call.key is not None:
            check_key(*call.key)
        if call.items is not None:
            for item in call.items:
                check_key(item[0], item[1], item[2])
        return inner(call)  # checked now, at the call: no step of its own

    return handle


def cached(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        storage = call.storage
        cache = storage.cache
        if cache is None:
            return (yield from inner(call))
        op = call.op
        if op == "retrieve" and call.key is not None:
            hit, value = cache.get(call.key)
            if storage.observer is not None:
                storage.observer.event(storage, "cache_hit" if hit else "cache_miss", call.key)
            if hit:
                return value
            watch_stored()
            result = yield from inner(call)
            # The record as stored (compressed, with its expiry), not the value re-serialized.
            cache.put(call.key, result, storage.serializer, seen_stored())
            return result
        if op not in _CACHE_WRITES:
            return (yield from inner(call))
        if op == "store":
            watch_stored()
        try:
            result = yield from inner(call)
        except BaseException:
            _forget(cache, call)  # the write may have happened: the cached copy is suspect
            raise
        if op == "store" and call.key is not None:
            stored = call.args[3] if len(call.args) > 3 else call.kwargs["result"]
            cache.put(call.key, stored, storage.serializer, seen_stored())
        else:
            _forget(cache, call)
        return result

    return handle


def _forget(cache: ResultCache, call: Call) -> None:
    if call.key is not None:
        cache.evict(call.key)
    for item in call.items or ():
        cache.evict((item[0], item[1], item[2]))


def observed(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        storage = call.storage
        observer = storage.observer
        if observer is None:
            return (yield from inner(call))
        started = time.perf_counter()
        try:
            result = yield from inner(call)
        except BaseException as exc:
            observer.event(storage, call.op, call.key, time.perf_counter() - started, exc)
            raise
        observer.event(storage, call.op, call.key, time.perf_counter() - started)
        return result

    return handle


def translated(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        try:
            return (yield from inner(call))
        except _OURS as exc:
            if not isinstance(exc, _UNQUOTED) and call.storage._secrets:
                _scrub_ours(exc, call.storage._secrets)
            raise
        except Exception as exc:
            raise translate(call, exc) from exc

    return handle


# Our errors that never quote a driver or an option: their text need not be scrubbed.
_UNQUOTED = (ResultNotFound, NotImplementedError)


def _scrub_ours(exc: BaseException, secrets: list[str]) -> None:
    """Remove the storage's secrets from the text of one of our errors raised inside an
    operation (an adapter's message may quote a driver's, which may quote a secret)."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            problem.message = scrub(problem.message, secrets)
    exc.args = tuple(scrub(arg, secrets) if isinstance(arg, str) else arg for arg in exc.args)


def translate(call: Call, exc: BaseException) -> StorageError:
    """The :class:`StorageError` a driver exception raised by ``call`` becomes."""
    storage = call.storage
    transient = storage.is_transient(exc)
    detail = call.failure(exc)
    attempts = storage.retry_policy.attempts
    if transient and attempts > 1 and call.op not in NOT_RETRIED:
        detail += f" (after {attempts} attempts)"
    kind = StorageUnavailable if transient else StorageError
    return kind(f"{storage.storage_name}: {call.describe()} failed: {detail}")


def _call_deadline(storage: Operated) -> tuple[float, float, float]:
    """``(began, deadline, limit)`` of a retried call on ``storage``: its
    ``operation_timeout`` from now, or an enclosing call's deadline when that comes first."""
    limit = storage._op_timeout
    if limit is None:
        limit = storage.default_operation_timeout()
    began = time.monotonic()
    deadline = began + limit
    outer = DEADLINE.get()
    if outer is not None and outer < deadline:
        deadline = outer
    return began, deadline, limit


def retried(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        storage = call.storage
        if call.op in NOT_RETRIED:
            return (yield from inner(call))
        started, deadline, limit = _call_deadline(storage)
        token = DEADLINE.set(deadline)
        try:
            try:
                return (yield from inner(call))  # the first attempt: nothing else to set up
            except _OURS:
                raise
            except Exception as exc:
                if not storage.is_transient(exc):
                    raise
                return (yield from _retry(call, inner, exc, started, deadline, limit))
        finally:
            DEADLINE.reset(token)

    return handle


def _retry(
    call: Call,
    inner: Handler,
    error: Exception,
    started: float,
    deadline: float,
    limit: float,
) -> Steps[Any]:
    """Retry ``call`` after its first attempt failed with the transient ``error``, while the
    policy allows attempts and the deadline leaves time for one."""
    storage = call.storage
    policy = storage.retry_policy
    last = time.monotonic() - started  # how long the failed attempt took
    for attempt in range(1, policy.attempts):
        delay = policy.delay(attempt - 1)
        # A retry as slow as the last attempt would end past the deadline: give up now rather
        # than overrun it (a driver given the deadline would be cut at it anyway).
        if time.monotonic() + delay + last > deadline:
            raise _out_of_time(call, error, attempt, started, limit) from error
        log.warning(
            "%s: %s failed (%s), retry %d of %d in %.3fs",
            storage.storage_name,
            call.describe(),
            call.failure(error),
            attempt,
            policy.attempts - 1,
            delay,
        )
        if storage.observer is not None:
            storage.observer.event(storage, "retry", call.key, time.monotonic() - started, error)
        yield Sleep(delay)
        yield storage.recover, (error,)
        began = time.monotonic()
        if began >= deadline:
            raise _out_of_time(call, error, attempt, started, limit) from error
        try:
            return (yield from inner(call))
        except _OURS:
            raise
        except Exception as exc:
            if not storage.is_transient(exc):
                raise
            error = exc
            last = time.monotonic() - began
    if time.monotonic() >= deadline:
        raise _out_of_time(call, error, policy.attempts, started, limit) from error
    raise error


def _out_of_time(
    call: Call, error: BaseException, attempts: int, started: float, limit: float
) -> StorageUnavailable:
    """The error of a call that gave up at its deadline after ``attempts`` attempts."""
    return StorageUnavailable(
        f"{call.storage.storage_name}: {call.describe()} failed: {call.failure(error)} (gave "
        f"up after {attempts} attempt{'s' if attempts > 1 else ''} in "
        f"{time.monotonic() - started:.2f} s: operation_timeout is {limit:g} s)"
    )


def bounded(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        with call.storage.bound_attempt(remaining()):
            return (yield from inner(call))

    return handle


def locked(inner: Handler) -> Handler:
    def handle(call: Call) -> Steps[Any]:
        with call.storage._lock:
            return (yield from inner(call))

    return handle


def invoke(call: Call) -> Steps[Any]:
    """The innermost handler: the adapter's own method, as one step; or, for a method that
    only drives steps of its own (:func:`drives`), those steps, in the layers' driver."""
    steps = call.steps
    if steps is not None:
        return (yield from steps(call))
    return (yield call.invoke, ())


def drives(steps: Callable[[Call], Steps[Any]]) -> Callable[[F], F]:
    """Mark an operation whose whole body drives ``steps(call)`` (``RecordStorage.retrieve``
    runs ``_retrieve_steps``): the layers yield from those steps instead of calling the
    method, which would start a second driver. A subclass's own method is not marked, so
    an override is always called."""

    def mark(method: F) -> F:
        method.__selinon_steps__ = steps  # type: ignore[attr-defined]
        return method

    return mark


def timed_invoke(call: Call) -> Steps[Any]:
    """The innermost handler of an async adapter: its method, awaited within what is left of
    the call's deadline (cancelled at it: the attempt then fails with ``TimeoutError``, a
    transient error the retry layer turns into :class:`StorageUnavailable` past the
    deadline). A blocking adapter gives the time left to its driver instead."""
    return (yield _attempt, (call,))


def _attempt(call: Call) -> Any:
    # A plain function, the driver awaiting what it gives: no coroutine of its own a call. A
    # method that only drives steps (drives()) is not called: its steps are awaited under a
    # driver of their own (within() needs one awaitable), one coroutine less than the method.
    steps = call.steps
    outcome = arun(steps(call)) if steps is not None else call.invoke()
    if not inspect.isawaitable(outcome):
        return outcome  # an async generator (a listing), or a plain method's value
    seconds = remaining()
    return outcome if seconds is None else within(outcome, seconds)


LAYERS: tuple[Layer, ...] = (checked, cached, observed, translated, retried, bounded, locked)


def compose(layers: Sequence[Layer], core: Handler = invoke) -> Handler:
    """``layers`` around ``core``, the first outermost."""
    handler = core
    for layer in reversed(layers):
        handler = layer(handler)
    return handler


def chain(
    cache: bool, observer: bool, lock: bool, bound: bool = False, timed: bool = False
) -> Handler:
    """:data:`LAYERS` without :func:`cached` (``cache`` false), :func:`observed`
    (``observer`` false), :func:`bounded` (``bound`` false) or :func:`locked` (``lock``
    false); around :func:`timed_invoke` (``timed``, an async adapter's) or :func:`invoke`.
    Composed once per combination."""
    return _chain(cache, observer, lock, bound, timed)


@functools.cache
def _chain(cache: bool, observer: bool, lock: bool, bound: bool, timed: bool) -> Handler:
    inner = [layer for layer, wanted in ((bounded, bound), (locked, lock)) if wanted]
    core = compose(inner, timed_invoke if timed else invoke)
    return compose([checked, cached] if cache else [checked], _fused(observer, core))


def _report_failure(observer: Any, call: Call, started: float, exc: BaseException) -> None:
    if observer is not None:
        observer.event(call.storage, call.op, call.key, time.perf_counter() - started, exc)


def _fused(observe: bool, inner: Handler) -> Handler:
    """:func:`observed` (when ``observe``), :func:`translated` and :func:`retried` around
    ``inner``, as one generator: what :func:`compose` of the three does, with one frame per
    call instead of three (each layer's generator costs a call, its creation and a level of
    ``yield from`` on every step: about 10k instructions a call in all, measured with
    callgrind). The layers stay the definition; a test checks the two agree."""

    def handle(call: Call) -> Steps[Any]:
        storage = call.storage
        observer = storage.observer if observe else None
        started = time.perf_counter() if observer is not None else 0.0
        try:
            try:
                if call.op in NOT_RETRIED:
                    result = yield from inner(call)
                else:
                    began, deadline, limit = _call_deadline(storage)
                    token = DEADLINE.set(deadline)
                    try:
                        try:
                            result = yield from inner(call)
                        except _OURS:
                            raise
                        except Exception as exc:
                            if not storage.is_transient(exc):
                                raise
                            result = yield from _retry(call, inner, exc, began, deadline, limit)
                    finally:
                        DEADLINE.reset(token)
            except _OURS as exc:
                if not isinstance(exc, _UNQUOTED) and storage._secrets:
                    _scrub_ours(exc, storage._secrets)
                raise
            except Exception as exc:
                raise translate(call, exc) from exc
        except BaseException as exc:
            _report_failure(observer, call, started, exc)
            raise
        if observer is not None:
            observer.event(storage, call.op, call.key, time.perf_counter() - started)
        return result

    return handle


Blocking = Callable[[Call], Any]


def blocking_chain(cache: bool, observer: bool, lock: bool, bound: bool = False) -> Blocking:
    """What :func:`chain` runs, for a blocking adapter, as plain calls: the handler returns
    the operation's value instead of a generator for :func:`~selinon_like.steps.run` to
    drive. :func:`checked`, then :func:`observed`, :func:`translated` and :func:`retried`
    as :func:`_fused` does them, with the first attempt called directly (:func:`locked` and
    :func:`bounded` as ``with`` blocks around it); a retry, which yields its backoff and
    ``recover()``, runs the generators of :func:`chain` under ``run``. With a cache, the
    generators of :func:`chain` throughout. Composed once per combination."""
    return _blocking_chain(cache, observer, lock, bound)


@functools.cache
def _blocking_chain(cache: bool, observer: bool, lock: bool, bound: bool) -> Blocking:
    generators = _chain(cache, observer, lock, bound, False)
    if cache:
        return functools.partial(_driven, generators)
    inner = [layer for layer, wanted in ((bounded, bound), (locked, lock)) if wanted]
    attempt = _plain_attempt(lock, bound)
    return checked(_fused_blocking(observer, attempt, compose(inner, invoke)))


def _driven(handler: Handler, call: Call) -> Any:
    return run(handler(call))


def _plain_attempt(lock: bool, bound: bool) -> Blocking:
    """One attempt of a blocking call, as :func:`locked` and :func:`bounded` around
    :func:`invoke` do it, without their generators."""

    def attempt(call: Call) -> Any:
        steps = call.steps
        if steps is not None:
            return run(steps(call))
        return call.fn(call.storage, *call.args, **call.kwargs)

    if not (lock or bound):
        return attempt
    if not bound:

        def locked_attempt(call: Call) -> Any:
            with call.storage._lock:
                return attempt(call)

        return locked_attempt

    def bounded_attempt(call: Call) -> Any:
        storage = call.storage
        with storage.bound_attempt(remaining()):
            if not lock:
                return attempt(call)
            with storage._lock:
                return attempt(call)

    return bounded_attempt


def _fused_blocking(observe: bool, attempt: Blocking, inner: Handler) -> Blocking:
    """:func:`_fused` for a blocking adapter: the first attempt is ``attempt(call)``, a plain
    call; after a transient error the retries are :func:`_retry`'s steps on ``inner`` (the
    generator of the same attempt) under ``run``. A test checks it does what the layers
    composed one by one do."""

    def handle(call: Call) -> Any:
        storage = call.storage
        observer = storage.observer if observe else None
        started = time.perf_counter() if observer is not None else 0.0
        try:
            try:
                if call.op in NOT_RETRIED:
                    result = attempt(call)
                else:
                    began, deadline, limit = _call_deadline(storage)
                    token = DEADLINE.set(deadline)
                    try:
                        try:
                            result = attempt(call)
                        except _OURS:
                            raise
                        except Exception as exc:
                            if not storage.is_transient(exc):
                                raise
                            result = run(_retry(call, inner, exc, began, deadline, limit))
                    finally:
                        DEADLINE.reset(token)
            except _OURS as exc:
                if not isinstance(exc, _UNQUOTED) and storage._secrets:
                    _scrub_ours(exc, storage._secrets)
                raise
            except Exception as exc:
                raise translate(call, exc) from exc
        except BaseException as exc:
            _report_failure(observer, call, started, exc)
            raise
        if observer is not None:
            observer.event(storage, call.op, call.key, time.perf_counter() - started)
        return result

    return handle


@functools.cache
def nested_chain(lock: bool) -> Handler:
    """What runs an operation called from inside another on the same instance and thread:
    the key check, and the lock when the adapter needs one (an ``RLock``, already held)."""
    return compose([checked, locked] if lock else [checked])


def guarded_iter(storage: Operated, op: str, iterator: Iterator[Any]) -> Iterator[Any]:
    """Iterate a driver's iterator with the lock held per step (unless the adapter is
    thread-safe) and its errors translated."""
    lock = None if storage.thread_safe else storage._lock
    call = Call(storage, op, _no_fn, (), {}, None, None)
    while True:
        try:
            if lock is None:
                item = next(iterator)
            else:
                with lock:
                    item = next(iterator)
        except StopIteration:
            return
        except _OURS:
            raise
        except Exception as exc:
            raise translate(call, exc) from exc
        yield item


async def aguarded_iter(storage: Operated, op: str, iterator: Any) -> AsyncIterator[Any]:
    """:func:`guarded_iter` of an async adapter's async iterator (no lock: one event loop)."""
    call = Call(storage, op, _no_fn, (), {}, None, None)
    while True:
        try:
            item = await anext(iterator)
        except StopAsyncIteration:
            return
        except _OURS:
            raise
        except Exception as exc:
            raise translate(call, exc) from exc
        yield item


def _no_fn(storage: Any) -> None:  # the Call of an iteration step has no method of its own
    return None
