"""``RecordStorage``: every public operation built once on a few primitives on bytes.

A service that can get, put, delete and list values by key is all an adapter needs to offer:
subclass :class:`RecordStorage`, write ``connect``/``disconnect``/``is_connected`` and the
primitives below, and every operation of SPEC section 2 comes from here — serialization,
compression, expiry, error records (always JSON), bulk calls, key listing, purging — with the
key checks, lock, retries, error translation, cache and statistics of
:class:`~selinon_like.storage.DataStorage` around them.

Each primitive takes the record ``kind`` first: ``"results"`` or ``"errors"``; an adapter keeps
the two apart (two tables, two key prefixes, two directories) so an error never hides a result.
Keys are the exact ``(flow_name, task_name, task_id)`` triple, already checked; values are the
bytes to keep, already encoded (:class:`~selinon_like.envelope.RecordCodec`: serialized,
compressed, behind a header when they need one).

=================  ============================================================  ==========
primitive          contract                                                      default
=================  ============================================================  ==========
``read``           the bytes stored under the key, or ``None``                   required
``write``          store (replacing) and return a record id                      required
``remove``         delete; ``False`` when there was nothing                      not offered
``scan``           iterate the stored keys (of one flow, when given)             not offered
``read_many``      ``read`` of many keys, in order                               one by one
``write_many``     ``write`` of many items, in order; their record ids           one by one
``remove_many``    ``remove`` of many keys; how many there were                  one by one
``purge``          remove the expired records of a kind, batch by batch          on ``scan``
``remove_expired`` remove those of some keys still expired; how many             read, remove
=================  ============================================================  ==========

Override the ``*_many`` primitives with one round trip (or a few batches) where the service
allows; the defaults (the base's :func:`~selinon_like.storage.placeholder` methods) are used
only while the adapter has none of its own. ``delete``, ``delete_many``, ``iter_keys`` and
``iter_error_keys`` are offered when the adapter writes ``remove`` / ``scan``,
``purge_expired`` when it writes both or its own ``purge`` (see
:meth:`RecordStorage.capabilities`).

Size and streams. A service that caps one value declares it with the class attribute
``max_value_bytes``; a record longer than that is written as chunk records and a manifest
written last, and ``store_stream``/``retrieve_stream`` work on every adapter that writes
``remove``, on the same chunks (:mod:`selinon_like.chunks`: a reader sees the old or the new
record, never a mix; orphaned chunks are reclaimed by a later store of the key and by
``purge_expired``). Nothing is asked of the adapter beyond its primitives.

Expiry. Every record's expiry time is in its header, and reading checks it: an expired record
is never returned, whatever the service did with it. An adapter whose service can expire
values itself adds a keyword parameter ``expires_at`` to ``write`` (and ``write_many``):
``write(kind, key, data, expires_at=None)``; it is then given the record's expiry time (seconds
since the epoch, by the storage's clock), or ``None`` for a record that never expires (an
expiry set by an earlier write must then go). An adapter whose ``write`` has no such parameter
is called without it. ``purge`` finds expired records by reading headers; an adapter that can
find them by an indexed field overrides it, and one whose service can delete a value only if
it is unchanged overrides ``remove_expired``, which is otherwise racy across processes (see
there).

Blocking and async. The logic is written once, in :class:`RecordLogic`, as generators of steps
(:mod:`selinon_like.steps`) that yield each primitive call instead of making it;
:class:`RecordStorage` drives them with :func:`~selinon_like.steps.run` on blocking primitives,
:class:`selinon_like.aio.records.AsyncRecordStorage` with :func:`~selinon_like.steps.arun` on
``async def`` ones.
"""

from __future__ import annotations

import abc
import functools
import inspect
import logging
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from selinon_like import chunks as chunking
from selinon_like.envelope import RecordError, RecordExpired, expiry_of
from selinon_like.error_records import (
    ErrorRecord,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
)
from selinon_like.keys import Key, Kind
from selinon_like.layers import Call, drives
from selinon_like.steps import END, Emit, Pull, Steps, iterate, run
from selinon_like.storage import DataStorage, overrides, placeholder
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest

if TYPE_CHECKING:
    from selinon_like.envelope import RecordCodec
    from selinon_like.errors import ResultNotFound

__all__ = [
    "ERRORS",
    "PURGE_BATCH",
    "RESULTS",
    "Kind",
    "RecordLogic",
    "RecordStorage",
    "RunsSteps",
    "StepsLogic",
    "placeholder",
]

log = logging.getLogger("selinon_like")

RESULTS: Kind = "results"
ERRORS: Kind = "errors"
# The default purge reads and removes this many records at a time.
PURGE_BATCH = 500
_WHAT = {RESULTS: "result", ERRORS: "error record"}

Step = tuple[Callable[..., Any], tuple[Any, ...]]


def _expiry_parameter(method: Callable[..., Any]) -> tuple[bool, bool]:
    """Whether ``method`` (a ``write``) takes ``expires_at``, and whether as its fourth
    positional argument after ``self``."""
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False, False
    for position, parameter in enumerate(parameters):
        if parameter.name == "expires_at":
            return True, position == 4 and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    return False, False


class RecordLogic:
    """Every operation of the record layer, written once as generators of steps
    (:mod:`selinon_like.steps`), for :class:`RecordStorage` (blocking primitives, driven by
    :func:`~selinon_like.steps.run`) and for the async base class (``async def``
    primitives, driven by :func:`~selinon_like.steps.arun`).

    A mixin: a base class puts it before its :class:`~selinon_like.storage.DataStorage`
    base, writes the public operations as drivers of the ``_*_steps`` methods, and marks its
    stand-ins for the optional primitives with :func:`placeholder`. The steps never call a
    primitive: they yield it (``data = yield self.read, (kind, key)``), and decide by
    :meth:`_offers` whether the adapter writes ``read_many``, ``write_many``,
    ``remove_many``, ``purge`` or ``remove_expired`` itself or gets the default (the
    ``_default_*_steps`` methods, on the single-record primitives)."""

    # Whether the adapter's write / write_many take ``expires_at`` (set per class), and
    # whether write takes it by position.
    _native_expiry: ClassVar[bool] = False
    _native_expiry_many: ClassVar[bool] = False
    _expiry_by_position: ClassVar[bool] = False

    max_value_bytes: int | None = None
    """The largest value the service takes in one write (a MongoDB document, a MariaDB
    packet, a Redis string), or None for no ceiling. A record longer than this is stored as
    chunks and a manifest (:mod:`selinon_like.chunks`), and streams come in chunks of at most
    this size. A class attribute; an instance may set its own (after reading the server's
    limit, say)."""
    orphan_age: float = chunking.ORPHAN_AGE
    """Seconds after which chunks no manifest names are reclaimed (see
    :mod:`selinon_like.chunks`)."""

    if TYPE_CHECKING:  # from the DataStorage base, and the primitives (sync or async)
        storage_name: str
        _op_codec: RecordCodec

        def not_found(
            self, flow_name: str, task_name: str, task_id: str, what: str = "result"
        ) -> ResultNotFound: ...

        def read(self, kind: Kind, key: Key) -> Any: ...

        def write(self, kind: Kind, key: Key, data: bytes) -> Any: ...

        def remove(self, kind: Kind, key: Key) -> Any: ...

        def scan(self, kind: Kind, flow_name: str | None) -> Any: ...

        def read_many(self, kind: Kind, keys: Sequence[Key]) -> Any: ...

        def write_many(
            self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
        ) -> Any: ...

        def remove_many(self, kind: Kind, keys: Sequence[Key]) -> Any: ...

        def purge(self, kind: Kind, now: float, dry_run: bool) -> Any: ...

        def remove_expired(self, kind: Kind, keys: Sequence[Key], now: float) -> Any: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._native_expiry, cls._expiry_by_position = _expiry_parameter(cls.write)
        cls._native_expiry_many = _expiry_parameter(cls.write_many)[0] and (
            overrides(cls, "write_many") or cls._native_expiry
        )

    # -- what the adapter offers ------------------------------------------------------------

    def _offers(self, primitive: str) -> bool:
        """Whether the adapter writes ``primitive`` itself (one set on the instance counts)
        rather than leaving the base's :func:`~selinon_like.storage.placeholder`."""
        return overrides(type(self), primitive) or primitive in vars(self)

    def _removes(self) -> bool:
        return self._offers("remove")

    @classmethod
    def _record_capabilities(cls, offered: frozenset[str]) -> frozenset[str]:
        """``offered`` (what the DataStorage base finds) as the record layer changes it: the
        operations written here on ``remove``/``scan`` only where the adapter has them."""
        result = set(offered)
        result.discard("delete")  # written here on remove, offered only with it
        result.discard("delete_many")
        result.update(("store_error", "retrieve_error", "store_error_record"))
        removes, scans = overrides(cls, "remove"), overrides(cls, "scan")
        if removes:
            result.update(("delete", "delete_many"))
        # The streams written here (a placeholder, which the base left out) need remove: a
        # failed stream's chunks could not be cleaned up without it.
        if removes or overrides(cls, "store_stream"):
            result.update(("store_stream", "retrieve_stream"))
        else:
            result.difference_update(("store_stream", "retrieve_stream"))
        if scans:
            result.update(("iter_keys", "iter_error_keys"))
        else:
            result.difference_update(("iter_keys", "iter_error_keys"))
        if overrides(cls, "purge") or (removes and scans):
            result.add("purge_expired")
        else:
            result.discard("purge_expired")
        return frozenset(result)

    def _may_hold_chunks(self) -> bool:
        """Whether this adapter may hold the record layer's chunks (not one with its own
        streams and no ceiling, as Filesystem and S3): only then does purge look for them."""
        own_streams = self._offers("store_stream")
        return self._removes() and (self.max_value_bytes is not None or not own_streams)

    def chunk_bytes(self, stream: bool) -> int:
        """The size of the pieces a chunked record (``stream=False``) or a stream is written
        in: under ``max_value_bytes`` with room for a header, and for a stream at most
        :data:`~selinon_like.chunks.STREAM_CHUNK_BYTES` (a few in memory at once)."""
        ceiling = self.max_value_bytes
        size = DEFAULT_CHUNK_SIZE if ceiling is None else max(ceiling - chunking.HEAD_ROOM, 1)
        return min(size, chunking.STREAM_CHUNK_BYTES) if stream else size

    # -- the primitives, as steps -----------------------------------------------------------

    def _write_step(self, kind: Kind, key: Key, data: bytes, expires_at: float | None) -> Step:
        """The step writing ``data`` under ``key``: ``expires_at`` goes to an adapter whose
        ``write`` takes it."""
        write: Callable[..., Any] = self.write
        if not self._native_expiry:
            return write, (kind, key, data)
        if self._expiry_by_position:
            return write, (kind, key, data, expires_at)
        return functools.partial(write, expires_at=expires_at), (kind, key, data)

    def _read_many_steps(self, kind: Kind, keys: list[Key]) -> Steps[list[bytes | None]]:
        if self._offers("read_many"):
            values: list[bytes | None] = yield self.read_many, (kind, keys)
            return values
        return (yield from self._default_read_many_steps(kind, keys))

    def _default_read_many_steps(
        self, kind: Kind, keys: Sequence[Key]
    ) -> Steps[list[bytes | None]]:
        values = []
        for key in keys:
            values.append((yield self.read, (kind, key)))
        return values

    def _write_many_steps(
        self, kind: Kind, items: list[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        if self._offers("write_many"):
            write_many: Callable[..., Any] = self.write_many
            if self._native_expiry_many:
                write_many = functools.partial(write_many, expires_at=expires_at)
            ids: list[str] = yield write_many, (kind, items)
            return ids
        return (yield from self._default_write_many_steps(kind, items, expires_at))

    def _default_write_many_steps(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        ids = []
        for key, data in items:
            ids.append((yield self._write_step(kind, key, data, expires_at)))
        return ids

    def _remove_many_steps(self, kind: Kind, keys: list[Key]) -> Steps[int]:
        if self._offers("remove_many"):
            count: int = yield self.remove_many, (kind, keys)
            return count
        return (yield from self._default_remove_many_steps(kind, keys))

    def _default_remove_many_steps(self, kind: Kind, keys: Sequence[Key]) -> Steps[int]:
        count = 0
        for key in keys:
            count += yield self.remove, (kind, key)
        return count

    def _purge_kind_steps(
        self, kind: Kind, now: float, dry_run: bool, counted: Callable[[int], None]
    ) -> Steps[None]:
        """Purge the records of ``kind``, each batch's count given to ``counted``."""
        if not self._offers("purge"):
            yield from self._default_purge_steps(kind, now, dry_run, counted)
            return
        batches = Pull((yield self.purge, (kind, now, dry_run)))
        while (count := (yield batches)) is not END:
            counted(count)

    def _default_purge_steps(
        self, kind: Kind, now: float, dry_run: bool, counted: Callable[[int], None] | None
    ) -> Steps[None]:
        """The default ``purge`` (see :meth:`RecordStorage.purge`): each batch's count given
        to ``counted``, or emitted (:class:`~selinon_like.steps.Emit`) without one."""
        keys = Pull((yield self.scan, (kind, None)))
        batch: list[Key] = []
        while True:
            key = yield keys
            if key is not END:
                batch.append(key)
            if batch and (key is END or len(batch) >= PURGE_BATCH):
                count = yield from self._purge_batch_steps(kind, batch, now, dry_run)
                batch = []
                if counted is None:
                    yield Emit(count)
                else:
                    counted(count)
            if key is END:
                return

    def _purge_batch_steps(
        self, kind: Kind, keys: list[Key], now: float, dry_run: bool
    ) -> Steps[int]:
        values = yield from self._read_many_steps(kind, keys)
        expired = self._expired(kind, keys, values, now)
        if dry_run or not expired:
            return len(expired)
        return (yield from self._remove_expired_steps(kind, expired, now))

    def _remove_expired_steps(self, kind: Kind, keys: list[Key], now: float) -> Steps[int]:
        if self._offers("remove_expired"):
            count: int = yield self.remove_expired, (kind, keys, now)
            return count
        return (yield from self._default_remove_expired_steps(kind, keys, now))

    def _default_remove_expired_steps(
        self, kind: Kind, keys: Sequence[Key], now: float
    ) -> Steps[int]:
        keys = list(keys)
        values = yield from self._read_many_steps(kind, keys)
        gone = self._expired(kind, keys, values, now)
        return (yield from self._remove_many_steps(kind, gone)) if gone else 0

    def _expired(
        self, kind: Kind, keys: list[Key], values: list[bytes | None], now: float
    ) -> list[Key]:
        """Those of ``keys`` whose record (of ``values``) has expired at ``now``."""
        return [
            key
            for key, data in zip(keys, values, strict=True)
            if data is not None and self._is_expired(kind, key, data, now)
        ]

    def _is_expired(self, kind: Kind, key: Key, data: bytes, now: float) -> bool:
        """Whether the record ``data`` has expired at ``now``; a damaged header is logged and
        counts as unexpired (purging never removes what it cannot read)."""
        try:
            expires = expiry_of(data)
        except RecordError as exc:
            log.warning(
                "%s: purge leaves it in place", exc.located(self.storage_name, key, _WHAT[kind])
            )
            return False
        return expires is not None and expires <= now

    # -- the operations, as steps -----------------------------------------------------------

    def _retrieve_steps(self, key: Key) -> Steps[Any]:
        data = yield self.read, (RESULTS, key)
        if data is not None and chunking.is_manifest(data):
            data = yield from chunking.read_chunked(self, RESULTS, key, data)
        if data is None:
            raise self.not_found(*key)
        return self._op_codec.load(data)  # an expired record: located by the wrapper

    def _store_steps(self, key: Key, result: Any) -> Steps[str]:
        codec = self._op_codec
        expires_at = codec.expires_at(RESULTS)
        data = codec.dump(result, expires_at)
        ceiling = self.max_value_bytes
        if ceiling is not None and len(data) > ceiling:
            return (yield from self._store_chunked_steps(key, data, expires_at))
        if self._expiry_by_position:  # the built-in adapters: the step without a call to build it
            record_id: str = yield self.write, (RESULTS, key, data, expires_at)
        else:
            record_id = yield self._write_step(RESULTS, key, data, expires_at)
        return record_id

    def _store_chunked_steps(self, key: Key, data: bytes, expires_at: float | None) -> Steps[str]:
        size = self.chunk_bytes(stream=False)
        view = memoryview(data)  # slices of it copy nothing
        pieces = [view[start : start + size] for start in range(0, len(data), size)]
        record_id, _digest = yield from chunking.store_chunked(
            self, RESULTS, key, pieces, expires_at, stream=False, expected=len(pieces)
        )
        return record_id

    def _delete_steps(self, key: Key) -> Steps[None]:
        if not (yield self.remove, (RESULTS, key)):
            raise self.not_found(*key)

    def _store_many_steps(self, items: Iterable[tuple[str, str, str, Any]]) -> Steps[list[str]]:
        codec = self._op_codec
        expires_at = codec.expires_at(RESULTS)
        dump = codec.dump
        # Everything is serialized before the first write: one bad result stores nothing.
        encoded = [
            ((flow, task, task_id), dump(result, expires_at))
            for flow, task, task_id, result in items
        ]
        if not encoded:
            return []
        ceiling = self.max_value_bytes
        if ceiling is None or all(len(data) <= ceiling for _key, data in encoded):
            return (yield from self._write_many_steps(RESULTS, encoded, expires_at))
        small = [(key, data) for key, data in encoded if len(data) <= ceiling]
        small_ids = iter(
            (yield from self._write_many_steps(RESULTS, small, expires_at)) if small else []
        )
        ids = []
        for key, data in encoded:
            if len(data) > ceiling:
                ids.append((yield from self._store_chunked_steps(key, data, expires_at)))
            else:
                ids.append(next(small_ids))
        return ids

    def _retrieve_many_steps(self, keys: Iterable[Key]) -> Steps[dict[Key, Any]]:
        keys = list(keys)
        if not keys:
            return {}
        load = self._op_codec.load
        found: dict[Key, Any] = {}
        values = yield from self._read_many_steps(RESULTS, keys)
        for key, data in zip(keys, values, strict=True):
            try:
                if data is not None and chunking.is_manifest(data):
                    data = yield from chunking.read_chunked(self, RESULTS, key, data)
                if data is not None:
                    found[key] = load(data)
            except RecordExpired:
                continue
            except RecordError as exc:
                raise exc.located(self.storage_name, key) from exc.__cause__
        return found

    def _delete_many_steps(self, keys: Iterable[Key]) -> Steps[int]:
        keys = list(keys)
        return (yield from self._remove_many_steps(RESULTS, keys)) if keys else 0

    def _purge_steps(self, dry_run: bool, progress: Callable[[int], None] | None) -> Steps[int]:
        now = self._op_codec.clock()
        total = 0

        def counted(count: int) -> None:
            nonlocal total
            total += count
            if progress is not None and count:
                progress(count)

        for kind in (RESULTS, ERRORS):
            yield from self._purge_kind_steps(kind, now, dry_run, counted)
        if not dry_run and self._may_hold_chunks() and self._offers("scan"):
            # Chunks no manifest names any more (a crashed writer's, a replaced or deleted
            # chunked result's): found through the chunk indexes, which needs a full scan.
            yield from chunking.reclaim_orphans(self, RESULTS, now)
        return total

    def _store_stream_steps(
        self, key: Key, chunks: Iterable[bytes] | AsyncIterable[bytes]
    ) -> Steps[Digest]:
        expires_at = self._op_codec.expires_at(RESULTS)
        _record_id, digest = yield from chunking.store_chunked(
            self, RESULTS, key, chunks, expires_at, stream=True
        )
        return digest

    def _retrieve_stream_steps(self, key: Key) -> Steps[None]:
        return chunking.stream_chunks(self, RESULTS, key)

    def _store_error_steps(
        self, node_args: Any, key: Key, exc_info: ExcInfo | BaseException
    ) -> Steps[str]:
        record = make_error_record(node_args, *key, exc_info)
        return self._write_error_steps(key, record)

    def _store_error_record_steps(self, record: ErrorRecord) -> Steps[str]:
        key = (record["flow_name"], record["task_name"], record["task_id"])
        return self._write_error_steps(key, record)

    def _write_error_steps(self, key: Key, record: ErrorRecord) -> Steps[str]:
        codec = self._op_codec
        expires_at = codec.expires_at(ERRORS)
        data = codec.seal(dump_error_record(record), expires_at, b"json")
        record_id: str = yield self._write_step(ERRORS, key, data, expires_at)
        return record_id

    def _retrieve_error_steps(self, key: Key) -> Steps[ErrorRecord]:
        data = yield self.read, (ERRORS, key)
        if data is None:
            raise self.not_found(*key, "error record")
        try:
            payload, _serializer = self._op_codec.open(data)
        except RecordError as exc:
            raise exc.located(self.storage_name, key, "error record") from exc.__cause__
        return load_error_record(payload)


def retrieve_steps(call: Call) -> Steps[Any]:
    """The steps of a ``retrieve`` call (see :func:`~selinon_like.layers.drives`)."""
    storage: Any = call.storage
    return storage._retrieve_steps(call.key)  # type: ignore[no-any-return]


def store_steps(call: Call) -> Steps[str]:
    """The steps of a ``store`` call (see :func:`~selinon_like.layers.drives`)."""
    storage: Any = call.storage
    result = call.args[3] if len(call.args) > 3 else call.kwargs["result"]
    return storage._store_steps(call.key, result)  # type: ignore[no-any-return]


class StepsLogic:
    """The primitives of a service written once, for its blocking adapter and its async one,
    as generators of I/O steps (:mod:`selinon_like.steps`): ``_read_io`` for ``read``,
    ``_write_io`` for ``write`` and so on. A logic class defines them;
    :class:`RunsSteps` and :class:`~selinon_like.aio.records.AwaitsSteps` turn them into the
    primitives of :class:`RecordStorage` and of its async twin."""

    def _read_io(self, kind: Kind, key: Key) -> Steps[bytes | None]:
        raise NotImplementedError

    def _write_io(self, kind: Kind, key: Key, data: bytes, expires_at: float | None) -> Steps[str]:
        raise NotImplementedError

    def _remove_io(self, kind: Kind, key: Key) -> Steps[bool]:
        raise NotImplementedError

    def _read_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[list[bytes | None]]:
        raise NotImplementedError

    def _write_many_io(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        raise NotImplementedError

    def _remove_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[int]:
        raise NotImplementedError

    def _purge_io(self, kind: Kind, now: float, dry_run: bool) -> Steps[None]:
        """Emits how many records each batch removed (see :meth:`RecordStorage.purge`)."""
        raise NotImplementedError

    def _scan_io(self, kind: Kind, flow_name: str | None) -> Steps[None]:
        """Emits the keys (see :meth:`RecordStorage.scan`)."""
        raise NotImplementedError


class RunsSteps(StepsLogic):
    """:class:`RecordStorage`'s primitives run from a :class:`StepsLogic`'s steps: a base
    class before ``RecordStorage``, after the logic class. A primitive the adapter writes
    itself (a faster path) overrides the one here."""

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return run(self._read_io(kind, key))

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        return run(self._write_io(kind, key, data, expires_at))

    def remove(self, kind: Kind, key: Key) -> bool:
        return run(self._remove_io(kind, key))

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        return run(self._read_many_io(kind, keys))

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        return run(self._write_many_io(kind, items, expires_at))

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        return run(self._remove_many_io(kind, keys))

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        counts: Iterator[int] = iterate(self._purge_io(kind, now, dry_run))
        return counts

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        keys: Iterator[Key] = iterate(self._scan_io(kind, flow_name))
        return keys


class RecordStorage(RecordLogic, DataStorage):
    """Base class of an adapter written as blocking primitives on bytes (see the module
    docstring); every operation drives the steps of :class:`RecordLogic`."""

    # -- primitives -------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, kind: Kind, key: Key) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""

    @abc.abstractmethod
    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        """Store ``data`` under ``key``, replacing what was there; a record id. (An adapter
        with native expiry adds ``expires_at: float | None = None``: see the module
        docstring.)"""

    @placeholder
    def remove(self, kind: Kind, key: Key) -> bool:
        """Delete what is stored under ``key``; ``False`` when there was nothing."""
        raise self._not_implemented("remove")

    @placeholder
    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        """Every stored key, or those of ``flow_name`` (yielding others too is allowed: they
        are filtered out), each once."""
        raise self._not_implemented("scan")

    @placeholder
    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        """:meth:`read` of every key, in order."""
        return run(self._default_read_many_steps(kind, keys))

    @placeholder
    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        """:meth:`write` of every item, in order; their record ids. ``expires_at``: as for
        :meth:`write`, the same for every item (an override may leave the parameter out)."""
        return run(self._default_write_many_steps(kind, items, expires_at))

    @placeholder
    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        """:meth:`remove` of every key; how many had something stored."""
        return run(self._default_remove_many_steps(kind, keys))

    @placeholder
    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        """Remove the records of ``kind`` whose expiry is at or before ``now`` (seconds since
        the epoch), yielding how many each batch removed (with ``dry_run``: found, removing
        nothing). Never removes a record that is unexpired when it is removed.

        The default lists the keys with :meth:`scan`, reads :data:`PURGE_BATCH` records at a
        time and gives the expired ones to :meth:`remove_expired`. A record whose header is
        damaged is left in place (and logged): only a record known to be expired goes."""
        return iterate(self._default_purge_steps(kind, now, dry_run, None))

    @placeholder
    def remove_expired(self, kind: Kind, keys: Sequence[Key], now: float) -> int:
        """Remove those of ``keys`` whose record is expired at ``now``; how many.

        The default reads them again and removes those still expired. Between the two,
        another process may store a new record under one of the keys, which is then removed
        too: an adapter whose service deletes conditionally (a script, a ``WHERE`` clause, an
        ``If-Match``) overrides this with that."""
        return run(self._default_remove_expired_steps(kind, keys, now))

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        return cls._record_capabilities(super().capabilities())

    # -- the public operations, on the primitives -------------------------------------------

    @drives(retrieve_steps)
    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        return run(self._retrieve_steps((flow_name, task_name, task_id)))

    @drives(store_steps)
    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return run(self._store_steps((flow_name, task_name, task_id), result))

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        run(self._delete_steps((flow_name, task_name, task_id)))

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        return run(self._store_many_steps(items))

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        return run(self._retrieve_many_steps(keys))

    def delete_many(self, keys: Iterable[Key]) -> int:
        return run(self._delete_many_steps(keys))

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(RESULTS, flow_name), flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(ERRORS, flow_name), flow_name)

    def purge_expired(
        self, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        return run(self._purge_steps(dry_run, progress))

    @placeholder
    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        """Store a blob given in chunks as chunk records and a manifest
        (:mod:`selinon_like.chunks`), a few chunks in memory at a time; its :class:`Digest`.
        A stream that fails midway leaves the previous result in place."""
        return run(self._store_stream_steps((flow_name, task_name, task_id), chunks))

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        """The chunks of a blob stored with :meth:`store_stream`, read a few at a time and
        checked against the manifest's size and SHA-256 at the end;
        :class:`~selinon_like.errors.ResultNotFound` at the call when there is none."""
        return iterate(self._retrieve_stream_steps((flow_name, task_name, task_id)))

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        return run(self._store_error_steps(node_args, (flow_name, task_name, task_id), exc_info))

    def store_error_record(self, record: ErrorRecord) -> str:
        return run(self._store_error_record_steps(record))

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        return run(self._retrieve_error_steps((flow_name, task_name, task_id)))


def _of_flow(keys: Iterator[Key], flow_name: str | None) -> Iterator[Key]:
    # Chunks and chunk indexes (selinon_like.chunks) are never shown.
    if flow_name is None:
        return (key for key in keys if not chunking.is_internal(key))
    return (key for key in keys if key[0] == flow_name and not chunking.is_internal(key))
