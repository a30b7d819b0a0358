"""Logic written once for blocking and asyncio callers: generators of steps, and their drivers.

The layers (:mod:`selinon_like.layers`) and the record layer (:mod:`selinon_like.records`,
:mod:`selinon_like.chunks`) decide *what* to do — check a key, retry, read a record, write its
chunks — without doing any I/O themselves. Each is a generator that yields the I/O it needs as
a **step** and receives the step's outcome (its value, or its exception thrown in):

* ``(fn, args)`` — call ``fn(*args)``: an adapter's primitive (``self.read``,
  ``self.write``…) or operation. Under :func:`run` the call blocks; under :func:`arun` the
  value is awaited when it is awaitable, so the same generator drives a blocking adapter's
  ``read`` and an async adapter's ``async def read``;
* :class:`Sleep` — wait (``time.sleep`` or ``asyncio.sleep``): a retry's backoff;
* :class:`Pull` — the next item of an iterable, sync or async (a stream's chunks, a scan's
  keys); :data:`END` when there are no more;
* :class:`Emit` — hand an item to the consumer of a stream (:func:`iterate`,
  :func:`aiterate`).

Its ``return`` value is the result. The two drivers are the only places where blocking and
asyncio differ; nothing above them is written twice.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Final, TypeVar

__all__ = ["END", "Emit", "Pull", "Sleep", "Steps", "aiterate", "arun", "iterate", "run"]

T = TypeVar("T")

# What a step generator yields, is sent, and returns.
Steps = Generator[Any, Any, T]


class _End:
    def __repr__(self) -> str:
        return "END"


END: Final = _End()
"""What a :class:`Pull` step gives when its iterable has no more items."""


class Sleep:
    """Wait ``seconds``."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self) -> None:
        time.sleep(self.seconds)

    async def arun(self) -> None:
        await asyncio.sleep(self.seconds)


class Pull:
    """The next item of ``source`` (an iterable, or under :func:`arun` an async iterable too)
    each time it is yielded; :data:`END` after the last."""

    __slots__ = ("_iterator", "source")

    def __init__(self, source: Any) -> None:
        self.source = source
        self._iterator: Any = None

    def run(self) -> Any:
        if self._iterator is None:
            if not hasattr(self.source, "__iter__"):
                raise TypeError(
                    f"expected an iterable, got {type(self.source).__name__} (an async "
                    "iterable needs the async API, selinon_like.aio)"
                )
            self._iterator = iter(self.source)
        return next(self._iterator, END)

    async def arun(self) -> Any:
        if self._iterator is None:
            source = self.source
            self._iterator = aiter(source) if hasattr(source, "__aiter__") else iter(source)
        iterator = self._iterator
        if hasattr(iterator, "__anext__"):
            return await anext(iterator, END)
        return next(iterator, END)


class Emit:
    """Give ``item`` to the consumer of the stream being driven."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


def _perform(step: Any) -> Any:
    if type(step) is tuple:
        return step[0](*step[1])
    if isinstance(step, Emit):
        raise TypeError("a stream's item outside a stream: drive it with iterate()")
    return step.run()


def run(steps: Steps[T]) -> T:
    """Drive ``steps``, blocking on each step; the generator's return value."""
    send = steps.send
    try:
        step = send(None)
        while True:
            try:
                # The hot path (an adapter call) inline: one call less per step.
                reply = step[0](*step[1]) if type(step) is tuple else _perform(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def arun(steps: Steps[T]) -> T:
    """Drive ``steps`` in the running event loop, awaiting each step that gives an
    awaitable; the generator's return value."""
    send = steps.send
    try:
        step = send(None)
        while True:
            try:
                # The hot path (an adapter call) inline: no coroutine of _aperform's.
                if type(step) is tuple:
                    reply = step[0](*step[1])
                    if inspect.isawaitable(reply):
                        reply = await reply
                else:
                    reply = await _aperform(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _aperform(step: Any) -> Any:
    if type(step) is tuple:
        reply = step[0](*step[1])
        return await reply if inspect.isawaitable(reply) else reply
    if isinstance(step, Emit):
        raise TypeError("a stream's item outside a stream: drive it with aiterate()")
    return await step.arun()


def iterate(steps: Steps[None]) -> Iterator[Any]:
    """The items ``steps`` emits, as an iterator. The steps up to the first item run now,
    so an error before it (a stream that does not exist) is raised by this call."""
    return _rest(steps, _advance(steps))


def _advance(steps: Steps[None]) -> Any:
    """Run ``steps`` to its next item (an :class:`Emit`) or its end (:data:`END`)."""
    try:
        step = steps.send(None)
        while not isinstance(step, Emit):
            try:
                reply = _perform(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(reply)
        return step
    except StopIteration:
        return END


def _rest(steps: Steps[None], step: Any) -> Iterator[Any]:
    try:
        while step is not END:
            yield step.item
            step = _advance(steps)
    finally:
        steps.close()


async def aiterate(steps: Steps[None]) -> AsyncIterator[Any]:
    """The items ``steps`` emits, as an async iterator: the steps up to the first item run
    when this is awaited, so an error before it is raised by the ``await``."""
    first = await _aadvance(steps)
    return _arest(steps, first)


async def _aadvance(steps: Steps[None]) -> Any:
    try:
        step = steps.send(None)
        while not isinstance(step, Emit):
            try:
                reply = await _aperform(step)
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(reply)
        return step
    except StopIteration:
        return END


async def _arest(steps: Steps[None], step: Any) -> AsyncIterator[Any]:
    try:
        while step is not END:
            yield step.item
            step = await _aadvance(steps)
    finally:
        steps.close()
