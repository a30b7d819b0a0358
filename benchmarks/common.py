"""Timing helpers shared by the benchmark scripts. Ratios are computed within one run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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


def interleaved(
    calls: dict[str, Callable[[int], Any]], repeat: int, rounds: int = 5, warmup: int = 20
) -> dict[str, Timing]:
    """Measure several systems side by side: ``rounds`` alternating blocks of
    ``repeat // rounds`` calls each, so drift on the machine hits every system alike."""
    timings = {name: Timing(name, []) for name in calls}
    for call in calls.values():
        for i in range(warmup):
            call(-1 - i)
    block = max(1, repeat // rounds)
    clock = time.perf_counter
    for r in range(rounds):
        for name, call in calls.items():
            timing = timings[name]
            for i in range(r * block, (r + 1) * block):
                started = clock()
                try:
                    call(i)
                except Exception:
                    timing.errors += 1
                timing.samples.append(clock() - started)
    return timings
