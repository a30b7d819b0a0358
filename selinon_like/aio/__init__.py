"""The async API (SPEC §10): the same YAML, pool and adapters for asyncio programs.

``AsyncStoragePool.from_yaml(path)`` reads the blocking pool's YAML; ``await
pool.get_connected_storage(name)`` gives the one connected async adapter of that storage for
the running event loop in this process, and ``await pool.store(...)`` / ``retrieve`` /
``store_error`` route through ``tasks`` as the blocking pool does. Redis, PostgreSQL, MongoDB
and S3 use their drivers' native async clients; any other adapter runs in a bounded thread
pool (:class:`ThreadedStorage`). Errors, keys, serialization, retries, expiry and compression
are those of the blocking API, from the same code (:mod:`selinon_like.steps`).
"""

from selinon_like.aio.pool import AsyncStoragePool, build_async
from selinon_like.aio.records import AsyncRecordStorage
from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.aio.threaded import ThreadedStorage

__all__ = [
    "AsyncDataStorage",
    "AsyncRecordStorage",
    "AsyncStoragePool",
    "ThreadedStorage",
    "build_async",
]
