"""A custom adapter: results in a ``dbm`` file from the standard library.

It writes only the I/O. selinon_like validates keys, serialises calls (``thread_safe`` is
False, and dbm is not thread-safe), converts the driver's errors and retries transient ones.
"""

from __future__ import annotations

import dbm.dumb
from collections.abc import Iterator
from typing import Any

from selinon_like import DataStorage
from selinon_like.keys import Key, pack_key, unpack_key
from selinon_like.storage import dump_error_record, load_error_record, make_error_record


class DbmStorage(DataStorage):
    """Results in a ``dbm.dumb`` database.

    Configuration:

    ``filename`` (str, required)
        the database file (without extension).

    Example::

        storages:
          - name: Local
            import: dbm_storage
            classname: DbmStorage
            configuration:
              filename: /tmp/results
    """

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

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            data = self._db["r" + pack_key(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        key = pack_key(flow_name, task_name, task_id)
        self._db["r" + key] = self.serializer.dumps(result)
        return key

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        try:
            del self._db["r" + pack_key(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None

    def store_error(
        self, node_args: Any, flow_name: str, task_name: str, task_id: str, exc_info: Any
    ) -> str:
        record = make_error_record(node_args, flow_name, task_name, task_id, exc_info)
        return self.store_error_record(record)

    def store_error_record(self, record: dict[str, Any]) -> str:
        key = pack_key(record["flow_name"], record["task_name"], record["task_id"])
        self._db["e" + key] = dump_error_record(record)
        return key

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        try:
            data = self._db["e" + pack_key(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id, "error record") from None
        return load_error_record(data)

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys("r", flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys("e", flow_name)

    def _keys(self, kind: str, flow_name: str | None) -> Iterator[Key]:
        for raw in list(self._db.keys()):
            text = raw.decode("utf-8")
            if text.startswith(kind):
                key = unpack_key(text[1:])
                if flow_name is None or key[0] == flow_name:
                    yield key
