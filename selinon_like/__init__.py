"""selinon_like: one place for task-running programs to persist task results.

A YAML file declares named storages; :class:`StoragePool` imports each adapter by dotted path,
keeps one connected instance per process and makes ``retrieve``/``store``/``store_error`` safe
under threads and ``fork``. Adapters subclass :class:`DataStorage`.
"""

from __future__ import annotations

from selinon_like.error_records import make_error_record
from selinon_like.errors import (
    ConfigError,
    ResultNotFound,
    ResultTooLarge,
    SelinonLikeError,
    SerializationError,
    StorageError,
    StorageUnavailable,
    UnknownStorageError,
)
from selinon_like.keys import Key
from selinon_like.pool import StorageHealth, StoragePool
from selinon_like.retry import RetryPolicy
from selinon_like.storage import DataStorage
from selinon_like.streams import Digest

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataStorage",
    "Digest",
    "Key",
    "ResultNotFound",
    "ResultTooLarge",
    "RetryPolicy",
    "SelinonLikeError",
    "SerializationError",
    "StorageError",
    "StorageHealth",
    "StoragePool",
    "StorageUnavailable",
    "UnknownStorageError",
    "__version__",
    "make_error_record",
]
