"""A client-side bound for drivers with no read timeout (libpq, so psycopg, is one).

A call registers its connection's socket with a deadline; if the call is still running when
the deadline passes, one shared daemon thread shuts the socket down, so the driver's blocking
read returns with an error instead of waiting for a server that stopped answering (hung,
stopped, or cut off while its kernel still acknowledges). The caller asks :meth:`release`
whether that happened, and then reports a timeout rather than the driver's "connection
closed". Registering and releasing cost a lock and a dict operation: no thread or timer per call.

Usage (an adapter)::

    token = WATCHDOG.watch(connection.fileno(), seconds)
    try:
        ...  # the call
    finally:
        timed_out = WATCHDOG.release(token)
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time

__all__ = ["WATCHDOG", "Watchdog"]

_MAX_SLEEP = 0.25  # a deadline registered later but due earlier is seen within this


class Watchdog:
    """Shuts down the socket of a registered call that outlives its deadline."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[float, int]] = {}  # token -> (deadline, fd)
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, fd: int, seconds: float) -> int:
        """Register a call on socket ``fd`` that must end within ``seconds``; returns a token."""
        deadline = time.monotonic() + seconds
        with self._lock:
            token = next(self._tokens)
            self._calls[token] = (deadline, fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="selinon-like-watchdog", daemon=True
                )
                self._thread.start()
        if not self._wake.is_set():
            self._wake.set()
        return token

    def release(self, token: int) -> bool:
        """End a call's watch; True if its deadline passed and its socket was shut down."""
        with self._lock:
            if self._calls.pop(token, None) is not None:
                return False
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._calls.items()):
                    if deadline <= now:
                        # Under the lock: the call has not returned, so fd is still its socket.
                        del self._calls[token]
                        self._fired.add(token)
                        _shut(fd)
                nearest = min((deadline for deadline, _fd in self._calls.values()), default=None)
                if nearest is None:
                    self._wake.clear()
            if nearest is not None:
                time.sleep(min(max(nearest - now, 0.0), _MAX_SLEEP))


def _shut(fd: int) -> None:
    """Shut down the socket behind ``fd`` (a duplicate descriptor: the driver keeps its own)."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


WATCHDOG = Watchdog()
# A forked child has no watchdog thread and none of its parent's calls.
os.register_at_fork(after_in_child=WATCHDOG._reset)
