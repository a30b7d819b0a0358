"""The default JSON serializer's quick checks (SPEC §9: at most 1.2x json.dumps): the C
encoder built once, non-str keys and depth found level by level for a large result and by a
plain loop for a small one, the exact walk wherever the quick check cannot decide. Every
refusal and every exact round trip of the slow walk holds on both paths."""

from __future__ import annotations

import collections
import json
import threading
from collections import OrderedDict
from typing import Any

import pytest

from benchmarks.bench_json import SHAPES
from selinon_like import SerializationError, serializers
from selinon_like.serializers import JSON, MAX_JSON_DEPTH


class Name(str):
    """A str subclass: a key JSON writes as the string it is."""


def table(rows: int = 2_000) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"row{i}", "score": i * 0.5, "ok": i % 2 == 0, "tags": ["a", ("b",)]}
        for i in range(rows)
    ]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("key", [1, True, None, 1.5, -7])
@pytest.mark.parametrize("where", ["last row", "inside a tuple", "three levels down"])
def test_a_bad_key_anywhere_in_a_large_result_is_refused(key: Any, where: str) -> None:
    value: Any = table()
    if where == "last row":
        value[-1][key] = "x"
    elif where == "inside a tuple":
        value[500]["tags"] = ("a", {key: 1})
    else:
        value.append({"deeper": [{"deepest": {key: 1}}]})
    with pytest.raises(SerializationError, match=type(key).__name__):
        JSON.dumps(value)


@pytest.mark.parametrize("small", [True, False], ids=["small", "large"])
def test_what_json_writes_unchanged_is_accepted_on_both_paths(small: bool) -> None:
    padding = [] if small else table(500)
    renamed = {Name("key"): 1}
    emptied: dict[Any, Any] = {"k": 1, 2: 2}  # once held an int key: not a str-only table
    del emptied[2]
    shared = {"same": [1, 2]}
    value = [renamed, emptied, shared, shared, (1, (2,)), OrderedDict(a=1), padding]
    assert JSON.loads(JSON.dumps(value)) == [
        {"key": 1},
        {"k": 1},
        {"same": [1, 2]},
        {"same": [1, 2]},
        [1, [2]],
        {"a": 1},
        [dict(row, tags=["a", ["b"]]) for row in padding],
    ]


@pytest.mark.parametrize("small", [True, False], ids=["small", "large"])
def test_a_dict_subclass_with_a_non_str_key_is_refused_on_both_paths(small: bool) -> None:
    value = [OrderedDict([("fine", 1), (4, "no")]), [] if small else table(500)]
    with pytest.raises(SerializationError, match="int"):
        JSON.dumps(value)


def _large_with(member: Any, where: str) -> list[Any]:
    """A result checked by levels (far past 2 * MAX_JSON_DEPTH characters) with ``member``
    at ``where``."""
    if where == "first level":
        return [member, *table(300)]
    if where == "last level":
        value = table(300)
        value[-1]["tags"] = ["a", member]
        return value
    return [*(["x" * 100] * 50), member]  # its level's other members all scalars


LARGE_WHERES = ["first level", "last level", "beside only scalars"]


# The level check counts the members of plain dicts, lists and tuples only: a member of any
# other type that gives some (a subclass: its members, its type, its __dict__) makes the count
# differ, on the last level too, and the exact walk decides.
@pytest.mark.parametrize("where", LARGE_WHERES)
def test_a_dict_subclass_with_a_non_str_key_is_refused_at_any_level(where: str) -> None:
    with pytest.raises(SerializationError, match="int"):
        JSON.dumps(_large_with(OrderedDict([("fine", 1), (4, "no")]), where))


@pytest.mark.parametrize("where", LARGE_WHERES)
def test_a_named_tuple_is_written_as_json_writes_it_at_any_level(where: str) -> None:
    pair = collections.namedtuple("pair", "a b")
    value = _large_with(pair(1, (2, {"k": [3]})), where)
    assert JSON.loads(JSON.dumps(value)) == json.loads(json.dumps(value))


def test_depth_is_exact_in_a_large_result() -> None:
    padding = ["x" * 100] * 50  # the text is far past 2 * MAX_JSON_DEPTH: checked by levels
    deepest = [nested(MAX_JSON_DEPTH - 1), padding]
    assert JSON.loads(JSON.dumps(deepest)) == deepest
    with pytest.raises(SerializationError, match=f"more than {MAX_JSON_DEPTH} levels"):
        JSON.dumps([nested(MAX_JSON_DEPTH), padding])


def test_a_large_cycle_is_named_circular() -> None:
    value: list[Any] = table(200)
    value[100]["back"] = value
    with pytest.raises(SerializationError, match="Circular"):
        JSON.dumps(value)


def test_a_large_table_is_checked_by_levels_not_by_the_exact_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_walk(obj: Any) -> None:
        raise AssertionError("the exact walk ran")

    monkeypatch.setattr(serializers, "_check_json_keys", no_walk)
    monkeypatch.setattr(serializers, "_deeper_than", no_walk)
    for value in SHAPES.values():
        assert JSON.loads(JSON.dumps(value)) == value


def test_threads_share_the_encoder() -> None:
    value = table(3_000)
    expected = JSON.dumps(value)
    results: list[bytes] = []

    def work() -> None:
        for _ in range(5):
            results.append(JSON.dumps(value))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 20


def _empty_at(depth: int) -> Any:
    """An empty list nested ``depth`` levels deep (itself the deepest level)."""
    value: Any = []
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def test_empty_containers_on_the_last_level_count_for_the_depth() -> None:
    padding = ["x" * 100] * 50  # checked by levels; the last level has only leaves
    fits = [_empty_at(MAX_JSON_DEPTH - 1), {}, padding]
    assert JSON.loads(JSON.dumps(fits)) == fits
    with pytest.raises(SerializationError, match=f"more than {MAX_JSON_DEPTH} levels"):
        JSON.dumps([_empty_at(MAX_JSON_DEPTH), padding])


def test_subclass_scalars_on_the_last_level_go_to_the_exact_walk() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    value = [*table(300), {"color": Color.RED, "name": Name("n")}]
    assert JSON.loads(JSON.dumps(value))[-1] == {"color": 1, "name": "n"}


def _reference(text: str) -> bytes:
    """What the encoder path gives a str (and gave before str results had their own)."""
    return serializers._ENCODER.encode(text).encode("utf-8")


PIECE = serializers._PIECE


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ascii",
        "a\x7fb",  # DEL: kept as it is, as the encoder path does
        'quote " backslash \\ newline \n tab \t nul \x00 unit \x1f',
        "é ü 漢字 \U0001f600",
        "x" * (PIECE - 1) + '"' + "y" * PIECE,  # escapes on a piece's edge
        ("\n" * 3 + "z") * (PIECE // 2 + 7),
        "é" * PIECE + "\x7f" + "a" * 5,
        "\U0001f600" * (PIECE + 3),
    ],
    ids=lambda text: f"{len(text)} chars",
)
def test_a_str_result_is_the_encoder_path_s_text(text: str) -> None:
    assert JSON.dumps(text) == _reference(text)
    assert JSON.loads(JSON.dumps(text)) == text


@pytest.mark.parametrize("where", [0, PIECE - 1, PIECE, 3 * PIECE + 5])
def test_a_lone_surrogate_in_a_long_str_is_refused(where: int) -> None:
    text = "a" * where + "\ud800" + "b" * (3 * PIECE)
    with pytest.raises(SerializationError, match="not valid Unicode"):
        JSON.dumps(text)


def _outcome(load: Any, data: Any) -> Any:
    try:
        return ("value", load(data))
    except Exception as exc:  # the type and text of what was raised
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": [1, 2.5, "x", null, true]}',
        b"[1,2,3]",
        b"{}",
        b"[]",
        b'{"a": 1} ',  # trailing whitespace: json.loads takes it
        b'{"a": 1}\n',
        b'{"a": 1} x',  # extra data
        b'{"a": 1',  # truncated
        b"{",
        b"[",
        b"[NaN, Infinity, -Infinity]",  # json.loads reads them: so does the scanner
        b'{"k": "\xc3\xa9\xf0\x9f\x98\x80"}',
        b'{"k": "\xff"}',  # not UTF-8
        b'{"k": "\\ud800"}',  # a lone surrogate, escaped
        b'{"k": "\xed\xa0\x80"}',  # a lone surrogate, UTF-8-ish (surrogatepass)
        b'{"a": 1, "a": 2}',  # the last wins
        b'{"k": "\x01"}',  # a control character: refused (strict)
        b"[" + b"9" * 5000 + b"]",  # past int/str conversion's limit: read all the same
        b"[1]\x00",
        b"{\x00",  # a NUL second byte: UTF-16 to json.loads
        "[1]".encode("utf-16-le"),
        "[1]".encode("utf-16"),  # with a BOM
        "[1]".encode("utf-32"),
        b"\xef\xbb\xbf[1]",  # UTF-8 BOM
        b' {"a": 1}',  # leading whitespace
        b'"text"',
        b"42",
        b"",
        bytearray(b"[1, 2]"),
        memoryview(b"[1, 2]"),
    ],
)
def test_the_decoder_reads_and_refuses_what_json_loads_does(data: Any) -> None:
    """serializers._decode reads a record opening an object or array with json.loads's own
    scanner, skipping json.loads's encoding detection: the outcome is json.loads's (through
    serializers._decode's handling of huge ints and errors), value or error, on every input."""
    import json

    def stock(raw: Any) -> Any:  # what _decode did before it called the scanner itself
        try:
            return json.loads(raw)
        except ValueError as exc:
            if "integer string conversion" in str(exc):
                try:
                    return json.loads(raw, parse_int=serializers._parse_int)
                except ValueError as again:
                    exc = again
            raise SerializationError(f"stored data is not valid JSON: {exc}") from exc

    assert _outcome(serializers._decode, data) == _outcome(stock, data)
    if isinstance(data, bytes):
        assert _outcome(JSON.loads, data) == _outcome(stock, data)


def test_the_decoder_reads_a_deep_record_from_a_deep_stack() -> None:
    """The scanner recurses as json.loads does: a record too deep for the caller's stack is
    read again from an empty one (serializers._on_fresh_stack)."""
    depth = MAX_JSON_DEPTH
    data = JSON.dumps(nested(depth))

    def down(levels: int) -> Any:
        return JSON.loads(data) if levels == 0 else down(levels - 1)

    import sys

    assert down(sys.getrecursionlimit() - depth // 2) == nested(depth)


class Plain(dict):  # type: ignore[type-arg]
    """A dict subclass defined in Python."""


def _small_at(where: str, inner: Any) -> Any:
    """A small result holding ``inner`` at one nesting position."""
    return {
        "root": inner,
        "in a dict": {"a": 1, "b": inner},
        "in a list": [1, "x", inner],
        "in a tuple": ("x", (2, inner)),
        "deep": {"a": {"b": [1, 2, {"c": [None, inner]}]}, "g": [True, "x"]},
        "after a sibling": [{"ok": 1}, {"fine": [1.5]}, inner],
    }[where]


WHERES = ["root", "in a dict", "in a list", "in a tuple", "deep", "after a sibling"]


@pytest.mark.parametrize("where", WHERES)
@pytest.mark.parametrize("key", [1, True, False, None, 1.5, -7], ids=repr)
def test_a_bad_key_anywhere_in_a_small_result_is_refused(where: str, key: Any) -> None:
    for inner in ({key: "v"}, {"a": 1, key: "v", "z": [1]}, OrderedDict([("a", 1), (key, 2)])):
        value = _small_at(where, inner)
        assert len(json.dumps(value)) <= 2 * MAX_JSON_DEPTH  # the small path
        with pytest.raises(SerializationError, match=type(key).__name__):
            JSON.dumps(value)
        with pytest.raises(SerializationError, match=type(key).__name__):
            JSON.dumps(_small_at(where, Plain(inner)))


@pytest.mark.parametrize("where", WHERES)
def test_what_round_trips_is_accepted_anywhere_in_a_small_result(where: str) -> None:
    emptied: dict[Any, Any] = {"k": 1, 2: 2}  # once held an int key: keys and values as referents
    del emptied[2]
    for inner, back in [
        ({Name("key"): 1}, {"key": 1}),
        (emptied, {"k": 1}),
        (OrderedDict(a=[1, {"b": 2}]), {"a": [1, {"b": 2}]}),
        (Plain(a=1), {"a": 1}),
        (Plain(), {}),
        ([Name("n"), ("t",)], ["n", ["t"]]),
        ({"naïve": "漢字", "e": "\U0001f600", "k" * 60: {}}, None),
        ([], None),
        ({}, None),
    ]:
        value = _small_at(where, inner)
        expected = json.loads(json.dumps(value))
        assert back is None or json.loads(json.dumps(inner)) == back
        assert JSON.loads(JSON.dumps(value)) == expected


def test_subclass_scalars_in_a_small_result_are_accepted() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class Mood(str, enum.Enum):
        CALM = "calm"

    value = {"color": Color.RED, "mood": [Mood.CALM], "name": Name("n"), "nested": {"c": Color.RED}}
    assert JSON.loads(JSON.dumps(value)) == {
        "color": 1,
        "mood": ["calm"],
        "name": "n",
        "nested": {"c": 1},
    }
    with pytest.raises(SerializationError, match="Color"):
        JSON.dumps({"color": Color.RED, "bad": {Color.RED: 1}})


def test_small_plain_results_need_no_exact_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_walk(obj: Any) -> None:
        raise AssertionError("the exact walk ran")

    monkeypatch.setattr(serializers, "_check_exactly", no_walk)
    monkeypatch.setattr(serializers, "_check_json_keys", no_walk)
    shapes = [value for name, value in SHAPES.items() if name.startswith("small")] + [
        {"user": {"id": 1, "roles": ["a", "b"], "meta": {"x": 1.5, "y": None}}, "n": 2},
        [{"id": i, "v": [i, (i, "x")]} for i in range(5)],
        {"k" * 40 + str(i): i for i in range(10)},
        {"ключ": ["значение", "\U0001f600"]},
        [[[[[[{"a": [[1]]}]]]]]],
        list(range(20)),
        [{}, [], ()],
    ]
    for value in shapes:
        assert len(json.dumps(value, separators=(",", ":"))) <= 2 * MAX_JSON_DEPTH
        assert JSON.loads(JSON.dumps(value)) == json.loads(json.dumps(value))


def test_the_pure_python_encoder_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serializers, "_C_ENCODER", serializers._python_encoder)
    value = SHAPES["small nested dict"]
    assert JSON.dumps(value) == json.dumps(value, separators=(",", ":")).encode()
    for bad, match in [({1: 2}, "int"), ([{1}], "set"), ([float("nan")], "NaN")]:
        with pytest.raises(SerializationError, match=match):
            JSON.dumps(bad)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="Circular"):
        JSON.dumps(loop)
