"""Timing helpers shared by the benchmark scripts. Ratios are computed within one run."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Timing:
    """Per-call latencies (seconds) of one measured operation."""

    name: str
    samples: list[float]
    errors: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def ops_per_second(self) -> float:
        total = sum(self.samples)
        return len(self.samples) / total if total else float("inf")

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_us": round(self.median * 1e6, 2),
            "p99_us": round(self.p99 * 1e6, 2),
            "ops_s": round(self.ops_per_second, 1),
            "errors": self.errors,
        }


def measure(name: str, call: Callable[[int], Any], repeat: int, warmup: int = 20) -> Timing:
    """Call ``call(i)`` ``repeat`` times (after ``warmup`` calls) and time each call."""
    for i in range(warmup):
        call(-1 - i)
    samples = []
    errors = 0
    clock = time.perf_counter
    for i in range(repeat):
        started = clock()
        try:
            call(i)
        except Exception:
            errors += 1
        samples.append(clock() - started)
    return Timing(name, samples, errors)


def rotated(names: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    """The schedule of :func:`interleaved` and its async form: ``(round, name)`` in order, each
    round starting with the next system (raw, adapter, pool; then adapter, pool, raw; ...),
    with the heap as it is after the warm-up frozen (``gc.freeze``) while it runs.

    Why: a call of a large result (the 1MB-table's ~22,000 containers) triggers the
    collector's full collections every few calls, on a schedule the calls' allocations fix,
    and each one traversed the process's whole heap (~100 ms on this VM) inside whichever
    system's call it came; in a fixed order it came in the same systems' calls run after run
    (retrieve 1MB-table on MariaDB: pool 4, adapter 3, raw 2 of 12). Frozen, a full
    collection traverses only what was made since (0.5-7 ms). The rotation also spreads
    whatever else a fixed order lines up with one system (a server's own collections or
    background work after the other system's block)."""
    gc.collect()
    gc.freeze()
    try:
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                yield r, name
    finally:
        gc.unfreeze()


def interleaved(
    calls: dict[str, Callable[[int], Any]], repeat: int, rounds: int = 5, warmup: int = 20
) -> dict[str, Timing]:
    """Measure several systems side by side: ``rounds`` alternating blocks of
    ``repeat // rounds`` calls each, in the order :func:`rotated` gives, so drift on the
    machine hits every system alike."""
    timings = {name: Timing(name, []) for name in calls}
    for call in calls.values():
        for i in range(warmup):
            call(-1 - i)
    block = max(1, repeat // rounds)
    clock = time.perf_counter
    for r, name in rotated(list(calls), rounds):
        call, timing = calls[name], timings[name]
        for i in range(r * block, (r + 1) * block):
            started = clock()
            try:
                call(i)
            except Exception:
                timing.errors += 1
            timing.samples.append(clock() - started)
    return timings


class AwakeCpus:
    """Keeps the CPUs out of their idle states while measuring (a PM QoS request of 0 µs on
    ``/dev/cpu_dma_latency``, as tuned's latency-performance profile does), as a context
    manager; :meth:`idle_allowed` lifts the request for a while. ``note`` says what was done.

    Without it a round trip to a local server costs ~30 µs when the server's process runs on
    the client's CPU and ~100 µs when it must wake the other one (a halted virtual CPU), and
    which one a connection gets is chance: two systems on two connections would be compared
    by their luck. The request needs root; without it the run goes on and says so."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self.note = ""

    def __enter__(self) -> AwakeCpus:
        self._hold()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    @contextlib.contextmanager
    def idle_allowed(self) -> Iterator[None]:
        held = self._fd is not None
        self._release()
        try:
            yield
        finally:
            if held:
                self._hold()

    def _hold(self) -> None:
        try:
            self._fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        except OSError as exc:
            self.note = f"idle states left on ({exc.strerror}: /dev/cpu_dma_latency needs root)"
            return
        os.write(self._fd, struct.pack("i", 0))
        self.note = "CPU idle states off during the run (/dev/cpu_dma_latency = 0)"

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
