"""``Filesystem``: one file per result under a root directory, written atomically."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from selinon_like import options
from selinon_like.envelope import RecordError, expiry_of
from selinon_like.errors import StorageError
from selinon_like.keys import Key, encode_part
from selinon_like.records import PURGE_BATCH, Kind, RecordStorage
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest, DigestingReader

__all__ = ["STALE_TEMP_AGE", "TEMP_DIR", "Filesystem"]

log = logging.getLogger("selinon_like")

# Bytes after the key line enough for any record header (18 + a 255-byte serializer name).
_HEADER_BYTES = 512
_WHAT = {"results": "result", "errors": "error record"}
# Longest encoded name kept as is; longer parts are hashed (file names stop at 255 bytes).
_MAX_NAME = 200

TEMP_DIR = "tmp"
"""The directory under the root where files are written before they are moved into place."""
STALE_TEMP_AGE = 3600.0
"""Seconds a temporary file must have gone unchanged to be taken for a dead writer's."""
# What a writer or a purge names its files before a rename (".purge-" files are purge's).
_TEMP_PREFIXES = (".tmp-", ".purge-")

# Directories and files are opened relative to their parent's descriptor, never following a
# symbolic link: nothing under the root can send a read, a write or a delete outside it.
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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

    Writes go to a temporary file in ``<path>/tmp/``, then ``os.replace`` moves it into place:
    a reader sees the old result or the new one, never a partial file, and a failed store
    leaves the old result in place. A writer killed mid-write leaves its temporary file
    behind: ``connect()`` and :meth:`purge_expired` remove those unchanged for an hour
    (:meth:`reclaim_temp_files`; ``purge_expired`` also those the first release left beside
    the results).

    Symbolic links inside the root are never followed: every directory and file under it is
    opened relative to its parent, refusing a link, so a link planted in the tree cannot send
    a write, a read or a delete outside the root. Meeting one, an operation fails with a
    :class:`~selinon_like.StorageError` naming it; listing and purging skip it (logged). The
    root itself may be a link.

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

    A call cannot be cut while the kernel does file I/O: the default ``operation_timeout``
    (60 s) bounds its retries only.

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
        self.root.mkdir(parents=True, exist_ok=True)
        for top in ("results", "errors", TEMP_DIR):
            os.close(self._make_dirs((top,)))
        self.reclaim_temp_files()
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def ping(self) -> bool:
        results = self.root / "results"
        try:
            fd = self._open_dirs(("results",), create=False)
        except (FileNotFoundError, NotADirectoryError):
            fd = None
        if fd is None:
            raise FileNotFoundError(f"{results} is not a directory")
        try:
            if not os.access(".", os.W_OK | os.X_OK, dir_fd=fd):
                raise PermissionError(f"{results} is not writable")
        finally:
            os.close(fd)
        return True

    def reclaim_temp_files(self, older_than: float = STALE_TEMP_AGE) -> int:
        """Remove the temporary files in ``<path>/tmp/`` unchanged for ``older_than`` seconds
        (a writer killed mid-write left them; a live one changes its file as it writes); how
        many. ``connect()`` and :meth:`purge_expired` call it."""
        fd = self._open_dirs((TEMP_DIR,), create=False)
        if fd is None:
            return 0
        try:
            return self._reclaim_in(fd, _now() - older_than)
        finally:
            os.close(fd)

    def _reclaim_in(self, fd: int, before: float) -> int:
        """Remove the temporary files of the directory ``fd`` last changed before ``before``."""
        removed = 0
        for name, what in _entries(fd):
            if what != "file" or not name.startswith(_TEMP_PREFIXES):
                continue
            try:
                # ctime: a writer's utime() (an expiry) moves mtime ahead, not ctime.
                if os.stat(name, dir_fd=fd, follow_symlinks=False).st_ctime >= before:
                    continue
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # its writer finished, or another process reclaimed it
            removed += 1
        if removed:
            log.info("%s: removed %d stale temporary files", self.storage_name, removed)
        return removed

    # -- directories ----------------------------------------------------------------------

    def _path(self, kind: Kind, key: Key) -> Path:
        """Where ``key``'s file is (for people and tests: the adapter opens by descriptors)."""
        return self.root.joinpath(kind, *self._names(key))

    @staticmethod
    def _names(key: Key) -> tuple[str, str, str]:
        flow_name, task_name, task_id = key
        return _name(flow_name), _name(task_name), _name(task_id)

    def _open_dirs(self, names: Sequence[str], create: bool) -> int | None:
        """A descriptor of ``<root>/<names...>``, each directory opened without following a
        symbolic link (made when missing, with ``create``); None when one is missing."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, name in enumerate(names):
                child = self._open_dir(fd, name, names[: depth + 1], create)
                os.close(fd)
                if child is None:
                    return None
                fd = child
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd

    def _make_dirs(self, names: Sequence[str]) -> int:
        """:meth:`_open_dirs`, making the missing directories."""
        fd = self._open_dirs(names, create=True)
        if fd is None:  # cannot happen: a missing directory is made
            raise FileNotFoundError(f"{self.root.joinpath(*names)} could not be made")
        return fd

    def _open_dir(self, parent: int, name: str, where: Sequence[str], create: bool) -> int | None:
        while True:
            try:
                return os.open(name, _DIRECTORY, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    return None
                with contextlib.suppress(FileExistsError):  # another writer made it first
                    os.mkdir(name, dir_fd=parent)
            except OSError as exc:
                self._refuse_link(exc, parent, name, where)
                raise

    def _open_file(self, parent: int, name: str, where: Sequence[str]) -> IO[bytes] | None:
        """The file ``name`` of directory ``parent`` open for reading; None when missing."""
        try:
            fd = os.open(name, _READ, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._refuse_link(exc, parent, name, where)
            raise
        return os.fdopen(fd, "rb")

    def _refuse_link(self, exc: OSError, parent: int, name: str, where: Sequence[str]) -> None:
        """Raise a StorageError when ``exc`` came from meeting a symbolic link."""
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            return
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                raise StorageError(
                    f"{self.storage_name}: {'/'.join(where)} under {self.root} is a symbolic "
                    "link; the filesystem adapter never follows one inside its root (remove "
                    "it, or make 'path' the directory the link points to)"
                ) from exc

    # -- files ----------------------------------------------------------------------------

    def _write(
        self, kind: Kind, key: Key, chunks: Iterable[bytes], expires_at: float | None = None
    ) -> str:
        """Write header and chunks to a temporary file (modified at ``expires_at`` when
        given), then move it into place; the record id (the path under the root)."""
        names = self._names(key)
        where = (kind, *names)
        directory = self._make_dirs(where[:3])
        try:
            temp_dir = self._make_dirs((TEMP_DIR,))
            try:
                temp = f".tmp-{secrets.token_hex(8)}"
                fd = os.open(temp, _CREATE, 0o600, dir_fd=temp_dir)
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(_header(key))
                        for chunk in chunks:
                            handle.write(chunk)
                        if self.fsync:
                            handle.flush()
                            os.fsync(handle.fileno())
                    if expires_at is not None:
                        os.utime(temp, (expires_at, expires_at), dir_fd=temp_dir)
                    # A link in the file's place is replaced, never followed.
                    os.replace(temp, names[2], src_dir_fd=temp_dir, dst_dir_fd=directory)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp, dir_fd=temp_dir)
                    raise
            finally:
                os.close(temp_dir)
        finally:
            os.close(directory)
        return "/".join(where)

    def _task_dir(self, kind: Kind, key: Key) -> tuple[int, str, tuple[str, ...]] | None:
        """The open descriptor of ``key``'s task directory (the caller closes it), the name
        of its file there and the file's path under the root; ``None`` when the directory
        does not exist."""
        names = self._names(key)
        where = (kind, *names)
        directory = self._open_dirs(where[:3], create=False)
        return None if directory is None else (directory, names[2], where)

    def _open(self, kind: Kind, key: Key) -> IO[bytes] | None:
        """``key``'s file positioned after its header; ``None`` when there is none."""
        found = self._task_dir(kind, key)
        if found is None:
            return None
        directory, name, where = found
        try:
            handle = self._open_file(directory, name, where)
        finally:
            os.close(directory)
        if handle is None:
            return None
        stored = json.loads(handle.readline())
        if tuple(stored) != key:  # only a SHA-256 collision of an over-long part gets here
            handle.close()
            return None
        return handle

    # -- the primitives -------------------------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        handle = self._open(kind, key)
        if handle is None:
            return None
        with handle:
            return handle.read()

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        return self._write(kind, key, (data,), expires_at)

    def remove(self, kind: Kind, key: Key) -> bool:
        found = self._task_dir(kind, key)
        if found is None:
            return False
        directory, name, where = found
        try:
            try:
                mode = os.lstat(name, dir_fd=directory).st_mode
            except FileNotFoundError:
                return False
            if stat.S_ISLNK(mode):
                self._refuse_link(OSError(errno.ELOOP, "a link"), directory, name, where)
            try:
                os.unlink(name, dir_fd=directory)  # never follows a link
            except FileNotFoundError:
                return False
            return True
        finally:
            os.close(directory)

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        flows = None if flow_name is None else [_name(flow_name)]
        for fd, where in self._task_dirs(kind, flows):
            for name in self._files(fd, where):
                handle = self._open_file(fd, name, (*where, name))
                if handle is None:
                    continue  # deleted while we listed
                with handle:
                    stored_flow, task, task_id = json.loads(handle.readline())
                yield stored_flow, task, task_id

    def _task_dirs(
        self, kind: Kind, flows: list[str] | None = None
    ) -> Iterator[tuple[int, tuple[str, ...]]]:
        """Each task directory of ``kind`` (of ``flows`` only, when given): its descriptor,
        open until the next one is asked for, and its path under the root. Directories
        removed while we list are skipped; links are skipped, never followed."""
        top = self._open_dirs((kind,), create=False)
        if top is None:
            return
        try:
            for flow in self._subdirs(top, (kind,)) if flows is None else flows:
                flow_fd = self._open_dir(top, flow, (kind, flow), create=False)
                if flow_fd is None:
                    continue
                try:
                    for task in self._subdirs(flow_fd, (kind, flow)):
                        where = (kind, flow, task)
                        fd = self._open_dir(flow_fd, task, where, create=False)
                        if fd is None:
                            continue
                        try:
                            yield fd, where
                        finally:
                            os.close(fd)
                finally:
                    os.close(flow_fd)
        finally:
            os.close(top)

    def _subdirs(self, fd: int, where: Sequence[str]) -> list[str]:
        names = []
        for name, what in _entries(fd):
            if what == "link":
                self._skip_link((*where, name))
            elif what == "dir":
                names.append(name)
        return names

    def _files(self, fd: int, where: Sequence[str]) -> Iterator[str]:
        """The names of the record files of a task directory (not temporary files, not
        links)."""
        for name, what in _entries(fd):
            if name.startswith("."):
                continue
            if what == "link":
                self._skip_link((*where, name))
            elif what == "file":
                yield name

    def _skip_link(self, where: Sequence[str]) -> None:
        log.warning(
            "%s: %s under %s is a symbolic link: skipped, never followed",
            self.storage_name,
            "/".join(where),
            self.root,
        )

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        if not dry_run and kind == "results":
            self.reclaim_temp_files()  # once per purge_expired
        stale = _now() - STALE_TEMP_AGE
        count = 0
        for fd, where in self._task_dirs(kind):
            if not dry_run:  # what the first release's writers left beside the records
                self._reclaim_in(fd, stale)
            for name in self._files(fd, where):
                try:
                    if os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime > now:
                        continue  # an expiring file not due yet: not even opened
                except FileNotFoundError:
                    continue
                if self._purge_file(kind, fd, name, now, dry_run):
                    count += 1
                    if count >= PURGE_BATCH:
                        yield count
                        count = 0
        if count:
            yield count

    def _purge_file(self, kind: Kind, directory: int, name: str, now: float, dry_run: bool) -> bool:
        """Remove the file ``name`` of ``directory`` if its record has expired at ``now``;
        whether it was expired (and, unless ``dry_run``, removed)."""
        try:
            fd = os.open(name, _READ, dir_fd=directory)
        except OSError:
            return False  # deleted meanwhile, or replaced by a link (never followed)
        with os.fdopen(fd, "rb") as handle:
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
        aside = f".purge-{uuid.uuid4().hex}"
        try:
            os.rename(name, aside, src_dir_fd=directory, dst_dir_fd=directory)
        except FileNotFoundError:
            return False  # deleted meanwhile
        try:
            if os.stat(aside, dir_fd=directory, follow_symlinks=False).st_ino == judged:
                return True
            # A writer replaced the file between our read and the rename: its record is new.
            with contextlib.suppress(FileExistsError):
                os.link(aside, name, src_dir_fd=directory, dst_dir_fd=directory)
            return False
        finally:
            os.unlink(aside, dir_fd=directory)

    # -- streams --------------------------------------------------------------------------

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        key = (flow_name, task_name, task_id)
        reader = DigestingReader(chunks)
        self._write("results", key, reader)
        return reader.digest()

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        key = (flow_name, task_name, task_id)
        # Look now, so a missing result fails this call rather than the first next(); the
        # generator opens the file itself, so one never iterated leaks no open file.
        self._open_stream(key).close()
        return self._chunks(key)

    def _open_stream(self, key: Key) -> IO[bytes]:
        handle = self._open("results", key)
        if handle is None:
            raise self.not_found(*key)
        return handle

    def _chunks(self, key: Key) -> Iterator[bytes]:
        with self._open_stream(key) as handle:
            while chunk := handle.read(DEFAULT_CHUNK_SIZE):
                yield chunk


def _now() -> float:
    """The wall clock temporary files' ages are measured with (tests move it)."""
    return time.time()


def _header(key: Key) -> bytes:
    return json.dumps(list(key), ensure_ascii=True).encode("ascii") + b"\n"


def _entries(fd: int) -> list[tuple[str, str]]:
    """The entries of the directory ``fd`` by name, each with what it is: ``link``, ``dir``,
    ``file`` or ``other``. Told while listing: a listed entry's own ``stat`` would use the
    listing's descriptor, closed afterwards."""
    found = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_symlink():
                    what = "link"
                elif entry.is_dir(follow_symlinks=False):
                    what = "dir"
                elif entry.is_file(follow_symlinks=False):
                    what = "file"
                else:
                    what = "other"
            except FileNotFoundError:
                continue  # removed while we listed
            found.append((entry.name, what))
    return sorted(found)
