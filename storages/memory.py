"""``InMemoryStorage``: results in a dict of this process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from selinon_like import options
from selinon_like.keys import Key, keys_matching, pack_key
from selinon_like.records import ERRORS, PURGE_BATCH, RESULTS, Kind, RecordStorage

__all__ = ["InMemoryStorage"]

log = logging.getLogger("selinon_like")


class InMemoryStorage(RecordStorage):
    """Results kept in this process's memory, as serialized copies.

    Because it keeps what the serializer produced, it behaves like the persistent adapters:
    mutating a result after ``store`` does not change what is stored, a tuple comes back as a
    list, and a value the serializer refuses is refused here too. Nothing survives the process,
    and a forked child starts with its own, empty storage.

    With a ``ttl``, the expiry time of every expiring record is also kept in a dict beside the
    records, so :meth:`purge_expired` looks at those alone, never decoding a record.

    Its ``operation_timeout`` defaults to 60 s, like any adapter without timeouts of its own;
    a call here waits on no I/O.

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
        # When each expiring record expires (seconds since the epoch); others are not here.
        self._expiry: dict[Kind, dict[Key, float]] = {RESULTS: {}, ERRORS: {}}
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return self._records[kind].get(key)

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        self._records[kind][key] = data
        if expires_at is None:
            self._expiry[kind].pop(key, None)
        else:
            self._expiry[kind][key] = expires_at
        record_id = pack_key(*key)
        if self.echo:
            log.info("%s: stored %s %s", self.storage_name, kind, record_id)
        return record_id

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        self._records[kind].update(items)
        expiry = self._expiry[kind]
        if expires_at is None:
            for key, _data in items:
                expiry.pop(key, None)
        else:
            expiry.update((key, expires_at) for key, _data in items)
        return [pack_key(*key) for key, _data in items]

    def remove(self, kind: Kind, key: Key) -> bool:
        self._expiry[kind].pop(key, None)
        return self._records[kind].pop(key, None) is not None

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        # Calls on the instance hold its lock (thread_safe is False) for the whole purge, so
        # no store can slip between the check and the removal.
        expired = [key for key, at in self._expiry[kind].items() if at <= now]
        for start in range(0, len(expired), PURGE_BATCH):
            batch = expired[start : start + PURGE_BATCH]
            if not dry_run:
                for key in batch:
                    self.remove(kind, key)
            yield len(batch)

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return iter(list(keys_matching(list(self._records[kind]), flow_name)))
