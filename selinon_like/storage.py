"""``DataStorage``: the adapter contract (SPEC section 2).

An adapter author writes the I/O; this class does the plumbing, once, for every adapter —
built-in or custom, whether it overrides a method or inherits it. :meth:`__init_subclass__`
wraps each operation a subclass defines so that it runs through the layers of
:mod:`selinon_like.layers`: key check, read cache, observer, error translation, retries and
the lock. A custom adapter therefore writes plain methods, exactly as in Selinon.

Two ways to write an adapter:

* subclass :class:`DataStorage` and write the five methods of Selinon's documentation
  (``connect``, ``disconnect``, ``is_connected``, ``retrieve``, ``store``), and any optional
  ones you can offer;
* or subclass :class:`selinon_like.records.RecordStorage` and write a few primitives on bytes
  (``read``, ``write``, and ``remove``/``scan`` when the service can): every public operation,
  error records included, is then built on them.

Either way ``self.serializer`` is the storage's :class:`~selinon_like.envelope.RecordCodec`:
its ``dumps``/``loads`` serialize with the configured serializer and add what the storage's
``ttl`` and ``compression`` ask for (an expiry, a codec, a small header), so those keys work
for an adapter that calls ``self.serializer.dumps(result)`` as Selinon's adapters do. A record
past its expiry makes ``loads`` raise :class:`~selinon_like.ResultNotFound`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from threading import get_ident
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from selinon_like.compression import Compression
from selinon_like.deadline import DEFAULT_OPERATION_TIMEOUT
from selinon_like.envelope import Expiry, RecordCodec, RecordError
from selinon_like.error_records import ErrorRecord, ExcInfo, record_key
from selinon_like.errors import ConfigError, ResultNotFound
from selinon_like.keys import Key
from selinon_like.layers import (
    Blocking,
    Call,
    Handler,
    blocking_chain,
    chain,
    guarded_iter,
    nested_chain,
)
from selinon_like.masking import mask_config, secret_values
from selinon_like.retry import DEFAULT_RETRY, RetryPolicy
from selinon_like.serializers import Serializer
from selinon_like.steps import Steps, run
from selinon_like.streams import Digest

if TYPE_CHECKING:
    from selinon_like.cache import ResultCache
    from selinon_like.tracing import Observer

__all__ = ["OPTIONAL_OPERATIONS", "DataStorage", "ExcInfo", "StorageBase"]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="StorageBase")

# Operations a custom adapter may leave out; see DataStorage.capabilities().
OPTIONAL_OPERATIONS = (
    "store_error",
    "retrieve_error",
    "delete",
    "delete_many",
    "iter_keys",
    "iter_error_keys",
    "store_error_record",
    "store_stream",
    "retrieve_stream",
    "purge_expired",
)

_UNCHANGED: Any = object()  # set_record_format(): leave this setting as it is


# Every instance, so that a forked child can forget which threads were inside an operation.
_INSTANCES: weakref.WeakSet[StorageBase] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for storage in list(_INSTANCES):
        storage._op_threads = set()  # those threads do not exist here; their ids may be reused


os.register_at_fork(after_in_child=_after_fork_in_child)


def placeholder(fn: F) -> F:
    """Mark a base class's stand-in for an optional operation (one that raises
    ``NotImplementedError``, or a default written on other operations): a class whose ``op``
    is one does not offer ``op`` of its own."""
    fn.__selinon_placeholder__ = True  # type: ignore[attr-defined]
    return fn


class StorageBase(abc.ABC):
    """What every adapter has, blocking or async (:class:`DataStorage`,
    :class:`selinon_like.aio.AsyncDataStorage`): its settings (name, serializer and record
    format, retries, timeout, cache, observer), the layers its operations run through, and the
    helpers adapter authors use. The defaults of the bulk operations and ``ping`` are written
    here once, as steps (:mod:`selinon_like.steps`) each kind of adapter drives.
    """

    thread_safe: ClassVar[bool] = False

    storage_name: str
    retry_policy: RetryPolicy
    _op_codec: RecordCodec
    _op_cache: ResultCache | None
    _op_observer: Observer | None
    _op_chain: Handler  # the layers this instance's operations need (see layers.chain)
    _op_call: Blocking | None  # the same as plain calls, for a blocking adapter
    _op_nested: Handler
    _lock: threading.RLock
    _op_threads: set[int]
    _configuration: dict[str, Any]
    _secrets: list[str]
    _op_timeout: float | None  # operation_timeout; None: default_operation_timeout()

    def __new__(cls: type[S], *args: Any, **configuration: Any) -> S:
        # Set up here, not in __init__: a custom adapter need not call super().__init__().
        self = super().__new__(cls)
        self._lock = threading.RLock()
        self._op_threads = set()  # the threads inside an operation on this instance
        self.storage_name = cls.__name__
        self._op_codec = RecordCodec()
        self.retry_policy = DEFAULT_RETRY
        self._op_cache = None
        self._op_observer = None
        self._op_timeout = None
        self._rechain()
        self._configuration = dict(configuration)
        self._secrets = secret_values(configuration)
        _INSTANCES.add(self)
        return self

    def __init__(self, **configuration: Any) -> None:
        if configuration:
            raise ConfigError(
                f"{type(self).__name__} takes no configuration, got "
                + ", ".join(sorted(map(repr, configuration))),
                key=sorted(configuration)[0],
            )

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in mask_config(self._configuration).items())
        return f"<{type(self).__name__} {self.storage_name!r}{' ' + shown if shown else ''}>"

    @property
    def serializer(self) -> Serializer:
        """The storage's :class:`~selinon_like.envelope.RecordCodec` (a serializer that adds
        header, compression and expiry). Set it to a plain serializer (``json``, ``pickle``,
        an object with ``dumps``/``loads``); setting a codec takes the serializer inside it."""
        return self._op_codec

    @serializer.setter
    def serializer(self, serializer: Serializer) -> None:
        if isinstance(serializer, RecordCodec):
            serializer = serializer.serializer
        self._op_codec = dataclasses.replace(self._op_codec, serializer=serializer)

    @property
    def record_codec(self) -> RecordCodec:
        """How results and error records become stored bytes: serializer, ``compression``,
        ``ttl`` and clock (see :meth:`set_record_format`)."""
        return self._op_codec

    def set_record_format(
        self,
        *,
        ttl: Expiry = _UNCHANGED,
        compression: Compression = _UNCHANGED,
        clock: Callable[[], float] = _UNCHANGED,
        max_result_bytes: int | None = _UNCHANGED,
    ) -> None:
        """Set how long records live (``ttl``), how results are compressed, the clock
        (seconds since the epoch) expiry is computed and checked with, and the ceiling on one
        serialized result (``max_result_bytes``, None for none); settings not given stay as
        they are. The pool calls it from the YAML's ``ttl``, ``compression`` and
        ``max_result_bytes``; tests give a clock they can move."""
        changes: dict[str, Any] = {}
        if max_result_bytes is not _UNCHANGED:
            if max_result_bytes is not None and (
                isinstance(max_result_bytes, bool)
                or not isinstance(max_result_bytes, int)
                or max_result_bytes < 1
            ):
                raise ValueError(
                    f"max_result_bytes must be a whole number of bytes above 0 or None, "
                    f"not {max_result_bytes!r}"
                )
            changes["max_result_bytes"] = max_result_bytes
        if ttl is not _UNCHANGED:
            if not isinstance(ttl, Expiry):
                raise TypeError(f"ttl must be an Expiry, not {type(ttl).__name__}")
            changes["ttl"] = ttl
        if compression is not _UNCHANGED:
            if not isinstance(compression, Compression):
                raise TypeError(
                    f"compression must be a Compression, not {type(compression).__name__}"
                )
            changes["compression"] = compression
        if clock is not _UNCHANGED:
            if not callable(clock):
                raise TypeError(f"clock must be callable, not {type(clock).__name__}")
            changes["clock"] = clock
        self._op_codec = dataclasses.replace(self._op_codec, **changes)

    @property
    def cache(self) -> ResultCache | None:
        """The per-process read cache (set by the pool from ``cache:``), or None."""
        return self._op_cache

    @cache.setter
    def cache(self, cache: ResultCache | None) -> None:
        self._op_cache = cache
        # The cache keeps the stored bytes of what it caches: the codec reports them.
        self._op_codec = dataclasses.replace(self._op_codec, watch=cache is not None)
        self._rechain()

    @property
    def observer(self) -> Observer | None:
        """What receives trace events and keeps statistics (set by the pool), or None."""
        return self._op_observer

    @observer.setter
    def observer(self, observer: Observer | None) -> None:
        self._op_observer = observer
        self._rechain()

    @property
    def operation_timeout(self) -> float:
        """Seconds a call may last in all, retries, backoff and reconnects included; past it
        the call raises :class:`~selinon_like.StorageUnavailable` (set by the pool from the
        YAML's ``operation_timeout``; :meth:`default_operation_timeout` until set)."""
        timeout = self._op_timeout
        return self.default_operation_timeout() if timeout is None else timeout

    @operation_timeout.setter
    def operation_timeout(self, seconds: float | None) -> None:
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds < float("inf")
        ):
            raise ValueError(f"operation_timeout must be a number of seconds > 0, not {seconds!r}")
        self._op_timeout = None if seconds is None else float(seconds)

    def default_operation_timeout(self) -> float:
        """The ``operation_timeout`` of a storage whose configuration gives none: as long as
        one attempt may take under the adapter's own timeouts. Adapters with timeouts override
        it; this default (60 s) is for those with none (memory, files)."""
        return DEFAULT_OPERATION_TIMEOUT

    def bound_attempt(self, seconds: float | None) -> contextlib.AbstractContextManager[object]:
        """A context each attempt of an operation runs in, given the seconds left of the call's
        deadline (None for a stream, which has none). An adapter whose driver bounds a whole
        operation itself (pymongo's ``timeout``) returns that driver's context; most adapters
        give the time left to their drivers as timeouts instead and leave this alone."""
        return contextlib.nullcontext()

    def _rechain(self) -> None:
        lock = self._needs_lock()
        bound = type(self).bound_attempt is not StorageBase.bound_attempt
        cache, observer = self._op_cache is not None, self._op_observer is not None
        timed = self._times_attempts()
        self._op_chain = chain(cache, observer, lock, bound, timed)
        self._op_call = None if timed else blocking_chain(cache, observer, lock, bound)
        self._op_nested = nested_chain(lock)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        """The optional operations (of :data:`OPTIONAL_OPERATIONS`) this class offers: those
        it (or a base class other than :class:`DataStorage`) implements."""
        offered = {op for op in OPTIONAL_OPERATIONS if overrides(cls, op)}
        if "delete" in offered:
            offered.add("delete_many")  # the default deletes one by one
        return frozenset(offered)

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

    def recover(self, exc: BaseException) -> object:  # noqa: B027 - optional hook, empty by default
        """Called before a retry after a transient error; adapters may reset a connection."""

    def _not_implemented(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__}.{method}() is not implemented by this adapter"
        )

    def _needs_lock(self) -> bool:
        """Whether each attempt runs under the instance's lock (the layers' ``locked``)."""
        return not self.thread_safe

    def _times_attempts(self) -> bool:
        """Whether each attempt is cut at the call's deadline by the layers (an async
        adapter's, awaited) rather than by the adapter's own driver timeouts."""
        return False

    # -- the defaults of the optional operations, once for both kinds of adapter ----------

    def _store_many_steps(self, items: list[tuple[str, str, str, Any]]) -> Steps[list[str]]:
        serialize = self._op_codec.serialize  # a check only (refusals, max_result_bytes)
        for _flow, _task, _task_id, result in items:
            serialize(result)
        ids: list[str] = []
        for flow, task, task_id, result in items:
            ids.append((yield self.store, (flow, task, task_id, result)))  # type: ignore[attr-defined]
        return ids

    def _retrieve_many_steps(self, keys: Iterable[Key]) -> Steps[dict[Key, Any]]:
        found: dict[Key, Any] = {}
        for flow, task, task_id in keys:
            try:
                found[(flow, task, task_id)] = yield self.retrieve, (flow, task, task_id)  # type: ignore[attr-defined]
            except ResultNotFound:
                continue
        return found

    def _delete_many_steps(self, keys: Iterable[Key]) -> Steps[int]:
        removed = 0
        for flow, task, task_id in keys:
            try:
                yield self.delete, (flow, task, task_id)  # type: ignore[attr-defined]
            except ResultNotFound:
                continue
            removed += 1
        return removed

    def _ping_steps(self) -> Steps[bool]:
        with contextlib.suppress(ResultNotFound):
            yield self.retrieve, ("selinon_like", "ping", "ping")  # type: ignore[attr-defined]
        return True


class DataStorage(StorageBase):
    """Base class of every storage adapter.

    Subclasses receive the YAML ``configuration`` mapping as keyword arguments and must
    implement ``connect``, ``disconnect``, ``is_connected``, ``retrieve`` and ``store``.
    ``store_error``, ``retrieve_error`` and ``delete`` are optional (the base raises
    ``NotImplementedError``); ``store_many``, ``retrieve_many``, ``delete_many`` and ``ping``
    have correct, slow defaults; ``iter_keys``, ``iter_error_keys``, ``store_error_record``,
    ``store_stream``, ``retrieve_stream`` and ``purge_expired`` are optional capabilities.
    :meth:`capabilities` tells which optional operations a class really offers.

    Set ``thread_safe = True`` only when the client handles concurrent calls itself; otherwise
    every call runs under the instance's ``RLock``.

    Attributes set by the pool (defaults shown): ``storage_name`` (the class name),
    ``serializer`` (JSON; reading it gives the :class:`~selinon_like.envelope.RecordCodec`
    built on it, see the module docstring), ``retry_policy`` (3 attempts, 0.05 s backoff),
    ``cache`` (none), ``observer`` (none); ``ttl``, ``compression`` and the clock through
    :meth:`set_record_format` (forever, none, ``time.time``).
    """

    async_adapter: ClassVar[str | None] = None
    """The ``module:Class`` path of this adapter's native async form, which
    :class:`selinon_like.aio.AsyncStoragePool` builds from the same configuration; read from the
    class itself only (a subclass that changes behaviour must name its own), else None: the
    async pool runs the adapter in a thread pool."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrap_operations(cls, _wrap)

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

    @placeholder
    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure (see :func:`~selinon_like.error_records.make_error_record`)
        and return a record id."""
        raise self._not_implemented("store_error")

    @placeholder
    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The last error record stored for the key; :class:`ResultNotFound` when none."""
        raise self._not_implemented("retrieve_error")

    @placeholder
    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Remove the result; :class:`ResultNotFound` when there is none."""
        raise self._not_implemented("delete")

    # -- optional capabilities -------------------------------------------------------------

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        """Store ``(flow_name, task_name, task_id, result)`` items; their record ids in order.

        The default calls :meth:`store` once per item; adapters override it with one round
        trip (or a few batched ones) where the service allows. Every result is serialized
        first, so one the serializer refuses stores nothing."""
        return run(self._store_many_steps(list(items)))

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """The results of the keys that have one, by key (missing keys are left out)."""
        return run(self._retrieve_many_steps(keys))

    def delete_many(self, keys: Iterable[Key]) -> int:
        """Remove the results of ``keys``; how many there were (missing keys are skipped)."""
        return run(self._delete_many_steps(keys))

    def ping(self) -> bool:
        """One real round trip to the service; True, or raises :class:`StorageError`.

        The default looks up a key that is never stored."""
        return run(self._ping_steps())

    @placeholder
    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        """Every stored result key (of one flow when ``flow_name`` is given)."""
        raise self._not_implemented("iter_keys")

    @placeholder
    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        """Every key that has an error record (of one flow when ``flow_name`` is given)."""
        raise self._not_implemented("iter_error_keys")

    @placeholder
    def store_error_record(self, record: ErrorRecord) -> str:
        """Store a record as :meth:`retrieve_error` returns it, verbatim (``time`` and
        ``traceback`` included), under the key its ``flow_name``/``task_name``/``task_id``
        fields give; a record id."""
        raise self._not_implemented("store_error_record")

    @placeholder
    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        """Store a large blob given in chunks, never holding it whole; its :class:`Digest`."""
        raise self._not_implemented("store_stream")

    @placeholder
    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        """The chunks of a blob stored with :meth:`store_stream`."""
        raise self._not_implemented("retrieve_stream")

    @placeholder
    def purge_expired(
        self, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Remove the records (results and error records) past their expiry; how many.

        In bounded batches, never removing a record that has not expired, while other
        processes store and read. ``progress`` is called with each batch's count; with
        ``dry_run`` nothing is removed and the count is of the expired records found."""
        raise self._not_implemented("purge_expired")


def overrides(cls: type, op: str) -> bool:
    """Whether ``cls`` has its own ``op`` rather than a base class's placeholder."""
    fn = getattr(cls, op, None)
    return fn is not None and not getattr(fn, "__selinon_placeholder__", False)


# -- wrapping --------------------------------------------------------------------------------

_KEY_NAMES = ("flow_name", "task_name", "task_id")
# operation name -> index of flow_name among its positional arguments
KEYED_OPS = {
    "retrieve": 0,
    "store": 0,
    "retrieve_error": 0,
    "delete": 0,
    "store_error": 1,
    "store_stream": 0,
    "retrieve_stream": 0,
}
_BULK_OPS = {
    "store_many": "(flow_name, task_name, task_id, result)",
    "retrieve_many": "(flow_name, task_name, task_id)",
    "delete_many": "(flow_name, task_name, task_id)",
}
_PLAIN_OPS = ("connect", "disconnect", "ping", "purge_expired")
ALWAYS_LOCKED = frozenset({"connect", "disconnect"})  # even on a thread-safe adapter
ITER_OPS = frozenset({"iter_keys", "iter_error_keys"})
WRAPPED_OPS = (*KEYED_OPS, *_BULK_OPS, *_PLAIN_OPS, *ITER_OPS, "store_error_record")

CallBuilder = Callable[[Any, tuple[Any, ...], dict[str, Any]], Call]


def call_builder(fn: Callable[..., Any], op: str) -> CallBuilder:
    """What makes the :class:`Call` of one invocation of operation ``op`` (the adapter's
    ``fn``) from its arguments, checking their shape (a bulk call's tuples, an iteration's
    ``flow_name``); the key check itself is a layer's. Shared by the blocking and the async
    wrappers."""
    if op in KEYED_OPS:
        offset = KEYED_OPS[op]
        steps = getattr(fn, "__selinon_steps__", None)

        def keyed(storage: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
            key = _key_of(op, offset, args, kwargs)
            return Call(storage, op, fn, args, kwargs, key, None, steps)

        return keyed
    if op in _BULK_OPS:
        shape = _BULK_OPS[op]
        size = shape.count(",") + 1

        def bulk(storage: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
            if len(args) + len(kwargs) != 1:
                raise TypeError(f"{op}() takes one iterable of {shape} tuples")
            items = list(args[0] if args else next(iter(kwargs.values())))
            for item in items:
                if not isinstance(item, tuple) or len(item) != size:
                    raise TypeError(f"{op}() takes {shape} tuples, got {item!r:.80}")
            return Call(storage, op, fn, (items,), {}, None, items)

        return bulk
    if op in ITER_OPS:

        def listing(storage: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
            flow_name = args[0] if args else kwargs.get("flow_name")
            if flow_name is not None and not isinstance(flow_name, str):
                raise TypeError(f"flow_name must be a str or None, not {type(flow_name).__name__}")
            return Call(storage, op, fn, args, kwargs, None, None)

        return listing
    if op == "store_error_record":

        def with_record(storage: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
            if len(args) + len(kwargs) != 1:
                raise TypeError(f"{op}() takes one error record")
            record = args[0] if args else next(iter(kwargs.values()))
            return Call(storage, op, fn, (record,), {}, record_key(record), None)

        return with_record

    def plain(storage: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        return Call(storage, op, fn, args, kwargs, None, None)

    return plain


def _enter(storage: DataStorage, call: Call) -> Any:
    """Run ``call`` through every layer, or as part of the operation this thread is already
    running on ``storage``."""
    busy = storage._op_threads
    thread = get_ident()
    if thread in busy:
        try:
            return run(storage._op_nested(call))
        except RecordError as exc:
            raise located(storage, call, exc) from exc.__cause__
    busy.add(thread)  # set.add/discard/in are atomic: no lock needed
    try:
        operate = storage._op_call
        if operate is None:  # an adapter whose attempts the layers time (none blocking yet)
            return run(storage._op_chain(call))
        return operate(call)
    except RecordError as exc:
        # Raised by the codec (an expired or damaged record) inside an adapter's own code,
        # which did not say which key it was reading: the call knows.
        raise located(storage, call, exc) from exc.__cause__
    finally:
        busy.discard(thread)


def located(storage: StorageBase, call: Call, exc: RecordError) -> BaseException:
    """``exc`` (from the codec, which does not know the key) naming the call's key."""
    if call.key is None:
        return exc
    return exc.located(storage.storage_name, call.key)


def mark_wrapped(wrapper: F) -> F:
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


def _wrap(fn: Callable[..., Any], op: str) -> Callable[..., Any]:
    """``fn`` (the adapter's own ``op``) run through the layers, blocking."""
    build = call_builder(fn, op)
    if op in ALWAYS_LOCKED:

        def locked(self: DataStorage, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return _enter(self, build(self, args, kwargs))

        wrapper = locked
    elif op == "retrieve_stream" or op in ITER_OPS:

        def iterating(self: DataStorage, *args: Any, **kwargs: Any) -> Any:
            return guarded_iter(self, op, iter(_enter(self, build(self, args, kwargs))))

        wrapper = iterating
    else:

        def operation(self: DataStorage, *args: Any, **kwargs: Any) -> Any:
            return _enter(self, build(self, args, kwargs))

        wrapper = operation
    return mark_wrapped(functools.wraps(fn)(wrapper))


def wrap_operations(
    cls: type, wrap: Callable[[Callable[..., Any], str], Callable[..., Any]]
) -> None:
    """Replace each operation ``cls`` itself defines by ``wrap(fn, op)``."""
    for op in WRAPPED_OPS:
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
# They are stand-ins too: a class offers delete_many of its own only if it writes one.
for _op in ("store_many", "retrieve_many", "delete_many", "ping"):
    setattr(DataStorage, _op, placeholder(_wrap(DataStorage.__dict__[_op], _op)))
