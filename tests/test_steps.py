"""The drivers of :mod:`selinon_like.steps`: one generator of steps, run blocking and awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator, Iterator
from typing import Any, cast

import pytest

from selinon_like.steps import END, Emit, Pull, Sleep, Steps, aiterate, arun, iterate, run


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def fail(message: str) -> None:
    raise KeyError(message)


async def async_fail(message: str) -> None:
    await asyncio.sleep(0)
    raise KeyError(message)


def arithmetic(adder: Any) -> Steps[int]:
    first = yield adder, (1, 2)
    second = yield adder, (first, 10)
    yield Sleep(0)
    return int(second)


def recovering(failing: Any) -> Steps[str]:
    """Catches the exception a step raised, thrown back into it, and goes on."""
    try:
        yield failing, ("gone",)
    except KeyError as exc:
        return f"caught {exc.args[0]}"
    return "not raised"


def pulled(source: Any) -> Steps[list[Any]]:
    pull = Pull(source)
    items = []
    while (item := (yield pull)) is not END:
        items.append(item)
    return items


def emitting(events: list[str], fail_first: bool = False, fail_after: bool = False) -> Steps[None]:
    try:
        value = yield add, (1, 1)
        if fail_first:
            raise LookupError("nothing there")
        for n in range(value, value + 3):
            yield Emit(n)
            if fail_after:
                raise ValueError("broken midway")
        events.append("finished")
    finally:
        events.append("closed")


async def numbers(count: int) -> AsyncGenerator[int, None]:
    for n in range(count):
        await asyncio.sleep(0)
        yield n


# -- run / arun ---------------------------------------------------------------------------------


def test_run_returns_what_the_steps_return() -> None:
    assert run(arithmetic(add)) == 13


def test_arun_awaits_a_step_that_gives_an_awaitable_and_takes_a_plain_value_as_it_is() -> None:
    assert asyncio.run(arun(arithmetic(async_add))) == 13
    assert asyncio.run(arun(arithmetic(add))) == 13


def test_a_steps_exception_is_thrown_into_the_generator_which_may_catch_it() -> None:
    assert run(recovering(fail)) == "caught gone"
    assert asyncio.run(arun(recovering(async_fail))) == "caught gone"


def test_arun_throws_a_steps_error_in_whichever_form_it_comes() -> None:
    # arun performs an (fn, args) step inline: an error raised by the call itself, by the
    # awaitable it gives, or by a step object's own arun is thrown into the generator alike.
    class Failing:
        async def arun(self) -> None:
            raise KeyError("gone")

    assert asyncio.run(arun(recovering(fail))) == "caught gone"
    assert asyncio.run(arun(recovering(async_fail))) == "caught gone"
    assert asyncio.run(arun(recovering(lambda _message: Failing().arun()))) == "caught gone"

    def object_step() -> Steps[str]:
        try:
            yield Failing()
        except KeyError as exc:
            return f"caught {exc.args[0]}"
        return "not raised"

    assert asyncio.run(arun(object_step())) == "caught gone"


def test_arun_cancelled_during_a_step_throws_the_cancellation_into_the_steps() -> None:
    events: list[str] = []

    def waiting(started: asyncio.Event) -> Steps[None]:
        try:
            yield started.set, ()
            yield asyncio.sleep, (60,)
            events.append("not cancelled")
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("closed")

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(arun(waiting(started)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert events == ["cancelled", "closed"]


def test_an_exception_the_generator_does_not_catch_reaches_the_caller() -> None:
    def uncaught() -> Steps[None]:
        yield fail, ("missing",)

    with pytest.raises(KeyError, match="missing"):
        run(uncaught())
    with pytest.raises(KeyError, match="missing"):
        asyncio.run(arun(uncaught()))


def test_pull_gives_the_items_of_a_sync_iterable_then_end() -> None:
    assert run(pulled(iter([b"a", b"b"]))) == [b"a", b"b"]
    assert run(pulled([])) == []
    assert asyncio.run(arun(pulled([1, 2, 3]))) == [1, 2, 3]


def test_pull_gives_the_items_of_an_async_iterable_under_arun() -> None:
    assert asyncio.run(arun(pulled(numbers(4)))) == [0, 1, 2, 3]


def test_pull_of_an_async_iterable_under_run_is_a_type_error_thrown_into_the_steps() -> None:
    def guarded() -> Steps[str]:
        try:
            yield Pull(numbers(1))
        except TypeError as exc:
            return str(exc)
        return "pulled"

    assert "async API" in run(guarded())


def test_an_iterables_own_error_is_thrown_into_the_steps() -> None:
    def broken() -> Iterator[bytes]:
        yield b"a"
        raise OSError("disk gone")

    def counting() -> Steps[str]:
        pull, seen = Pull(broken()), 0
        try:
            while (yield pull) is not END:
                seen += 1
        except OSError as exc:
            return f"{seen} then {exc}"
        return "complete"

    assert run(counting()) == "1 then disk gone"
    assert asyncio.run(arun(counting())) == "1 then disk gone"


def test_an_emit_outside_a_stream_is_refused() -> None:
    events: list[str] = []
    with pytest.raises(TypeError, match="iterate"):
        run(emitting(events))
    assert events == ["closed"]  # thrown in: the generator's clean-up ran
    with pytest.raises(TypeError, match="aiterate"):
        asyncio.run(arun(emitting([])))


# -- iterate / aiterate -------------------------------------------------------------------------


def test_iterate_gives_the_emitted_items() -> None:
    events: list[str] = []
    assert list(iterate(emitting(events))) == [2, 3, 4]
    assert events == ["finished", "closed"]


def test_iterate_raises_an_error_before_the_first_item_at_the_call() -> None:
    events: list[str] = []
    with pytest.raises(LookupError, match="nothing there"):
        iterate(emitting(events, fail_first=True))
    assert events == ["closed"]


def test_iterate_raises_an_error_after_an_item_at_the_next_item() -> None:
    items = iterate(emitting([], fail_after=True))
    assert next(items) == 2
    with pytest.raises(ValueError, match="broken midway"):
        next(items)


def test_iterate_closes_the_steps_when_the_consumer_stops_early() -> None:
    events: list[str] = []
    items = iterate(emitting(events))
    assert next(items) == 2
    assert events == []
    cast(Generator[Any, None, None], items).close()  # what dropping it mid-loop does
    assert events == ["closed"]


def test_iterate_runs_the_steps_up_to_the_first_item_at_the_call() -> None:
    calls: list[int] = []

    def record(n: int) -> int:
        calls.append(n)
        return n

    def counted() -> Steps[None]:
        for n in range(3):
            yield Emit((yield record, (n,)))

    items = iterate(counted())
    assert calls == [0]
    assert next(items) == 0
    assert calls == [0]
    assert list(items) == [1, 2]
    assert calls == [0, 1, 2]


def test_aiterate_gives_the_emitted_items() -> None:
    async def main() -> list[Any]:
        return [item async for item in await aiterate(emitting(events))]

    events: list[str] = []
    assert asyncio.run(main()) == [2, 3, 4]
    assert events == ["finished", "closed"]


def test_aiterate_raises_an_error_before_the_first_item_at_the_await() -> None:
    async def main() -> None:
        await aiterate(emitting(events, fail_first=True))

    events: list[str] = []
    with pytest.raises(LookupError, match="nothing there"):
        asyncio.run(main())
    assert events == ["closed"]


def test_aiterate_reads_an_async_source_and_closes_the_steps_on_early_exit() -> None:
    events: list[str] = []

    def relay() -> Steps[None]:
        pull = Pull(numbers(10))
        try:
            while (item := (yield pull)) is not END:
                yield Emit((yield async_add, (item, 100)))
        finally:
            events.append("closed")

    async def main() -> list[Any]:
        items = await aiterate(relay())
        taken = [await anext(items), await anext(items)]
        assert events == []
        await cast(AsyncGenerator[Any, None], items).aclose()
        return taken

    assert asyncio.run(main()) == [100, 101]
    assert events == ["closed"]
