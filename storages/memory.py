"""``InMemoryStorage``: results in a dict of this process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from selinon_like import options
from selinon_like.keys import Key, keys_matching, pack_key
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage

__all__ = ["InMemoryStorage"]

log = logging.getLogger("selinon_like")


class InMemoryStorage(RecordStorage):
    """Results kept in this process's memory, as serialized copies.

    Because it keeps what the serializer produced, it behaves like the persistent adapters:
    mutating a result after ``store`` does not change what is stored, a tuple comes back as a
    list, and a value the serializer refuses is refused here too. Nothing survives the process,
    and a forked child starts with its own, empty storage.

    Configuration:

    ``echo`` (bool, default ``false``)
        log every store at INFO level on the ``selinon_like`` logger.

    Example::

        storages:
          - name: Memory
            import: storages.memory
            classname: InMemoryStorage
            configuration:
              echo: false
    """

    def __init__(self, echo: bool = False) -> None:
        self.echo = options.as_bool("echo", echo)
        self._records: dict[Kind, dict[Key, bytes]] = {RESULTS: {}, ERRORS: {}}
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return self._records[kind].get(key)

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        self._records[kind][key] = data
        record_id = pack_key(*key)
        if self.echo:
            log.info("%s: stored %s %s", self.storage_name, kind, record_id)
        return record_id

    def write_many(self, kind: Kind, items: Sequence[tuple[Key, bytes]]) -> list[str]:
        self._records[kind].update(items)
        return [pack_key(*key) for key, _data in items]

    def remove(self, kind: Kind, key: Key) -> bool:
        return self._records[kind].pop(key, None) is not None

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return iter(list(keys_matching(list(self._records[kind]), flow_name)))
