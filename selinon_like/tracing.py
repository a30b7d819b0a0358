"""Tracing and statistics: what every storage operation did, without results or secrets.

Each storage instance made by a pool has an :class:`Observer`. It keeps counts and recent
latencies per operation (cheap enough to leave on: a counter and a bounded deque append), and
hands a structured event to every configured trace callable (``trace:`` in the YAML, per storage
or for all of them, as a dotted path — like Selinon's tracing).

An event is a dict::

    {"event": "store", "storage": "Results", "flow_name": "f", "task_name": "t",
     "task_id": "1", "duration": 0.00042, "error": None, "time": 1767225600.0}

``event`` is one of ``connect``, ``disconnect``, ``retrieve``, ``store``, ``store_error``,
``retrieve_error``, ``delete``, ``store_many``, ``retrieve_many``, ``ping``, ``iter_keys``,
``store_stream``, ``retrieve_stream``, ``retry``, ``cache_hit``, ``cache_miss`` and ``error``
(emitted after a failed operation, except a plain ``ResultNotFound``; its ``operation`` field
names the operation). ``error`` is ``"ExceptionType: message"`` with secrets masked. A trace
callable that raises is logged and otherwise ignored: tracing never breaks storage.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from selinon_like.errors import ResultNotFound
from selinon_like.keys import Key
from selinon_like.masking import scrub

__all__ = ["Observer", "OperationStats", "TraceEvent", "Tracer"]

log = logging.getLogger("selinon_like")

TraceEvent = dict[str, Any]
Tracer = Callable[[TraceEvent], None]

_SAMPLES = 2048  # latencies kept per operation for the percentiles


class OperationStats:
    """Count, errors and the most recent latencies of one operation."""

    __slots__ = ("count", "errors", "latencies")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latencies: deque[float] = deque(maxlen=_SAMPLES)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 4)

        return {
            "count": self.count,
            "errors": self.errors,
            "p50_ms": percentile(0.50),
            "p90_ms": percentile(0.90),
            "p99_ms": percentile(0.99),
        }


class Observer:
    """Receives every operation of one storage instance (see :mod:`selinon_like.layers`)."""

    def __init__(
        self, storage_name: str, tracers: Sequence[Tracer] = (), secrets: Sequence[str] = ()
    ) -> None:
        self.storage_name = storage_name
        self.tracers = list(tracers)
        self.secrets = list(secrets)
        self.operations: dict[str, OperationStats] = {}
        self.retries = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def event(
        self,
        storage: Any,
        op: str,
        key: Key | None,
        duration: float = 0.0,
        error: BaseException | None = None,
    ) -> None:
        if op == "retry":
            self.retries += 1
        elif op == "cache_hit":
            self.cache_hits += 1
        elif op == "cache_miss":
            self.cache_misses += 1
        else:
            stats = self.operations.get(op)
            if stats is None:
                stats = self.operations[op] = OperationStats()
            stats.count += 1
            stats.latencies.append(duration)
            if error is not None and not isinstance(error, ResultNotFound):
                stats.errors += 1
        if self.tracers:
            self._trace(op, key, duration, error)

    def _trace(
        self, op: str, key: Key | None, duration: float, error: BaseException | None
    ) -> None:
        text = scrub(f"{type(error).__name__}: {error}", self.secrets) if error else None
        event: TraceEvent = {
            "event": op,
            "storage": self.storage_name,
            "flow_name": key[0] if key else None,
            "task_name": key[1] if key else None,
            "task_id": key[2] if key else None,
            "duration": duration,
            "error": text,
            "time": time.time(),
        }
        events = [event]
        if error is not None and op != "retry" and not isinstance(error, ResultNotFound):
            events.append({**event, "event": "error", "operation": op})
        for tracer in self.tracers:
            for item in events:
                try:
                    tracer(dict(item))
                except Exception:  # a broken tracer must not break storage
                    log.exception("%s: trace callable %r failed", self.storage_name, tracer)

    def summary(self) -> dict[str, Any]:
        return {
            "operations": {op: stats.summary() for op, stats in sorted(self.operations.items())},
            "retries": self.retries,
            "cache": {"hits": self.cache_hits, "misses": self.cache_misses},
        }
