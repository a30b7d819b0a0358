"""Serializers: strict JSON, opt-in pickle, custom ones named by dotted path in the YAML."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selinon_like import ConfigError, ResultNotFound, SerializationError, StoragePool
from selinon_like.serializers import JSON, PICKLE, SerializerAdapter, get_serializer
from storages.memory import InMemoryStorage

HUGE = 7**20000  # about 17,000 digits: past Python's 4,300-digit int/str conversion limit


@dataclass
class Point:
    """A plain Python object for the pickle serializer."""

    x: int
    y: int


class TextCodec:
    """A custom serializer whose dumps returns str and whose loads only takes str."""

    def __init__(self) -> None:
        self.dumped = 0
        self.loaded = 0

    def dumps(self, obj: Any) -> str:
        self.dumped += 1
        return "T:" + json.dumps(obj)

    def loads(self, text: str) -> Any:
        if not text.startswith("T:"):  # bytes.startswith("T:") raises TypeError
            raise ValueError("not written by TextCodec")
        self.loaded += 1
        return json.loads(text[2:])


TEXT_CODEC = TextCodec()


class ExplodingCodec:
    def dumps(self, obj: Any) -> bytes:
        raise RuntimeError("cannot encode today")

    def loads(self, data: bytes) -> Any:
        return None


EXPLODING = ExplodingCodec()


class NumberCodec:
    def dumps(self, obj: Any) -> Any:
        return 42  # neither bytes nor str

    def loads(self, data: bytes) -> Any:
        return None


NUMBER = NumberCodec()
NOT_A_CODEC = {"dumps": "no"}


@pytest.fixture
def memory() -> Iterator[InMemoryStorage]:
    storage = InMemoryStorage()
    storage.connect()
    yield storage
    storage.disconnect()


# -- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (frozenset({1}), "frozenset"),
        (b"bytes", "bytes"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        (Point(1, 2), "Point"),
        (1 + 2j, "complex"),
        (decimal.Decimal("1.5"), "Decimal"),
        (dt.date(2024, 1, 1), "date"),
        ({"deep": [1, {"deeper": {3}}]}, "set"),
        ({1: "a"}, "int"),
        ({True: "a"}, "bool"),
        ({None: "a"}, "NoneType"),
        ({1.5: "a"}, "float"),
        ({(1, 2): "a"}, "tuple"),
        ({"ok": {"nested": {2: "b"}}}, "int"),
        ([1, "a", {"in a list": [{3: "c"}]}], "int"),
        (({"in": ({"a tuple": {None: 1}},)},), "NoneType"),
        ({"a": [1, [2, {True: 0}]]}, "bool"),
        ([OrderedDict([("fine", 1), (4, "subclass")])], "int"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        ([1, -math.inf], "-inf"),
        ({"x": [math.nan]}, "nan"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_json_refuses_what_would_not_come_back_and_names_it(
    memory: InMemoryStorage, value: Any, type_name: str
) -> None:
    with pytest.raises(SerializationError, match=type_name) as info:
        JSON.dumps(value)
    assert "JSON" in str(info.value)
    with pytest.raises(SerializationError, match=type_name):
        memory.store("flow", "task", "id", value)
    with pytest.raises(ResultNotFound):
        memory.retrieve("flow", "task", "id")


@pytest.mark.timeout(30)
def test_json_refuses_circular_structures_without_hanging() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"[Cc]ircular"):
        JSON.dumps(loop)
    # a cycle that also holds a set: naming the culprit must not walk the cycle forever
    loop_with_set: list[Any] = [{1}]
    loop_with_set.append(loop_with_set)
    with pytest.raises(SerializationError, match="set"):
        JSON.dumps(loop_with_set)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, True, False, None, "x"]},
        [],
        {},
        "",
        0,
        -1,
        0.1,
        1e308,
        2**64,
        -(2**200),
        HUGE,
        -HUGE,
        {"big": [HUGE, {"bigger": HUGE * HUGE}], "small": 3},
        'naïve café 日本語 🦄 \u0000 \n \t \\ "quoted"',
        {"ключ": "значение", "": "empty key", "🦄": ["🌈"]},
        {"nested": [[[[["deep"]]]]]},
    ],
    ids=lambda value: type(value).__name__,
)
def test_json_round_trips_its_types_exactly(memory: InMemoryStorage, value: Any) -> None:
    assert JSON.loads(JSON.dumps(value)) == value
    memory.store("flow", "task", "id", value)
    assert memory.retrieve("flow", "task", "id") == value


def test_huge_ints_keep_every_digit() -> None:
    data = JSON.dumps({"n": HUGE})
    assert len(data) > 16_000
    back = JSON.loads(data)
    assert back["n"] == HUGE and type(back["n"]) is int
    # the placeholder trick must not touch ordinary strings
    assert JSON.loads(JSON.dumps([HUGE, "0:0", {"k": "v"}])) == [HUGE, "0:0", {"k": "v"}]


def test_tuples_come_back_as_lists() -> None:
    assert JSON.loads(JSON.dumps((1, (2, 3), {"t": (4,)}))) == [1, [2, 3], {"t": [4]}]


def test_json_is_compact_utf8() -> None:
    assert JSON.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_json_refuses_a_lone_surrogate_in_a_value() -> None:
    with pytest.raises(SerializationError):
        JSON.dumps({"text": "\ud800"})


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"NaN-ish", b"[" * 100_000])
def test_json_loads_of_bad_data_is_a_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        JSON.loads(data)


# -- pickle -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        Point(1, 2),
        {1, 2, 3},
        b"\x00bytes",
        (1, (2, 3)),
        {1: "int key", (2, 3): "tuple key"},
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        decimal.Decimal("1.10"),
        HUGE,
        math.inf,
    ],
    ids=lambda value: type(value).__name__,
)
def test_pickle_round_trips_python_objects(value: Any) -> None:
    back = PICKLE.loads(PICKLE.dumps(value))
    assert back == value and type(back) is type(value)


def test_pickle_errors_are_serialization_errors() -> None:
    with pytest.raises(SerializationError, match="function"):
        PICKLE.dumps(lambda: None)
    with pytest.raises(SerializationError, match="not a valid pickle"):
        PICKLE.loads(b"not a pickle")


# -- choosing a serializer ---------------------------------------------------------------------


def test_get_serializer_by_name_path_module_and_class() -> None:
    assert get_serializer("json") is JSON
    assert get_serializer("pickle") is PICKLE
    dotted = get_serializer("test_serializers.TEXT_CODEC")
    colon = get_serializer("test_serializers:TEXT_CODEC")
    assert isinstance(dotted, SerializerAdapter) and dotted.inner is TEXT_CODEC
    assert isinstance(colon, SerializerAdapter) and colon.inner is TEXT_CODEC
    module = get_serializer("marshal")
    assert module.loads(module.dumps({"t": (1, 2)})) == {"t": (1, 2)}
    from_class = get_serializer("test_serializers.TextCodec")
    assert isinstance(from_class, SerializerAdapter) and isinstance(from_class.inner, TextCodec)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("test_serializers.NOT_A_CODEC", "dumps"),
        ("test_serializers.no_such_name", "no_such_name"),
        ("no_such_module_for_serializers.codec", "no_such_module_for_serializers"),
        ("collections", "dumps"),
        ("test_serializers.Point", "cannot be instantiated"),
    ],
)
def test_unusable_serializers_are_config_errors(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        get_serializer(spec)


def yaml_pool(tmp_path: Path, serializer: str) -> StoragePool:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: Mem\n    import: storages.memory\n    classname: InMemoryStorage\n"
        f"    serializer: {serializer}\n"
    )
    return StoragePool.from_yaml(path)


def test_a_custom_serializer_named_in_yaml_works_end_to_end(tmp_path: Path) -> None:
    storage = yaml_pool(tmp_path, "test_serializers.TEXT_CODEC").get_connected_storage("Mem")
    before = (TEXT_CODEC.dumped, TEXT_CODEC.loaded)
    storage.store("flow", "task", "1", {"answer": [4, 2]})
    assert storage.retrieve("flow", "task", "1") == {"answer": [4, 2]}
    # it really went through the codec (whose loads only takes the str its dumps made)
    assert (TEXT_CODEC.dumped, TEXT_CODEC.loaded) == (before[0] + 1, before[1] + 1)
    assert storage.retrieve_many([("flow", "task", "1")]) == {
        ("flow", "task", "1"): {"answer": [4, 2]}
    }


def test_a_custom_serializer_that_fails_stores_nothing(tmp_path: Path) -> None:
    storage = yaml_pool(tmp_path, "test_serializers:EXPLODING").get_connected_storage("Mem")
    with pytest.raises(SerializationError, match="cannot encode today") as info:
        storage.store("flow", "task", "1", {"a": 1})
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "dict" in str(info.value)
    with pytest.raises(SerializationError):
        storage.store_many([("flow", "task", "2", 1), ("flow", "task", "3", 2)])
    for task_id in ("1", "2", "3"):
        with pytest.raises(ResultNotFound):
            storage.retrieve("flow", "task", task_id)


def test_a_custom_serializer_returning_neither_bytes_nor_str_is_refused(tmp_path: Path) -> None:
    storage = yaml_pool(tmp_path, "test_serializers.NUMBER").get_connected_storage("Mem")
    with pytest.raises(SerializationError, match="returned int"):
        storage.store("flow", "task", "1", {"a": 1})
    with pytest.raises(ResultNotFound):
        storage.retrieve("flow", "task", "1")


def test_a_custom_serializer_whose_loads_fails_is_a_serialization_error() -> None:
    adapter = SerializerAdapter(TEXT_CODEC, "text")
    with pytest.raises(SerializationError, match="not written by TextCodec"):
        adapter.loads(b"garbage")


def test_a_serializer_without_dumps_and_loads_is_a_located_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        yaml_pool(tmp_path, "test_serializers.NOT_A_CODEC")
    message = str(info.value)
    assert "storages.yml, line 5" in message and "key 'serializer'" in message
    assert "dumps" in message


def test_pickle_named_in_yaml_stores_python_objects(tmp_path: Path) -> None:
    storage = yaml_pool(tmp_path, "pickle").get_connected_storage("Mem")
    value = {"point": Point(3, 4), "tags": {"a", "b"}, "pair": (1, 2)}
    storage.store("flow", "task", "1", value)
    assert storage.retrieve("flow", "task", "1") == value
    assert storage.record_codec.serializer is PICKLE  # serializer: the codec built on it


def test_json_is_the_default_and_stays_strict_through_a_pool(tmp_path: Path) -> None:
    storage = StoragePool.from_dict(
        {"storages": [{"name": "Mem", "classname": "memory"}]}
    ).get_connected_storage("Mem")
    assert storage.record_codec.serializer is JSON
    with pytest.raises(SerializationError, match="set"):
        storage.store("flow", "task", "1", {"s": {1}})
    with pytest.raises(SerializationError, match="set"):
        storage.store_many([("flow", "task", "2", 1), ("flow", "task", "3", {2})])
    for task_id in ("1", "2", "3"):
        with pytest.raises(ResultNotFound):
            storage.retrieve("flow", "task", task_id)
