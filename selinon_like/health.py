"""Health checks: how each storage of a pool answers, as one :class:`StorageHealth` per storage.

Two probes: :func:`ping` asks the service for one real round trip (``StoragePool.check()``);
:func:`round_trip` stores, reads back and deletes a scratch result, proving the storage takes
writes too (``selinon-like check``, the quickstart). Neither raises: a failure is a row whose
``error`` is one line with the storage's secrets masked (:func:`describe_error`).

:func:`round_trip` leaves nothing behind: the scratch result is deleted even when reading it
back failed, and an adapter without ``delete`` (optional in the contract: five methods make an
adapter) gets a read-only probe instead of a write it could not undo, said in ``note``.
"""

from __future__ import annotations

import contextlib
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
    probe had to connect; ``None`` when it failed), ``error`` the failure in one line with
    secrets masked (``None`` when it passed) and ``note`` what a reader should know about a
    probe that passed (``None`` when nothing: e.g. that it could only read)."""

    name: str
    adapter: str
    ok: bool
    latency: float | None
    error: str | None = None
    note: str | None = None

    @property
    def latency_ms(self) -> float | None:
        """``latency`` in milliseconds."""
        return self.latency * 1000 if self.latency is not None else None


def ping(spec: StorageSpec, connected: Callable[[], DataStorage]) -> StorageHealth:
    """Connect (``connected()`` returns the connected instance) and ping storage ``spec``."""
    return _probe(spec, connected, lambda storage: storage.ping())


def round_trip(spec: StorageSpec, connected: Callable[[], DataStorage]) -> StorageHealth:
    """Connect, then store, read back and delete a scratch result in storage ``spec``; for an
    adapter without ``delete``, a read-only :func:`ping` instead (the row's ``note`` says so)."""
    if "delete" not in spec.cls.capabilities():
        note = (
            f"read only: {spec.cls.__name__}.delete() is not implemented, so no scratch result "
            "was written"
        )
        return _probe(spec, connected, lambda storage: storage.ping(), note)

    def scratch(storage: DataStorage) -> None:
        key = (SCRATCH_FLOW, SCRATCH_TASK, uuid.uuid4().hex)
        payload = {"check": key[2]}
        try:
            storage.store(*key, payload)
            back = storage.retrieve(*key)
        except BaseException:
            # A store that failed may still have written (a timeout after the write): remove
            # what may be there; the first failure is the one reported.
            with contextlib.suppress(Exception):
                storage.delete(*key)
            raise
        storage.delete(*key)
        if back != payload:
            raise RuntimeError("the result read back differs from the one stored")

    return _probe(spec, connected, scratch)


def _probe(
    spec: StorageSpec,
    connected: Callable[[], DataStorage],
    probe: Callable[[DataStorage], object],
    note: str | None = None,
) -> StorageHealth:
    adapter = f"{spec.cls.__module__}.{spec.cls.__qualname__}"
    started = time.perf_counter()
    try:
        probe(connected())
    except Exception as exc:  # every failure becomes a row
        return StorageHealth(
            spec.name, adapter, False, None, describe_error(exc, spec.configuration)
        )
    return StorageHealth(spec.name, adapter, True, time.perf_counter() - started, note=note)


def describe_error(exc: BaseException, configuration: Mapping[str, Any]) -> str:
    """A one-line description of ``exc`` for reports, without any secret value of
    ``configuration`` (nested mappings included). The library's own errors are shown by their
    message, others with their type name first."""
    text = str(exc) if isinstance(exc, SelinonLikeError) else f"{type(exc).__name__}: {exc}"
    return scrub(text.splitlines()[0] if text else type(exc).__name__, secret_values(configuration))
