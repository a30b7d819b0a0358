"""``AsyncStoragePool``: the configured storages of this process, for asyncio (SPEC §10)."""

from __future__ import annotations

import asyncio
import copy
import os
import weakref
from collections.abc import Callable, Mapping
from typing import IO, Any

from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.aio.threaded import ThreadedStorage
from selinon_like.config import PoolConfig, StorageSpec, load_with_instances
from selinon_like.error_records import ErrorRecord
from selinon_like.errors import ConfigError
from selinon_like.importing import import_object
from selinon_like.pool import StoragePool
from selinon_like.selinon_nodes import read_selinon_nodes
from selinon_like.storage import ExcInfo

__all__ = ["AsyncStoragePool", "build_async"]


def build_async(spec: StorageSpec) -> AsyncDataStorage:
    """A new, unconnected async instance of storage ``spec``: its adapter's native async form
    (``async_adapter``) built from the same configuration, or the blocking adapter in a
    :class:`ThreadedStorage`."""
    target = spec.cls.__dict__.get("async_adapter")
    if target is None:
        return ThreadedStorage.of(spec.cls)(spec.build())
    cls = import_object(target, what="class") if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, AsyncDataStorage)):
        raise ConfigError(
            f"{spec.cls.__qualname__}.async_adapter names {target!r}, which is not a "
            "selinon_like.aio.AsyncDataStorage subclass"
        )
    instance: AsyncDataStorage = cls(**copy.deepcopy(spec.configuration))
    spec.configure(instance)
    return instance


class _LoopStorages:
    """The instances of one event loop, and a lock per storage that makes each once."""

    def __init__(self, names: list[str]) -> None:
        self.instances: dict[str, AsyncDataStorage] = {}
        self.locks = {name: asyncio.Lock() for name in names}


# Every live pool, so a forked child drops the instances it inherited (never closing them:
# their connections are the parent's).
_POOLS: weakref.WeakSet[AsyncStoragePool] = weakref.WeakSet()
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        _INHERITED.append(pool._loops)
        pool._loops = weakref.WeakKeyDictionary()


os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncStoragePool:
    """The configured storages, for asyncio programs: the blocking pool's YAML, routing and
    errors, with async adapters.

    ``await pool.get_connected_storage(name)`` returns the one connected instance of storage
    ``name`` for the running event loop in this process, created and connected once however
    many tasks ask at the same time; another loop (another thread's, or a later
    ``asyncio.run``) and a forked child get their own. ``async with pool:`` disconnects this
    loop's instances on exit (:meth:`disconnect_all`).
    """

    def __init__(self, config: PoolConfig, task_names: Mapping[str, str] | None = None) -> None:
        """A pool of the storages of ``config``; ``task_names`` as for
        :class:`~selinon_like.StoragePool`."""
        # Routing, names and the configuration are the blocking pool's, which never connects.
        self._routes = StoragePool(config, task_names=task_names)
        self._config = config
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStorages] = (
            weakref.WeakKeyDictionary()
        )
        _POOLS.add(self)

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str] | IO[str]) -> AsyncStoragePool:
        """A pool from a YAML file path or an open text stream (the blocking pool's format)."""
        return cls(load_with_instances(source).config)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> AsyncStoragePool:
        """A pool from an already-parsed mapping (which is not modified)."""
        return cls(load_with_instances(mapping).config)

    @classmethod
    def from_selinon(cls, nodes_yml: str | os.PathLike[str]) -> AsyncStoragePool:
        """A pool from a Selinon ``nodes.yml`` (see :meth:`StoragePool.from_selinon`)."""
        nodes = read_selinon_nodes(nodes_yml)
        try:
            loaded = load_with_instances(nodes.config, source=nodes.source)
        except ConfigError as exc:
            raise nodes.locate(exc) from None
        return cls(loaded.config, nodes.task_names)

    @property
    def config(self) -> PoolConfig:
        return self._config

    def names(self) -> list[str]:
        """The storage names, in configuration order."""
        return self._routes.names()

    def storage_for_task(self, task_name: str) -> str:
        """The storage ``task_name`` is routed to (see :meth:`StoragePool.storage_for_task`)."""
        return self._routes.storage_for_task(task_name)

    def storage_task_name(self, task_name: str) -> str:
        """The task name ``task_name``'s results are stored under (``task_names``)."""
        return self._routes.storage_task_name(task_name)

    # -- instances ------------------------------------------------------------------------

    def _of_this_loop(self) -> _LoopStorages:
        loop = asyncio.get_running_loop()
        storages = self._loops.get(loop)
        if storages is None:
            storages = self._loops[loop] = _LoopStorages(list(self._config.storages))
        return storages

    async def get_connected_storage(self, name: str) -> AsyncDataStorage:
        """The one instance of storage ``name`` for the running event loop, connected."""
        storages = self._of_this_loop()
        instance = storages.instances.get(name)
        if instance is not None and instance.is_connected():
            return instance
        lock = storages.locks.get(name)
        if lock is None:
            raise self._routes.unknown_storage(name)
        async with lock:
            instance = storages.instances.get(name)
            if instance is None:
                instance = build_async(self._config.storages[name])
                storages.instances[name] = instance
            if not instance.is_connected():
                await instance.connect()
            return instance

    async def _for_task(self, task_name: str) -> AsyncDataStorage:
        return await self.get_connected_storage(self._routes.storage_for_task(task_name))

    # -- routed operations ----------------------------------------------------------------

    async def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """Retrieve from the storage mapped to ``task_name``."""
        storage = await self._for_task(task_name)
        return await storage.retrieve(flow_name, self.storage_task_name(task_name), task_id)

    async def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        """Store into the storage mapped to ``task_name``; the record id."""
        storage = await self._for_task(task_name)
        return await storage.store(flow_name, self.storage_task_name(task_name), task_id, result)

    async def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure in the storage mapped to ``task_name``."""
        storage = await self._for_task(task_name)
        return await storage.store_error(
            node_args, flow_name, self.storage_task_name(task_name), task_id, exc_info
        )

    async def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The last error record of a task, from the storage mapped to ``task_name``."""
        storage = await self._for_task(task_name)
        return await storage.retrieve_error(flow_name, self.storage_task_name(task_name), task_id)

    async def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Delete a result from the storage mapped to ``task_name``."""
        storage = await self._for_task(task_name)
        await storage.delete(flow_name, self.storage_task_name(task_name), task_id)

    # -- operating ------------------------------------------------------------------------

    async def purge_expired(
        self,
        name: str | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """As :meth:`StoragePool.purge_expired`, awaited."""
        removed: dict[str, int] = {}
        for each in [name] if name is not None else self.names():
            spec = self._config.storages.get(each)
            if spec is not None and name is None and "purge_expired" not in spec.cls.capabilities():
                continue  # a storage that cannot purge, not named: left out
            storage = await self.get_connected_storage(each)

            def report(count: int, storage_name: str = each) -> None:
                if progress is not None:
                    progress(storage_name, count)

            removed[each] = await storage.purge_expired(dry_run=dry_run, progress=report)
        return removed

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per storage connected in the running event loop (or, called outside one, in the
        first loop that has it): counts and latency percentiles (ms) per operation, retries,
        cache hits and misses."""
        try:
            loops = [self._of_this_loop()]
        except RuntimeError:  # no running loop
            loops = list(self._loops.values())
        found: dict[str, dict[str, Any]] = {}
        for storages in loops:
            for name, instance in storages.instances.items():
                if instance.observer is not None and name not in found:
                    found[name] = instance.observer.summary()
        return found

    async def disconnect_all(self) -> None:
        """Disconnect this event loop's connected instances."""
        storages = self._of_this_loop()
        for name, instance in list(storages.instances.items()):
            async with storages.locks[name]:
                if instance.is_connected():
                    await instance.disconnect()

    async def __aenter__(self) -> AsyncStoragePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect_all()

    def __repr__(self) -> str:
        return f"<AsyncStoragePool {self._config.source!r} storages={self.names()!r}>"
