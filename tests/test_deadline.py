"""One deadline per call (SPEC §14): ``operation_timeout`` bounds a whole call — attempts,
backoff and reconnects — and past it the call raises StorageUnavailable. The deadline reaches
the adapter (``selinon_like.deadline.remaining``) so a driver request can be cut at it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import InProcess

from selinon_like import ConfigError, DataStorage, StoragePool, deadline
from selinon_like.errors import StorageError, StorageUnavailable
from selinon_like.retry import RetryPolicy

# Generous for a loaded 2-core machine, still far below what the old retry loop took.
SLACK = 0.15


class Slow(InProcess, DataStorage):
    """Each attempt takes ``attempt`` seconds and fails with a transient error ``failures``
    times; records what ``deadline.remaining`` said at each attempt."""

    thread_safe = True

    def __init__(self, attempt: float = 0.0, failures: int = 1_000, honour: bool = False) -> None:
        self.attempt = attempt
        self.failures = failures
        self.honour = honour  # like a driver given the remaining time as its timeout
        self.seen: list[float] = []

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        return self._attempt()

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return str(self._attempt())

    def _attempt(self) -> str:
        left = deadline.remaining(3600.0)
        self.seen.append(left)
        time.sleep(min(self.attempt, left) if self.honour else self.attempt)
        if len(self.seen) <= self.failures:
            if self.honour and self.attempt >= left:
                raise TimeoutError("the driver's timeout (the call's remaining time) passed")
            raise ConnectionError("connection reset")
        return "ok"


def _timed(fn: Any) -> tuple[float, BaseException | None]:
    began = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return time.monotonic() - began, exc
    return time.monotonic() - began, None


def test_retries_stop_at_the_deadline() -> None:
    # The case: each attempt waits its full driver timeout, and retries used to add
    # one more timeout each (8.1 s for a 2 s + 2 s configuration).
    storage = Slow(attempt=0.4)
    storage.retry_policy = RetryPolicy(attempts=10, backoff=0.0, jitter=False)
    storage.operation_timeout = 1.0
    elapsed, error = _timed(lambda: storage.store("f", "t", "1", 1))
    assert isinstance(error, StorageUnavailable), error
    assert elapsed <= 1.0 + SLACK, elapsed
    assert len(storage.seen) == 2  # a third 0.4 s attempt would have ended past 1 s
    assert "gave up after 2 attempts" in str(error) and "operation_timeout is 1 s" in str(error)
    assert isinstance(error.__cause__, ConnectionError)


def test_a_driver_given_the_remaining_time_is_cut_at_the_deadline() -> None:
    storage = Slow(attempt=5.0, honour=True)
    storage.retry_policy = RetryPolicy(attempts=3, backoff=0.0, jitter=False)
    storage.operation_timeout = 0.6
    elapsed, error = _timed(lambda: storage.retrieve("f", "t", "1"))
    assert isinstance(error, StorageUnavailable), error
    assert 0.6 - SLACK <= elapsed <= 0.6 + SLACK, elapsed
    assert storage.seen[0] <= 0.6
    assert len(storage.seen) == 1


def test_quick_failures_are_still_retried_within_the_deadline() -> None:
    storage = Slow(attempt=0.0, failures=2)
    storage.retry_policy = RetryPolicy(attempts=3, backoff=0.01, jitter=False)
    storage.operation_timeout = 5.0
    assert storage.retrieve("f", "t", "1") == "ok"
    assert len(storage.seen) == 3
    # each attempt saw the time left of the same deadline
    assert 4.5 < storage.seen[-1] <= storage.seen[0] <= 5.0


def test_attempts_run_out_before_the_deadline_as_before() -> None:
    storage = Slow(attempt=0.0)
    storage.retry_policy = RetryPolicy(attempts=3, backoff=0.0, jitter=False)
    storage.operation_timeout = 30.0
    with pytest.raises(StorageUnavailable, match=r"after 3 attempts\)"):
        storage.store("f", "t", "1", 1)
    assert len(storage.seen) == 3


def test_the_deadline_is_the_callers_own_outside_a_call_and_an_enclosing_one_wins() -> None:
    assert deadline.remaining(7.0) == 7.0 and deadline.remaining() is None
    storage = Slow(attempt=0.0, failures=0)
    storage.operation_timeout = 10.0
    storage.retrieve("f", "t", "1")
    assert 9.0 < storage.seen[-1] <= 10.0
    with deadline.bounded(0.5):
        storage.retrieve("f", "t", "1")
        assert deadline.remaining(9.0) <= 0.5
    assert storage.seen[-1] <= 0.5
    assert deadline.current() is None  # reset after the call and after the block


def test_the_default_is_the_adapters_and_the_value_is_checked() -> None:
    storage = Slow()
    assert storage.operation_timeout == storage.default_operation_timeout() == 60.0
    storage.operation_timeout = 2
    assert storage.operation_timeout == 2.0
    wrongs: list[Any] = [0, -1, float("inf"), "3", True]
    for wrong in wrongs:
        with pytest.raises(ValueError, match="operation_timeout"):
            storage.operation_timeout = wrong
    storage.operation_timeout = None
    assert storage.operation_timeout == 60.0


def _yaml(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: S\n    import: test_deadline\n    classname: Slow\n" + line
    )
    return path


def test_operation_timeout_from_yaml(tmp_path: Path) -> None:
    pool = StoragePool.from_yaml(_yaml(tmp_path, "    operation_timeout: 2.5\n"))
    assert pool.get_connected_storage("S").operation_timeout == 2.5
    pool = StoragePool.from_yaml(_yaml(tmp_path, ""))
    assert pool.get_connected_storage("S").operation_timeout == 60.0


@pytest.mark.parametrize("value", ["0", "-2", "soon", "[1]", ".inf"])
def test_a_wrong_operation_timeout_is_a_located_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(_yaml(tmp_path, f"    operation_timeout: {value}\n"))
    text = str(info.value)
    assert "line 5" in text and "key 'operation_timeout'" in text and "storage 'S'" in text


def test_a_non_transient_error_is_raised_at_once() -> None:
    class Broken(Slow):
        def _attempt(self) -> str:
            self.seen.append(0.0)
            raise RuntimeError("a bug, not an outage")

    storage = Broken()
    storage.retry_policy = RetryPolicy(attempts=5, backoff=0.0)
    with pytest.raises(StorageError) as info:
        storage.store("f", "t", "1", 1)
    assert not isinstance(info.value, StorageUnavailable) and len(storage.seen) == 1


def test_an_adapter_bounding_whole_attempts_gets_the_time_left_of_each() -> None:
    import contextlib
    from collections.abc import Iterator

    seen: list[float | None] = []

    class Bounding(Slow):
        @contextlib.contextmanager
        def _bound(self, seconds: float | None) -> Iterator[None]:
            seen.append(seconds)
            yield

        def bound_attempt(self, seconds: float | None) -> contextlib.AbstractContextManager[object]:
            return self._bound(seconds)

    storage = Bounding(attempt=0.0, failures=1)
    storage.retry_policy = RetryPolicy(attempts=2, backoff=0.0, jitter=False)
    storage.operation_timeout = 4.0
    assert storage.retrieve("f", "t", "1") == "ok"
    assert len(seen) == 2 and all(s is not None and 3.5 < s <= 4.0 for s in seen)
    # The layer is composed in only for an adapter that overrides bound_attempt.
    from selinon_like.layers import chain

    assert storage._op_chain is chain(False, False, False, True)
    assert Slow()._op_chain is chain(False, False, False, False)
