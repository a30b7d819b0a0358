"""``StoragePool``: one connected instance of each configured storage per process (SPEC §3)."""

from __future__ import annotations

import functools
import os
import threading
import types
import weakref
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar

from selinon_like.config import PoolConfig, load_with_instances
from selinon_like.error_records import ErrorRecord
from selinon_like.errors import ConfigError, UnknownStorageError
from selinon_like.health import StorageHealth, ping, round_trip
from selinon_like.selinon_nodes import read_selinon_nodes
from selinon_like.storage import DataStorage, ExcInfo

__all__ = ["StorageHealth", "StoragePool"]

CONFIG_ENV = "SELINON_LIKE_CONFIG"

P = ParamSpec("P")
R = TypeVar("R")


class _PoolMethod(Generic[P, R]):
    """A method that, called on the class, runs on the process-wide default pool
    (``StoragePool.get_connected_storage("X")``, as in Selinon).

    Generic in the method's parameters after ``self`` and its return type, so a type checker
    sees ``pool.store`` and ``StoragePool.store`` with the signature written in the class."""

    def __init__(self, fn: Callable[Concatenate[StoragePool, P], R]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, pool: StoragePool | None, owner: type[StoragePool]) -> Callable[P, R]:
        if pool is not None:
            # A bound method: the cheapest callable (pool calls are timed against raw drivers).
            return types.MethodType(self.fn, pool)
        fn = self.fn
        name = fn.__name__

        @functools.wraps(fn)
        def on_default_pool(*args: P.args, **kwargs: P.kwargs) -> R:
            # Looked up on the default pool, so a subclass's override applies to class-level
            # calls too.
            method: Callable[P, R] = getattr(owner.default(), name)
            return method(*args, **kwargs)

        return on_default_pool


# Every live pool, so a forked child can drop the instances it inherited.
_POOLS: weakref.WeakSet[StoragePool] = weakref.WeakSet()
# The parent's instances in a forked child: kept referenced (never closed, never used), so no
# driver finalizer in the child closes a connection the parent still uses.
_INHERITED: list[DataStorage] = []


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_inherited()
    StoragePool._default_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StoragePool:
    """The configured storages of this process.

    Build one with :meth:`from_yaml` or :meth:`from_dict`, or use the class itself: after
    ``StoragePool.configure(path)`` (or with ``SELINON_LIKE_CONFIG`` set), calls such as
    ``StoragePool.get_connected_storage("Results")`` go to the process-wide default pool.

    ``get_connected_storage`` returns the adapter instance itself, created and connected on
    first use, exactly once however many threads ask at the same time. In a child process after
    ``os.fork()`` the pool builds new instances with their own connections; the parent's are
    never used or closed by the child.

    The routed operations (``retrieve``, ``store``, ``store_error``, ``retrieve_error``,
    ``delete``) take a task's own name and key its results by the name ``task_names`` gives it
    (Selinon's ``storage_task_name``; the task's own name when none is given).
    """

    _default: ClassVar[StoragePool | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        config: PoolConfig,
        instances: Mapping[str, DataStorage] | None = None,
        task_names: Mapping[str, str] | None = None,
    ) -> None:
        """A pool of the storages of ``config`` (which the pool never modifies).

        ``instances`` are ready, unconnected adapter instances to start with, by storage name
        (:meth:`from_yaml` passes those built while validating); the pool owns them from then
        on, and builds the other storages' on first use.

        ``task_names`` maps a task to the name its results are stored under; each such name
        is routed to its task's storage too (unless ``config`` routes it), so a key listed by
        ``iter_keys``, which holds that name, can be read back through the pool."""
        given = dict(instances or {})
        unknown = [name for name in given if name not in config.storages]
        if unknown:
            raise UnknownStorageError(
                f"instances given for storages the configuration does not have: {unknown!r}; "
                f"configured storages: {', '.join(map(repr, config.storages)) or 'none'}"
            )
        for name, instance in given.items():
            if not isinstance(instance, DataStorage):
                raise TypeError(
                    f"the instance given for storage {name!r} is a {type(instance).__name__}, "
                    "not a selinon_like.DataStorage"
                )
        aliases = dict(task_names or {})
        for task, alias in aliases.items():
            if not (isinstance(task, str) and isinstance(alias, str)):
                raise TypeError(
                    f"task_names maps task names to task names (str), not {task!r} to {alias!r}"
                )
        self._config = config
        self._tasks = dict(config.tasks)
        for task, alias in aliases.items():
            if task in self._tasks:
                self._tasks.setdefault(alias, self._tasks[task])
        self._task_names = aliases
        self._instances: dict[str, DataStorage] = given
        self._locks = {name: threading.Lock() for name in config.storages}
        _POOLS.add(self)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str] | IO[str]) -> StoragePool:
        """A pool from a YAML file path or an open text stream."""
        loaded = load_with_instances(source)
        return cls(loaded.config, loaded.instances)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> StoragePool:
        """A pool from an already-parsed mapping (which is not modified)."""
        loaded = load_with_instances(mapping)
        return cls(loaded.config, loaded.instances)

    @classmethod
    def from_selinon(cls, nodes_yml: str | os.PathLike[str]) -> StoragePool:
        """A pool from a Selinon ``nodes.yml``: its storages (``selinon.storages.*`` mapped to
        this library's adapters) and each task's ``storage`` and ``storage_task_name`` (as
        ``task_names``). See :func:`selinon_like.selinon_nodes.read_selinon_nodes`; every
        problem is a :class:`ConfigError` naming the file, the line and the storage."""
        nodes = read_selinon_nodes(nodes_yml)
        try:
            loaded = load_with_instances(nodes.config, source=nodes.source)
        except ConfigError as exc:
            raise nodes.locate(exc) from None
        return cls(loaded.config, loaded.instances, nodes.task_names)

    @classmethod
    def configure(
        cls, source: str | os.PathLike[str] | IO[str] | Mapping[str, Any] | StoragePool
    ) -> StoragePool:
        """Set the process-wide default pool (a YAML path or stream, a mapping, or a pool);
        the previous default pool, if any, is disconnected."""
        if isinstance(source, StoragePool):
            pool = source
        elif isinstance(source, Mapping):
            pool = cls.from_dict(source)
        else:
            pool = cls.from_yaml(source)
        with cls._default_lock:
            previous, cls._default = cls._default, pool
        if previous is not None and previous is not pool:
            previous.disconnect_all()
        return pool

    @classmethod
    def default(cls) -> StoragePool:
        """The process-wide default pool, loaded from ``SELINON_LIKE_CONFIG`` if not configured."""
        pool = cls._default
        if pool is not None:
            return pool
        with cls._default_lock:
            if cls._default is None:
                path = os.environ.get(CONFIG_ENV)
                if not path:
                    raise ConfigError(
                        "no storage configuration: call StoragePool.configure('storages.yml') "
                        f"or set the environment variable {CONFIG_ENV} to the YAML file"
                    )
                cls._default = cls.from_yaml(path)
            return cls._default

    @classmethod
    def reset_default(cls) -> None:
        """Disconnect and forget the default pool (tests, reconfiguration)."""
        with cls._default_lock:
            previous, cls._default = cls._default, None
        if previous is not None:
            previous.disconnect_all()

    # -- instances ------------------------------------------------------------------------

    @_PoolMethod
    def get_connected_storage(self, name: str) -> DataStorage:
        """The one instance of storage ``name`` in this process, connected."""
        instance = self._instances.get(name)
        if instance is not None and instance.is_connected():
            return instance
        lock = self._locks.get(name)
        if lock is None:
            raise self.unknown_storage(name)
        with lock:
            instance = self._instances.get(name)
            if instance is None:
                instance = self._config.storages[name].build()
                self._instances[name] = instance
            if not instance.is_connected():
                instance.connect()
            return instance

    def unknown_storage(self, name: str) -> UnknownStorageError:
        """The error for a storage name the configuration does not have, listing those it
        has."""
        return UnknownStorageError(
            f"no storage named {name!r}; configured storages: "
            + (", ".join(map(repr, self._config.storages)) or "none")
        )

    def _forget_inherited(self) -> None:
        _INHERITED.extend(self._instances.values())
        self._instances = {}
        self._locks = {name: threading.Lock() for name in self._config.storages}

    @_PoolMethod
    def names(self) -> list[str]:
        """The storage names, in configuration order."""
        return list(self._config.storages)

    @property
    def config(self) -> PoolConfig:
        return self._config

    def storage_for_task(self, task_name: str) -> str:
        """The storage name the ``tasks`` section maps ``task_name`` to; when the configuration
        routes no task and has one storage, that storage (as ``selinon-like`` does)."""
        try:
            return self._tasks[task_name]
        except KeyError:
            if not self._tasks and len(self._config.storages) == 1:
                return next(iter(self._config.storages))
            raise UnknownStorageError(
                f"task {task_name!r} has no storage: map it in the 'tasks' section "
                f"(- name: {task_name}, storage: <one of {', '.join(self.names())}>)"
            ) from None

    def storage_task_name(self, task_name: str) -> str:
        """The task name ``task_name``'s results are stored under (``task_names``)."""
        return self._task_names.get(task_name, task_name)

    # -- routed operations ----------------------------------------------------------------

    @_PoolMethod
    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """Retrieve from the storage mapped to ``task_name``."""
        return self.get_connected_storage(self.storage_for_task(task_name)).retrieve(
            flow_name, self._task_names.get(task_name, task_name), task_id
        )

    @_PoolMethod
    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        """Store into the storage mapped to ``task_name``; the record id."""
        return self.get_connected_storage(self.storage_for_task(task_name)).store(
            flow_name, self._task_names.get(task_name, task_name), task_id, result
        )

    @_PoolMethod
    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure in the storage mapped to ``task_name``."""
        return self.get_connected_storage(self.storage_for_task(task_name)).store_error(
            node_args, flow_name, self._task_names.get(task_name, task_name), task_id, exc_info
        )

    @_PoolMethod
    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The last error record of a task, from the storage mapped to ``task_name``."""
        return self.get_connected_storage(self.storage_for_task(task_name)).retrieve_error(
            flow_name, self._task_names.get(task_name, task_name), task_id
        )

    @_PoolMethod
    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Delete a result from the storage mapped to ``task_name``."""
        self.get_connected_storage(self.storage_for_task(task_name)).delete(
            flow_name, self._task_names.get(task_name, task_name), task_id
        )

    # -- operating ------------------------------------------------------------------------

    @_PoolMethod
    def check(self, write: bool = False) -> list[StorageHealth]:
        """Connect and ping every storage: one row each, with the latency or the error. With
        ``write``, each storage stores, reads back and deletes a scratch result instead of a
        ping (what ``selinon-like check`` does). Never raises for a storage that fails."""
        probe = round_trip if write else ping
        return [
            probe(spec, functools.partial(self.get_connected_storage, name))
            for name, spec in self._config.storages.items()
        ]

    @_PoolMethod
    def purge_expired(
        self,
        name: str | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """Remove the expired records of storage ``name``, or of every storage that can purge
        (see :meth:`DataStorage.purge_expired`); how many, by storage name. A storage whose
        adapter cannot purge is left out when ``name`` is None, and raises
        ``NotImplementedError`` when named. ``progress(name, count)`` follows each batch;
        ``dry_run`` counts the expired records and removes nothing."""
        names = [name] if name is not None else self.names()
        removed: dict[str, int] = {}
        for each in names:
            spec = self._config.storages.get(each)
            if spec is None:
                self.get_connected_storage(each)  # the unknown-name error, listing the known
                continue
            if name is None and "purge_expired" not in spec.cls.capabilities():
                continue
            storage = self.get_connected_storage(each)

            def report(count: int, storage_name: str = each) -> None:
                if progress is not None:
                    progress(storage_name, count)

            removed[each] = storage.purge_expired(dry_run=dry_run, progress=report)
        return removed

    @_PoolMethod
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per storage connected in this process: counts and latency percentiles (ms) per
        operation, retries, and cache hits/misses."""
        return {
            name: instance.observer.summary()
            for name, instance in self._instances.items()
            if instance.observer is not None
        }

    @_PoolMethod
    def disconnect_all(self) -> None:
        """Disconnect every connected instance of this process."""
        for name, instance in list(self._instances.items()):
            with self._locks[name]:
                if instance.is_connected():
                    instance.disconnect()

    def __enter__(self) -> StoragePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect_all()

    def __repr__(self) -> str:
        return f"<StoragePool {self._config.source!r} storages={self.names()!r}>"
