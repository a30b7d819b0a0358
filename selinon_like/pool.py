"""``StoragePool``: one connected instance of each configured storage per process (SPEC §3)."""

from __future__ import annotations

import functools
import os
import threading
import time
import types
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Generic, TypeVar

from selinon_like.config import PoolConfig, load_config, load_mapping
from selinon_like.errors import ConfigError, SelinonLikeError, UnknownStorageError
from selinon_like.masking import scrub
from selinon_like.storage import DataStorage, ExcInfo

__all__ = ["StorageHealth", "StoragePool"]

CONFIG_ENV = "SELINON_LIKE_CONFIG"

R = TypeVar("R")


class _PoolMethod(Generic[R]):
    """A method that, called on the class, runs on the process-wide default pool
    (``StoragePool.get_connected_storage("X")``, as in Selinon)."""

    def __init__(self, fn: Callable[..., R]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, pool: StoragePool | None, owner: type[StoragePool]) -> Callable[..., R]:
        if pool is not None:
            return types.MethodType(self.fn, pool)
        fn = self.fn

        @functools.wraps(fn)
        def on_default_pool(*args: Any, **kwargs: Any) -> R:
            return fn(owner.default(), *args, **kwargs)

        return on_default_pool


@dataclass(frozen=True)
class StorageHealth:
    """One row of :meth:`StoragePool.check`."""

    name: str
    adapter: str
    ok: bool
    latency: float | None
    error: str | None = None


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
    """

    _default: ClassVar[StoragePool | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._tasks = dict(config.tasks)
        self._instances: dict[str, DataStorage] = dict(config.instances)
        config.instances.clear()
        self._locks = {name: threading.Lock() for name in config.storages}
        _POOLS.add(self)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str] | IO[str]) -> StoragePool:
        """A pool from a YAML file path or an open text stream."""
        return cls(load_config(source))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> StoragePool:
        """A pool from an already-parsed mapping (which is not modified)."""
        return cls(load_mapping(mapping))

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
            raise UnknownStorageError(
                f"no storage named {name!r}; configured storages: "
                + (", ".join(map(repr, self._config.storages)) or "none")
            )
        with lock:
            instance = self._instances.get(name)
            if instance is None:
                instance = self._config.storages[name].build()
                self._instances[name] = instance
            if not instance.is_connected():
                instance.connect()
            return instance

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
        """The storage name the ``tasks`` section maps ``task_name`` to."""
        try:
            return self._tasks[task_name]
        except KeyError:
            raise UnknownStorageError(
                f"task {task_name!r} has no storage: map it in the 'tasks' section "
                f"(- name: {task_name}, storage: <one of {', '.join(self.names())}>)"
            ) from None

    # -- routed operations ----------------------------------------------------------------

    @_PoolMethod
    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """Retrieve from the storage mapped to ``task_name``."""
        return self.get_connected_storage(self.storage_for_task(task_name)).retrieve(
            flow_name, task_name, task_id
        )

    @_PoolMethod
    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        """Store into the storage mapped to ``task_name``; the record id."""
        return self.get_connected_storage(self.storage_for_task(task_name)).store(
            flow_name, task_name, task_id, result
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
            node_args, flow_name, task_name, task_id, exc_info
        )

    @_PoolMethod
    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        """The last error record of a task, from the storage mapped to ``task_name``."""
        return self.get_connected_storage(self.storage_for_task(task_name)).retrieve_error(
            flow_name, task_name, task_id
        )

    @_PoolMethod
    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Delete a result from the storage mapped to ``task_name``."""
        self.get_connected_storage(self.storage_for_task(task_name)).delete(
            flow_name, task_name, task_id
        )

    # -- operating ------------------------------------------------------------------------

    @_PoolMethod
    def check(self) -> list[StorageHealth]:
        """Connect and ping every storage: one row each with latency (seconds) or the error."""
        rows = []
        for name, spec in self._config.storages.items():
            started = time.perf_counter()
            try:
                self.get_connected_storage(name).ping()
            except Exception as exc:
                rows.append(
                    StorageHealth(
                        name,
                        spec.cls.__name__,
                        False,
                        None,
                        describe_error(exc, spec.configuration),
                    )
                )
                continue
            rows.append(StorageHealth(name, spec.cls.__name__, True, time.perf_counter() - started))
        return rows

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


@dataclass
class CheckRow:
    """One row of ``selinon-like check``: a store/retrieve/delete round trip on a scratch key."""

    storage: str
    adapter: str
    ok: bool
    latency_ms: float | None
    error: str | None


def round_trip(pool: StoragePool, name: str) -> CheckRow:
    """Store, read back and delete a scratch result in storage ``name``; never raises."""
    spec = pool.config.storages[name]
    adapter = f"{spec.cls.__module__}.{spec.cls.__qualname__}"
    key = ("selinon-like-check", "check", uuid.uuid4().hex)
    payload = {"check": key[2]}
    started = time.perf_counter()
    try:
        storage = pool.get_connected_storage(name)
        storage.store(*key, payload)
        if storage.retrieve(*key) != payload:
            raise RuntimeError("the result read back differs from the one stored")
        storage.delete(*key)
    except Exception as exc:  # every failure becomes a row
        return CheckRow(name, adapter, False, None, describe_error(exc, spec.configuration))
    return CheckRow(name, adapter, True, (time.perf_counter() - started) * 1000, None)


def describe_error(exc: BaseException, configuration: Mapping[str, Any]) -> str:
    """A one-line, secret-free description of an error for reports."""
    from selinon_like.masking import secret_values

    text = str(exc) if isinstance(exc, SelinonLikeError) else f"{type(exc).__name__}: {exc}"
    return scrub(text.splitlines()[0] if text else type(exc).__name__, secret_values(configuration))
