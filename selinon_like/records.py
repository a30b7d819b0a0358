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
allows. ``delete``, ``delete_many``, ``iter_keys`` and ``iter_error_keys`` are offered when the
adapter writes ``remove`` / ``scan``, ``purge_expired`` when it writes both or its own ``purge``
(see :meth:`RecordStorage.capabilities`).

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
"""

from __future__ import annotations

import abc
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

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
from selinon_like.storage import DataStorage
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest

__all__ = ["ERRORS", "PURGE_BATCH", "RESULTS", "Kind", "RecordStorage"]

log = logging.getLogger("selinon_like")

RESULTS: Kind = "results"
ERRORS: Kind = "errors"
# The default purge reads and removes this many records at a time.
PURGE_BATCH = 500
_WHAT = {RESULTS: "result", ERRORS: "error record"}


def _takes_expiry(method: Callable[..., Any]) -> bool:
    try:
        return "expires_at" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class RecordStorage(DataStorage):
    """Base class of an adapter written as primitives on bytes (see the module docstring)."""

    # Whether the adapter's write / write_many take ``expires_at`` (set per class).
    _native_expiry: ClassVar[bool] = False
    _native_expiry_many: ClassVar[bool] = False

    max_value_bytes: int | None = None
    """The largest value the service takes in one write (a MongoDB document, a MariaDB
    packet, a Redis string), or None for no ceiling. A record longer than this is stored as
    chunks and a manifest (:mod:`selinon_like.chunks`), and streams come in chunks of at most
    this size. A class attribute; an instance may set its own (after reading the server's
    limit, say)."""
    orphan_age: float = chunking.ORPHAN_AGE
    """Seconds after which chunks no manifest names are reclaimed (see
    :mod:`selinon_like.chunks`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._native_expiry = _takes_expiry(cls.write)
        cls._native_expiry_many = _takes_expiry(cls.write_many) and (
            cls.write_many is not RecordStorage.write_many or cls._native_expiry
        )

    # -- primitives -------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, kind: Kind, key: Key) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""

    @abc.abstractmethod
    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        """Store ``data`` under ``key``, replacing what was there; a record id. (An adapter
        with native expiry adds ``expires_at: float | None = None``: see the module
        docstring.)"""

    def remove(self, kind: Kind, key: Key) -> bool:
        """Delete what is stored under ``key``; ``False`` when there was nothing."""
        raise self._not_implemented("remove")

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        """Every stored key, or those of ``flow_name`` (yielding others too is allowed: they
        are filtered out), each once."""
        raise self._not_implemented("scan")

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        """:meth:`read` of every key, in order."""
        return [self.read(kind, key) for key in keys]

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        """:meth:`write` of every item, in order; their record ids. ``expires_at``: as for
        :meth:`write`, the same for every item (an override may leave the parameter out)."""
        if self._native_expiry:
            write: Any = self.write
            return [write(kind, key, data, expires_at=expires_at) for key, data in items]
        return [self.write(kind, key, data) for key, data in items]

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        """:meth:`remove` of every key; how many had something stored."""
        return sum(self.remove(kind, key) for key in keys)

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        """Remove the records of ``kind`` whose expiry is at or before ``now`` (seconds since
        the epoch), yielding how many each batch removed (with ``dry_run``: found, removing
        nothing). Never removes a record that is unexpired when it is removed.

        The default lists the keys with :meth:`scan`, reads :data:`PURGE_BATCH` records at a
        time and gives the expired ones to :meth:`remove_expired`. A record whose header is
        damaged is left in place (and logged): only a record known to be expired goes."""
        batch: list[Key] = []
        for key in self.scan(kind, None):
            batch.append(key)
            if len(batch) >= PURGE_BATCH:
                yield self._purge_batch(kind, batch, now, dry_run)
                batch = []
        if batch:
            yield self._purge_batch(kind, batch, now, dry_run)

    def remove_expired(self, kind: Kind, keys: Sequence[Key], now: float) -> int:
        """Remove those of ``keys`` whose record is expired at ``now``; how many.

        The default reads them again and removes those still expired. Between the two,
        another process may store a new record under one of the keys, which is then removed
        too: an adapter whose service deletes conditionally (a script, a ``WHERE`` clause, an
        ``If-Match``) overrides this with that."""
        values = self.read_many(kind, keys)
        gone = [
            key
            for key, data in zip(keys, values, strict=True)
            if data is not None and self._is_expired(kind, key, data, now)
        ]
        return self.remove_many(kind, gone) if gone else 0

    def _purge_batch(self, kind: Kind, keys: list[Key], now: float, dry_run: bool) -> int:
        values = self.read_many(kind, keys)
        expired = [
            key
            for key, data in zip(keys, values, strict=True)
            if data is not None and self._is_expired(kind, key, data, now)
        ]
        if dry_run or not expired:
            return len(expired)
        return self.remove_expired(kind, expired, now)

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

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        offered = set(super().capabilities())
        offered.discard("delete")  # written below on remove, offered only with it
        offered.discard("delete_many")
        offered.update(("store_error", "retrieve_error", "store_error_record"))
        removes = cls.remove is not RecordStorage.remove
        scans = cls.scan is not RecordStorage.scan
        if removes:
            offered.update(("delete", "delete_many"))
        elif cls.store_stream is RecordStorage.store_stream:
            # a failed stream's chunks could not be cleaned up
            offered.difference_update(("store_stream", "retrieve_stream"))
        if scans:
            offered.update(("iter_keys", "iter_error_keys"))
        else:
            offered.difference_update(("iter_keys", "iter_error_keys"))
        if cls.purge is not RecordStorage.purge or (removes and scans):
            offered.add("purge_expired")
        else:
            offered.discard("purge_expired")
        return frozenset(offered)

    # -- the public operations, on the primitives -------------------------------------------

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        data = self.read(RESULTS, (flow_name, task_name, task_id))
        if data is not None and chunking.is_manifest(data):
            data = chunking.read_chunked(self, RESULTS, (flow_name, task_name, task_id), data)
        if data is None:
            raise self.not_found(flow_name, task_name, task_id)
        return self._op_codec.load(data)  # an expired record: located by the wrapper

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        codec = self._op_codec
        expires_at = codec.expires_at(RESULTS)
        data = codec.dump(result, expires_at)
        if self.max_value_bytes is not None and len(data) > self.max_value_bytes:
            key = (flow_name, task_name, task_id)
            return self._store_chunked(key, data, expires_at)
        if self._native_expiry:
            write: Any = self.write
            return str(write(RESULTS, (flow_name, task_name, task_id), data, expires_at=expires_at))
        return self.write(RESULTS, (flow_name, task_name, task_id), data)

    def _store_chunked(self, key: Key, data: bytes, expires_at: float | None) -> str:
        size = self.chunk_bytes(stream=False)
        view = memoryview(data)  # slices of it copy nothing
        pieces = [view[start : start + size] for start in range(0, len(data), size)]
        record_id, _digest = chunking.store_chunked(
            self, RESULTS, key, pieces, expires_at, stream=False, expected=len(pieces)
        )
        return record_id

    def chunk_bytes(self, stream: bool) -> int:
        """The size of the pieces a chunked record (``stream=False``) or a stream is written
        in: under ``max_value_bytes`` with room for a header, and for a stream at most
        :data:`~selinon_like.chunks.STREAM_CHUNK_BYTES` (a few in memory at once)."""
        ceiling = self.max_value_bytes
        size = DEFAULT_CHUNK_SIZE if ceiling is None else max(ceiling - chunking.HEAD_ROOM, 1)
        return min(size, chunking.STREAM_CHUNK_BYTES) if stream else size

    def _removes(self) -> bool:
        return type(self).remove is not RecordStorage.remove

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        if not self.remove(RESULTS, (flow_name, task_name, task_id)):
            raise self.not_found(flow_name, task_name, task_id)

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        codec = self._op_codec
        expires_at = codec.expires_at(RESULTS)
        dump = codec.dump
        # Everything is serialized before the first write: one bad result stores nothing.
        encoded = [
            ((flow, task, task_id), dump(result, expires_at))
            for flow, task, task_id, result in items
        ]
        ceiling = self.max_value_bytes
        if ceiling is not None and any(len(data) > ceiling for _key, data in encoded):
            small = [(key, data) for key, data in encoded if len(data) <= ceiling]
            small_ids = iter(self._write_many(RESULTS, small, expires_at) if small else [])
            return [
                self._store_chunked(key, data, expires_at)
                if len(data) > ceiling
                else next(small_ids)
                for key, data in encoded
            ]
        return self._write_many(RESULTS, encoded, expires_at) if encoded else []

    def _write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> list[str]:
        if self._native_expiry_many:
            write_many: Any = self.write_many
            ids: list[str] = write_many(kind, items, expires_at=expires_at)
            return ids
        return self.write_many(kind, items)

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        keys = list(keys)
        if not keys:
            return {}
        load = self._op_codec.load
        found: dict[Key, Any] = {}
        for key, data in zip(keys, self.read_many(RESULTS, keys), strict=True):
            if data is not None and chunking.is_manifest(data):
                try:
                    data = chunking.read_chunked(self, RESULTS, key, data)
                except RecordExpired:
                    continue
                except RecordError as exc:
                    raise exc.located(self.storage_name, key) from exc.__cause__
            if data is None:
                continue
            try:
                found[key] = load(data)
            except RecordExpired:
                continue
            except RecordError as exc:
                raise exc.located(self.storage_name, key) from exc.__cause__
        return found

    def delete_many(self, keys: Iterable[Key]) -> int:
        keys = list(keys)
        return self.remove_many(RESULTS, keys) if keys else 0

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(RESULTS, flow_name), flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(ERRORS, flow_name), flow_name)

    def purge_expired(
        self, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        now = self._op_codec.clock()
        total = 0
        for kind in (RESULTS, ERRORS):
            for count in self.purge(kind, now, dry_run):
                total += count
                if progress is not None and count:
                    progress(count)
        if not dry_run and self._may_hold_chunks() and type(self).scan is not RecordStorage.scan:
            # Chunks no manifest names any more (a crashed writer's, a replaced or deleted
            # chunked result's): found through the chunk indexes, which needs a full scan.
            chunking.reclaim_orphans(self, RESULTS, now)
        return total

    def _may_hold_chunks(self) -> bool:
        """Whether this adapter may hold the record layer's chunks (not one with its own
        streams and no ceiling, as Filesystem and S3): only then does purge look for them."""
        own_streams = type(self).store_stream is not RecordStorage.store_stream
        return self._removes() and (self.max_value_bytes is not None or not own_streams)

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        """Store a blob given in chunks as chunk records and a manifest
        (:mod:`selinon_like.chunks`), a few chunks in memory at a time; its :class:`Digest`.
        A stream that fails midway leaves the previous result in place."""
        expires_at = self._op_codec.expires_at(RESULTS)
        key = (flow_name, task_name, task_id)
        _record_id, digest = chunking.store_chunked(
            self, RESULTS, key, chunks, expires_at, stream=True
        )
        return digest

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        """The chunks of a blob stored with :meth:`store_stream`, read a few at a time and
        checked against the manifest's size and SHA-256 at the end;
        :class:`~selinon_like.errors.ResultNotFound` at the call when there is none."""
        return chunking.stream_chunks(self, RESULTS, (flow_name, task_name, task_id))

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        record = make_error_record(node_args, flow_name, task_name, task_id, exc_info)
        return self._write_error((flow_name, task_name, task_id), record)

    def store_error_record(self, record: ErrorRecord) -> str:
        key = (record["flow_name"], record["task_name"], record["task_id"])
        return self._write_error(key, record)

    def _write_error(self, key: Key, record: ErrorRecord) -> str:
        codec = self._op_codec
        expires_at = codec.expires_at(ERRORS)
        data = codec.seal(dump_error_record(record), expires_at, b"json")
        if self._native_expiry:
            write: Any = self.write
            return str(write(ERRORS, key, data, expires_at=expires_at))
        return self.write(ERRORS, key, data)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        key = (flow_name, task_name, task_id)
        data = self.read(ERRORS, key)
        if data is None:
            raise self.not_found(flow_name, task_name, task_id, "error record")
        try:
            payload, _serializer = self._op_codec.open(data)
        except RecordError as exc:
            raise exc.located(self.storage_name, key, "error record") from exc.__cause__
        return load_error_record(payload)


def _of_flow(keys: Iterator[Key], flow_name: str | None) -> Iterator[Key]:
    # Chunks and chunk indexes (selinon_like.chunks) are never shown.
    if flow_name is None:
        return (key for key in keys if not chunking.is_internal(key))
    return (key for key in keys if key[0] == flow_name and not chunking.is_internal(key))
