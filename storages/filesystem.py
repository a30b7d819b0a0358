"""``Filesystem``: one file per result under a root directory, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from selinon_like import options
from selinon_like.envelope import RecordError, expiry_of
from selinon_like.keys import Key, encode_part
from selinon_like.records import PURGE_BATCH, Kind, RecordStorage
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest, DigestingReader

__all__ = ["Filesystem"]

log = logging.getLogger("selinon_like")

# Bytes after the key line enough for any record header (18 + a 255-byte serializer name).
_HEADER_BYTES = 512
_WHAT = {"results": "result", "errors": "error record"}
# Longest encoded name kept as is; longer parts are hashed (file names stop at 255 bytes).
_MAX_NAME = 200


def _name(part: str) -> str:
    token = encode_part(part)
    if len(token) <= _MAX_NAME:
        return token
    # "~" never starts an encoded token ("_" does), so hashed names cannot meet plain ones.
    return "~" + hashlib.sha256(part.encode("utf-8")).hexdigest()


class Filesystem(RecordStorage):
    """Results as files under a root directory.

    Layout: ``<path>/results/<flow>/<task>/<task_id>`` and the same under ``errors/``, each
    part encoded by :func:`selinon_like.keys.encode_part` (only ``[a-z0-9_%-]``, so ``/``,
    ``..`` and case-folding file systems are harmless and no key leaves the root). Each file
    starts with one line holding the exact key as JSON, then the serialized result.

    Keys of any length work: a part whose encoding is longer than 200 characters is named
    ``~<its SHA-256>`` instead, so every file name stays under the 255-byte limit and the path
    under the root under 620 bytes. ``iter_keys`` yields the key from the header line, and a
    read checks that line, so two different keys never share a file.

    Writes go to a temporary file in the same directory, then ``os.replace``: a reader sees
    the old result or the new one, never a partial file, and a failed store leaves the old
    result in place.

    ``store_stream`` writes an iterable of bytes the same way (temporary file, SHA-256 computed
    while writing, ``os.replace`` at the end) and returns its :class:`Digest`;
    ``retrieve_stream`` reads it back in 8 MiB chunks. Streamed files hold the raw bytes after
    the header line and live with the results (``iter_keys`` lists them, ``delete`` removes
    them); read them with ``retrieve_stream``.

    Expiry (``ttl``): the file of an expiring record gets its expiry time as its modification
    time (set on the temporary file, before the rename). :meth:`purge_expired` walks the tree
    and skips, on the directory listing's ``stat`` alone, every file whose modification time
    is still ahead; the others it opens for their header's expiry. An expired file is removed
    by renaming it aside and unlinking it only if it is still the file that was judged (same
    inode): one a writer put in its place meanwhile is put back, or dropped if an even newer
    one is already there — readers may miss that new record for the microseconds between.

    Configuration:

    ``path`` (str, required)
        the root directory; created on ``connect()`` if missing.
    ``fsync`` (bool, default ``false``)
        flush every file to disk before it replaces the old one (survives power loss; slower).

    Example::

        storages:
          - name: Files
            import: storages.filesystem
            classname: Filesystem
            configuration:
              path: /var/lib/myapp/results
    """

    thread_safe = True  # every write is its own temporary file plus an atomic rename

    def __init__(self, path: str, fsync: bool = False) -> None:
        self.root = Path(options.as_str("path", path))
        self.fsync = options.as_bool("fsync", fsync)
        self._connected = False

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        for kind in ("results", "errors"):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def ping(self) -> bool:
        results = self.root / "results"
        if not results.is_dir():
            raise FileNotFoundError(f"{results} is not a directory")
        if not os.access(results, os.W_OK | os.X_OK):
            raise PermissionError(f"{results} is not writable")
        return True

    # -- files ----------------------------------------------------------------------------

    def _path(self, kind: Kind, key: Key) -> Path:
        flow_name, task_name, task_id = key
        return self.root / kind / _name(flow_name) / _name(task_name) / _name(task_id)

    def _write(
        self, path: Path, key: Key, chunks: Iterable[bytes], expires_at: float | None = None
    ) -> str:
        """Write header and chunks to a temporary file (modified at ``expires_at`` when
        given), then move it over ``path``; the record id (the path under the root)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_header(key))
                for chunk in chunks:
                    handle.write(chunk)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            if expires_at is not None:
                os.utime(temp, (expires_at, expires_at))
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return str(path.relative_to(self.root))

    def _open(self, path: Path, key: Key) -> IO[bytes] | None:
        """The file positioned after its header; ``None`` when there is none for ``key``."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        stored = json.loads(handle.readline())
        if tuple(stored) != key:  # only a SHA-256 collision of an over-long part gets here
            handle.close()
            return None
        return handle

    # -- the primitives -------------------------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        handle = self._open(self._path(kind, key), key)
        if handle is None:
            return None
        with handle:
            return handle.read()

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        return self._write(self._path(kind, key), key, (data,), expires_at)

    def remove(self, kind: Kind, key: Key) -> bool:
        try:
            self._path(kind, key).unlink()
        except FileNotFoundError:
            return False
        return True

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        top = self.root / kind
        flows = [top / _name(flow_name)] if flow_name is not None else _dirs(top)
        for flow_dir in flows:
            for task_dir in _dirs(flow_dir):
                for entry in _entries(task_dir):
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        with open(entry.path, "rb") as handle:
                            flow, task, task_id = json.loads(handle.readline())
                    except FileNotFoundError:
                        continue  # deleted while we listed
                    yield flow, task, task_id

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        count = 0
        for flow_dir in _dirs(self.root / kind):
            for task_dir in _dirs(flow_dir):
                for entry in _entries(task_dir):
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        if entry.stat().st_mtime > now:
                            continue  # an expiring file not due yet: not even opened
                    except FileNotFoundError:
                        continue
                    if self._purge_file(kind, entry.path, now, dry_run):
                        count += 1
                        if count >= PURGE_BATCH:
                            yield count
                            count = 0
        if count:
            yield count

    def _purge_file(self, kind: Kind, path: str, now: float, dry_run: bool) -> bool:
        """Remove the file at ``path`` if its record has expired at ``now``; whether it was
        expired (and, unless ``dry_run``, removed)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, before the rename
        except FileNotFoundError:
            return False
        with handle:
            key_line = handle.readline()
            head = handle.read(_HEADER_BYTES)
            judged = os.fstat(handle.fileno()).st_ino
        try:
            expires = expiry_of(head)
        except RecordError as exc:
            key = tuple(json.loads(key_line))
            where = exc.located(self.storage_name, (key[0], key[1], key[2]), _WHAT[kind])
            log.warning("%s: purge leaves it in place", where)
            return False
        if expires is None or expires > now:
            return False
        if dry_run:
            return True
        aside = os.path.join(os.path.dirname(path), f".purge-{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False  # deleted meanwhile
        try:
            if os.stat(aside).st_ino == judged:
                return True
            # A writer replaced the file between our read and the rename: its record is new.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            return False
        finally:
            os.unlink(aside)

    # -- streams --------------------------------------------------------------------------

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        key = (flow_name, task_name, task_id)
        reader = DigestingReader(chunks)
        self._write(self._path("results", key), key, reader)
        return reader.digest()

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        key = (flow_name, task_name, task_id)
        path = self._path("results", key)
        # Look now, so a missing result fails this call rather than the first next(); the
        # generator opens the file itself, so one never iterated leaks no open file.
        self._open_stream(path, key).close()
        return self._chunks(path, key)

    def _open_stream(self, path: Path, key: Key) -> IO[bytes]:
        handle = self._open(path, key)
        if handle is None:
            raise self.not_found(*key)
        return handle

    def _chunks(self, path: Path, key: Key) -> Iterator[bytes]:
        with self._open_stream(path, key) as handle:
            while chunk := handle.read(DEFAULT_CHUNK_SIZE):
                yield chunk


def _header(key: Key) -> bytes:
    return json.dumps(list(key), ensure_ascii=True).encode("ascii") + b"\n"


def _entries(path: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory by name; none when it was removed meanwhile."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except FileNotFoundError:
        return []


def _dirs(path: Path) -> list[Path]:
    return [Path(entry.path) for entry in _entries(path) if entry.is_dir()]
