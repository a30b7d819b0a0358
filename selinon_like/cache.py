"""The optional per-process read cache of a storage (SPEC section 4, ``cache:``).

Read-through on ``retrieve``, refreshed on ``store``, evicted on ``delete``; keyed by the full
``(flow_name, task_name, task_id)``. It keeps the serialized bytes, so every hit returns a new
object: a caller mutating what it got back never changes what the next caller sees. Given the
stored form of a record (the storage's codec reports it), it keeps that: compressed as stored,
with the record's own expiry, which every hit checks — a cached result expires with the
stored one, and is never kept decompressed. Each
storage instance has its own cache, so a forked child (which builds its own instances) starts
empty. ``hits`` and ``misses`` count lookups.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from selinon_like.errors import ConfigError, ResultNotFound, SerializationError
from selinon_like.keys import Key
from selinon_like.serializers import Serializer

__all__ = ["CacheSpec", "ResultCache"]


@dataclass(frozen=True)
class CacheSpec:
    """``max_size`` entries at most (least recently used go first); ``ttl`` seconds or None."""

    max_size: int = 1024
    ttl: float | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_size, bool)
            or not isinstance(self.max_size, int)
            or (self.max_size < 1)
        ):
            raise ConfigError(
                f"max_size must be a whole number >= 1, not {self.max_size!r}",
                key="cache.max_size",
            )
        if self.ttl is not None and (
            isinstance(self.ttl, bool) or not isinstance(self.ttl, (int, float)) or self.ttl <= 0
        ):
            raise ConfigError(
                f"ttl must be a number of seconds > 0 (or left out), not {self.ttl!r}",
                key="cache.ttl",
            )

    @classmethod
    def from_config(cls, mapping: dict[str, Any] | bool | None) -> CacheSpec | None:
        if not mapping:
            return None
        if mapping is True:
            return cls()
        return cls(**mapping)

    def build(self) -> ResultCache:
        return ResultCache(self.max_size, self.ttl)


class ResultCache:
    """A thread-safe LRU of serialized results with an optional time to live."""

    def __init__(self, max_size: int, ttl: float | None = None) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, tuple[float, bytes, Serializer]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.ttl is not None and entry[0] < time.monotonic():
                del self._entries[key]
                entry = None
            if entry is None:
                self.misses += 1
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
        _expires, data, serializer = entry
        try:
            return True, serializer.loads(data)
        except ResultNotFound:  # the record's own expiry has passed
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
                self.hits -= 1
                self.misses += 1
            return False, None

    def put(
        self, key: Key, value: Any, serializer: Serializer, stored: bytes | None = None
    ) -> None:
        """Keep ``value`` for ``key``: ``stored`` when given (the record's stored bytes, which
        ``serializer`` loads), else ``value`` serialized by ``serializer``."""
        if stored is not None:
            data = stored
        else:
            try:
                data = serializer.dumps(value)
            except SerializationError:
                self.evict(key)
                return
        expires = time.monotonic() + self.ttl if self.ttl is not None else 0.0
        with self._lock:
            self._entries[key] = (expires, data, serializer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def evict(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._entries)}
