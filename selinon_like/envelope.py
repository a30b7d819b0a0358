"""The stored form of a record: a small self-describing header, then the payload (SPEC §9).

A record that needs nothing more than the first release's form — a JSON result, uncompressed,
that never expires — is stored exactly as the first release stored it: the serializer's bytes.
Any other record starts with a header (version 1; integers big-endian)::

    offset  size  field
    0       3     magic: 0xFF "S" "L"
    3       1     version: 1
    4       1     codec: 0 none, 1 gzip, 2 zstd, 3 lz4 (selinon_like.compression.CODEC_IDS)
    5       1     n: length of the serializer's name
    6       8     expiry: milliseconds since the Unix epoch; 2**64 - 1 for never
    14      n     the serializer's name, UTF-8: "json", "pickle", or the dotted path of the YAML
    14 + n  4     CRC-32 of the 14 + n bytes before it
    18 + n        the payload: the serializer's bytes, compressed by the codec

Why a header can never be taken for a first-release record: a JSON record is UTF-8 text, in
which the byte 0xFF never occurs, and a pickle starts with its protocol opcode 0x80 (protocol
2 and up) or a printable opcode (0 and 1), never 0xFF. A record without the full magic and
version is read as a first-release one, with the configured serializer. A custom serializer's
bytes could start with ``FF 53 4C 01`` by chance; the CRC then fails and the read says the
header is corrupted rather than returning a wrong value.

Why the expiry sits at a fixed offset, big-endian: a service's own script (Redis' Lua) can
compare those 8 bytes with the current time's 8 bytes without parsing the rest, and for
equal-length big-endian numbers byte order is numeric order.

Reading honours the serializer a header names when it is the storage's own or ``json`` (which
runs no code); a record naming another one (``pickle`` read by a ``json`` storage, or a dotted
path) is refused with a message saying so: a header is data, and anyone who can write the store
could otherwise make a reader unpickle or import what they chose.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from selinon_like.compression import NO_COMPRESSION, Compression, codec_name, decompress
from selinon_like.errors import (
    ConfigError,
    ResultNotFound,
    ResultTooLarge,
    SelinonLikeError,
    SerializationError,
    StorageError,
)
from selinon_like.keys import Key
from selinon_like.serializers import JSON, Serializer

__all__ = [
    "EXPIRY_OFFSET",
    "MAGIC",
    "NEVER",
    "NO_EXPIRY",
    "TTL_KEYS",
    "CorruptRecord",
    "Expiry",
    "RecordCodec",
    "RecordError",
    "RecordExpired",
    "UnreadableRecord",
    "expiry_of",
    "has_header",
    "header_length",
    "seen_stored",
    "watch_stored",
]

Kind = Literal["results", "errors"]  # as selinon_like.records.Kind (which imports this module)

MAGIC = b"\xffSL"
VERSION = 1
_PREFIX = MAGIC + bytes([VERSION])
_FIXED = struct.Struct(">4sBBQ")  # magic + version, codec, name length, expiry
_CRC = struct.Struct(">I")
EXPIRY_OFFSET = 6  # where the 8 expiry bytes start
NEVER = 2**64 - 1  # the expiry field of a record that never expires
TTL_KEYS = ("results", "errors")


# -- errors: raised without the key, which the caller adds -----------------------------------


class RecordError(SelinonLikeError):
    """A problem found in a record's bytes where the storage and key are not known yet (the
    codec reads bytes, not keys).
    :meth:`located` gives the public error, naming both."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def located(self, storage: str, key: Key, what: str = "result") -> SelinonLikeError:
        raise NotImplementedError


def _where(storage: str, key: Key, what: str) -> str:
    flow_name, task_name, task_id = key
    return (
        f"{storage}: the {what} stored for flow {flow_name!r}, task {task_name!r}, "
        f"task id {task_id!r}"
    )


class CorruptRecord(RecordError, StorageError):
    """A record whose header is damaged (bad CRC, truncated, unknown version or codec), or
    whose compressed payload does not decompress."""

    def located(self, storage: str, key: Key, what: str = "result") -> StorageError:
        return CorruptRecord(f"{_where(storage, key, what)} is unreadable: {self.reason}")


class UnreadableRecord(RecordError, SerializationError):
    """A record whose header names a serializer this storage will not use to read it."""

    def located(self, storage: str, key: Key, what: str = "result") -> StorageError:
        return UnreadableRecord(f"{_where(storage, key, what)} cannot be read: {self.reason}")


class RecordExpired(RecordError, ResultNotFound):
    """A record past its expiry: for every caller it is not there."""

    def located(self, storage: str, key: Key, what: str = "result") -> ResultNotFound:
        flow_name, task_name, task_id = key
        return ResultNotFound(
            f"{storage}: no {what} stored for flow {flow_name!r}, task {task_name!r}, "
            f"task id {task_id!r} (it expired)"
        )


# -- ttl -------------------------------------------------------------------------------------


def _seconds(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"must be a number of seconds > 0, not {value!r:.80}", key=key)
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"must be a number of seconds > 0, not {value!r:.80}", key=key) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"must be a number of seconds > 0, not {value!r:.80}", key=key)
    return seconds


@dataclass(frozen=True)
class Expiry:
    """A storage's ``ttl``: seconds a result and an error record live (``None``: forever)."""

    results: float | None = None
    errors: float | None = None

    @classmethod
    def from_config(cls, value: Any) -> Expiry:
        """From the YAML: left out (forever), a number of seconds for both kinds, or a mapping
        ``{results: s, errors: s}`` (a kind left out lives forever)."""
        if value is None:
            return NO_EXPIRY
        if isinstance(value, dict):
            unknown = [key for key in value if key not in TTL_KEYS]
            if unknown:
                raise ConfigError(
                    f"unknown key {unknown[0]!r} under 'ttl'; allowed: results, errors",
                    key=f"ttl.{unknown[0]}",
                )
            return cls(
                _seconds(value.get("results"), "ttl.results"),
                _seconds(value.get("errors"), "ttl.errors"),
            )
        seconds = _seconds(value, "ttl")
        return cls(seconds, seconds)

    def of(self, kind: Kind) -> float | None:
        return self.results if kind == "results" else self.errors

    def __bool__(self) -> bool:
        return self.results is not None or self.errors is not None

    def __str__(self) -> str:
        def shown(seconds: float | None) -> str:
            return "forever" if seconds is None else f"{seconds:g} s"

        if self.results == self.errors:
            return shown(self.results)
        return f"results {shown(self.results)}, errors {shown(self.errors)}"


NO_EXPIRY = Expiry()


# -- what the read cache needs to know --------------------------------------------------------

# The stored bytes of the last record a watching codec encoded or decoded on this thread: the
# read cache keeps exactly those (compressed, with their expiry) instead of serializing the
# value again, which would cost a compression and give the copy a later expiry.
_seen = threading.local()


def watch_stored() -> None:
    """Forget what this thread's codecs last saw (before an operation whose record the cache
    will keep)."""
    _seen.data = None
    _seen.count = 0


def seen_stored() -> bytes | None:
    """The stored bytes a watching codec encoded or decoded on this thread since
    :func:`watch_stored`, if it did so exactly once (an adapter that encoded or decoded more
    than one record in the operation leaves the cache to serialize the value itself)."""
    data: bytes | None = getattr(_seen, "data", None)
    count: int = getattr(_seen, "count", 0)
    _seen.data = None
    return data if count == 1 else None


def _report(data: bytes) -> None:
    _seen.data = data
    _seen.count = getattr(_seen, "count", 0) + 1


# -- reading a header alone ----------------------------------------------------------------


def has_header(data: bytes) -> bool:
    """Whether ``data`` starts with this format's magic and version."""
    return data[:4] == _PREFIX


def _parse(data: bytes) -> tuple[int, int, bytes, int]:
    """``(codec, expiry ms, serializer name, payload offset)`` of a record with a header;
    :class:`CorruptRecord` when the header does not check out."""
    if len(data) < _FIXED.size + _CRC.size:
        raise CorruptRecord(f"its header is truncated ({len(data)} bytes)")
    _prefix, codec, length, expires = _FIXED.unpack_from(data)
    end = _FIXED.size + length
    if len(data) < end + _CRC.size:
        raise CorruptRecord(f"its header is truncated ({len(data)} bytes)")
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(memoryview(data)[:end]) != crc:
        raise CorruptRecord("its header fails its checksum")
    return codec, expires, bytes(data[_FIXED.size : end]), end + _CRC.size


def header_length(data: bytes) -> int:
    """How many bytes the header ``data`` starts with takes (where its payload starts);
    ``data`` must start with one (:func:`has_header`) and hold at least its first 6 bytes."""
    return _FIXED.size + data[5] + _CRC.size


def expiry_of(data: bytes) -> float | None:
    """The expiry time (seconds since the epoch) a stored record carries; ``None`` when it
    never expires (no header, or none set). :class:`CorruptRecord` for a damaged header.
    Reads the header only: ``data`` may be just the record's first bytes (64 are always
    enough for JSON and pickle records)."""
    if not has_header(data):
        return None
    if len(data) < _FIXED.size + _CRC.size:
        raise CorruptRecord(f"its header is truncated ({len(data)} bytes)")
    _prefix, _codec, length, expires = _FIXED.unpack_from(data)
    end = _FIXED.size + length
    if len(data) >= end + _CRC.size:
        (crc,) = _CRC.unpack_from(data, end)
        if zlib.crc32(memoryview(data)[:end]) != crc:
            raise CorruptRecord("its header fails its checksum")
    return None if expires == NEVER else expires / 1000


def expiry_bytes(at: float) -> bytes:
    """The 8 bytes the header holds for the expiry time ``at``: what a script on the service
    compares a record's bytes at :data:`EXPIRY_OFFSET` with."""
    return struct.pack(">Q", min(NEVER - 1, max(0, math.floor(at * 1000))))


def _name_of(serializer: Serializer) -> bytes:
    name = getattr(serializer, "name", None)
    if not isinstance(name, str) or not name:
        kind = type(serializer)
        name = f"{kind.__module__}.{kind.__qualname__}"
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > 255:  # the field is one byte long; a digest still tells names apart
        encoded = b"sha256:" + hashlib.sha256(encoded).hexdigest().encode()
    return encoded


# -- the codec -------------------------------------------------------------------------------


@dataclass
class RecordCodec:
    """Turns results into stored bytes and back for one storage: serializer, compression,
    expiry, header.

    It is a :class:`~selinon_like.serializers.Serializer` too: ``dumps`` and ``loads`` are what
    a five-method adapter's ``self.serializer`` does, header and all, so ``ttl`` and
    ``compression`` apply to custom adapters that never heard of them. ``clock`` gives the
    time (seconds since the epoch) expiry is computed and checked against; tests move it.
    With ``watch`` set (the storage has a read cache), every record encoded or decoded is
    reported to :func:`seen_stored`.
    """

    serializer: Serializer = JSON
    compression: Compression = NO_COMPRESSION
    ttl: Expiry = NO_EXPIRY
    clock: Callable[[], float] = time.time
    watch: bool = False
    # The ceiling on one serialized result (the YAML's max_result_bytes); None: no ceiling.
    max_result_bytes: int | None = None
    _name: bytes = field(init=False, repr=False)
    _plain: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._name = _name_of(self.serializer)
        # Results need a header only to carry an expiry, a codec or a non-JSON serializer.
        self._plain = self._name == b"json" and not self.compression.enabled

    @property
    def name(self) -> str:
        """The serializer's name (what a header names)."""
        return self._name.decode("utf-8", "surrogatepass")

    # -- writing ---------------------------------------------------------------------------

    def expires_at(self, kind: Kind) -> float | None:
        """When a record of ``kind`` stored now expires (seconds since the epoch), or None."""
        ttl = self.ttl.results if kind == "results" else self.ttl.errors
        return None if ttl is None else self.clock() + ttl

    def seal(self, payload: bytes, expires_at: float | None, name: bytes | None = None) -> bytes:
        """The stored form of serialized ``payload``: compressed when worth it, behind a
        header when it needs one. ``name``: the serializer's (default: this codec's)."""
        name = self._name if name is None else name
        codec, body = self.compression.compress(payload)
        if codec == 0 and expires_at is None and name == b"json":
            data = payload  # the first release's form
        else:
            # A real expiry stays below NEVER and at or above the epoch, whatever the clock.
            expires = NEVER if expires_at is None else math.ceil(expires_at * 1000)
            expires = expires if expires_at is None else min(max(expires, 0), NEVER - 1)
            head = _FIXED.pack(_PREFIX, codec, len(name), expires) + name
            data = b"".join((head, _CRC.pack(zlib.crc32(head)), body))
        if self.watch:
            _report(data)
        return data

    def serialize(self, obj: Any) -> bytes:
        """A result serialized, not sealed; :class:`ResultTooLarge` past
        ``max_result_bytes`` (before any I/O: every store serializes first)."""
        payload = self.serializer.dumps(obj)
        if self.max_result_bytes is not None and len(payload) > self.max_result_bytes:
            raise ResultTooLarge(len(payload), self.max_result_bytes)
        return payload

    def dump(self, obj: Any, expires_at: float | None) -> bytes:
        """A result serialized and sealed, to expire at ``expires_at`` (see
        :meth:`expires_at`)."""
        payload = self.serialize(obj)
        if self._plain and expires_at is None:
            if self.watch:
                _report(payload)
            return payload  # the default: the serializer's bytes, nothing more
        return self.seal(payload, expires_at)

    def dumps(self, obj: Any) -> bytes:
        """A result's stored form (the face a five-method adapter sees)."""
        return self.dump(obj, self.expires_at("results"))

    # -- reading ---------------------------------------------------------------------------

    def open(self, data: bytes) -> tuple[bytes, Serializer | None]:
        """The payload of a stored record, decompressed, and the serializer its header names
        (``None``: no header, a first-release record). :class:`RecordExpired` past its
        expiry, :class:`CorruptRecord` for a damaged header or payload,
        :class:`UnreadableRecord` for a serializer this storage will not use."""
        if data[:4] != _PREFIX:
            return data, None
        codec, expires, name, start = _parse(data)
        if expires != NEVER and expires <= self.clock() * 1000:
            raise RecordExpired("it expired")
        try:
            payload = decompress(codec, bytes(memoryview(data)[start:]))
        except StorageError:
            raise  # the codec's package is missing: not the record's fault
        except Exception as exc:
            raise CorruptRecord(
                f"its {codec_name(codec)} payload does not decompress ({type(exc).__name__}: {exc})"
            ) from exc
        return payload, self._serializer_named(name)

    def _serializer_named(self, name: bytes) -> Serializer:
        if name == self._name:
            return self.serializer
        if name == b"json":
            return JSON
        shown = name.decode("utf-8", "replace")
        raise UnreadableRecord(
            f"it was written with the serializer {shown!r} and this storage's is "
            f"{self.name!r}; a storage reads records of its own serializer and JSON ones only "
            f"(set serializer: {shown} on the storage to read it: a header is data, and "
            "loading a pickle or importing a named module runs code)"
        )

    def load(self, data: bytes) -> Any:
        """The result a stored record holds (see :meth:`open` for the errors)."""
        if data[:4] != _PREFIX:  # no header (the default form): as open() would, without it
            if self.watch:
                _report(data)
            return self._load_plain(data)
        payload, serializer = self.open(data)
        if self.watch:
            _report(data)
        if serializer is None:
            return self._load_plain(payload)
        return serializer.loads(payload)

    def _load_plain(self, payload: bytes) -> Any:
        """A record without header: the first release's, read with the configured serializer,
        or one this release wrote as plain JSON before the serializer changed."""
        try:
            return self.serializer.loads(payload)
        except SerializationError:
            if self._name == b"json":
                raise
            try:
                return JSON.loads(payload)
            except SerializationError:
                pass
            raise

    def loads(self, data: bytes) -> Any:
        """The result of a stored record (the face a five-method adapter sees)."""
        return self.load(data)
