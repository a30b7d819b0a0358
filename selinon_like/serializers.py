"""Serializers turn results into bytes and back.

``json`` is the default: it accepts dicts with ``str`` keys, lists, tuples (returned as lists),
``str``, ``int`` of any size, finite ``float``, ``bool`` and ``None``. Anything else — a ``set``,
``bytes``, a dict with non-``str`` keys (JSON would silently turn ``1`` into ``"1"``), ``NaN`` —
raises :class:`~selinon_like.errors.SerializationError` naming the type, and nothing is stored.

``pickle`` accepts any picklable object. It is an explicit opt-in: loading a pickle runs code,
so never point a pickle storage at data someone else can write.

A custom serializer is any object with ``dumps(obj) -> bytes | str`` and ``loads(bytes) -> obj``,
named in the YAML by dotted path (``mypkg.serial:MSGPACK`` or ``mypkg.serial.MSGPACK``).
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

from selinon_like.errors import ConfigError, SerializationError

__all__ = [
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


_SCALARS = (str, int, float, bool, type(None))


def _check_json_keys(obj: Any) -> None:
    """Refuse dict keys that JSON would convert instead of round-tripping."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if type(key) is not str:
                    raise SerializationError(
                        f"cannot serialize a dict key of type {type(key).__name__} ({key!r}) "
                        "as JSON: JSON keys are strings and it would come back changed; "
                        "use str keys or the pickle serializer"
                    )
                if not isinstance(value, _SCALARS):
                    stack.append(value)
        elif isinstance(item, (list, tuple)):
            stack.extend(value for value in item if not isinstance(value, _SCALARS))


class JsonSerializer:
    """Compact UTF-8 JSON; strict about what comes back unchanged."""

    name = "json"

    def dumps(self, obj: Any) -> bytes:
        try:
            text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            _check_json_keys(obj)
            return text.encode("utf-8")
        except SerializationError:
            raise
        except TypeError as exc:
            culprit = _first_non_json(obj)
            raise SerializationError(
                f"cannot serialize a value of type {culprit} as JSON; store JSON types "
                "(dict, list, str, int, float, bool, None) or configure another serializer"
            ) from exc
        except (ValueError, RecursionError, UnicodeError) as exc:
            raise SerializationError(f"cannot serialize the result as JSON: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"stored data is not valid JSON: {exc}") from exc

    def __repr__(self) -> str:
        return "JsonSerializer()"


def _first_non_json(obj: Any) -> str:
    """The type name of the first value JSON cannot encode (for the error message)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, _SCALARS):
                    return f"{type(key).__name__} (as a dict key)"
                stack.append(value)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif not isinstance(item, _SCALARS):
            return type(item).__name__
    return type(obj).__name__


class PickleSerializer:
    """Any picklable object. Unsafe for stores that untrusted parties can write."""

    name = "pickle"

    def dumps(self, obj: Any) -> bytes:
        try:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(obj).__name__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)  # noqa: S301 - explicit opt-in, documented as unsafe
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
            data = self.inner.dumps(obj)
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
            return self.inner.loads(data)
        except Exception as exc:
            raise SerializationError(
                f"serializer {self.name!r} cannot load stored data: {exc}"
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
    from selinon_like.registry import import_object

    obj = import_object(spec, what="serializer")
    if not (callable(getattr(obj, "dumps", None)) and callable(getattr(obj, "loads", None))):
        raise ConfigError(
            f"serializer {spec!r} has no dumps()/loads(); name 'json', 'pickle' or an object "
            "with dumps(obj) -> bytes and loads(bytes) -> obj",
            key="serializer",
        )
    return SerializerAdapter(obj, spec)
