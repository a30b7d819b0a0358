"""``python -m benchmarks.bench_json``: the default serializer against ``json.dumps``.

For each shape of result (a small flat dict, a small nested one, a 1 MB table of ~11,000 small
dicts, one 1 MB string, 1 MB of small lists in a list, 1 MB of booleans and nulls) it times
``JSON.dumps`` beside ``json.dumps`` and ``json.dumps(...).encode()`` (what a driver is given),
in blocks taking turns, and prints the minimum of five blocks of each. CPU time of this thread
(``time.thread_time``), not wall time: on a shared, loaded machine it varies less. SPEC §9 asks
for at most 1.2x ``json.dumps``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from selinon_like.serializers import JSON

SHAPES: dict[str, Any] = {
    "small flat dict": {"a": 1, "b": "x", "c": 2.5, "d": True, "e": None, "f": "hello world"},
    "small nested dict": {"a": {"b": [1, 2, {"c": "d"}], "e": {"f": 1.5}}, "g": [None, True, "x"]},
    "1 MB, 11,000 small dicts": [
        {"id": i, "name": f"row{i}", "score": i * 0.5, "ok": i % 2 == 0, "tags": ["a", "b"]}
        for i in range(11_000)
    ],
    "1 MB string": "x" * 1_000_000,
    "1 MB, 40,000 small lists": [[i, i + 1, [i, "x"]] for i in range(40_000)],
    "1 MB of true, false and null": [True, False, None] * 60_000,
}


def _block(fn: Callable[[Any], Any], value: Any, calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        fn(value)
    return (time.thread_time() - start) / calls


def measure(blocks: int = 5) -> list[tuple[str, int, float, float, float]]:
    """``(shape, encoded size, json.dumps s, json.dumps+encode s, JSON.dumps s)`` per shape,
    each the minimum of ``blocks`` blocks."""
    rows = []
    for name, value in SHAPES.items():
        calls = 20_000 if name.startswith("small") else 20
        plain: list[float] = []
        encoded: list[float] = []
        ours: list[float] = []
        for _ in range(blocks):
            plain.append(_block(json.dumps, value, calls))
            encoded.append(_block(lambda v: json.dumps(v).encode(), value, calls))
            ours.append(_block(JSON.dumps, value, calls))
        rows.append((name, len(JSON.dumps(value)), min(plain), min(encoded), min(ours)))
    return rows


def main() -> None:
    print(
        "| result | bytes | json.dumps | json.dumps().encode() | JSON.dumps "
        "| ratio | ratio to encode |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, size, plain, encoded, ours in measure():
        print(
            f"| {name} | {size:,} | {plain * 1e6:,.1f} µs | {encoded * 1e6:,.1f} µs | "
            f"{ours * 1e6:,.1f} µs | {ours / plain:.2f} | {ours / encoded:.2f} |"
        )


if __name__ == "__main__":
    main()
