"""What every suite shares: the ``flow`` fixture, the size knobs, and :func:`require`, which
turns "this adapter does not offer that operation" into a skip naming the method."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import ClassVar, TypeVar

import pytest

from selinon_like.error_records import ExcInfo
from selinon_like.storage import OPTIONAL_OPERATIONS, DataStorage

__all__ = ["ContractBase", "connected", "failure", "offers", "require"]

S = TypeVar("S", bound=DataStorage)


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
    even one on a shared server — can serve a whole class.

    Knobs (class attributes): ``concurrency_threads`` × ``concurrency_per_thread`` size the
    concurrency tests, ``large_result_bytes`` the large-result test.
    """

    concurrency_threads: ClassVar[int] = 8
    concurrency_per_thread: ClassVar[int] = 100
    large_result_bytes: ClassVar[int] = 1_000_000

    @pytest.fixture
    def flow(self) -> str:
        """A flow name no other test uses."""
        return f"contract-{uuid.uuid4().hex}"
