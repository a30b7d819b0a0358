"""Error records: what ``store_error`` keeps about a failed task, and their stored form.

An error record is always JSON, whatever the storage's result serializer, so every tool (the
CLI, ``copy``, another language) can read it.
"""

from __future__ import annotations

import datetime as _dt
import json
import traceback
from types import TracebackType
from typing import Any, TypedDict, cast

from selinon_like.keys import Key, check_key

__all__ = [
    "ErrorRecord",
    "ExcInfo",
    "dump_error_record",
    "load_error_record",
    "make_error_record",
    "record_key",
]

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


class ErrorRecord(TypedDict):
    """One task failure, as :func:`make_error_record` builds it and ``retrieve_error``
    returns it."""

    flow_name: str
    task_name: str
    task_id: str
    exception_type: str | None
    message: str
    traceback: str
    node_args: Any
    time: str


_FIELDS = tuple(ErrorRecord.__annotations__)


def make_error_record(
    node_args: Any,
    flow_name: str,
    task_name: str,
    task_id: str,
    exc_info: ExcInfo | BaseException,
) -> ErrorRecord:
    """The record ``store_error`` keeps: exception type, message, formatted traceback,
    ``node_args`` (as JSON when it can be, else ``{"repr": repr(node_args)}``), the key and
    the UTC time.

    ``exc_info`` is what ``sys.exc_info()`` returns, or the exception itself; anything else is
    a ``TypeError``."""
    if isinstance(exc_info, BaseException):
        exc_type: type[BaseException] | None = type(exc_info)
        exc: BaseException | None = exc_info
        tb = exc_info.__traceback__
    elif isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc_type, exc, tb = exc_info
    else:
        raise TypeError(
            "exc_info must be sys.exc_info() or an exception instance, not "
            f"{type(exc_info).__name__}"
        )
    if exc_type is None and exc is not None:
        exc_type = type(exc)
    try:
        json.dumps(node_args, allow_nan=False)
        args_value = node_args
    except (TypeError, ValueError, RecursionError):
        args_value = {"repr": repr(node_args)}
    formatted = "".join(traceback.format_exception(exc_type, exc, tb)) if exc_type else ""
    return {
        "flow_name": flow_name,
        "task_name": task_name,
        "task_id": task_id,
        "exception_type": (
            f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type is not None else None
        ),
        "message": str(exc) if exc is not None else "",
        "traceback": formatted,
        "node_args": args_value,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }


def record_key(record: Any) -> Key:
    """The key of an error record, checked: ``TypeError``/``ValueError`` for anything that is
    not a record as :func:`make_error_record` builds it."""
    if not isinstance(record, dict):
        raise TypeError(f"an error record must be a dict, not {type(record).__name__}")
    missing = [name for name in _FIELDS if name not in record]
    if missing:
        raise ValueError(f"error record lacks {', '.join(map(repr, missing))}")
    key = (record["flow_name"], record["task_name"], record["task_id"])
    check_key(*key)
    return key


def dump_error_record(record: ErrorRecord | dict[str, Any]) -> bytes:
    """The stored form of a record: UTF-8 JSON (a value JSON cannot hold becomes its repr)."""
    return json.dumps(record, ensure_ascii=False, default=repr).encode("utf-8")


def load_error_record(data: bytes | str) -> ErrorRecord:
    """A record from its stored form."""
    return cast(ErrorRecord, json.loads(data))
