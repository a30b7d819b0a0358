"""Health checks: how each storage of a pool answers, as one :class:`StorageHealth` per storage.

Two probes: :func:`ping` asks the service for one real round trip (``StoragePool.check()``);
:func:`round_trip` stores, reads back and deletes a scratch result, proving the storage takes
writes too (``selinon-like check``, the quickstart). Neither raises: a failure is a row whose
``error`` is one line with the storage's secrets masked (:func:`describe_error`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from selinon_like.config import StorageSpec
from selinon_like.errors import SelinonLikeError
from selinon_like.masking import scrub, secret_values
from selinon_like.storage import DataStorage

__all__ = ["StorageHealth", "describe_error", "ping", "round_trip"]

# The flow and task of round_trip's scratch results, so a leftover one is recognisable.
SCRATCH_FLOW = "selinon-like-check"
SCRATCH_TASK = "check"


@dataclass(frozen=True)
class StorageHealth:
    """How one storage answered a health check.

    ``name`` is the storage name, ``adapter`` its class as ``module.QualifiedName``, ``ok``
    whether the probe passed, ``latency`` the seconds it took (connecting included, when the
    probe had to connect; ``None`` when it failed) and ``error`` the failure in one line with
    secrets masked (``None`` when it passed)."""

    name: str
    adapter: str
    ok: bool
    latency: float | None
    error: str | None = None

    @property
    def latency_ms(self) -> float | None:
        """``latency`` in milliseconds."""
        return self.latency * 1000 if self.latency is not None else None


def ping(spec: StorageSpec, connected: Callable[[], DataStorage]) -> StorageHealth:
    """Connect (``connected()`` returns the connected instance) and ping storage ``spec``."""
    return _probe(spec, connected, lambda storage: storage.ping())


def round_trip(spec: StorageSpec, connected: Callable[[], DataStorage]) -> StorageHealth:
    """Connect, then store, read back and delete a scratch result in storage ``spec``."""

    def scratch(storage: DataStorage) -> None:
        key = (SCRATCH_FLOW, SCRATCH_TASK, uuid.uuid4().hex)
        payload = {"check": key[2]}
        storage.store(*key, payload)
        if storage.retrieve(*key) != payload:
            raise RuntimeError("the result read back differs from the one stored")
        storage.delete(*key)

    return _probe(spec, connected, scratch)


def _probe(
    spec: StorageSpec,
    connected: Callable[[], DataStorage],
    probe: Callable[[DataStorage], object],
) -> StorageHealth:
    adapter = f"{spec.cls.__module__}.{spec.cls.__qualname__}"
    started = time.perf_counter()
    try:
        probe(connected())
    except Exception as exc:  # every failure becomes a row
        return StorageHealth(
            spec.name, adapter, False, None, describe_error(exc, spec.configuration)
        )
    return StorageHealth(spec.name, adapter, True, time.perf_counter() - started)


def describe_error(exc: BaseException, configuration: Mapping[str, Any]) -> str:
    """A one-line description of ``exc`` for reports, without any secret value of
    ``configuration`` (nested mappings included). The library's own errors are shown by their
    message, others with their type name first."""
    text = str(exc) if isinstance(exc, SelinonLikeError) else f"{type(exc).__name__}: {exc}"
    return scrub(text.splitlines()[0] if text else type(exc).__name__, secret_values(configuration))
