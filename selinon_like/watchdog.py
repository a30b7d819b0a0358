"""A client-side bound for drivers with no read timeout (libpq, so psycopg, is one).

A call registers its connection's socket with a deadline; if the call is still running when
the deadline passes, one shared daemon thread shuts the socket down, so the driver's blocking
read returns with an error instead of waiting for a server that stopped answering (hung,
stopped, or cut off while its kernel still acknowledges). The caller asks :meth:`release`
whether that happened, and then reports a timeout rather than the driver's "connection
closed". Registering and releasing are a dict insert and a dict pop, each atomic under
CPython's GIL: no thread, timer or lock per call. The lock is taken by the watchdog thread's
passes over the calls, and by a :meth:`release` that finds its call already taken by the
thread: it returns once the socket is shut, so the connection is never reused before that.

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
        # True while the thread may wait for _wake with no deadline: a new call must wake it.
        self._idle = True
        self._thread: threading.Thread | None = None

    def watch(self, fd: int, seconds: float) -> int:
        """Register a call on socket ``fd`` that must end within ``seconds``; returns a token."""
        token = next(self._tokens)
        self._calls[token] = (time.monotonic() + seconds, fd)
        if self._idle:  # read after the insert: see _run
            if self._thread is None:
                self._start()
            self._wake.set()
        return token

    def release(self, token: int) -> bool:
        """End a call's watch; True if its deadline passed and its socket was shut down."""
        if self._calls.pop(token, None) is not None:
            return False  # the thread had not taken it, and now never will
        with self._lock:  # the thread took it: wait until the socket is shut
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="selinon-like-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        # No call waits unseen while the thread waits with no deadline. Each pass sets _idle,
        # clears _wake, then copies _calls. A pass that finds no call due later waits; a call
        # registered after its copy reads _idle afterwards, still True, and sets _wake after
        # the clear: the wait returns at once. A pass that finds one sets _idle to False and
        # sleeps: a call that read False was registered before the next pass's copy, which
        # sees it within _MAX_SLEEP.
        while True:
            self._idle = True
            self._wake.clear()
            with self._lock:
                now = time.monotonic()
                nearest: float | None = None
                # dict.copy() is one C call, atomic under the GIL: calls come and go meanwhile
                # without the lock, and iterating the dict itself could see it change size.
                for token, (deadline, fd) in self._calls.copy().items():
                    if deadline > now:
                        nearest = deadline if nearest is None else min(nearest, deadline)
                    # pop, not del: the call's release() may have ended it since the copy.
                    elif self._calls.pop(token, None) is not None:
                        # Under the lock: the call's release() now waits for it, so fd is
                        # still its socket.
                        self._fired.add(token)
                        _shut(fd)
            if nearest is None:
                self._wake.wait()
            else:
                self._idle = False
                time.sleep(min(nearest - now, _MAX_SLEEP))


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
