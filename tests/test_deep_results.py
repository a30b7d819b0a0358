"""A result the serializer accepts is one the storage returns equal, from any caller's stack
depth; one it could not return is refused at store with SerializationError, nothing stored
(SPEC §14). The review stored a result nested ~990 deep that could then never be read back,
and could not read a 950-deep one from a deeper stack."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from selinon_like import DataStorage, ResultNotFound, SerializationError
from selinon_like.serializers import JSON, MAX_JSON_DEPTH, PICKLE, SerializerAdapter
from storages.filesystem import Filesystem
from storages.memory import InMemoryStorage

T = TypeVar("T")


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def deep_stack(fn: Callable[[], T], spare: int = 120) -> T:
    """``fn()`` called with only ``spare`` frames left before the recursion limit: deep in a
    caller's own recursion, as a flow engine or a recursive task may be."""

    def down(frames: int) -> T:
        return fn() if frames <= 0 else down(frames - 1)

    return down(sys.getrecursionlimit() - _depth() - spare)


@pytest.fixture(params=["memory", "filesystem"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStorage]:
    instance: DataStorage = (
        InMemoryStorage() if request.param == "memory" else Filesystem(path=str(tmp_path))
    )
    instance.connect()
    yield instance
    instance.disconnect()


def test_a_result_too_deep_to_read_back_is_refused_and_nothing_is_stored(
    storage: DataStorage,
) -> None:
    with pytest.raises(SerializationError, match=f"more than {MAX_JSON_DEPTH} levels"):
        storage.store("f", "t", "990", nested(990))
    with pytest.raises(ResultNotFound):
        storage.retrieve("f", "t", "990")
    # one bad item of a bulk call stores nothing either
    with pytest.raises(SerializationError):
        storage.store_many([("f", "t", "ok", 1), ("f", "t", "deep", nested(MAX_JSON_DEPTH + 1))])
    assert storage.retrieve_many([("f", "t", "ok"), ("f", "t", "deep")]) == {}


def test_the_deepest_accepted_result_round_trips_from_a_deep_stack(storage: DataStorage) -> None:
    value = nested(MAX_JSON_DEPTH)
    deep_stack(lambda: storage.store("f", "t", "deep", value))
    assert deep_stack(lambda: storage.retrieve("f", "t", "deep")) == value
    assert storage.retrieve("f", "t", "deep") == value


def test_a_950_deep_value_stored_before_is_still_read_from_a_deep_stack(
    storage: DataStorage,
) -> None:
    # Written by a release without the depth limit: reading it must not depend on the stack.
    record_id = storage.store("f", "t", "old", 0)
    assert record_id
    value = nested(950)
    text = json.dumps(value, separators=(",", ":")).encode()
    assert deep_stack(lambda: JSON.loads(text)) == value


def test_pickle_and_custom_serializers_do_not_depend_on_the_stack(storage: DataStorage) -> None:
    value = nested(300)  # pickle recurses more than once a level while writing
    for serializer in (PICKLE, SerializerAdapter(json, "json")):
        storage.serializer = serializer
        deep_stack(lambda: storage.store("f", "t", "p", value))
        assert deep_stack(lambda: storage.retrieve("f", "t", "p")) == value


def test_what_no_stack_can_hold_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="nested too deeply"):
        JSON.dumps(nested(5_000))
    with pytest.raises(SerializationError, match="not valid JSON"):
        JSON.loads(b"[" * 5_000 + b"]" * 5_000)
