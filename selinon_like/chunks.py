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

Each store draws a new token, so the chunks of two versions never share a key. The manifest is
one ordinary write that replaces what was there, so a reader sees the old manifest (whose
chunks are only removed after the switch; a read that finds one gone starts again from the
manifest) or the new one, never a mix. Until the manifest is written nothing visible has
changed: a failed or interrupted store leaves the previous record readable.

**Orphans.** Before its first chunk, a store lists its token in the key's **chunk index**
``(flow, task, "\\x1fselinon-like:index:<digest of task_id>")`` with the time and how many
chunks it may write. A token of the index that is not the current manifest's and is older
than ``orphan_age`` seconds (a writer that crashed, or chunks left by a later small result or
a delete) is reclaimed — its chunks removed — by the next chunked store of the same key and by
``purge_expired``. A writer slower than ``orphan_age`` could lose its chunks to a concurrent
store of the same key; its manifest would then fail the size or digest check on read, never
return a mix.

Internal keys start with ``\\x1fselinon-like:`` in the task id and are never listed by
``iter_keys``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from selinon_like.compression import NO_COMPRESSION
from selinon_like.envelope import CorruptRecord, RecordCodec, has_header
from selinon_like.errors import ResultNotFound, StorageError
from selinon_like.keys import Key, Kind
from selinon_like.streams import Digest, DigestingReader


class RecordStorage(Protocol):
    """What chunking uses of a :class:`selinon_like.records.RecordStorage` (a protocol, so
    that this module, which ``records`` builds on, does not import it)."""

    storage_name: str
    orphan_age: float
    _op_codec: RecordCodec
    _native_expiry: ClassVar[bool]

    def read(self, kind: Kind, key: Key) -> bytes | None: ...

    def write(self, kind: Kind, key: Key, data: bytes) -> str: ...

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]: ...

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int: ...

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]: ...

    def chunk_bytes(self, stream: bool) -> int: ...

    def _removes(self) -> bool: ...

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


def _index_key(key: Key) -> Key:
    digest = hashlib.sha256(key[2].encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return (key[0], key[1], f"{INTERNAL_PREFIX}index:{digest}")


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


def _put(
    storage: RecordStorage, kind: Kind, key: Key, data: bytes, expires_at: float | None
) -> str:
    if storage._native_expiry:
        write: Any = storage.write
        return str(write(kind, key, data, expires_at=expires_at))
    return storage.write(kind, key, data)


# -- the chunk index ----------------------------------------------------------------------------


def _read_index(storage: RecordStorage, kind: Kind, key: Key) -> dict[str, list[float]]:
    data = storage.read(kind, _index_key(key))
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
) -> None:
    if not tokens:
        _remove_quietly(storage, kind, [_index_key(key)])
        return
    payload = json.dumps({"key": list(key), "tokens": tokens}, separators=(",", ":")).encode()
    data = _codec(storage._op_codec, INDEX).seal(payload, None)
    _put(storage, kind, _index_key(key), data, None)


def _remove_quietly(storage: RecordStorage, kind: Kind, keys: Sequence[Key]) -> int:
    if not keys or not storage._removes():
        return 0
    return storage.remove_many(kind, list(keys))


def _current_token(storage: RecordStorage, kind: Kind, key: Key) -> str | None:
    data = storage.read(kind, key)
    if data is None or not is_manifest(data):
        return None
    try:
        return _open_manifest(storage._op_codec, data).token
    except StorageError:
        return None  # an expired manifest: its chunks are orphans like any other


def _reclaim(
    storage: RecordStorage,
    kind: Kind,
    key: Key,
    tokens: dict[str, list[float]],
    current: str | None,
    now: float,
) -> dict[str, list[float]]:
    """Remove the chunks of the stale tokens; the tokens left."""
    kept: dict[str, list[float]] = {}
    for token, (started_ms, count) in tokens.items():
        if token == current or now * 1000 - started_ms < storage.orphan_age * 1000:
            kept[token] = [started_ms, count]
            continue
        _remove_quietly(storage, kind, [_chunk_key(key, token, n) for n in range(int(count))])
    return kept


def reclaim_orphans(storage: RecordStorage, kind: Kind, now: float) -> int:
    """Reclaim the stale chunks of every chunk index of ``kind`` (``purge_expired``); how
    many indexes were visited."""
    visited = 0
    for index_key in [key for key in storage.scan(kind, None) if is_internal(key)]:
        if not index_key[2].startswith(f"{INTERNAL_PREFIX}index:"):
            continue
        data = storage.read(kind, index_key)
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
        tokens = _read_index(storage, kind, key)
        kept = _reclaim(storage, kind, key, tokens, _current_token(storage, kind, key), now)
        if kept != tokens:
            _write_index(storage, kind, key, kept)
        visited += 1
    return visited


# -- writing ------------------------------------------------------------------------------------


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` cut or joined into pieces of exactly ``size`` bytes (the last shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            with memoryview(buffer) as view:  # one copy: no bytearray slice in between
                piece = bytes(view[:size])
            del buffer[:size]
            yield piece
    if buffer:
        yield bytes(buffer)


def store_chunked(
    storage: RecordStorage,
    kind: Kind,
    key: Key,
    chunks: Iterable[bytes] | Iterable[memoryview],
    expires_at: float | None,
    *,
    stream: bool,
    expected: int | None = None,
) -> tuple[str, Digest]:
    """Write ``chunks`` as chunk records, then the manifest; the manifest's record id and the
    content's :class:`Digest`. ``expected``: how many chunks there will be, when known."""
    codec = storage._op_codec
    chunk_codec = _codec(codec, CHUNK)
    size = storage.chunk_bytes(stream)
    now = codec.clock()
    current = _current_token(storage, kind, key)
    tokens = _reclaim(storage, kind, key, _read_index(storage, kind, key), current, now)
    token = uuid.uuid4().hex
    allowed = expected if expected is not None else _GROW
    tokens[token] = [now * 1000, float(allowed)]
    _write_index(storage, kind, key, tokens)
    reader = DigestingReader(cast(Iterable[bytes], chunks))  # it takes any bytes-like
    written = 0
    try:
        for piece in _pieces(reader, size):
            if written >= allowed:
                allowed = written + _GROW
                tokens[token] = [now * 1000, float(allowed)]
                _write_index(storage, kind, key, tokens)
            sealed = chunk_codec.seal(piece, expires_at)
            _put(storage, kind, _chunk_key(key, token, written), sealed, expires_at)
            written += 1
        digest = reader.digest()
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
        record_id = _put(
            storage, kind, key, _codec(codec, MANIFEST).seal(manifest, expires_at), expires_at
        )
    except BaseException:
        # Nothing visible changed; leave no chunk behind if the service still answers.
        try:
            _remove_quietly(storage, kind, [_chunk_key(key, token, n) for n in range(written)])
            tokens.pop(token, None)
            _write_index(storage, kind, key, tokens)
        except Exception:  # the index keeps the token: a later store or purge reclaims it
            pass
        raise
    # The switch is done: the previous version's chunks go now, readers of it start again.
    if current is not None and current != token:
        old = tokens.pop(current, None)
        count = int(old[1]) if old is not None else 0
        _remove_quietly(storage, kind, [_chunk_key(key, current, n) for n in range(count)])
    tokens[token] = [now * 1000, float(written)]
    _write_index(storage, kind, key, tokens)
    return record_id, digest


# -- reading ------------------------------------------------------------------------------------


class _Replaced(Exception):
    """A chunk of the manifest being read is gone: the record was stored again meanwhile."""


def _chunks_of(
    storage: RecordStorage, kind: Kind, key: Key, manifest: _Manifest
) -> Iterator[bytes]:
    chunk_codec = _codec(storage._op_codec, CHUNK)
    for start in range(0, manifest.chunks, _READ_BATCH):
        keys = [
            _chunk_key(key, manifest.token, n)
            for n in range(start, min(start + _READ_BATCH, manifest.chunks))
        ]
        for data in storage.read_many(kind, keys):
            if data is None or _name_of(data) != CHUNK:
                raise _Replaced
            payload, _serializer = chunk_codec.open(data)
            yield payload


def read_chunked(storage: RecordStorage, kind: Kind, key: Key, data: bytes) -> bytes | None:
    """The whole record a manifest ``data`` stands for, checked against its size and digest;
    ``None`` when the key no longer holds anything. Starts again from the manifest when the
    record was stored again while its chunks were being read."""
    for _attempt in range(_RETRIES):
        manifest = _open_manifest(storage._op_codec, data)
        try:
            whole = b"".join(_chunks_of(storage, kind, key, manifest))
        except _Replaced:
            again = storage.read(kind, key)
            if again is None:
                return None
            if not is_manifest(again):
                return again
            data = again
            continue
        if len(whole) != manifest.size or hashlib.sha256(whole).hexdigest() != manifest.sha256:
            raise CorruptRecord("its chunks do not add up to the size and digest of its manifest")
        return whole
    raise StorageError(
        f"{storage.storage_name}: the result under {key!r} was stored again {_RETRIES} times "
        "while it was being read; read it again"
    )


def stream_chunks(storage: RecordStorage, kind: Kind, key: Key) -> Iterator[bytes]:
    """The chunks of what ``key`` holds (a stream, a chunked record, or a record in one piece);
    :class:`ResultNotFound` now, at the call, when there is nothing."""
    data = storage.read(kind, key)
    if data is None:
        raise storage.not_found(*key)
    if not is_manifest(data):
        return iter([data])  # a record stored in one piece: its stored bytes
    manifest = _open_manifest(storage._op_codec, data)
    return _checked_stream(storage, kind, key, manifest)


def _checked_stream(
    storage: RecordStorage, kind: Kind, key: Key, manifest: _Manifest
) -> Iterator[bytes]:
    sha, size = hashlib.sha256(), 0
    try:
        for chunk in _chunks_of(storage, kind, key, manifest):
            sha.update(chunk)
            size += len(chunk)
            yield chunk
    except _Replaced:
        raise StorageError(
            f"{storage.storage_name}: the stream under {key!r} was stored again while it was "
            "being read; read it again"
        ) from None
    if size != manifest.size or sha.hexdigest() != manifest.sha256:
        raise CorruptRecord("its chunks do not add up to the size and digest of its manifest")
