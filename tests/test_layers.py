"""The operation layers (selinon_like.layers), each alone, then composed on real adapters."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, cast

import pytest

from selinon_like import ResultNotFound, StorageError, StorageUnavailable
from selinon_like.cache import ResultCache
from selinon_like.keys import Key
from selinon_like.layers import (
    Call,
    chain,
    checked,
    locked,
    retried,
    translated,
)
from selinon_like.retry import RetryPolicy
from selinon_like.serializers import JSON
from selinon_like.steps import Steps, arun, run
from selinon_like.tracing import Observer
from storages.memory import InMemoryStorage

KEY = ("flow", "task", "id")


class Fake:
    """The least a layer needs of a storage."""

    storage_name = "Fake"
    serializer = JSON
    _op_timeout: float | None = None  # the default: default_operation_timeout()

    def __init__(self, thread_safe: bool = False, transient: bool = True) -> None:
        self.thread_safe = thread_safe
        self.retry_policy = RetryPolicy(attempts=3, backoff=0.0, jitter=False)
        self.cache: ResultCache | None = None
        self.observer: Observer | None = None
        self._lock = threading.RLock()
        self._secrets = ["hunter2"]
        self._transient = transient
        self.recovered: list[BaseException] = []

    def is_transient(self, exc: BaseException) -> bool:
        return self._transient and isinstance(exc, ConnectionError)

    def recover(self, exc: BaseException) -> None:
        self.recovered.append(exc)

    def default_operation_timeout(self) -> float:
        return 60.0

    def bound_attempt(self, seconds: float | None) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def call(
    storage: Any,
    op: str = "store",
    key: Key | None = KEY,
    items: list[tuple[Any, ...]] | None = None,
    result: Any = None,
) -> Call:
    args = (*KEY, {"a": 1} if result is None else result) if op == "store" else ()
    return Call(storage, op, lambda _s, *_a, **_k: None, args, {}, key, items)


class Failing:
    """A handler failing ``times`` times with ``exc``, then returning ``"ok"``."""

    def __init__(self, exc: BaseException, times: int) -> None:
        self.exc = exc
        self.times = times
        self.calls = 0

    def __call__(self, call: Call) -> Steps[Any]:
        return (yield self.attempt, ())

    async def attempt_of(self, _storage: Any) -> str:
        return self.attempt()

    def attempt(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.exc
        return "ok"


def test_checked_refuses_a_bad_key_before_the_inner_layers() -> None:
    inner = Failing(RuntimeError("must not run"), 1)
    with pytest.raises(TypeError):
        checked(inner)(call(Fake(), key=("flow", 1, "id")))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        checked(inner)(call(Fake(), op="store_many", key=None, items=[("f", "t", "")]))
    assert inner.calls == 0


def test_retried_retries_transient_errors_and_recovers_between_attempts() -> None:
    fake = Fake()
    inner = Failing(ConnectionError("reset"), 2)
    assert run(retried(inner)(call(fake))) == "ok"
    assert inner.calls == 3
    assert len(fake.recovered) == 2


def test_the_same_layers_drive_an_async_method() -> None:
    """The layers yield their I/O: under arun the adapter's coroutine is awaited, the backoff
    is asyncio.sleep and an async recover() is awaited, with the same retries and errors."""
    fake = Fake()
    recovered: list[BaseException] = []

    async def recover(exc: BaseException) -> None:
        recovered.append(exc)

    fake.recover = recover  # type: ignore[method-assign,assignment]
    attempts: list[int] = []

    async def method(_storage: Any, *_args: Any) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("reset")
        return "ok"

    handler = chain(False, False, False)
    store = Call(cast(Any, fake), "store", method, (*KEY, 1), {}, KEY, None)
    assert asyncio.run(arun(handler(store))) == "ok"
    assert len(attempts) == 3 and len(recovered) == 2
    fail = Call(
        cast(Any, fake), "store", Failing(KeyError("boom"), 1).attempt_of, (), {}, KEY, None
    )
    with pytest.raises(StorageError, match="boom"):
        asyncio.run(arun(handler(fail)))


def test_retried_gives_up_after_the_policy_with_the_last_error() -> None:
    inner = Failing(ConnectionError("reset"), 10)
    with pytest.raises(ConnectionError):
        run(retried(inner)(call(Fake())))
    assert inner.calls == 3


def test_retried_never_retries_a_permanent_error_or_a_stream() -> None:
    permanent = Failing(ConnectionError("auth"), 10)
    with pytest.raises(ConnectionError):
        run(retried(permanent)(call(Fake(transient=False))))
    assert permanent.calls == 1
    stream = Failing(ConnectionError("reset"), 10)
    with pytest.raises(ConnectionError):
        run(retried(stream)(call(Fake(), op="store_stream")))
    assert stream.calls == 1


def test_translated_wraps_driver_errors_chained_and_scrubbed() -> None:
    with pytest.raises(StorageUnavailable) as unavailable:
        run(translated(Failing(ConnectionError("password hunter2 refused"), 1))(call(Fake())))
    assert isinstance(unavailable.value.__cause__, ConnectionError)
    assert "hunter2" not in str(unavailable.value)
    assert "(after 3 attempts)" in str(unavailable.value)
    with pytest.raises(StorageError) as permanent:
        run(translated(Failing(KeyError("boom"), 1))(call(Fake())))
    assert type(permanent.value) is StorageError
    # Our own errors and "not offered" pass through untouched.
    with pytest.raises(ResultNotFound):
        run(translated(Failing(ResultNotFound("none"), 1))(call(Fake())))
    with pytest.raises(NotImplementedError):
        run(translated(Failing(NotImplementedError("no"), 1))(call(Fake())))


def test_locked_holds_the_lock_and_chains_leave_out_what_a_storage_does_not_need() -> None:
    seen: list[bool] = []

    def inner(c: Call) -> Steps[None]:
        yield from ()
        free: list[bool] = []

        def probe() -> None:  # another thread can take the lock only if nobody holds it
            taken = c.storage._lock.acquire(blocking=False)
            if taken:
                c.storage._lock.release()
            free.append(taken)

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        seen.append(not free[0])

    run(locked(inner)(call(Fake())))
    run(inner(call(Fake())))
    assert seen == [True, False]
    assert chain(True, True, True) is chain(True, True, True)  # composed once


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("observer", [False, True])
def test_a_chain_leaves_out_the_layers_it_is_told_to(cache: bool, observer: bool) -> None:
    fake = Fake()
    fake.cache = ResultCache(max_size=10)
    fake.observer = Observer("Fake")
    run(chain(cache, observer, False)(call(fake, op="store")))
    assert len(fake.cache) == int(cache)  # the cache layer refreshed the stored key
    assert list(fake.observer.operations) == (["store"] if observer else [])


def test_connect_is_locked_even_on_a_thread_safe_adapter() -> None:
    holder: list[bool] = []

    class Safe(InMemoryStorage):
        thread_safe = True

        def connect(self) -> None:
            holder.append(self._lock._is_owned())  # type: ignore[attr-defined]

    Safe().connect()
    assert holder == [True]


# (error an attempt raises, how many attempts raise it, whether it is transient): the
# outcomes the fused chains must give as the layers composed one by one do.
CHAIN_OUTCOMES = [
    (None, 0, True),
    (ConnectionError("reset, password hunter2"), 2, True),  # retried, then "ok"
    (ConnectionError("reset, password hunter2"), 9, True),  # retried past the policy
    (ConnectionError("refused, password hunter2"), 1, False),  # not transient
    (KeyError("boom, password hunter2"), 1, True),  # a driver error: translated
    (ResultNotFound("nothing there"), 1, True),  # ours: raised as it is
    (StorageError("ours, quoting hunter2"), 1, True),  # ours: scrubbed
]


@pytest.mark.parametrize(("error", "times", "transient"), CHAIN_OUTCOMES)
@pytest.mark.parametrize("op", ["store", "store_stream"])  # retried, and not
def test_a_chain_does_what_its_layers_composed_one_by_one_do(
    error: BaseException | None, times: int, transient: bool, op: str
) -> None:
    """chain() runs observed, translated and retried as one generator (fewer frames a call):
    the outcome, the error's type and text, the attempts, recover() calls and the observer's
    counts are those of the layers composed one by one (compose(LAYERS))."""
    from selinon_like.layers import LAYERS, bounded, cached, compose, locked

    def outcome(handler_of: Any) -> tuple[Any, ...]:
        fake = Fake(transient=transient)
        fake.observer = Observer("Fake")
        inner = Failing(error or RuntimeError("never"), times)
        try:
            value: Any = run(handler_of(inner)(call(fake, op=op)))
        except BaseException as exc:
            value = (type(exc), str(exc), type(exc.__cause__))
        stats = fake.observer.operations[op]
        return value, inner.calls, len(fake.recovered), stats.count, stats.errors

    def composed(inner: Any) -> Any:
        left_out = (cached, bounded, locked)
        return compose([layer for layer in LAYERS if layer not in left_out], inner)

    def chained(inner: Any) -> Any:
        from selinon_like.layers import _fused

        return checked(_fused(True, inner))

    expected = outcome(composed)
    assert outcome(chained) == expected
    assert "hunter2" not in str(expected[0])


@pytest.mark.parametrize(("error", "times", "transient"), CHAIN_OUTCOMES)
@pytest.mark.parametrize("op", ["store", "store_stream"])  # retried, and not
@pytest.mark.parametrize("drives", [False, True])  # the method, or the steps it drives
@pytest.mark.parametrize(("lock", "bound"), [(False, False), (True, False), (True, True)])
def test_the_blocking_chain_does_what_its_layers_composed_one_by_one_do(
    error: BaseException | None,
    times: int,
    transient: bool,
    op: str,
    drives: bool,
    lock: bool,
    bound: bool,
) -> None:
    """blocking_chain() calls the first attempt directly, without generators, and runs
    retries through the layers' steps: the outcome, the error's type, text and cause, the
    attempts, recover() calls, the lock held and the attempt bounded on each attempt, the
    observer's counts and trace events are those of the layers composed one by one under
    run(), and the deadline is set during the call and gone after it."""
    from selinon_like.deadline import current
    from selinon_like.layers import LAYERS, blocking_chain, bounded, cached, compose, invoke

    def outcome(blocking: bool) -> tuple[Any, ...]:
        fake = Fake(transient=transient)
        events: list[tuple[str, str | None]] = []
        fake.observer = Observer("Fake", [lambda e: events.append((e["event"], e["error"]))])
        inner = Failing(error or RuntimeError("never"), times)
        seen: list[tuple[bool, bool]] = []
        bounds: list[float | None] = []

        @contextlib.contextmanager
        def bound_attempt(seconds: float | None) -> Any:
            bounds.append(seconds)
            yield

        fake.bound_attempt = bound_attempt  # type: ignore[method-assign]

        def attempt() -> str:
            seen.append((fake._lock._is_owned(), current() is not None))  # type: ignore[attr-defined]
            return inner.attempt()

        def steps(_call: Call) -> Steps[str]:
            return (yield attempt, ())

        fn = lambda _storage, *_args, **_kwargs: attempt()  # noqa: E731
        the_call = Call(cast(Any, fake), op, fn, (), {}, KEY, None, steps if drives else None)
        try:
            if blocking:
                value: Any = blocking_chain(False, True, lock, bound)(the_call)
            else:
                left_out = [cached] + ([] if bound else [bounded]) + ([] if lock else [locked])
                layers = [layer for layer in LAYERS if layer not in left_out]
                value = run(compose(layers, invoke)(the_call))
        except BaseException as exc:
            value = (type(exc), str(exc), type(exc.__cause__))
        stats = fake.observer.operations[op]
        return (
            value,
            inner.calls,
            len(fake.recovered),
            seen,
            [seconds is None for seconds in bounds],
            stats.count,
            stats.errors,
            events,
            current(),
        )

    expected = outcome(blocking=False)
    assert outcome(blocking=True) == expected
    assert "hunter2" not in str(expected[0])
    assert expected[-1] is None
