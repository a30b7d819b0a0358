"""selinon_like.cutoff.within: an awaitable cut at its deadline, by one timer per event loop,
with asyncio.timeout's outcomes."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest

from selinon_like import cutoff
from selinon_like.cutoff import within

ASYNCIO: Any = asyncio  # asyncio.timeout: 3.11+, which mypy's 3.10 stubs lack
pytestmark = [
    pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel: 3.11+"),
    pytest.mark.timing,  # wall-clock bounds: away from the CPU-heavy rest of the suite
]


async def _value(value: Any, seconds: float = 0.0) -> Any:
    await asyncio.sleep(seconds)
    return value


def _cancel_count() -> int:
    """The running task's count of cancellations asked for and not taken back (3.11's
    ``Task.cancelling``, which mypy's 3.10 stubs lack)."""
    task: Any = asyncio.current_task()
    return int(task.cancelling())


def _heap() -> list[list[Any]]:
    heap: list[list[Any]] = cutoff._watch(asyncio.get_running_loop()).heap
    return heap


def test_a_call_within_its_time_gives_its_value_and_leaves_the_task_uncancelled() -> None:
    async def main() -> None:
        assert await within(_value("v", 0.01), 1.0) == "v"
        assert _cancel_count() == 0
        # Its deadline passing later does not touch the task.
        await asyncio.sleep(1.1)

    asyncio.run(main())


def test_a_call_past_its_time_is_cut_with_timeout_error_chained_from_the_cancellation() -> None:
    async def main() -> None:
        began = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            await within(_value("v", 5.0), 0.05)
        assert 0.05 <= time.monotonic() - began < 1.0
        assert isinstance(raised.value.__cause__, asyncio.CancelledError)
        assert _cancel_count() == 0
        # The task goes on: its next call is not cut.
        assert await within(_value("next", 0.1), 1.0) == "next"

    asyncio.run(main())


def test_the_error_of_the_awaitable_itself_passes_through() -> None:
    async def fails() -> None:
        raise KeyError("inner")

    async def main() -> None:
        with pytest.raises(KeyError, match="inner"):
            await within(fails(), 1.0)
        assert not [entry for entry in _heap() if entry[cutoff._TASK] is not None]

    asyncio.run(main())


def test_each_of_many_concurrent_calls_is_cut_at_its_own_deadline() -> None:
    # Deadlines added out of order: a later call due earlier than every other still gets
    # its timer.
    limits = [0.4, 0.1, 0.3, 0.05, 0.2, 5.0]

    async def one(limit: float) -> tuple[float, str]:
        began = time.monotonic()
        try:
            await within(_value("done", 1.0), limit)
        except TimeoutError:
            return time.monotonic() - began, "cut"
        return time.monotonic() - began, "done"

    async def main() -> None:
        outcomes = await asyncio.gather(*(one(limit) for limit in limits))
        for limit, (seconds, outcome) in zip(limits, outcomes, strict=True):
            if limit < 1.0:
                assert outcome == "cut" and limit <= seconds < limit + 0.5, (limit, seconds)
            else:
                assert outcome == "done" and 1.0 <= seconds < 2.0
        # Cut in the order of their deadlines, whatever the order they were added in.
        cut = sorted(zip(limits, outcomes, strict=True), key=lambda pair: pair[1][0])[:-1]
        assert [limit for limit, _ in cut] == sorted(limits)[:-1]

    asyncio.run(main())


def test_a_call_due_after_another_is_cut_by_the_timer_set_when_the_first_is_cut() -> None:
    # The second call is due later than the first, so adding it sets no timer of its own.
    async def main() -> None:
        began = time.monotonic()
        first = asyncio.create_task(within(_value("v", 5.0), 0.05))
        second = asyncio.create_task(within(_value("v", 5.0), 0.3))
        with pytest.raises(TimeoutError):
            await first
        with pytest.raises(TimeoutError):
            await second
        assert 0.3 <= time.monotonic() - began < 2.0

    asyncio.run(main())


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def main() -> None:
        task = asyncio.create_task(within(_value("v", 5.0), 5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancellation_from_outside_at_the_deadline_is_not_taken_for_the_timeout() -> None:
    async def victim() -> None:
        await within(_value("v", 5.0), 0.05)

    async def main() -> None:
        task = asyncio.create_task(victim())
        loop = asyncio.get_running_loop()
        # Both at the deadline, the outside cancel after the watch's timer.
        loop.call_later(0.05, lambda: loop.call_soon(task.cancel))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_enclosing_asyncio_timeout_still_sees_its_own_expiry() -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with ASYNCIO.timeout(0.05):
                await within(_value("v", 5.0), 5.0)
        assert _cancel_count() == 0

    asyncio.run(main())


def test_an_awaitable_that_swallows_the_cut_returns_and_the_cancel_count_is_restored() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    async def main() -> None:
        assert await within(stubborn(), 0.05) == "swallowed"
        assert _cancel_count() == 0

    asyncio.run(main())


def test_nested_calls_the_outer_due_first_cuts_both_and_the_outer_raises_the_timeout() -> None:
    async def inner() -> str:
        try:
            return await within(_value("v", 5.0), 2.0)
        except TimeoutError:  # pragma: no cover - a wrong outcome
            return "inner timed out"

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await within(inner(), 0.05)

    asyncio.run(main())


def test_finished_calls_do_not_pile_up_behind_a_long_one() -> None:
    async def main() -> None:
        long = asyncio.create_task(within(_value("long", 0.5), 5.0))
        await asyncio.sleep(0)
        for _ in range(1000):
            await within(_value("short"), 5.0)
        # The long call's entry is at the top of the heap, holding the others back, so
        # the heap is rebuilt without them once they are most of it.
        assert len(_heap()) <= 2 * cutoff._COMPACT_AFTER + 4
        assert await long == "long"
        await within(_value("short"), 5.0)
        assert len(_heap()) <= 2

    asyncio.run(main())


def test_a_new_event_loop_in_the_same_thread_and_loops_in_other_threads_get_their_own() -> None:
    outcomes: list[str] = []

    async def cut() -> None:
        try:
            await within(_value("v", 5.0), 0.05)
        except TimeoutError:
            outcomes.append("cut")

    def twice() -> None:
        asyncio.run(cut())
        asyncio.run(cut())

    threads = [threading.Thread(target=twice) for _ in range(3)]
    for thread in threads:
        thread.start()
    twice()
    for thread in threads:
        thread.join(10)
    assert outcomes == ["cut"] * 8


def test_a_call_of_another_loop_of_the_thread_is_still_cut_by_its_own_loops_timer() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        # The first loop's call registers with its watch; the second loop, run in between,
        # makes the thread's watch its own; back on the first loop, its timer still fires.
        started = first.create_task(within(_value("v", 5.0), 0.2))
        first.run_until_complete(asyncio.sleep(0.01))
        assert second.run_until_complete(within(_value("second", 0.01), 1.0)) == "second"
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            first.run_until_complete(started)
        assert time.monotonic() - began < 1.0
    finally:
        first.close()
        second.close()


def test_awaited_outside_a_task_is_refused() -> None:
    inner = _value("v")
    coroutine = within(inner, 1.0)
    with pytest.raises(RuntimeError, match="no running event loop"):
        coroutine.send(None)
    coroutine.close()
    inner.close()
