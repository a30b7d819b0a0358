"""Serializers turn results into bytes and back.

``json`` is the default: it accepts dicts with ``str`` keys, lists, tuples (returned as lists),
``str``, ``int`` of any size, finite ``float``, ``bool`` and ``None``. Anything else — a ``set``,
``bytes``, a dict with non-``str`` keys (JSON would silently turn ``1`` into ``"1"``), ``NaN`` —
raises :class:`~selinon_like.errors.SerializationError` naming the type, and nothing is stored.
A result nested more than 500 levels deep is refused the same way: every result ``json``
accepts is one it can read back, from any caller's stack depth. Being strict costs little: the
C encoder does the encoding and refuses sets, NaN and the like; the keys and the depth are
checked after it, in C a nesting level at a time (a small result's members gathered in a few
calls inside ``dumps``: 1.11x ``json.dumps``'s instructions for a small nested dict, 0.78x for a
flat one), and a result that is one ``str`` needs no check: it is escaped (by ``json.dumps``'s
own escaper when it is ASCII) and encoded a piece at a time into the bytes returned
(benchmarks/bench_json.py times it all against ``json.dumps``).

``pickle`` accepts any picklable object. It is an explicit opt-in: loading a pickle runs code,
so never point a pickle storage at data someone else can write.

A custom serializer is any object with ``dumps(obj) -> bytes | str`` and ``loads(bytes) -> obj``,
named in the YAML by dotted path (``mypkg.serial:MSGPACK`` or ``mypkg.serial.MSGPACK``), a
module name (``marshal``) or a class (instantiated without arguments). ``loads`` is given the
stored bytes; one that refuses bytes with a ``TypeError`` is given them decoded as UTF-8 (for a
``dumps`` that returns ``str``). Its errors become ``SerializationError``.

Every serializer here, custom ones included, that runs out of stack (``RecursionError``) on a
deep result or stored value tries again on a new thread, whose stack is empty: how deep the
caller's own stack is never decides whether a result can be stored or read.
"""

from __future__ import annotations

import decimal
import gc
import json
import json.encoder
import math
import pickle
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

from selinon_like.errors import ConfigError, SerializationError
from selinon_like.importing import import_module, import_object

__all__ = [
    "MAX_JSON_DEPTH",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "SerializerAdapter",
    "get_serializer",
]


@runtime_checkable
class Serializer(Protocol):
    """What a serializer provides."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


T = TypeVar("T")

MAX_JSON_DEPTH = 500
"""How deeply a result may nest lists and dicts to be stored as JSON. Python's decoder recurses
once per level; 500 levels leave room for it on any thread's fresh stack (the default
recursion limit is 1,000)."""

_SCALARS = (str, int, float, bool, type(None))
# Above this many bits an int may exceed Python's int/str conversion limit (4300 digits by
# default, sys.set_int_max_str_digits), which json obeys: such ints take the slow path.
_BIG_INT_BITS = 4000


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _not_json(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _c_encoder() -> Callable[[Any, int], list[str] | tuple[str, ...]] | None:
    """The C encoder json.dumps builds on every call, built once here (that build and the
    Python layers around it are most of what a small result costs json.dumps). It is given
    no markers dict, so it keeps no state between calls and threads can share it; a cycle
    then ends in RecursionError, which :meth:`JsonSerializer.dumps` tells apart."""
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or escape is None:  # a Python without the _json accelerator
        return None
    encoder: Callable[[Any, int], list[str] | tuple[str, ...]] = make(
        None, _not_json, escape, None, ":", ",", False, False, False
    )
    return encoder


def _python_encoder(obj: Any, _level: int) -> list[str]:
    """What the C encoder gives, from the pure-Python one (a Python without ``_json``)."""
    return [_ENCODER.encode(obj)]


_C_ENCODER: Callable[[Any, int], list[str] | tuple[str, ...]] = _c_encoder() or _python_encoder
# JSON text of an ASCII str: json.dumps's escaper, faster on ASCII than the one that keeps
# other characters as they are (1 MB: ~2.1 ms against ~2.5 ms), and giving the same text for
# an ASCII str without DEL (which only this one escapes, as \u007f).
_ESCAPE_ASCII: Callable[[str], str] = json.encoder.encode_basestring_ascii
_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring

_PIECE = 64 * 1024  # characters of a long str escaped and encoded at a time


def _dump_str(text: str) -> bytes:
    """A result that is one ``str``, as JSON: its escaping is the whole cost. ASCII text
    without DEL goes through json.dumps's escaper, which gives the same text faster; a long
    str is escaped and encoded a piece at a time and joined once into the bytes returned
    (one large allocation, as json.dumps's own, not a text and then its bytes: the second
    cost as much again in page faults, 1.6-1.7x json.dumps for 1 MB)."""
    escape = _ESCAPE_ASCII if text.isascii() and "\x7f" not in text else _ESCAPE
    try:
        if len(text) <= _PIECE:
            return escape(text).encode("utf-8")
        parts: list[Any] = [b'"']
        for start in range(0, len(text), _PIECE):
            # Pieces of a str are whole characters: escaping them apart changes nothing.
            parts.append(memoryview(escape(text[start : start + _PIECE]).encode("utf-8"))[1:-1])
        parts.append(b'"')
        return b"".join(parts)
    except UnicodeError as exc:  # a lone surrogate
        raise SerializationError(
            f"cannot serialize the result as JSON: a str is not valid Unicode ({exc})"
        ) from exc


_NO_KEY = object()  # marks a value that is not under a dict key (None is a valid key)


def _values(obj: Any) -> Iterator[tuple[Any, Any]]:
    """Every ``(dict key or _NO_KEY, value)`` inside ``obj``, each container visited once
    (cycles and shared references are safe)."""
    stack: list[tuple[Any, Any]] = [(_NO_KEY, obj)]
    seen: set[int] = set()
    while stack:
        key, item = stack.pop()
        yield key, item
        if isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                stack.extend(reversed(list(item.items())))
            else:
                stack.extend((_NO_KEY, value) for value in reversed(item))


_CONTAINERS = (dict, list, tuple)
_STR = frozenset({str})
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _check_json_keys(obj: Any) -> None:
    """Refuse dict keys that JSON would convert instead of round-tripping.

    The exact walk behind :func:`_check_tree`, for what its quick check cannot decide (a
    subclass of dict or list, a str subclass as a key), after ``json`` accepted ``obj`` (so
    it has no cycles). It visits containers only, and looks at a container's members in C
    first (``map(type, …)``): a dict whose keys are all ``str`` or a list of scalars costs no
    Python loop."""
    if not isinstance(obj, _CONTAINERS):
        return
    stack = [obj]
    while stack:
        item = stack.pop()
        members: Iterable[Any] = item
        if isinstance(item, dict):
            if not _STR.issuperset(map(type, item)):
                for key in item:
                    if not isinstance(key, str):
                        _bad_key(key)
            members = item.values()
        if not _SCALAR_TYPES.issuperset(map(type, members)):
            stack.extend(value for value in members if isinstance(value, _CONTAINERS))


class _NeedsWalk(Exception):
    """The quick check cannot decide: a subclass of a JSON type, or a dict with a key that is
    not a plain ``str``. The exact walk decides."""


# What gc.get_referents gives for the JSON containers on this interpreter: the members of a
# list or tuple, the values of a dict whose keys are all plain str and, for any other dict,
# its keys as well. The quick check relies on it and checks it once here.
_REFERENTS_AS_EXPECTED = (
    gc.get_referents({"k": 0}) == [0]
    and sorted(gc.get_referents({1: 0})) == [0, 1]
    and sorted(gc.get_referents([2, 1])) == [1, 2]
    and gc.get_referents((3,)) == [3]
)
# Whether a value of this exact type is a container (True) or a scalar (False); a type not
# here is one the quick check leaves to the exact walk.
_KINDS: dict[type, bool] = {
    str: False,
    int: False,
    float: False,
    bool: False,
    type(None): False,
    dict: True,
    list: True,
    tuple: True,
}
_CONTAINER_TYPES = frozenset({dict, list, tuple})
_KNOWN_KINDS = frozenset(_KINDS)
_LIST_KINDS = _KNOWN_KINDS - {dict}  # types whose values give exactly their members
_referents = gc.get_referents
_is_dict = dict.__instancecheck__  # True for a dict or a subclass of dict
# A small result is checked inline in JsonSerializer.dumps; with referents other than expected
# every result goes to _check_tree, whose level check then leaves it to the exact walk.
_SMALL = 2 * MAX_JSON_DEPTH if _REFERENTS_AS_EXPECTED else -1


def _check_tree(obj: Any, size: int) -> None:
    """Refuse non-``str`` dict keys and nesting deeper than :data:`MAX_JSON_DEPTH`.

    Runs on every store after the C encoder accepted ``obj`` (so it has no cycles), one
    nesting level at a time, each step a C call over the whole level: ``gc.get_referents``
    gives the next level's members (for a dict with keys that are all plain ``str``, its
    values only; for any other dict, keys too, so more members than the dicts' lengths add
    up to), and the set of the level's types says whether that count needs checking (dicts
    among them) or the exact walk must decide (a type not JSON's own). A 1 MB result of
    11,000 small dicts costs a few milliseconds, not a Python loop over 22,000 containers.
    When the quick check cannot decide (see :class:`_NeedsWalk`), the exact walk does.

    ``size`` is the length of the encoded text: a text of at most ``2 * MAX_JSON_DEPTH``
    characters cannot nest deeper than the limit (each level takes two brackets), and such a
    small result that comes here (a subclass of a JSON type, or lists nested in lists, which
    :meth:`JsonSerializer.dumps` does not check itself) is checked container by container,
    cheaper than level by level when there are only a few."""
    try:
        if size <= 2 * MAX_JSON_DEPTH:
            _check_small(obj)
        else:
            _check_levels(obj)
    except _NeedsWalk:
        _check_exactly(obj)


def _check_exactly(obj: Any) -> None:
    """The exact walk: what decides whenever a quick check cannot."""
    _check_json_keys(obj)
    if _deeper_than(obj, MAX_JSON_DEPTH):
        _too_deep()


def _check_small(obj: Any) -> None:
    # A plain loop: on a few members it costs less than the C passes of _check_levels.
    kind = type(obj)
    if kind is not dict and kind is not list and kind is not tuple:
        if kind in _KINDS:
            return
        raise _NeedsWalk
    stack = [obj]
    push = stack.append
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for key, value in item.items():
                if type(key) is not str:
                    raise _NeedsWalk
                kind = type(value)
                if kind is dict or kind is list or kind is tuple:
                    push(value)
                elif kind not in _KINDS:
                    raise _NeedsWalk
        else:
            for value in item:
                kind = type(value)
                if kind is dict or kind is list or kind is tuple:
                    push(value)
                elif kind not in _KINDS:
                    raise _NeedsWalk


def _check_levels(obj: Any) -> None:
    kind = _KINDS.get(type(obj))
    if not kind:
        if kind is None and isinstance(obj, _CONTAINERS):
            raise _NeedsWalk
        return  # a scalar; anything else the encoder has refused already
    if not _REFERENTS_AS_EXPECTED:
        raise _NeedsWalk
    members = obj  # a list's or tuple's members are the list or tuple itself
    if type(obj) is dict:
        members = gc.get_referents(obj)
        if len(members) != len(obj):
            raise _NeedsWalk  # a key that is not a plain str
    depth = 1  # of the containers whose members are in members
    while True:
        # The next level's members, from every member at once: a str, int, float, bool or
        # None gives none, so this is what the containers among them give.
        below = gc.get_referents(*members)
        if not below and depth < MAX_JSON_DEPTH:
            # Every member is a leaf: a scalar, or an empty container within the depth
            # limit (the last level of a table): no member needs its type looked up.
            return
        kinds = set(map(type, members))
        if not kinds <= _LIST_KINDS:
            # Dicts among them (lists and tuples give exactly their members), or a subclass
            # of a JSON type, which the exact walk decides.
            if not kinds <= _KNOWN_KINDS:
                raise _NeedsWalk
            level = members
            if not kinds <= _CONTAINER_TYPES:
                level = [member for member in members if type(member) in _CONTAINER_TYPES]
            if len(below) != sum(map(len, level)):
                raise _NeedsWalk  # a dict keeps keys that are not plain str
        if kinds.isdisjoint(_CONTAINER_TYPES):
            return  # scalars only, at the deepest level allowed
        depth += 1
        if depth > MAX_JSON_DEPTH:
            _too_deep()
        members = below


def _too_deep() -> None:
    raise SerializationError(
        f"cannot serialize the result as JSON: it nests lists and dicts more than "
        f"{MAX_JSON_DEPTH} levels deep, more than can be read back everywhere"
    )


def _has_cycle(obj: Any) -> bool:
    """Whether a list, tuple or dict in ``obj`` contains itself (an iterative walk that keeps
    the containers on the current path)."""
    path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Any, Iterator[Any]]] = []

    def members(item: Any) -> Iterator[Any]:
        return iter(item.values() if isinstance(item, dict) else item)

    if not isinstance(obj, _CONTAINERS):
        return False
    path.add(id(obj))
    stack.append((obj, members(obj)))
    while stack:
        item, rest = stack[-1]
        for value in rest:
            if isinstance(value, _CONTAINERS):
                if id(value) in path:
                    return True
                if id(value) not in done:
                    path.add(id(value))
                    stack.append((value, members(value)))
                    break
        else:
            stack.pop()
            path.discard(id(item))
            done.add(id(item))
    return False


def _bad_key(key: Any) -> None:
    raise SerializationError(
        f"cannot serialize a dict key of type {type(key).__name__} ({key!r:.80}) "
        "as JSON: JSON keys are strings and it would come back changed; "
        "use str keys or the pickle serializer"
    )


def _first_non_json(obj: Any) -> str:
    """The type name of the first value JSON cannot encode (for the error message)."""
    for key, value in _values(obj):
        if key is not _NO_KEY and not isinstance(key, _SCALARS):
            return f"{type(key).__name__} (as a dict key)"
        if not isinstance(value, (*_SCALARS, dict, list, tuple)):
            return type(value).__name__
    return type(obj).__name__


def _non_finite(obj: Any) -> float | None:
    for _key, value in _values(obj):
        if isinstance(value, float) and not math.isfinite(value):
            return value
    return None


def _with_placeholders(obj: Any, token: str, digits: list[str]) -> Any:
    """A copy of ``obj`` with every big int replaced by a unique placeholder string."""
    if isinstance(obj, int) and not isinstance(obj, bool) and obj.bit_length() > _BIG_INT_BITS:
        digits.append(str(decimal.Decimal(obj)))  # exact, and not subject to the digit limit
        return f"{token}:{len(digits) - 1}"
    if isinstance(obj, dict):
        return {key: _with_placeholders(value, token, digits) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_with_placeholders(value, token, digits) for value in obj]
    return obj


def _parse_int(text: str) -> int:
    return int(text) if len(text) < 4000 else int(decimal.Decimal(text))


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than ``limit`` levels in ``obj`` (free of cycles)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        members = item.values() if isinstance(item, dict) else item
        stack.extend((value, depth + 1) for value in members if isinstance(value, _CONTAINERS))
    return False


def _on_fresh_stack(fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)`` on a new thread, from an empty stack; its result, or its exception."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, fn(arg)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="selinon-like-deep-value", daemon=True)
    thread.start()
    thread.join()
    done, value = outcome[0]
    if not done:
        raise value
    result: T = value
    return result


def _any_stack(fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)``; when it runs out of stack, again from an empty one (a deep value met on a
    deep caller's stack)."""
    try:
        return fn(arg)
    except RecursionError:
        return _on_fresh_stack(fn, arg)


# json.loads's own scanner (what its default decoder runs), called directly on the common
# record: bytes opening a JSON object or array, which json.loads would decode as UTF-8. It
# skips json.loads's encoding detection, its whitespace matches and three Python calls (a
# small result's read ~13k instructions, about a third of its decoding). Anything else, and
# anything the scanner does not take whole (trailing whitespace, an error), goes to
# json.loads itself, which returns or raises what it always did.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_OPENERS = (b"{", b"[")


def _decode(data: bytes) -> Any:
    # A first byte "{" or "[" and a second one not NUL: json.loads reads UTF-8 (no BOM, not
    # UTF-16 or UTF-32) with no leading whitespace.
    if type(data) is bytes and data[:1] in _OPENERS and data[1:2] != b"\x00":
        try:
            text = data.decode("utf-8", "surrogatepass")
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            pass  # json.loads says what is wrong
        else:
            if end == len(text):
                return value
    try:
        return json.loads(data)
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            try:
                return json.loads(data, parse_int=_parse_int)
            except ValueError as again:
                exc = again
        raise SerializationError(f"stored data is not valid JSON: {exc}") from exc


class JsonSerializer:
    """Compact UTF-8 JSON; strict about what comes back unchanged."""

    name = "json"

    def dumps(self, obj: Any) -> bytes:
        kind = type(obj)
        if kind is str:
            return _dump_str(obj)
        try:
            chunks = _C_ENCODER(obj, 0)
        except (TypeError, ValueError, RecursionError):
            # Encoded again where the problem is named or the stack is fresh.
            text = self._encode_anyhow(obj)
        else:
            text = chunks[0] if len(chunks) == 1 else "".join(chunks)
        if kind is dict or kind is list or kind is tuple:
            size = len(text)
            if size > _SMALL or text[1] == "[":
                # Large, or a list that starts with a list (a chain of lists of few members
                # costs more level by level than in _check_small's loop).
                _check_tree(obj, size)
            else:
                # A small result (at most 2 * MAX_JSON_DEPTH characters, so never too deep),
                # checked here in a few C calls rather than a Python loop over its members
                # or another call frame: a call or a bytecode per member is a measurable
                # share of what json.dumps costs for a few dozen members.
                # gc.get_referents gives a dict's values when its keys are all plain str
                # (keys and values otherwise), a list's or tuple's members, and nothing for a
                # str, int, float, bool or None: gathered level by level, every member of the
                # result, and each dict gives as many as it has keys unless a key is not str.
                members = _referents(obj)
                below = _referents(*members)
                if len(members) != len(obj):
                    _check_exactly(obj)  # the result is a dict with a key that is not str
                elif below:  # nested: every member below the first level, then the dicts
                    members += below
                    while below:
                        below = _referents(*below)
                        members += below
                        if len(members) > size:
                            # More members than characters: something not JSON (a subclass
                            # instance gives its type and more) that the exact walk decides.
                            _check_exactly(obj)
                            break
                    else:
                        # A dict subclass gives its type or more as well: the walk decides.
                        dicts = list(filter(_is_dict, members))
                        if dicts and len(_referents(*dicts)) != sum(map(len, dicts)):
                            _check_exactly(obj)
        elif kind not in _KINDS:  # a subclass of a JSON type
            _check_tree(obj, len(text))
        try:
            return text.encode("utf-8")
        except UnicodeError as exc:  # a lone surrogate in a str
            raise SerializationError(
                f"cannot serialize the result as JSON: a str is not valid Unicode ({exc})"
            ) from exc

    def _encode_anyhow(self, obj: Any) -> str:
        """The encoded text, from a fresh stack if need be, or the error naming the problem."""
        try:
            return _any_stack(self._encode, obj)
        except RecursionError as exc:
            if _has_cycle(obj):
                raise SerializationError(
                    "cannot serialize the result as JSON: Circular reference detected "
                    "(a list or dict contains itself)"
                ) from exc
            raise SerializationError(
                "cannot serialize the result as JSON: it is nested too deeply"
            ) from exc

    def _encode(self, obj: Any) -> str:
        try:
            chunks = _C_ENCODER(obj, 0)
            text = chunks[0] if len(chunks) == 1 else "".join(chunks)
        except TypeError as exc:
            culprit = _first_non_json(obj)
            raise SerializationError(
                f"cannot serialize a value of type {culprit} as JSON; store JSON types "
                "(dict, list, str, int, float, bool, None) or configure another serializer"
            ) from exc
        except ValueError as exc:
            text = self._dumps_slow(obj, exc)
        return text

    def _dumps_slow(self, obj: Any, exc: ValueError) -> str:
        """NaN/infinity, circular references, or ints too long for the fast path."""
        bad = _non_finite(obj)
        if bad is not None:
            raise SerializationError(
                f"cannot serialize the float {bad!r} as JSON: JSON has no NaN or infinity"
            ) from exc
        if "integer string conversion" not in str(exc):
            raise SerializationError(f"cannot serialize the result as JSON: {exc}") from exc
        token = uuid.uuid4().hex
        digits: list[str] = []
        try:
            text = json.dumps(
                _with_placeholders(obj, token, digits),
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            )
        except (ValueError, RecursionError) as again:
            raise SerializationError(f"cannot serialize the result as JSON: {again}") from exc
        for index, number in enumerate(digits):
            text = text.replace(f'"{token}:{index}"', number, 1)
        return text

    def loads(self, data: bytes) -> Any:
        try:
            try:  # _any_stack(_decode, data), written out: every read comes here
                return _decode(data)
            except RecursionError:
                return _on_fresh_stack(_decode, data)
        except RecursionError as exc:
            raise SerializationError(
                f"stored data is not valid JSON: nested too deeply ({exc})"
            ) from exc

    def __repr__(self) -> str:
        return "JsonSerializer()"


def _pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


class PickleSerializer:
    """Any picklable object. Unsafe for stores that untrusted parties can write."""

    name = "pickle"

    def dumps(self, obj: Any) -> bytes:
        try:
            return _any_stack(_pickle, obj)
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(obj).__name__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return _any_stack(pickle.loads, data)
        except Exception as exc:
            raise SerializationError(f"stored data is not a valid pickle: {exc}") from exc

    def __repr__(self) -> str:
        return "PickleSerializer()"


class SerializerAdapter:
    """Wraps a user's ``dumps``/``loads`` object: bytes out, errors as SerializationError."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name

    def dumps(self, obj: Any) -> bytes:
        try:
            data = _any_stack(self.inner.dumps, obj)
        except Exception as exc:
            raise SerializationError(
                f"serializer {self.name!r} cannot serialize a value of type "
                f"{type(obj).__name__}: {exc}"
            ) from exc
        if isinstance(data, str):
            return data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data)
        raise SerializationError(
            f"serializer {self.name!r} returned {type(data).__name__}; dumps must return "
            "bytes or str"
        )

    def loads(self, data: bytes) -> Any:
        try:
            try:
                return _any_stack(self.inner.loads, data)
            except TypeError:
                # A loads() written for the str its dumps() returned: give it text.
                text = bytes(data).decode("utf-8")
                return _any_stack(self.inner.loads, text)
        except Exception as exc:
            raise SerializationError(
                f"serializer {self.name!r} cannot load stored data: {type(exc).__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"SerializerAdapter({self.name!r})"


JSON = JsonSerializer()
PICKLE = PickleSerializer()


def get_serializer(spec: str) -> Serializer:
    """``json``, ``pickle`` or a dotted path to an object with ``dumps`` and ``loads``."""
    if spec == "json":
        return JSON
    if spec == "pickle":
        return PICKLE
    if "." not in spec and ":" not in spec:
        obj = import_module(spec)  # a module with dumps/loads, e.g. ``marshal``
    else:
        obj = import_object(spec, what="serializer")
    if isinstance(obj, type):  # a class: use an instance
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(
                f"serializer class {spec!r} cannot be instantiated without arguments: {exc}",
                key="serializer",
            ) from exc
    if not (callable(getattr(obj, "dumps", None)) and callable(getattr(obj, "loads", None))):
        raise ConfigError(
            f"serializer {spec!r} has no dumps()/loads(); name 'json', 'pickle' or an object "
            "with dumps(obj) -> bytes and loads(bytes) -> obj",
            key="serializer",
        )
    return SerializerAdapter(obj, spec)
