"""The deadline of the storage call running in this thread (SPEC §14, ``operation_timeout``).

The retry layer (:func:`selinon_like.layers.retried`) sets it when an operation starts:
``operation_timeout`` seconds from then, or an enclosing call's deadline when that is earlier.
It bounds the whole call — every attempt, backoff and reconnect. An adapter makes each driver
request fit in what is left by asking :func:`remaining` for the timeout to give the driver::

    sock.settimeout(deadline.remaining(self.socket_timeout))

which is the adapter's own timeout, or less when the call's deadline is nearer. Outside a call
(a driver request made by ``connect`` of a storage built by hand, say) it is the adapter's own.

The deadline is a :class:`~contextvars.ContextVar`: each thread (and each asyncio task) has its
own, and a worker thread started by an adapter does not inherit it unless given a copy of the
context.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import overload

__all__ = ["DEFAULT_OPERATION_TIMEOUT", "MIN_WAIT", "bounded", "current", "remaining"]

DEFAULT_OPERATION_TIMEOUT = 60.0
"""``operation_timeout`` of an adapter that declares no timeouts of its own (memory,
filesystem, a custom adapter that does not override ``default_operation_timeout``)."""

MIN_WAIT = 0.001
"""The least :func:`remaining` returns: a socket timeout of 0 would make it non-blocking."""

DEADLINE: ContextVar[float | None] = ContextVar("selinon_like_deadline", default=None)
"""The running call's deadline on :func:`time.monotonic`'s clock, or None."""


def current() -> float | None:
    """The running call's deadline (a :func:`time.monotonic` value), or None outside a call."""
    return DEADLINE.get()


@overload
def remaining(limit: float) -> float: ...


@overload
def remaining(limit: None = None) -> float | None: ...


def remaining(limit: float | None = None) -> float | None:
    """Seconds left before the running call's deadline, at most ``limit`` and at least
    :data:`MIN_WAIT`; ``limit`` itself outside a call (None when neither is known)."""
    deadline = DEADLINE.get()
    if deadline is None:
        return limit
    left = max(deadline - time.monotonic(), MIN_WAIT)
    return left if limit is None or left < limit else limit


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[float]:
    """Run the block under a deadline ``seconds`` from now (or the enclosing one, when that is
    earlier); yields the deadline."""
    deadline = time.monotonic() + seconds
    outer = DEADLINE.get()
    if outer is not None and outer < deadline:
        deadline = outer
    token = DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        DEADLINE.reset(token)
