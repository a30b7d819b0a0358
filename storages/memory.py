"""``InMemoryStorage``: results in a dict of this process."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from selinon_like import options
from selinon_like.keys import Key, keys_matching, pack_key
from selinon_like.storage import (
    DataStorage,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
    record_key,
)

__all__ = ["InMemoryStorage"]

log = logging.getLogger("selinon_like")


class InMemoryStorage(DataStorage):
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
        self._results: dict[Key, bytes] = {}
        self._errors: dict[Key, bytes] = {}
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            data = self._results[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self._results[(flow_name, task_name, task_id)] = self.serializer.dumps(result)
        record_id = pack_key(flow_name, task_name, task_id)
        if self.echo:
            log.info("%s: stored %s", self.storage_name, record_id)
        return record_id

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
        self._errors[key] = dump_error_record(record)
        return pack_key(*key)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        try:
            data = self._errors[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id, "error record") from None
        return load_error_record(data)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        try:
            del self._results[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        # Serialize everything first: one bad result stores nothing.
        encoded = [((f, t, i), self.serializer.dumps(result)) for f, t, i, result in items]
        self._results.update(encoded)
        return [pack_key(*key) for key, _data in encoded]

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return iter(list(keys_matching(list(self._results), flow_name)))

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return iter(list(keys_matching(list(self._errors), flow_name)))
