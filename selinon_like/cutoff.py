"""An awaitable cut at a deadline, as ``asyncio.timeout`` cuts it, for a fraction of its cost.

:func:`within` is what the layers await an async adapter's attempt under, so every call pays
for it. ``asyncio.timeout`` costs a ``Timeout`` object, two coroutines and a ``TimerHandle``
a call, pushed on and popped off the event loop's heap by Python-level comparisons (about
6 µs of CPU a call here, Python 3.11, on top of a call that took 7 µs without it). Here every
event loop has one :class:`_Watch`: a call adds an entry (a list) to its heap, by C-level
comparisons, and the watch keeps one loop timer at the earliest deadline among its entries
rather than one per call. When that timer fires, every running call whose deadline has come
is cancelled; at its ``await``, the cancellation becomes ``TimeoutError`` (chained from the
``CancelledError``), with ``asyncio.timeout``'s rules: a cancellation asked for from outside
as well stays a ``CancelledError``, and the task's cancel count is put back
(``Task.uncancel``), so an enclosing ``asyncio.timeout`` or ``TaskGroup`` sees only its own.

The watch of the thread's event loop is kept per thread: a thread runs one loop at a time,
and a thread that moves on to another loop makes that loop a new watch (the old one's timers
stay on its own loop and still cut its calls).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sys
import threading
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["within"]

T = TypeVar("T")

# An entry: [deadline, sequence number, task (None once done), cancel count at entry,
# expired]. Lists compare item by item: the deadline, then the unique sequence number.
_WHEN, _SEQ, _TASK, _CANCELLING, _EXPIRED = range(5)
# Entries of finished calls stay in the heap until they reach its top; past this many, and
# past half the heap, it is rebuilt without them (a long call at the top holds them back).
_COMPACT_AFTER = 64


class _Watch:
    """The running calls of one event loop, by deadline, and its one timer."""

    __slots__ = ("done", "heap", "timer_at")

    def __init__(self) -> None:
        self.heap: list[list[Any]] = []
        self.done = 0  # entries in the heap of calls that finished
        self.timer_at = float("inf")  # when the earliest timer set fires

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any],
        when: float,
        cancelling: int,
    ) -> list[Any]:
        """The entry of ``task``'s call, due at ``when`` (``cancelling``: the task's cancel
        count now); the timer set for it when it is due before every other."""
        heap = self.heap
        while heap and heap[0][_TASK] is None:
            heapq.heappop(heap)
            self.done -= 1
        if self.done > _COMPACT_AFTER and 2 * self.done > len(heap):
            heap[:] = [entry for entry in heap if entry[_TASK] is not None]
            heapq.heapify(heap)
            self.done = 0
        entry = [when, next(_SEQUENCE), task, cancelling, False]
        heapq.heappush(heap, entry)
        if when < self.timer_at:
            self.timer_at = when
            loop.call_at(when, self.fire, loop, when)
        return entry

    def fire(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """The timer set for ``due``: cancel every call whose deadline has come, and set the
        timer for the next one (unless an earlier timer is set already)."""
        now = max(due, loop.time())
        heap = self.heap
        while heap:
            entry = heap[0]
            task = entry[_TASK]
            if task is None:
                self.done -= 1
            elif entry[_WHEN] <= now:
                entry[_TASK] = None
                entry[_EXPIRED] = True
                task.cancel()
            else:
                break
            heapq.heappop(heap)
        if due == self.timer_at:
            self.timer_at = float("inf")
        if heap and heap[0][_WHEN] < self.timer_at:
            self.timer_at = when = heap[0][_WHEN]
            loop.call_at(when, self.fire, loop, when)


_SEQUENCE = itertools.count()
_LOCAL = threading.local()  # .loop: a weak reference to the loop of .watch


def _watch(loop: asyncio.AbstractEventLoop) -> _Watch:
    try:
        if _LOCAL.loop() is loop:
            watch: _Watch = _LOCAL.watch
            return watch
    except AttributeError:  # this thread's first call
        pass
    watch = _LOCAL.watch = _Watch()
    _LOCAL.loop = weakref.ref(loop)
    return watch


if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable``, cancelled after ``seconds``: then ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("within() must be awaited in a task")
        watch = _watch(loop)
        entry = watch.add(loop, task, loop.time() + seconds, task.cancelling())
        try:
            result = await awaitable
        except BaseException as exc:
            if not entry[_EXPIRED]:
                entry[_TASK] = None
                watch.done += 1
            elif task.uncancel() <= entry[_CANCELLING] and isinstance(exc, asyncio.CancelledError):
                raise TimeoutError from exc
            raise
        if entry[_EXPIRED]:  # cut as it finished, or it ignored the cancellation
            task.uncancel()
        else:
            entry[_TASK] = None
            watch.done += 1
        return result

else:  # pragma: no cover - Python 3.10 (no Task.uncancel)

    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        """``await awaitable``, cancelled after ``seconds``: then ``TimeoutError``."""
        return await asyncio.wait_for(awaitable, seconds)
