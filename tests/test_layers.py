"""The operation layers (selinon_like.layers), each alone, then composed on real adapters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from selinon_like import ResultNotFound, StorageError, StorageUnavailable
from selinon_like.cache import ResultCache
from selinon_like.errors import SerializationError
from selinon_like.keys import Key
from selinon_like.layers import (
    LAYERS,
    Call,
    cached,
    checked,
    compose,
    locked,
    observed,
    retried,
    translated,
)
from selinon_like.records import Kind, RecordStorage
from selinon_like.retry import RetryPolicy
from selinon_like.serializers import JSON
from selinon_like.storage import DataStorage
from selinon_like.tracing import Observer
from storages.memory import InMemoryStorage

KEY = ("flow", "task", "id")


class Fake:
    """The least a layer needs of a storage."""

    storage_name = "Fake"
    serializer = JSON

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


def call(storage: Any, op: str = "store", key: Key | None = KEY, **kwargs: Any) -> Call:
    args = (*KEY, kwargs.pop("result", {"a": 1})) if op == "store" else ()
    return Call(storage, op, lambda _s, *_a, **_k: None, args, {}, key=key, **kwargs)


class Failing:
    """A handler failing ``times`` times with ``exc``, then returning ``"ok"``."""

    def __init__(self, exc: BaseException, times: int) -> None:
        self.exc = exc
        self.times = times
        self.calls = 0

    def __call__(self, call: Call) -> Any:
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
    assert retried(inner)(call(fake)) == "ok"
    assert inner.calls == 3
    assert len(fake.recovered) == 2


def test_retried_gives_up_after_the_policy_with_the_last_error() -> None:
    inner = Failing(ConnectionError("reset"), 10)
    with pytest.raises(ConnectionError):
        retried(inner)(call(Fake()))
    assert inner.calls == 3


def test_retried_never_retries_a_permanent_error_or_a_stream() -> None:
    permanent = Failing(ConnectionError("auth"), 10)
    with pytest.raises(ConnectionError):
        retried(permanent)(call(Fake(transient=False)))
    assert permanent.calls == 1
    stream = Failing(ConnectionError("reset"), 10)
    with pytest.raises(ConnectionError):
        retried(stream)(call(Fake(), op="store_stream"))
    assert stream.calls == 1


def test_translated_wraps_driver_errors_chained_and_scrubbed() -> None:
    with pytest.raises(StorageUnavailable) as unavailable:
        translated(Failing(ConnectionError("password hunter2 refused"), 1))(call(Fake()))
    assert isinstance(unavailable.value.__cause__, ConnectionError)
    assert "hunter2" not in str(unavailable.value)
    assert "(after 3 attempts)" in str(unavailable.value)
    with pytest.raises(StorageError) as permanent:
        translated(Failing(KeyError("boom"), 1))(call(Fake()))
    assert type(permanent.value) is StorageError
    # Our own errors and "not offered" pass through untouched.
    with pytest.raises(ResultNotFound):
        translated(Failing(ResultNotFound("none"), 1))(call(Fake()))
    with pytest.raises(NotImplementedError):
        translated(Failing(NotImplementedError("no"), 1))(call(Fake()))


def test_locked_holds_the_lock_unless_thread_safe_and_always_for_connect() -> None:
    seen: list[bool] = []

    def inner(c: Call) -> None:
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

    unsafe, safe = Fake(thread_safe=False), Fake(thread_safe=True)
    locked(inner)(call(unsafe))
    locked(inner)(call(safe))
    locked(inner)(call(safe, op="connect", key=None))
    assert seen == [True, False, True]


def test_observed_reports_one_event_with_the_outcome() -> None:
    fake = Fake()
    fake.observer = Observer("Fake")
    observed(lambda c: "ok")(call(fake))
    with pytest.raises(KeyError):
        observed(Failing(KeyError("x"), 1))(call(fake))
    stats = fake.observer.summary()["operations"]["store"]
    assert (stats["count"], stats["errors"]) == (2, 1)


def test_cached_serves_hits_refreshes_on_store_and_forgets_on_failure() -> None:
    fake = Fake()
    fake.cache = ResultCache(max_size=10)
    inner = Failing(RuntimeError("no I/O on a hit"), 0)
    cached(inner)(call(fake, result={"v": 1}))  # store: refreshed
    assert cached(Failing(RuntimeError("no I/O"), 1))(call(fake, op="retrieve")) == {"v": 1}
    with pytest.raises(ConnectionError):
        cached(Failing(ConnectionError("x"), 1))(call(fake, result={"v": 2}))
    assert len(fake.cache) == 0  # a failed write may have happened: never serve the old copy
    cached(inner)(call(fake, result={"v": 3}))
    cached(inner)(call(fake, op="store_many", key=None, items=[(*KEY, {"v": 4})]))
    assert len(fake.cache) == 0


def test_compose_puts_the_first_layer_outermost() -> None:
    order: list[str] = []

    def tag(name: str) -> Any:
        def layer(inner: Any) -> Any:
            def handle(c: Call) -> Any:
                order.append(name)
                return inner(c)

            return handle

        return layer

    compose([tag("a"), tag("b")], lambda c: order.append("core"))(call(Fake()))
    assert order == ["a", "b", "core"]
    assert LAYERS[0] is checked and LAYERS[-1] is locked


# -- composed on real adapters ----------------------------------------------------------------


class Counting(InMemoryStorage):
    """An adapter whose store calls the inherited one: still one operation."""

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return super().store(flow_name, task_name, task_id, {"wrapped": result})


def test_a_store_calling_super_store_is_one_operation() -> None:
    events: list[dict[str, Any]] = []
    storage = Counting()
    storage.observer = Observer("Counting", tracers=[events.append])
    storage.connect()
    storage.store("f", "t", "1", 5)
    assert storage.retrieve("f", "t", "1") == {"wrapped": 5}
    assert [e["event"] for e in events] == ["connect", "store", "retrieve"]
    assert storage.observer.summary()["operations"]["store"]["count"] == 1


def test_the_default_store_many_counts_once_and_refreshes_the_cache() -> None:
    class FiveMethods(DataStorage):
        def __init__(self) -> None:
            self.data: dict[Key, Any] = {}

        def connect(self) -> None: ...

        def disconnect(self) -> None: ...

        def is_connected(self) -> bool:
            return True

        def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
            try:
                return self.data[(flow_name, task_name, task_id)]
            except KeyError:
                raise self.not_found(flow_name, task_name, task_id) from None

        def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
            self.data[(flow_name, task_name, task_id)] = result
            return task_id

    storage = FiveMethods()
    storage.observer = Observer("FiveMethods")
    storage.cache = ResultCache(max_size=10)
    storage.store("f", "t", "1", "old")
    storage.retrieve("f", "t", "1")
    storage.store_many([("f", "t", "1", "new"), ("f", "t", "2", "two")])
    assert storage.retrieve("f", "t", "1") == "new"  # the cache forgot the old value
    operations = storage.observer.summary()["operations"]
    assert operations["store"]["count"] == 1
    assert operations["store_many"]["count"] == 1
    assert FiveMethods.capabilities() == frozenset()


def test_a_bad_result_in_store_many_stores_nothing() -> None:
    storage = InMemoryStorage()
    storage.connect()
    with pytest.raises(SerializationError):
        storage.store_many([("f", "t", "1", 1), ("f", "t", "2", {1, 2})])
    assert list(storage.iter_keys()) == []


class Minimal(RecordStorage):
    """A record adapter with only the two required primitives."""

    def __init__(self) -> None:
        self.records: dict[tuple[Kind, Key], bytes] = {}

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def is_connected(self) -> bool:
        return True

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return self.records.get((kind, key))

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        self.records[(kind, key)] = data
        return "/".join(key)


class Flaky(Minimal):
    """Fails its first ``read`` with a transient error; lists more than one flow's keys."""

    thread_safe = True
    failures = 1

    def read(self, kind: Kind, key: Key) -> bytes | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("reset by peer")
        return super().read(kind, key)

    def remove(self, kind: Kind, key: Key) -> bool:
        return self.records.pop((kind, key), None) is not None

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return iter([key for k, key in list(self.records) if k == kind])

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        return [self.records.get((kind, key)) for key in keys]


def test_record_storage_builds_every_operation_on_read_and_write() -> None:
    storage = Minimal()
    assert storage.store("f", "t", "1", {"a": [1, 2]}) == "f/t/1"
    assert storage.retrieve("f", "t", "1") == {"a": [1, 2]}
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "2")
    storage.store_error({"n": 1}, "f", "t", "1", ValueError("bad"))
    record = storage.retrieve_error("f", "t", "1")
    assert (record["exception_type"], record["message"]) == ("builtins.ValueError", "bad")
    assert storage.retrieve("f", "t", "1") == {"a": [1, 2]}  # the error hid nothing
    assert storage.store_many([("f", "t", "3", 3)]) == ["f/t/3"]
    assert storage.retrieve_many([("f", "t", "3"), ("f", "t", "4")]) == {("f", "t", "3"): 3}
    with pytest.raises(NotImplementedError, match=r"Minimal\.remove\(\)"):
        storage.delete("f", "t", "1")
    assert "delete" not in Minimal.capabilities()
    assert {"store_error", "retrieve_error", "store_error_record"} <= Minimal.capabilities()
    assert "iter_keys" not in Minimal.capabilities()


def test_record_storage_retries_filters_listings_and_deletes() -> None:
    storage = Flaky()
    storage.retry_policy = RetryPolicy(attempts=2, backoff=0.0)
    storage.store("a", "t", "1", 1)
    storage.store("b", "t", "1", 2)
    assert storage.retrieve("a", "t", "1") == 1  # the first read failed and was retried
    assert list(storage.iter_keys("a")) == [("a", "t", "1")]
    assert sorted(storage.iter_keys()) == [("a", "t", "1"), ("b", "t", "1")]
    assert storage.delete_many([("a", "t", "1"), ("a", "t", "9")]) == 1
    assert {"delete", "delete_many", "iter_keys", "iter_error_keys"} <= Flaky.capabilities()


def test_retry_warnings_name_the_key_not_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    fake = Fake()
    with caplog.at_level(logging.WARNING, logger="selinon_like"):
        retried(Failing(ConnectionError("hunter2 was refused"), 1))(call(fake))
    assert "store of" in caplog.text and "hunter2" not in caplog.text
