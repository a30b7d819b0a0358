"""A custom adapter the short way: results in a standard-library ``dbm`` file.

It writes the I/O on bytes; ``RecordStorage`` builds every operation on it (serialization,
error records, bulk calls, key listing) with the key checks, the lock (``dbm`` is not
thread-safe), error translation and retries around it.
"""

from __future__ import annotations

import dbm.dumb
from collections.abc import Iterator
from typing import Any

from selinon_like.keys import Key, pack_key, unpack_key
from selinon_like.records import Kind, RecordStorage


class DbmStorage(RecordStorage):
    """Results in ``filename`` (a ``dbm.dumb`` database, without extension)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._db: Any = None

    def connect(self) -> None:
        if self._db is None:
            self._db = dbm.dumb.open(self.filename, "c")  # noqa: SIM115 - open until disconnect()

    def disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def is_connected(self) -> bool:
        return self._db is not None

    def read(self, kind: Kind, key: Key) -> bytes | None:
        data: bytes | None = self._db.get(_name(kind, key))
        return data

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        self._db[_name(kind, key)] = data
        return _name(kind, key)

    def remove(self, kind: Kind, key: Key) -> bool:
        return self._db.pop(_name(kind, key), None) is not None

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        prefix = f"{kind}/".encode()  # every key of the kind: RecordStorage keeps the flow's
        for name in list(self._db.keys()):
            if name.startswith(prefix):
                yield unpack_key(name[len(prefix) :].decode("utf-8"))


def _name(kind: Kind, key: Key) -> str:
    return f"{kind}/{pack_key(*key)}"
