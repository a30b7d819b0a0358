"""``Filesystem``: one file per result under a root directory, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from selinon_like import options
from selinon_like.keys import Key, encode_part
from selinon_like.storage import (
    DataStorage,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
    record_key,
)
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest, DigestingReader

__all__ = ["Filesystem"]

# Longest encoded name kept as is; longer parts are hashed (file names stop at 255 bytes).
_MAX_NAME = 200


def _name(part: str) -> str:
    token = encode_part(part)
    if len(token) <= _MAX_NAME:
        return token
    # "~" never starts an encoded token ("_" does), so hashed names cannot meet plain ones.
    return "~" + hashlib.sha256(part.encode("utf-8")).hexdigest()


class Filesystem(DataStorage):
    """Results as files under a root directory.

    Layout: ``<path>/results/<flow>/<task>/<task_id>`` and the same under ``errors/``, each
    part encoded by :func:`selinon_like.keys.encode_part` (only ``[a-z0-9_%-]``, so ``/``,
    ``..`` and case-folding file systems are harmless and no key leaves the root); a part whose
    encoding is longer than 200 characters is named by its SHA-256. Each file starts with one
    line holding the key as JSON, then the serialized result. Writes go to a temporary file in
    the same directory, then ``os.replace``: a reader sees the old result or the new one, never
    a partial file, and a failed store leaves the old result in place.

    ``store_stream`` writes an iterable of bytes the same way (temporary file, SHA-256 computed
    while writing, ``os.replace`` at the end) and returns its :class:`Digest`;
    ``retrieve_stream`` reads it back in 8 MiB chunks. Streamed files hold the raw bytes after
    the header line and live with the results (``iter_keys`` lists them, ``delete`` removes
    them); read them with ``retrieve_stream``.

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

    def _path(self, kind: str, flow_name: str, task_name: str, task_id: str) -> Path:
        return self.root / kind / _name(flow_name) / _name(task_name) / _name(task_id)

    def _write(self, path: Path, key: Key, chunks: Iterable[bytes]) -> None:
        """Write header and chunks to a temporary file, then move it over ``path``."""
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
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _open(self, path: Path, key: Key, what: str) -> IO[bytes]:
        """The file positioned after its header; ``ResultNotFound`` when it is missing."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise self.not_found(*key, what=what) from None
        stored = json.loads(handle.readline())
        if tuple(stored) != key:  # only a SHA-256 collision of an over-long part gets here
            handle.close()
            raise self.not_found(*key, what=what)
        return handle

    def _read(self, path: Path, key: Key, what: str) -> bytes:
        with self._open(path, key, what) as handle:
            return handle.read()

    # -- the contract ---------------------------------------------------------------------

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        key = (flow_name, task_name, task_id)
        return self.serializer.loads(self._read(self._path("results", *key), key, "result"))

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        data = self.serializer.dumps(result)
        key = (flow_name, task_name, task_id)
        path = self._path("results", *key)
        self._write(path, key, (data,))
        return str(path.relative_to(self.root))

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        encoded = [((f, t, i), self.serializer.dumps(result)) for f, t, i, result in items]
        ids = []
        for key, data in encoded:
            path = self._path("results", *key)
            self._write(path, key, (data,))
            ids.append(str(path.relative_to(self.root)))
        return ids

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        try:
            self._path("results", flow_name, task_name, task_id).unlink()
        except FileNotFoundError:
            raise self.not_found(flow_name, task_name, task_id) from None

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

    def store_error_record(self, record: dict[str, Any]) -> str:
        return self._write_error(record_key(record), record)

    def _write_error(self, key: Key, record: dict[str, Any]) -> str:
        path = self._path("errors", *key)
        self._write(path, key, (dump_error_record(record),))
        return str(path.relative_to(self.root))

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        key = (flow_name, task_name, task_id)
        return load_error_record(self._read(self._path("errors", *key), key, "error record"))

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        key = (flow_name, task_name, task_id)
        reader = DigestingReader(chunks)
        self._write(self._path("results", *key), key, reader)
        return reader.digest()

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        key = (flow_name, task_name, task_id)
        path = self._path("results", *key)
        # Look now, so a missing result fails this call rather than the first next(); the
        # generator opens the file itself, so one never iterated leaks no open file.
        self._open(path, key, "result").close()
        return self._chunks(path, key)

    def _chunks(self, path: Path, key: Key) -> Iterator[bytes]:
        with self._open(path, key, "result") as handle:
            while chunk := handle.read(DEFAULT_CHUNK_SIZE):
                yield chunk

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys("results", flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys("errors", flow_name)

    def _keys(self, kind: str, flow_name: str | None) -> Iterator[Key]:
        top = self.root / kind
        flows = [top / _name(flow_name)] if flow_name is not None else _dirs(top)
        for flow_dir in flows:
            for task_dir in _dirs(flow_dir):
                for entry in sorted(os.scandir(task_dir), key=lambda e: e.name):
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        with open(entry.path, "rb") as handle:
                            flow, task, task_id = json.loads(handle.readline())
                    except FileNotFoundError:
                        continue  # deleted while we listed
                    yield flow, task, task_id


def _header(key: Key) -> bytes:
    return json.dumps(list(key), ensure_ascii=True).encode("ascii") + b"\n"


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir())
    except FileNotFoundError:
        return []
