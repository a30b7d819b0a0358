"""Serializers turn results into bytes and back.

``json`` is the default: it accepts dicts with ``str`` keys, lists, tuples (returned as lists),
``str``, ``int`` of any size, finite ``float``, ``bool`` and ``None``. Anything else — a ``set``,
``bytes``, a dict with non-``str`` keys (JSON would silently turn ``1`` into ``"1"``), ``NaN`` —
raises :class:`~selinon_like.errors.SerializationError` naming the type, and nothing is stored.
A result nested more than 500 levels deep is refused the same way: every result ``json``
accepts is one it can read back, from any caller's stack depth.

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
import json
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

    Runs on every store after ``json`` accepted ``obj`` (so it has no cycles). It visits
    containers only, and looks at a container's members in C first (``map(type, …)``): a
    dict whose keys are all ``str`` or a list of scalars costs no Python loop."""
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


def _decode(data: bytes) -> Any:
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
        try:
            text = _any_stack(self._encode, obj)
        except RecursionError as exc:
            raise SerializationError(
                "cannot serialize the result as JSON: it is nested too deeply"
            ) from exc
        # Fewer brackets than the limit cannot nest deeper: the exact walk is seldom needed.
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _deeper_than(obj, MAX_JSON_DEPTH):
            raise SerializationError(
                f"cannot serialize the result as JSON: it nests lists and dicts more than "
                f"{MAX_JSON_DEPTH} levels deep, more than can be read back everywhere"
            )
        _check_json_keys(obj)
        try:
            return text.encode("utf-8")
        except UnicodeError as exc:  # a lone surrogate in a str
            raise SerializationError(
                f"cannot serialize the result as JSON: a str is not valid Unicode ({exc})"
            ) from exc

    def _encode(self, obj: Any) -> str:
        try:
            text: str = _ENCODER.encode(obj)
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
            return _any_stack(_decode, data)
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
