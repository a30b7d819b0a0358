"""``InMemoryStorage``: results in a dict of this process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from selinon_like import options
from selinon_like.keys import Key, keys_matching, pack_key
from selinon_like.records import ERRORS, PURGE_BATCH, RESULTS, Kind, RecordStorage

__all__ = ["InMemoryStorage", "MemoryRecords"]

log = logging.getLogger("selinon_like")


class MemoryRecords:
    """The dicts the memory adapters keep their records in, and what their primitives do with
    them: shared by :class:`InMemoryStorage` and its async form
    (:class:`storages.aio.memory.AsyncInMemoryStorage`), whose primitives only call these."""

    storage_name: str

    def _hold(self, echo: bool) -> None:
        """Set up the empty dicts (``echo``: log every store at INFO level)."""
        self.echo = options.as_bool("echo", echo)
        self._records: dict[Kind, dict[Key, bytes]] = {RESULTS: {}, ERRORS: {}}
        # When each expiring record expires (seconds since the epoch); others are not here.
        self._expiry: dict[Kind, dict[Key, float]] = {RESULTS: {}, ERRORS: {}}
        self._connected = False

    def _put(self, kind: Kind, key: Key, data: bytes, expires_at: float | None) -> str:
        self._records[kind][key] = data
        if expires_at is None:
            self._expiry[kind].pop(key, None)
        else:
            self._expiry[kind][key] = expires_at
        record_id = pack_key(*key)
        if self.echo:
            log.info("%s: stored %s %s", self.storage_name, kind, record_id)
        return record_id

    def _put_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> list[str]:
        self._records[kind].update(items)
        expiry = self._expiry[kind]
        if expires_at is None:
            for key, _data in items:
                expiry.pop(key, None)
        else:
            expiry.update((key, expires_at) for key, _data in items)
        return [pack_key(*key) for key, _data in items]

    def _drop(self, kind: Kind, key: Key) -> bool:
        self._expiry[kind].pop(key, None)
        return self._records[kind].pop(key, None) is not None

    def _purged(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        """Remove the records of ``kind`` expired at ``now`` (by the expiry dict alone, never
        decoding a record); each batch's count."""
        expired = [key for key, at in self._expiry[kind].items() if at <= now]
        for start in range(0, len(expired), PURGE_BATCH):
            batch = expired[start : start + PURGE_BATCH]
            if not dry_run:
                for key in batch:
                    self._drop(kind, key)
            yield len(batch)

    def _keys(self, kind: Kind, flow_name: str | None) -> list[Key]:
        return list(keys_matching(list(self._records[kind]), flow_name))


class InMemoryStorage(MemoryRecords, RecordStorage):
    """Results kept in this process's memory, as serialized copies.

    Because it keeps what the serializer produced, it behaves like the persistent adapters:
    mutating a result after ``store`` does not change what is stored, a tuple comes back as a
    list, and a value the serializer refuses is refused here too. Nothing survives the process,
    and a forked child starts with its own, empty storage.

    With a ``ttl``, the expiry time of every expiring record is also kept in a dict beside the
    records, so :meth:`purge_expired` looks at those alone, never decoding a record.

    Its ``operation_timeout`` defaults to 60 s, like any adapter without timeouts of its own;
    a call here waits on no I/O.

    Its async form (:mod:`selinon_like.aio`) is
    :class:`storages.aio.memory.AsyncInMemoryStorage`, which keeps its own dicts: each
    instance (one per event loop in the async pool) starts empty.

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

    async_adapter = "storages.aio.memory:AsyncInMemoryStorage"

    def __init__(self, echo: bool = False) -> None:
        self._hold(echo)

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return self._records[kind].get(key)

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        return self._put(kind, key, data, expires_at)

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        return self._put_many(kind, items, expires_at)

    def remove(self, kind: Kind, key: Key) -> bool:
        return self._drop(kind, key)

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        # Calls on the instance hold its lock (thread_safe is False) for the whole purge, so
        # no store can slip between the check and the removal.
        return self._purged(kind, now, dry_run)

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return iter(self._keys(kind, flow_name))
