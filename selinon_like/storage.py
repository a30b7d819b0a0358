"""``DataStorage``: the adapter contract (SPEC section 2).

An adapter author writes the I/O; this class does the plumbing, once, for every adapter —
built-in or custom, whether it overrides a method or inherits it:

* every keyed operation validates ``(flow_name, task_name, task_id)`` before any I/O;
* an adapter with ``thread_safe = False`` runs every operation under its own ``RLock``
  (``connect``/``disconnect`` are always locked), however the caller reached the instance;
* driver exceptions are converted in one place into :class:`StorageError` (or
  :class:`StorageUnavailable` for what the adapter calls transient), chained with ``from``;
* transient errors are retried under the storage's :class:`RetryPolicy`;
* the optional read cache and the trace/stats observer see every call.

This happens in :meth:`DataStorage.__init_subclass__`, which wraps the operations a subclass
defines. A custom adapter therefore writes plain methods, exactly as in Selinon.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as _dt
import functools
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from selinon_like.errors import (
    ConfigError,
    ResultNotFound,
    SelinonLikeError,
    StorageError,
    StorageUnavailable,
)
from selinon_like.keys import Key, check_key, pack_key
from selinon_like.masking import mask_config, scrub, secret_values
from selinon_like.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from selinon_like.serializers import JSON, Serializer
from selinon_like.streams import Digest

__all__ = ["DataStorage", "ExcInfo", "make_error_record", "record_key"]

log = logging.getLogger("selinon_like")

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
F = TypeVar("F", bound=Callable[..., Any])

_KEY_NAMES = ("flow_name", "task_name", "task_id")
# operation name -> index of flow_name among its positional arguments
_KEYED_OPS = {
    "retrieve": 0,
    "store": 0,
    "retrieve_error": 0,
    "delete": 0,
    "store_error": 1,
    "store_stream": 0,
    "retrieve_stream": 0,
}
_BULK_OPS = ("store_many", "retrieve_many")
_PLAIN_OPS = ("connect", "disconnect", "ping")
_ITER_OPS = ("iter_keys", "iter_error_keys")
_RECORD_OPS = ("store_error_record",)
# What every error record holds (see make_error_record); the key fields must be str.
_RECORD_FIELDS = (*_KEY_NAMES, "exception_type", "message", "traceback", "node_args", "time")
# Operations whose input cannot be replayed.
_NOT_RETRIED = frozenset({"store_stream", "retrieve_stream"})


def _describe(key: Key | None) -> str:
    if key is None:
        return ""
    text = pack_key(*key)
    if len(text) > 200:
        text = text[:200] + "…"
    return f" of {text!r}"


class DataStorage(abc.ABC):
    """Base class of every storage adapter.

    Subclasses receive the YAML ``configuration`` mapping as keyword arguments and must
    implement ``connect``, ``disconnect``, ``is_connected``, ``retrieve`` and ``store``.
    ``store_error``, ``retrieve_error`` and ``delete`` are optional (the base raises
    ``NotImplementedError``); ``store_many``, ``retrieve_many`` and ``ping`` have correct, slow
    defaults; ``iter_keys``, ``iter_error_keys``, ``store_error_record``, ``store_stream`` and
    ``retrieve_stream`` are optional capabilities.

    Set ``thread_safe = True`` only when the client handles concurrent calls itself; otherwise
    every call runs under the instance's ``RLock``.

    Attributes set by the pool (defaults shown): ``storage_name`` (the class name),
    ``serializer`` (JSON), ``retry_policy`` (3 attempts, 0.05 s backoff).
    """

    thread_safe: ClassVar[bool] = False

    storage_name: str
    serializer: Serializer
    retry_policy: RetryPolicy
    cache: Any
    observer: Any
    _lock: threading.RLock
    _configuration: dict[str, Any]
    _secrets: list[str]

    def __new__(cls, *args: Any, **configuration: Any) -> DataStorage:
        # Set up here, not in __init__: a custom adapter need not call super().__init__().
        self = super().__new__(cls)
        self._lock = threading.RLock()
        self.storage_name = cls.__name__
        self.serializer = JSON
        self.retry_policy = DEFAULT_RETRY
        self.cache = None
        self.observer = None
        self._configuration = dict(configuration)
        self._secrets = secret_values(configuration)
        return self

    def __init__(self, **configuration: Any) -> None:
        if configuration:
            raise ConfigError(
                f"{type(self).__name__} takes no configuration, got "
                + ", ".join(sorted(map(repr, configuration))),
                key=sorted(configuration)[0],
            )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_operations(cls)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in mask_config(self._configuration).items())
        return f"<{type(self).__name__} {self.storage_name!r}{' ' + shown if shown else ''}>"

    # -- the contract --------------------------------------------------------------------

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection. Idempotent."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close the connection. Idempotent."""

    @abc.abstractmethod
    def is_connected(self) -> bool:
        """True between a successful ``connect()`` and ``disconnect()``."""

    @abc.abstractmethod
    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """The stored result; raises :class:`ResultNotFound` when there is none."""

    @abc.abstractmethod
    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        """Store (replacing any result under the same key) and return a record id."""

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure (see :func:`make_error_record`) and return a record id."""
        raise self._not_implemented("store_error")

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        """The last error record stored for the key; :class:`ResultNotFound` when none."""
        raise self._not_implemented("retrieve_error")

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Remove the result; :class:`ResultNotFound` when there is none."""
        raise self._not_implemented("delete")

    # -- optional capabilities -------------------------------------------------------------

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        """Store ``(flow_name, task_name, task_id, result)`` items; their record ids in order.

        The default calls :meth:`store` once per item; adapters override it with one round
        trip (or a few batched ones) where the service allows. Every result is serialized
        first, so one the serializer refuses stores nothing."""
        items = list(items)
        for _flow, _task, _task_id, result in items:
            self.serializer.dumps(result)
        return [self.store(flow, task, task_id, result) for flow, task, task_id, result in items]

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """The results of the keys that have one, by key (missing keys are left out)."""
        found: dict[Key, Any] = {}
        for flow, task, task_id in keys:
            with contextlib.suppress(ResultNotFound):
                found[(flow, task, task_id)] = self.retrieve(flow, task, task_id)
        return found

    def ping(self) -> bool:
        """One real round trip to the service; True, or raises :class:`StorageError`.

        The default looks up a key that is never stored."""
        with contextlib.suppress(ResultNotFound):
            self.retrieve("selinon_like", "ping", "ping")
        return True

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        """Every stored result key (of one flow when ``flow_name`` is given)."""
        raise self._not_implemented("iter_keys")

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        """Every key that has an error record (of one flow when ``flow_name`` is given)."""
        raise self._not_implemented("iter_error_keys")

    def store_error_record(self, record: dict[str, Any]) -> str:
        """Store a record as :meth:`retrieve_error` returns it, verbatim (``time`` and
        ``traceback`` included), under the key its ``flow_name``/``task_name``/``task_id``
        fields give; a record id."""
        raise self._not_implemented("store_error_record")

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        """Store a large blob given in chunks, never holding it whole; its :class:`Digest`."""
        raise self._not_implemented("store_stream")

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        """The chunks of a blob stored with :meth:`store_stream`."""
        raise self._not_implemented("retrieve_stream")

    # -- helpers for adapter authors -------------------------------------------------------

    def not_found(
        self, flow_name: str, task_name: str, task_id: str, what: str = "result"
    ) -> ResultNotFound:
        """The one "not found" error, with a message naming the storage and the key."""
        return ResultNotFound(
            f"{self.storage_name}: no {what} stored for flow {flow_name!r}, task {task_name!r}, "
            f"task id {task_id!r}"
        )

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a driver error may go away on retry. Adapters extend this."""
        return isinstance(exc, (ConnectionError, TimeoutError))

    def recover(self, exc: BaseException) -> None:  # noqa: B027 - optional hook, empty by default
        """Called before a retry after a transient error; adapters may reset a connection."""

    def _not_implemented(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__}.{method}() is not implemented by this adapter"
        )

    def _translate(
        self, exc: BaseException, op: str, key: Key | None, transient: bool
    ) -> StorageError:
        kind = StorageUnavailable if transient else StorageError
        detail = scrub(f"{type(exc).__name__}: {exc}", self._secrets)
        if transient and self.retry_policy.attempts > 1 and op not in _NOT_RETRIED:
            detail += f" (after {self.retry_policy.attempts} attempts)"
        return kind(f"{self.storage_name}: {op}{_describe(key)} failed: {detail}")

    # -- the one place every operation goes through ----------------------------------------

    def _call(
        self,
        op: str,
        key: Key | None,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        cache = self.cache
        if cache is not None and key is not None and op == "retrieve":
            hit, value = cache.get(key)
            if hit:
                if self.observer is not None:
                    self.observer.event(self, "cache_hit", key, 0.0, None)
                return value
            if self.observer is not None:
                self.observer.event(self, "cache_miss", key, 0.0, None)
        observer = self.observer
        started = time.perf_counter() if observer is not None else 0.0
        policy = NO_RETRY if op in _NOT_RETRIED else self.retry_policy
        attempt = 0
        lock = None if self.thread_safe and op not in ("connect", "disconnect") else self._lock
        while True:
            try:
                if lock is None:
                    result = fn(self, *args, **kwargs)
                else:
                    with lock:
                        result = fn(self, *args, **kwargs)
                break
            except (SelinonLikeError, NotImplementedError) as exc:
                if observer is not None:
                    observer.event(self, op, key, time.perf_counter() - started, exc)
                raise
            except Exception as exc:
                transient = self.is_transient(exc)
                if transient and attempt + 1 < policy.attempts:
                    delay = policy.delay(attempt)
                    attempt += 1
                    log.warning(
                        "%s: %s%s failed (%s), retry %d of %d in %.3fs",
                        self.storage_name,
                        op,
                        _describe(key),
                        scrub(f"{type(exc).__name__}: {exc}", self._secrets),
                        attempt,
                        policy.attempts - 1,
                        delay,
                    )
                    if observer is not None:
                        observer.event(self, "retry", key, time.perf_counter() - started, exc)
                    time.sleep(delay)
                    self.recover(exc)
                    continue
                error = self._translate(exc, op, key, transient)
                if observer is not None:
                    observer.event(self, op, key, time.perf_counter() - started, error)
                raise error from exc
        if observer is not None:
            observer.event(self, op, key, time.perf_counter() - started, None)
        if cache is not None and key is not None:
            if op == "retrieve":
                cache.put(key, result, self.serializer)
            elif op == "store":
                cache.put(key, args[3] if len(args) > 3 else kwargs["result"], self.serializer)
            elif op == "delete":
                cache.evict(key)
        return result

    def _guard_iter(self, op: str, iterator: Iterator[Any]) -> Iterator[Any]:
        """Iterate a driver's iterator with the lock held per step and errors converted."""
        lock = None if self.thread_safe else self._lock
        while True:
            try:
                if lock is None:
                    item = next(iterator)
                else:
                    with lock:
                        item = next(iterator)
            except StopIteration:
                return
            except (SelinonLikeError, NotImplementedError):
                raise
            except Exception as exc:
                raise self._translate(exc, op, None, self.is_transient(exc)) from exc
            yield item


# -- wrapping --------------------------------------------------------------------------------


def _mark(wrapper: F) -> F:
    wrapper.__selinon_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def _key_of(op: str, offset: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Key:
    if len(args) >= offset + 3:
        return args[offset], args[offset + 1], args[offset + 2]
    parts = list(args[offset : offset + 3])
    for name in _KEY_NAMES[len(parts) :]:
        if name not in kwargs:
            raise TypeError(f"{op}() missing required argument: {name!r}")
        parts.append(kwargs[name])
    return parts[0], parts[1], parts[2]


def _wrap_keyed(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    offset = _KEYED_OPS[op]

    @functools.wraps(fn)
    def keyed(self: DataStorage, *args: Any, **kwargs: Any) -> Any:
        key = _key_of(op, offset, args, kwargs)
        check_key(*key)
        result = self._call(op, key, fn, args, kwargs)
        if op == "retrieve_stream":
            return self._guard_iter(op, result)
        return result

    return _mark(keyed)


def _wrap_bulk(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bulk(self: DataStorage, items: Iterable[Any]) -> Any:
        items = list(items)
        for item in items:
            if not isinstance(item, tuple) or len(item) != (4 if op == "store_many" else 3):
                raise TypeError(
                    f"{op}() takes "
                    + (
                        "(flow_name, task_name, task_id, result) tuples"
                        if op == "store_many"
                        else "(flow_name, task_name, task_id) tuples"
                    )
                    + f", got {item!r:.80}"
                )
            check_key(item[0], item[1], item[2])
        return self._call(op, None, fn, (items,), {})

    return _mark(bulk)


def _wrap_plain(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def plain(self: DataStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(op, None, fn, args, kwargs)

    return _mark(plain)


def _wrap_iter(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def iterate(self: DataStorage, *args: Any, **kwargs: Any) -> Iterator[Any]:
        flow_name = args[0] if args else kwargs.get("flow_name")
        if flow_name is not None and not isinstance(flow_name, str):
            raise TypeError(f"flow_name must be a str or None, not {type(flow_name).__name__}")
        return self._guard_iter(op, iter(self._call(op, None, fn, args, kwargs)))

    return _mark(iterate)


def record_key(record: Any) -> Key:
    """The key of an error record, checked: TypeError/ValueError for anything that is not
    a record as :func:`make_error_record` builds it."""
    if not isinstance(record, dict):
        raise TypeError(f"an error record must be a dict, not {type(record).__name__}")
    missing = [name for name in _RECORD_FIELDS if name not in record]
    if missing:
        raise ValueError(f"error record lacks {', '.join(map(repr, missing))}")
    key = (record["flow_name"], record["task_name"], record["task_id"])
    check_key(*key)
    return key


def _wrap_record(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def with_record(self: DataStorage, record: dict[str, Any]) -> Any:
        return self._call(op, record_key(record), fn, (record,), {})

    return _mark(with_record)


_WRAPPERS: dict[str, Callable[[Callable[..., Any], str], Callable[..., Any]]] = {
    **{op: _wrap_keyed for op in _KEYED_OPS},
    **{op: _wrap_bulk for op in _BULK_OPS},
    **{op: _wrap_plain for op in _PLAIN_OPS},
    **{op: _wrap_iter for op in _ITER_OPS},
    **{op: _wrap_record for op in _RECORD_OPS},
}


def _wrap_operations(cls: type) -> None:
    for op, wrap in _WRAPPERS.items():
        fn = cls.__dict__.get(op)
        if (
            fn is None
            or not callable(fn)
            or getattr(fn, "__selinon_wrapped__", False)
            or getattr(fn, "__isabstractmethod__", False)
        ):
            continue
        setattr(cls, op, wrap(fn, op))


# The base's own default implementations go through the same plumbing.
for _op in ("store_many", "retrieve_many", "ping"):
    setattr(DataStorage, _op, _WRAPPERS[_op](DataStorage.__dict__[_op], _op))


# -- error records ---------------------------------------------------------------------------


def make_error_record(
    node_args: Any,
    flow_name: str,
    task_name: str,
    task_id: str,
    exc_info: ExcInfo | BaseException,
) -> dict[str, Any]:
    """The record ``store_error`` keeps: exception type, message, formatted traceback,
    ``node_args`` (as JSON when it can be, else its ``repr``), the key and the UTC time.

    ``exc_info`` is what ``sys.exc_info()`` returns, or the exception itself."""
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
    except (TypeError, ValueError):
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


def dump_error_record(record: dict[str, Any]) -> bytes:
    """Error records are always JSON, whatever the storage's result serializer."""
    return json.dumps(record, ensure_ascii=False, default=repr).encode("utf-8")


def load_error_record(data: bytes | str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(data)
    return record
