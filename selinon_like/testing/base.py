"""What every suite shares: the ``flow`` and ``clock`` fixtures, the size knobs, and
:func:`require`, which turns "this adapter does not offer that operation" into a skip naming the
method."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import pytest

from selinon_like.error_records import ExcInfo
from selinon_like.storage import OPTIONAL_OPERATIONS, DataStorage

__all__ = ["ContractBase", "MovableClock", "connected", "failure", "offers", "require"]

S = TypeVar("S", bound=DataStorage)

# The fixtures of the unreachable-service suite: a test class that defines one means to run
# that suite, and must include it (see ContractBase.__init_subclass__).
UNREACHABLE_FIXTURES = (
    "unreachable_storage",
    "unreachable_async_storage",
    "unreachable_port",
    "unreachable_timeout",
)


def require(storage: DataStorage, *operations: str) -> None:
    """Skip the running test unless the class of ``storage`` offers every one of
    ``operations`` (optional operations of :data:`~selinon_like.storage.OPTIONAL_OPERATIONS`),
    as :meth:`~selinon_like.storage.DataStorage.capabilities` detects them from the methods the
    class implements. The skip message names the missing methods."""
    unknown = [op for op in operations if op not in OPTIONAL_OPERATIONS]
    if unknown:
        raise ValueError(
            f"not optional operations: {', '.join(map(repr, unknown))} "
            f"(they are: {', '.join(OPTIONAL_OPERATIONS)})"
        )
    cls = type(storage)
    offered = cls.capabilities()
    missing = [op for op in operations if op not in offered]
    if missing:
        methods = ", ".join(f"{op}()" for op in missing)
        pytest.skip(
            f"{cls.__name__} does not offer {methods}: the class does not implement "
            f"{'them' if len(missing) > 1 else 'it'} (see {cls.__name__}.capabilities())"
        )


def offers(storage: DataStorage, *operations: str) -> bool:
    """Whether the class of ``storage`` offers every one of ``operations``."""
    return set(operations) <= type(storage).capabilities()


def failure() -> ExcInfo:
    """``sys.exc_info()`` of a real failure, with a traceback naming this function."""
    try:
        raise ValueError("task blew up: disk full")
    except ValueError:
        return sys.exc_info()


class MovableClock:
    """Seconds since the epoch, starting at the real time, moved forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def connected(storage: S) -> Iterator[S]:
    """Fixture helper: connect, yield, disconnect (``yield from connected(MyStorage())``)."""
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()


class ContractBase:
    """Fixtures and knobs shared by every suite; a test class supplies ``storage``, a fixture
    yielding a connected instance.

    Every test works under a flow name of its own (the ``flow`` fixture), so one instance —
    even one on a shared server — can serve a whole class. A test that moves time asks for
    ``clock``: a :class:`MovableClock` given to ``storage`` for the test.

    Knobs (class attributes): ``concurrency_threads`` × ``concurrency_per_thread`` size the
    concurrency tests, ``large_result_bytes`` the large-result test.

    A test class that defines a fixture of the unreachable-service suite
    (``unreachable_storage``, ``unreachable_async_storage``, ``unreachable_port``,
    ``unreachable_timeout``) without including that suite
    (:class:`~selinon_like.testing.UnreachableServiceContract`, or
    :class:`~selinon_like.testing.AsyncUnreachableServiceContract`) is refused with a
    ``TypeError`` when it is defined: the fixture would be there for tests that never run.
    """

    concurrency_threads: ClassVar[int] = 8
    concurrency_per_thread: ClassVar[int] = 100
    large_result_bytes: ClassVar[int] = 1_000_000
    # True on the unreachable-service suite (and so on every class that includes it).
    _runs_unreachable_service_tests: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._runs_unreachable_service_tests:
            return
        defined = [name for name in UNREACHABLE_FIXTURES if hasattr(cls, name)]
        if defined:
            raise TypeError(
                f"{cls.__name__} defines {', '.join(defined)} but does not include the "
                "unreachable-service suite, whose tests use it: add UnreachableServiceContract "
                "(AsyncUnreachableServiceContract for an async adapter) to its bases"
            )

    @pytest.fixture
    def flow(self) -> str:
        """A flow name no other test uses."""
        return f"contract-{uuid.uuid4().hex}"

    @pytest.fixture
    def clock(self, storage: DataStorage) -> Iterator[MovableClock]:
        """A movable clock given to ``storage``; its record format is restored after."""
        before = storage.record_codec
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        try:
            yield clock
        finally:
            storage.set_record_format(
                ttl=before.ttl, compression=before.compression, clock=before.clock
            )
            storage.serializer = before.serializer
