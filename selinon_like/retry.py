"""The retry policy for transient errors (SPEC section 4, ``retry:``).

Each adapter says which driver errors are transient (connection refused or reset, timeouts,
failover); only those are retried, with exponential backoff and full jitter, capped. Every
operation may be retried because every operation is idempotent: ``store`` is an upsert.

The loop itself lives in :class:`~selinon_like.storage.DataStorage`: the first attempt costs
nothing extra, the policy is only consulted after a failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from selinon_like.errors import ConfigError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1 = no retry); the n-th retry waits a random time up to
    ``min(max_backoff, backoff * 2**n)`` seconds (or exactly that without ``jitter``)."""

    attempts: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError("attempts must be a whole number", key="retry.attempts")
        if self.attempts < 1:
            raise ConfigError("attempts must be at least 1", key="retry.attempts")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a number of seconds >= 0", key=f"retry.{name}")
        if not isinstance(self.jitter, bool):
            raise ConfigError("jitter must be true or false", key="retry.jitter")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        ceiling: float = min(self.max_backoff, self.backoff * (2**retry))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    @classmethod
    def from_config(cls, mapping: dict[str, Any] | None) -> RetryPolicy:
        if not mapping:
            return DEFAULT_RETRY
        return cls(**mapping)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)
