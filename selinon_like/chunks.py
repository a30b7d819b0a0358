"""Large records and streams in pieces, written once for every ``RecordStorage`` (SPEC §9).

A service caps one value (a MongoDB document at 16 MiB, a MariaDB statement at
``max_allowed_packet``, a Redis string at 512 MiB); an adapter says so with the class attribute
``max_value_bytes``. A record longer than that, and every stream (``store_stream``), is
written as:

* **chunk records**, ``(flow, task, "\\x1fselinon-like:chunk:<token>:<n>")``: the bytes in
  pieces, each behind a small header (name ``selinon-like:chunk``) carrying the record's
  expiry, so a service's own expiry and ``purge_expired`` treat them like any record;
* a **manifest** under the record's own key, written last (header name
  ``selinon-like:manifest``, the record's expiry): the token naming its chunks, their number,
  the total size and the SHA-256 of the whole.

Each store draws a new token, ``<digest of task_id>.<start in ms, hex>.<random>``, so the
chunks of two versions never share a key, and a chunk's key alone says whose it is and how old.
The manifest is one ordinary write that replaces what was there, so a reader sees the old
manifest (whose chunks are only removed after the switch; a read that finds one gone starts
again from the manifest) or the new one, never a mix. Until the manifest is written nothing
visible has changed: a failed or interrupted store leaves the previous record readable.

**Orphans.** Before its first chunk, a store lists its token in the key's **chunk index**
``(flow, task, "\\x1fselinon-like:index:<digest of task_id>")`` with the time and how many
chunks it may write. A token of the index that is not the current manifest's and is older
than ``orphan_age`` seconds (a writer that crashed, a store of the same key that lost the
race to write the manifest last, chunks left by a later small result or a delete) is
reclaimed — its chunks removed — by the next chunked store of the same key and by
``purge_expired``. The index is read, changed and written again by each store with no lock
(a primitive has none to offer), re-read just before each write, so two stores of one key at
once can still drop each other's entry; ``purge_expired`` therefore also goes by the chunk
keys it lists: chunks older than ``orphan_age`` whose token is not the current manifest's of
the key its digest names are reclaimed, listed in an index or not. A writer slower than
``orphan_age`` could lose its chunks to a concurrent store of the same key; its manifest
would then fail the size or digest check on read, never return a mix.

Internal keys start with ``\\x1fselinon-like:`` in the task id and are never listed by
``iter_keys``.

Every function here that reads or writes is a generator of steps (:mod:`selinon_like.steps`),
yielding the storage's primitives rather than calling them, so that the blocking and the async
record storages run the same code; a stream's chunks are read with
:class:`~selinon_like.steps.Pull` (an async iterable too, under the async driver) and handed
out with :class:`~selinon_like.steps.Emit`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from selinon_like.compression import NO_COMPRESSION
from selinon_like.envelope import CorruptRecord, RecordCodec, has_header
from selinon_like.errors import ResultNotFound, StorageError
from selinon_like.keys import Key, Kind
from selinon_like.steps import END, Emit, Pull, Steps
from selinon_like.streams import Digest


class RecordStorage(Protocol):
    """What chunking uses of a record storage, blocking or async
    (:class:`selinon_like.records.RecordLogic`; a protocol, so that this module, which
    ``records`` builds on, does not import it). Its primitives are only ever yielded as steps,
    never called here, so their results may be awaitables."""

    storage_name: str
    orphan_age: float
    _op_codec: RecordCodec

    def read(self, kind: Kind, key: Key) -> Any: ...

    def scan(self, kind: Kind, flow_name: str | None) -> Any: ...

    def chunk_bytes(self, stream: bool) -> int: ...

    def _removes(self) -> bool: ...

    def _write_step(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None
    ) -> tuple[Callable[..., Any], tuple[Any, ...]]: ...

    def _read_many_steps(self, kind: Kind, keys: list[Key]) -> Steps[list[bytes | None]]: ...

    def _remove_many_steps(self, kind: Kind, keys: list[Key]) -> Steps[int]: ...

    def not_found(
        self, flow_name: str, task_name: str, task_id: str, what: str = "result"
    ) -> ResultNotFound: ...


__all__ = [
    "HEAD_ROOM",
    "INTERNAL_PREFIX",
    "ORPHAN_AGE",
    "STREAM_CHUNK_BYTES",
    "is_internal",
    "is_manifest",
    "read_chunked",
    "reclaim_orphans",
    "store_chunked",
    "stream_chunks",
]

INTERNAL_PREFIX = "\x1fselinon-like:"
MANIFEST = b"selinon-like:manifest"
CHUNK = b"selinon-like:chunk"
INDEX = b"selinon-like:chunk-index"
ORPHAN_AGE = 3600.0
"""Seconds after which a token of a chunk index that is not the current manifest's is taken
for a dead writer's (``RecordStorage.orphan_age`` defaults to it)."""
HEAD_ROOM = 64
"""Bytes kept below ``max_value_bytes`` for a chunk record's header."""
STREAM_CHUNK_BYTES = 4 * 1024 * 1024
"""The size of a stream's chunk records (at most): a writer holds about three of them at a
time (the buffer, the piece, its sealed record) and a reader two, plus what the driver
copies."""
_READ_BATCH = 2  # chunks read per read_many: two chunks in memory at once, at most
_GROW = 16  # a stream's index entry allows this many more chunks at a time
_RETRIES = 3  # reads that start again from the manifest after its chunks were replaced
_TOKEN_DIGEST = 32  # hex digits of the task id's digest in a token (128 bits)


class _Format:
    """A serializer that only names a record format (the header's name field)."""

    def __init__(self, name: bytes) -> None:
        self.name = name.decode()

    def dumps(self, obj: Any) -> bytes:
        raise TypeError(f"{self.name} records are written by selinon_like.chunks")

    def loads(self, data: bytes) -> Any:
        raise TypeError(f"{self.name} records are read by selinon_like.chunks")


_FORMATS = {name: _Format(name) for name in (MANIFEST, CHUNK, INDEX)}


def _codec(codec: RecordCodec, name: bytes) -> RecordCodec:
    # No compression: a result's record is compressed already, a stream is the caller's.
    # Not watched: the read cache keeps the whole record, which the storage's codec reports.
    return dataclasses.replace(
        codec,
        serializer=_FORMATS[name],
        compression=NO_COMPRESSION,
        max_result_bytes=None,
        watch=False,
    )


def _name_of(data: bytes) -> bytes | None:
    """The format name in the header ``data`` starts with (the layout of
    :mod:`selinon_like.envelope`: name length at offset 5, the name at 14)."""
    if len(data) < 14 or not has_header(data):
        return None
    return bytes(data[14 : 14 + data[5]])


def is_manifest(data: bytes) -> bool:
    """Whether a stored record is the manifest of a chunked record or stream (on every
    retrieve: compares in place, copying nothing)."""
    return data.startswith(MANIFEST, 14) and has_header(data) and data[5] == len(MANIFEST)


def is_internal(key: Key) -> bool:
    """Whether ``key`` is a chunk's or a chunk index's, never shown to callers."""
    return key[2].startswith(INTERNAL_PREFIX)


def _chunk_key(key: Key, token: str, index: int) -> Key:
    return (key[0], key[1], f"{INTERNAL_PREFIX}chunk:{token}:{index}")


def _digest(task_id: str) -> str:
    return hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()


def _index_key(key: Key) -> Key:
    return (key[0], key[1], f"{INTERNAL_PREFIX}index:{_digest(key[2])[:40]}")


def _new_token(key: Key, now: float) -> str:
    """A store's token: whose (the task id's digest) and since when, readable from any of its
    chunks' keys (:func:`_origin`), and a random part that makes it unique."""
    return f"{_digest(key[2])[:_TOKEN_DIGEST]}.{int(now * 1000):x}.{uuid.uuid4().hex[:16]}"


def _origin(token: str) -> tuple[str, float] | None:
    """The task id's digest and the start (seconds since the epoch) a token of
    :func:`_new_token` carries; None for another token (a uuid of an earlier layout)."""
    digest, dot, rest = token.partition(".")
    started, dot2, _random = rest.partition(".")
    if not (dot and dot2) or len(digest) != _TOKEN_DIGEST:
        return None
    try:
        return digest, int(started, 16) / 1000
    except ValueError:
        return None


@dataclass(frozen=True)
class _Manifest:
    token: str
    chunks: int
    size: int
    sha256: str
    stream: bool


def _open_manifest(codec: RecordCodec, data: bytes) -> _Manifest:
    payload, _serializer = _codec(codec, MANIFEST).open(data)  # RecordExpired past its expiry
    try:
        fields = json.loads(payload)
        return _Manifest(
            str(fields["token"]),
            int(fields["chunks"]),
            int(fields["size"]),
            str(fields["sha256"]),
            bool(fields["stream"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecord(f"its chunk manifest is damaged ({exc})") from exc


# -- the chunk index ----------------------------------------------------------------------------


def _read_index(storage: RecordStorage, kind: Kind, key: Key) -> Steps[dict[str, list[float]]]:
    data = yield storage.read, (kind, _index_key(key))
    if data is None or _name_of(data) != INDEX:
        return {}
    try:
        payload, _serializer = _codec(storage._op_codec, INDEX).open(data)
        tokens = json.loads(payload)["tokens"]
        return {str(token): [float(entry[0]), float(entry[1])] for token, entry in tokens.items()}
    except (StorageError, ValueError, KeyError, TypeError, IndexError):
        return {}  # a damaged index: its chunks are left, never a wrong one removed


def _write_index(
    storage: RecordStorage, kind: Kind, key: Key, tokens: dict[str, list[float]]
) -> Steps[None]:
    if not tokens:
        yield from _remove_quietly(storage, kind, [_index_key(key)])
        return
    payload = json.dumps({"key": list(key), "tokens": tokens}, separators=(",", ":")).encode()
    data = _codec(storage._op_codec, INDEX).seal(payload, None)
    yield storage._write_step(kind, _index_key(key), data, None)


def _update_index(
    storage: RecordStorage,
    kind: Kind,
    key: Key,
    put: dict[str, list[float]],
    drop: Iterable[str] = (),
) -> Steps[None]:
    """Set the entries ``put`` and remove the tokens ``drop`` in the key's index as it is now
    (read again right before the write: what other stores of the key changed meanwhile
    stays, but for their changes made between this read and write)."""
    tokens = yield from _read_index(storage, kind, key)
    for token in drop:
        tokens.pop(token, None)
    tokens.update(put)
    yield from _write_index(storage, kind, key, tokens)


def _remove_quietly(storage: RecordStorage, kind: Kind, keys: list[Key]) -> Steps[int]:
    if not keys or not storage._removes():
        return 0
    return (yield from storage._remove_many_steps(kind, keys))


def _current(storage: RecordStorage, kind: Kind, key: Key) -> Steps[_Manifest | None]:
    """The manifest stored under ``key``, if any (an expired one counts as none: its chunks
    are orphans like any other)."""
    data = yield storage.read, (kind, key)
    if data is None or not is_manifest(data):
        return None
    try:
        return _open_manifest(storage._op_codec, data)
    except StorageError:
        return None


def _stale(
    storage: RecordStorage, tokens: dict[str, list[float]], current: str | None, now: float
) -> dict[str, list[float]]:
    """The entries of ``tokens`` that are not ``current`` and older than ``orphan_age``."""
    return {
        token: entry
        for token, entry in tokens.items()
        if token != current and now * 1000 - entry[0] >= storage.orphan_age * 1000
    }


def _remove_chunks(
    storage: RecordStorage, kind: Kind, key: Key, token: str, count: int
) -> Steps[int]:
    return (
        yield from _remove_quietly(storage, kind, [_chunk_key(key, token, n) for n in range(count)])
    )


def reclaim_orphans(storage: RecordStorage, kind: Kind, now: float) -> Steps[int]:
    """Reclaim the stale chunks of ``kind`` (``purge_expired``): those the chunk indexes list,
    and those older than ``orphan_age`` whose token is not the current manifest's of the key
    it names, listed in an index or not; how many keys had chunks reclaimed or checked."""
    listed = Pull((yield storage.scan, (kind, None)))
    index_keys: list[Key] = []  # all of them first: reclaiming changes what a scan lists
    # (flow, task, digest of the task id) -> token -> chunks (the highest index listed, + 1)
    loose: dict[Key, dict[str, int]] = {}
    chunk_prefix = f"{INTERNAL_PREFIX}chunk:"
    while (listed_key := (yield listed)) is not END:
        name = listed_key[2]
        if name.startswith(f"{INTERNAL_PREFIX}index:"):
            index_keys.append(listed_key)
        elif name.startswith(chunk_prefix):
            token, _colon, number = name[len(chunk_prefix) :].rpartition(":")
            origin = _origin(token)
            if origin is None or now - origin[1] < storage.orphan_age or not number.isdigit():
                continue  # a live writer's, maybe; or an earlier layout's (indexes only)
            tokens = loose.setdefault((listed_key[0], listed_key[1], origin[0]), {})
            tokens[token] = max(tokens.get(token, 0), int(number) + 1)
    visited = 0
    for index_key in index_keys:
        data = yield storage.read, (kind, index_key)
        if data is None or _name_of(data) != INDEX:
            continue
        try:
            payload, _serializer = _codec(storage._op_codec, INDEX).open(data)
            flow, task, task_id = json.loads(payload)["key"]
            key: Key = (str(flow), str(task), str(task_id))
        except (StorageError, ValueError, KeyError, TypeError):
            continue
        if _index_key(key) != index_key:
            continue  # not an index this module wrote for that key
        yield from _reclaim_key(storage, kind, key, loose, now)
        visited += 1
    if loose:  # chunks of keys with no index (lost to a concurrent store, or removed)
        listed = Pull((yield storage.scan, (kind, None)))
        pairs = {(flow, task) for flow, task, _part in loose}
        while (listed_key := (yield listed)) is not END:
            if (listed_key[0], listed_key[1]) in pairs and not is_internal(listed_key):
                group = (*listed_key[:2], _digest(listed_key[2])[:_TOKEN_DIGEST])
                if group in loose:
                    yield from _reclaim_key(storage, kind, listed_key, loose, now)
                    visited += 1
        for (flow, task, _digest_part), tokens in loose.items():  # no key at all any more
            for token, count in tokens.items():
                yield from _remove_chunks(storage, kind, (flow, task, ""), token, count)
            visited += 1
    return visited


def _reclaim_key(
    storage: RecordStorage, kind: Kind, key: Key, loose: dict[Key, dict[str, int]], now: float
) -> Steps[None]:
    """Reclaim the stale chunks of ``key``: its index's, and its tokens in ``loose`` (taken
    out of it)."""
    tokens = yield from _read_index(storage, kind, key)
    current = yield from _current(storage, kind, key)
    keep = current.token if current is not None else None
    stale = _stale(storage, tokens, keep, now)
    for token, (_started, count) in stale.items():
        yield from _remove_chunks(storage, kind, key, token, int(count))
    found = loose.pop((key[0], key[1], _digest(key[2])[:_TOKEN_DIGEST]), {})
    for token, count in found.items():
        if token != keep and token not in stale and token not in tokens:
            yield from _remove_chunks(storage, kind, key, token, count)
    if stale:
        yield from _update_index(storage, kind, key, {}, stale)


# -- writing ------------------------------------------------------------------------------------


class _Cutter:
    """A stream's chunks, given one at a time, cut or joined into pieces of exactly ``size``
    bytes (the last shorter), and the :class:`Digest` of the whole."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray()
        self.sha = hashlib.sha256()
        self.total = 0

    def cut(self, chunk: Any) -> Iterator[bytes]:
        """The pieces ``chunk`` completes, one at a time (a bytes-like object; ``TypeError``
        otherwise)."""
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"store_stream() takes an iterable of bytes, got a {type(chunk).__name__}"
            )
        self.sha.update(chunk)
        self.total += len(chunk)
        size, buffer = self.size, self.buffer
        if not buffer and len(chunk) == size:
            yield bytes(chunk)  # a piece as it is (a chunked record's slices): one copy
            return
        buffer += chunk
        while len(buffer) >= size:
            with memoryview(buffer) as view:  # one copy: no bytearray slice in between
                piece = bytes(view[:size])
            del buffer[:size]
            yield piece

    def rest(self) -> Iterator[bytes]:
        """The last, shorter piece, if any (once the chunks are all given)."""
        if self.buffer:
            yield bytes(self.buffer)
            self.buffer = bytearray()

    def digest(self) -> Digest:
        return Digest(self.total, self.sha.hexdigest())


def store_chunked(
    storage: RecordStorage,
    kind: Kind,
    key: Key,
    chunks: Iterable[bytes] | Iterable[memoryview] | AsyncIterable[bytes],
    expires_at: float | None,
    *,
    stream: bool,
    expected: int | None = None,
) -> Steps[tuple[str, Digest]]:
    """Write ``chunks`` (read with :class:`~selinon_like.steps.Pull`: an async iterable too,
    under the async driver) as chunk records, then the manifest; the manifest's record id and
    the content's :class:`Digest`. ``expected``: how many chunks there will be, when known."""
    codec = storage._op_codec
    chunk_codec = _codec(codec, CHUNK)
    cutter = _Cutter(storage.chunk_bytes(stream))
    now = codec.clock()
    previous = yield from _current(storage, kind, key)
    current = previous.token if previous is not None else None
    stale = _stale(storage, (yield from _read_index(storage, kind, key)), current, now)
    for stale_token, (_started, count) in stale.items():
        yield from _remove_chunks(storage, kind, key, stale_token, int(count))
    token = _new_token(key, now)
    allowed = expected if expected is not None else _GROW
    yield from _update_index(storage, kind, key, {token: [now * 1000, float(allowed)]}, stale)
    source = Pull(chunks)
    written = 0
    try:
        while True:
            chunk = yield source
            pieces = cutter.rest() if chunk is END else cutter.cut(chunk)
            for piece in pieces:
                if written >= allowed:
                    allowed = written + _GROW
                    yield from _update_index(
                        storage, kind, key, {token: [now * 1000, float(allowed)]}
                    )
                sealed = chunk_codec.seal(piece, expires_at)
                yield storage._write_step(kind, _chunk_key(key, token, written), sealed, expires_at)
                written += 1
            if chunk is END:
                break
        digest = cutter.digest()
        manifest = json.dumps(
            {
                "token": token,
                "chunks": written,
                "size": digest.size,
                "sha256": digest.sha256,
                "stream": stream,
            },
            separators=(",", ":"),
        ).encode()
        sealed = _codec(codec, MANIFEST).seal(manifest, expires_at)
        record_id = yield storage._write_step(kind, key, sealed, expires_at)
    except GeneratorExit:
        raise  # closed unfinished: no step can run any more
    except BaseException:
        # Nothing visible changed; leave no chunk behind if the service still answers.
        try:
            yield from _remove_chunks(storage, kind, key, token, written)
            yield from _update_index(storage, kind, key, {}, [token])
        except Exception:  # the index keeps the token: a later store or purge reclaims it
            pass
        raise
    # The switch is done: the previous version's chunks go now, readers of it start again.
    # (A store of the key that wrote its manifest after this one's leaves this one's chunks
    # to the index and purge_expired, as a crashed writer's.)
    drop = []
    if previous is not None:
        yield from _remove_chunks(storage, kind, key, previous.token, previous.chunks)
        drop.append(previous.token)
    yield from _update_index(storage, kind, key, {token: [now * 1000, float(written)]}, drop)
    return str(record_id), digest


# -- reading ------------------------------------------------------------------------------------


class _Replaced(Exception):
    """A chunk of the manifest being read is gone: the record was stored again meanwhile."""


def _read_batch(
    storage: RecordStorage, kind: Kind, key: Key, manifest: _Manifest, start: int
) -> Steps[list[bytes]]:
    """The payloads of the chunks from ``start`` on, :data:`_READ_BATCH` of them at most."""
    chunk_codec = _codec(storage._op_codec, CHUNK)
    keys = [
        _chunk_key(key, manifest.token, n)
        for n in range(start, min(start + _READ_BATCH, manifest.chunks))
    ]
    payloads = []
    for data in (yield from storage._read_many_steps(kind, keys)):
        if data is None or _name_of(data) != CHUNK:
            raise _Replaced
        payload, _serializer = chunk_codec.open(data)
        payloads.append(payload)
    return payloads


def read_chunked(storage: RecordStorage, kind: Kind, key: Key, data: bytes) -> Steps[bytes | None]:
    """The whole record a manifest ``data`` stands for, checked against its size and digest;
    ``None`` when the key no longer holds anything. Starts again from the manifest when the
    record was stored again while its chunks were being read."""
    for _attempt in range(_RETRIES):
        manifest = _open_manifest(storage._op_codec, data)
        parts: list[bytes] = []
        try:
            for start in range(0, manifest.chunks, _READ_BATCH):
                parts += yield from _read_batch(storage, kind, key, manifest, start)
        except _Replaced:
            again: bytes | None = yield storage.read, (kind, key)
            if again is None:
                return None
            if not is_manifest(again):
                return again
            data = again
            continue
        whole = b"".join(parts)
        del parts
        if len(whole) != manifest.size or hashlib.sha256(whole).hexdigest() != manifest.sha256:
            raise CorruptRecord("its chunks do not add up to the size and digest of its manifest")
        return whole
    raise StorageError(
        f"{storage.storage_name}: the result under {key!r} was stored again {_RETRIES} times "
        "while it was being read; read it again"
    )


def stream_chunks(storage: RecordStorage, kind: Kind, key: Key) -> Steps[None]:
    """Emit (:class:`~selinon_like.steps.Emit`) the chunks of what ``key`` holds (a stream, a
    chunked record, or a record in one piece), checked at the end against the manifest's size
    and SHA-256; :class:`ResultNotFound` before the first, when there is nothing."""
    data = yield storage.read, (kind, key)
    if data is None:
        raise storage.not_found(*key)
    if not is_manifest(data):
        yield Emit(data)  # a record stored in one piece: its stored bytes
        return
    manifest = _open_manifest(storage._op_codec, data)
    sha, size = hashlib.sha256(), 0
    try:
        for start in range(0, manifest.chunks, _READ_BATCH):
            for chunk in (yield from _read_batch(storage, kind, key, manifest, start)):
                sha.update(chunk)
                size += len(chunk)
                yield Emit(chunk)
    except _Replaced:
        raise StorageError(
            f"{storage.storage_name}: the stream under {key!r} was stored again while it was "
            "being read; read it again"
        ) from None
    if size != manifest.size or sha.hexdigest() != manifest.sha256:
        raise CorruptRecord("its chunks do not add up to the size and digest of its manifest")
