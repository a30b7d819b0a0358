"""``RecordStorage``: every public operation built once on a few primitives on bytes.

A service that can get, put, delete and list values by key is all an adapter needs to offer:
subclass :class:`RecordStorage`, write ``connect``/``disconnect``/``is_connected`` and the
primitives below, and every operation of SPEC section 2 comes from here — serialization, error
records (always JSON), bulk calls, key listing — with the key checks, lock, retries, error
translation, cache and statistics of :class:`~selinon_like.storage.DataStorage` around them.

Each primitive takes the record ``kind`` first: ``"results"`` or ``"errors"``; an adapter keeps
the two apart (two tables, two key prefixes, two directories) so an error never hides a result.
Keys are the exact ``(flow_name, task_name, task_id)`` triple, already checked; values are the
bytes to keep, already serialized.

=================  ============================================================  ==========
primitive          contract                                                      default
=================  ============================================================  ==========
``read``           the bytes stored under the key, or ``None``                   required
``write``          store (replacing) and return a record id                      required
``remove``         delete; ``False`` when there was nothing                      not offered
``scan``           iterate the stored keys (of one flow, when given)             not offered
``read_many``      ``read`` of many keys, in order                               one by one
``write_many``     ``write`` of many items, in order; their record ids           one by one
``remove_many``    ``remove`` of many keys; how many there were                  one by one
=================  ============================================================  ==========

Override the ``*_many`` primitives with one round trip (or a few batches) where the service
allows. ``delete``, ``delete_many``, ``iter_keys`` and ``iter_error_keys`` are offered when the
adapter writes ``remove`` / ``scan`` (see :meth:`RecordStorage.capabilities`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from selinon_like.error_records import (
    ErrorRecord,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
)
from selinon_like.keys import Key
from selinon_like.storage import DataStorage

__all__ = ["ERRORS", "RESULTS", "Kind", "RecordStorage"]

Kind = Literal["results", "errors"]
RESULTS: Kind = "results"
ERRORS: Kind = "errors"


class RecordStorage(DataStorage):
    """Base class of an adapter written as primitives on bytes (see the module docstring)."""

    # -- primitives -------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self, kind: Kind, key: Key) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""

    @abc.abstractmethod
    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        """Store ``data`` under ``key``, replacing what was there; a record id."""

    def remove(self, kind: Kind, key: Key) -> bool:
        """Delete what is stored under ``key``; ``False`` when there was nothing."""
        raise self._not_implemented("remove")

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        """Every stored key, or those of ``flow_name`` (yielding others too is allowed: they
        are filtered out), each once."""
        raise self._not_implemented("scan")

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        """:meth:`read` of every key, in order."""
        return [self.read(kind, key) for key in keys]

    def write_many(self, kind: Kind, items: Sequence[tuple[Key, bytes]]) -> list[str]:
        """:meth:`write` of every item, in order; their record ids."""
        return [self.write(kind, key, data) for key, data in items]

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        """:meth:`remove` of every key; how many had something stored."""
        return sum(self.remove(kind, key) for key in keys)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        offered = set(super().capabilities())
        offered.discard("delete")  # written below on remove, offered only with it
        offered.discard("delete_many")
        offered.update(("store_error", "retrieve_error", "store_error_record"))
        if cls.remove is not RecordStorage.remove:
            offered.update(("delete", "delete_many"))
        if cls.scan is not RecordStorage.scan:
            offered.update(("iter_keys", "iter_error_keys"))
        else:
            offered.difference_update(("iter_keys", "iter_error_keys"))
        return frozenset(offered)

    # -- the public operations, on the primitives -------------------------------------------

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        data = self.read(RESULTS, (flow_name, task_name, task_id))
        if data is None:
            raise self.not_found(flow_name, task_name, task_id)
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return self.write(RESULTS, (flow_name, task_name, task_id), self.serializer.dumps(result))

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        if not self.remove(RESULTS, (flow_name, task_name, task_id)):
            raise self.not_found(flow_name, task_name, task_id)

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        dumps = self.serializer.dumps
        # Everything is serialized before the first write: one bad result stores nothing.
        encoded = [((flow, task, task_id), dumps(result)) for flow, task, task_id, result in items]
        return self.write_many(RESULTS, encoded) if encoded else []

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        keys = list(keys)
        if not keys:
            return {}
        loads = self.serializer.loads
        values = self.read_many(RESULTS, keys)
        return {
            key: loads(data) for key, data in zip(keys, values, strict=True) if data is not None
        }

    def delete_many(self, keys: Iterable[Key]) -> int:
        keys = list(keys)
        return self.remove_many(RESULTS, keys) if keys else 0

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(RESULTS, flow_name), flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return _of_flow(self.scan(ERRORS, flow_name), flow_name)

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        record = make_error_record(node_args, flow_name, task_name, task_id, exc_info)
        return self.write(ERRORS, (flow_name, task_name, task_id), dump_error_record(record))

    def store_error_record(self, record: ErrorRecord) -> str:
        key = (record["flow_name"], record["task_name"], record["task_id"])
        return self.write(ERRORS, key, dump_error_record(record))

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        data = self.read(ERRORS, (flow_name, task_name, task_id))
        if data is None:
            raise self.not_found(flow_name, task_name, task_id, "error record")
        return load_error_record(data)


def _of_flow(keys: Iterator[Key], flow_name: str | None) -> Iterator[Key]:
    if flow_name is None:
        return keys
    return (key for key in keys if key[0] == flow_name)
