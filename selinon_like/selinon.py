"""Selinon 1.4 drop-in (SPEC §12): this library's adapters under Selinon's calling convention.

A Selinon project moves to this library by changing the ``import:`` lines of its ``nodes.yml``
from ``selinon.storages.<module>`` to ``selinon_like.selinon``; class names and configuration
keys stay as they are::

    storages:
      - name: Results
        import: selinon_like.selinon      # was: selinon.storages.redis
        classname: Redis
        configuration:
          host: '{REDIS_HOST}'
          port: 6379

Selinon's dispatcher calls ``store(node_args, flow_name, task_name, task_id, result)`` and
``store_error(node_args, ...)`` — ``node_args`` first — builds each adapter once when its
generated configuration is imported (before a prefork worker forks), connects it lazily under a
``multiprocessing.Lock`` and keeps it as a dict key. Each class here fits that: it takes the
keys of the Selinon adapter of its name (the class of the same name in
:mod:`selinon_like.selinon_nodes` translates them), holds a one-storage
:class:`~selinon_like.StoragePool` of the corresponding adapter of ``storages/``
(:class:`SelinonStorage`) and forwards every call to the instance that pool keeps for the
calling process. So the constructor does no I/O and opens no socket, a forked child connects
anew (``is_connected()`` is false in a process that did not connect), ``disconnect()`` is
harmless at any time, and instances hash by identity.

With ``storage_task_name`` set on a task, Selinon stores its result under that alias but
retrieves it by the task's own name; :meth:`SelinonStorage.retrieve` (and ``delete``,
``retrieve_error``) look the name up in Selinon's ``Config.storage_task_name`` when Selinon is
loaded, so the result is found.

``StoragePool.from_selinon`` reads a Selinon ``nodes.yml`` into a pool of this library's
adapters (:func:`selinon_like.selinon_nodes.read_selinon_nodes`), so what a Selinon flow stored
can be read, listed and copied here and with the ``selinon-like`` command
(``selinon:NODES_YML`` as CONFIG).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from selinon_like import selinon_nodes
from selinon_like.error_records import ErrorRecord
from selinon_like.errors import ConfigError
from selinon_like.pool import StoragePool
from selinon_like.selinon_nodes import SelinonConfig, expand_selinon_env
from selinon_like.storage import DataStorage, ExcInfo

__all__ = [
    "S3",
    "Filesystem",
    "InMemoryStorage",
    "MongoDB",
    "PostgreSQL",
    "Redis",
    "S3Storage",
    "SelinonStorage",
    "SqlStorage",
    "expand_selinon_env",
]


def _selinon_task_name(task_name: str) -> str:
    """The name Selinon stores ``task_name``'s results under: its ``storage_task_name``,
    read from Selinon's configuration when Selinon is loaded in this process."""
    module = sys.modules.get("selinon.config")
    names = getattr(getattr(module, "Config", None), "storage_task_name", None)
    if isinstance(names, Mapping):
        alias = names.get(task_name, task_name)
        if isinstance(alias, str):
            return alias
    return task_name


class SelinonStorage(SelinonConfig):
    """Base of the drop-in adapters: Selinon's interface over one adapter of ``storages/``.

    Each drop-in class combines the configuration class of its name in
    :mod:`selinon_like.selinon_nodes` (Selinon's constructor arguments, translated into
    ``configuration``) with this class, which builds a one-storage pool of that adapter from
    ``configuration``; an option the adapter does not take is a :class:`ConfigError` naming
    it, raised by the constructor.

    ``configuration`` holds that configuration (environment fields expanded); ``storage`` is the
    adapter itself, connected in the calling process.

    ``store``/``store_error`` take the task name to store under (Selinon passes the task's
    ``storage_task_name``); ``retrieve``, ``delete`` and ``retrieve_error`` take the task's own
    name, as Selinon passes it, and use its ``storage_task_name`` when Selinon is loaded. Errors
    are this library's (:class:`~selinon_like.ResultNotFound` when nothing is stored).
    """

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        super().__init__(configuration)
        name = type(self).__name__
        try:
            self._pool = StoragePool.from_dict({"storages": [self.pool_entry(name)]})
        except ConfigError as exc:
            raise ConfigError(
                "; ".join(problem.message for problem in exc.problems),
                storage=self._label(),
                key=exc.key,
            ) from None
        self._name = name
        self._connected_pid: int | None = None

    # -- connection, as Selinon's StoragePool drives it ---------------------------------------

    def connect(self) -> None:
        """Connect this process's adapter instance (a forked child gets its own)."""
        self._adapter()

    def is_connected(self) -> bool:
        """True in the process that connected, until ``disconnect()``; false in a forked child,
        so Selinon connects the child anew."""
        return self._connected_pid == os.getpid()

    def disconnect(self) -> None:
        """Close this process's connection (never the parent's after a fork). Idempotent, and
        safe at any time, interpreter shutdown included."""
        self._connected_pid = None
        self._pool.disconnect_all()

    @property
    def storage(self) -> DataStorage:
        """This library's adapter underneath, connected (for ``iter_keys``, ``store_many``,
        ``retrieve_stream`` and the rest of its interface)."""
        return self._adapter()

    def _adapter(self) -> DataStorage:
        adapter = self._pool.get_connected_storage(self._name)
        self._connected_pid = os.getpid()
        return adapter

    # -- Selinon's operations -------------------------------------------------------------

    def store(
        self, node_args: Any, flow_name: str, task_name: str, task_id: str, result: Any
    ) -> str:
        """Store ``result`` under ``(flow_name, task_name, task_id)``, replacing any result
        stored there; the record id. ``node_args`` is not stored with a result."""
        return self._adapter().store(flow_name, task_name, task_id, result)

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure (type, message, traceback, ``node_args``, time); the record
        id. Read it back with :meth:`retrieve_error`."""
        return self._adapter().store_error(node_args, flow_name, task_name, task_id, exc_info)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """The result of task ``task_name`` (stored under its ``storage_task_name``)."""
        return self._adapter().retrieve(flow_name, _selinon_task_name(task_name), task_id)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Delete the result of task ``task_name``; ``ResultNotFound`` when there is none."""
        self._adapter().delete(flow_name, _selinon_task_name(task_name), task_id)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The error record of task ``task_name``; ``ResultNotFound`` when none."""
        return self._adapter().retrieve_error(flow_name, _selinon_task_name(task_name), task_id)


# One class per Selinon adapter: its constructor (and so its signature) is the configuration
# class's, whose super().__init__ reaches SelinonStorage.__init__ through the MRO.


class InMemoryStorage(selinon_nodes.InMemoryStorage, SelinonStorage):
    """Selinon's ``InMemoryStorage``; keys: :class:`selinon_like.selinon_nodes.InMemoryStorage`.

    With ``echo``, every stored record and every retrieved result is printed on that stream,
    as indented JSON with ``json``."""

    def _echo(self, value: Any) -> None:
        if self._echo_stream is None:
            return
        stream = getattr(sys, self._echo_stream)
        if self._echo_json:
            json.dump(value, stream, sort_keys=True, indent=2, default=repr)
            stream.write("\n")
        else:
            print(value, file=stream)

    def store(
        self, node_args: Any, flow_name: str, task_name: str, task_id: str, result: Any
    ) -> str:
        record_id = super().store(node_args, flow_name, task_name, task_id, result)
        self._echo(
            {
                "node_args": node_args,
                "flow_name": flow_name,
                "task_name": task_name,
                "task_id": task_id,
                "result": result,
            }
        )
        return record_id

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        result = super().retrieve(flow_name, task_name, task_id)
        self._echo(result)
        return result


class Filesystem(selinon_nodes.Filesystem, SelinonStorage):
    """Selinon's ``Filesystem``; keys: :class:`selinon_like.selinon_nodes.Filesystem`."""


class Redis(selinon_nodes.Redis, SelinonStorage):
    """Selinon's ``Redis``; keys: :class:`selinon_like.selinon_nodes.Redis`."""


class SqlStorage(selinon_nodes.SqlStorage, SelinonStorage):
    """Selinon's SQLAlchemy adapter; keys: :class:`selinon_like.selinon_nodes.SqlStorage`."""


class PostgreSQL(selinon_nodes.PostgreSQL, SqlStorage):
    """Selinon's ``PostgreSQL``; keys: :class:`selinon_like.selinon_nodes.PostgreSQL`."""


class MongoDB(selinon_nodes.MongoDB, SelinonStorage):
    """Selinon's ``MongoDB``; keys: :class:`selinon_like.selinon_nodes.MongoDB`."""


class S3(selinon_nodes.S3, SelinonStorage):
    """Selinon's ``S3``; keys: :class:`selinon_like.selinon_nodes.S3`. Blobs go through the
    adapter's ``store_stream`` (:attr:`storage`)."""


# Selinon's documentation names the S3 class S3Storage; Selinon 1.4's module names it S3.
S3Storage = S3
