"""The SQL adapter on SQLite (a file), PostgreSQL and MariaDB, measured in one run.

    .venv/bin/python benchmarks/bench_sql.py [--repeat 1000] [--rounds 5] [--only sqlite,...]

Per database: single ``store``/``retrieve`` latencies (through ``pool.get_connected_storage``),
1,000 ``store`` calls against one ``store_many`` of the same 1,000 small results (and the
same for ``retrieve``/``retrieve_many``), in alternating rounds, the speed-up being the median
of the per-round ratios; and the median time to store and to read back a 15 MiB result (on
MariaDB it must fit the server's default 16 MiB ``max_allowed_packet``).

Servers: ``SELINON_LIKE_POSTGRESQL_URL`` and ``SELINON_LIKE_MYSQL_URL`` (defaults as in
``tests/conftest.py``); each run uses tables of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from benchmarks.common import interleaved
from selinon_like import StoragePool

POSTGRESQL_URL = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SELINON_LIKE_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
RESULT = {"status": "ok", "task": "Task1", "value": 42, "items": [1, 2, 3]}
BIG = {"blob": "ab" * (15 * 1024 * 1024 // 2 - 8)}  # 15 MiB of JSON


def _table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _entry(backend: str, table: str, directory: str) -> dict[str, Any]:
    if backend == "sqlite":
        configuration: dict[str, Any] = {"path": f"{directory}/bench.sqlite"}
    else:
        configuration = {
            "connection_string": POSTGRESQL_URL if backend == "postgresql" else MYSQL_URL
        }
    configuration["table_name"] = table
    return {"name": "Results", "classname": backend, "configuration": configuration}


def _drop(backend: str, table: str) -> None:
    if backend == "sqlite":
        return
    engine = sa.create_engine(POSTGRESQL_URL if backend == "postgresql" else MYSQL_URL)
    with engine.begin() as conn:
        for name in (table, table + "_errors"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def _bench(backend: str, repeat: int, rounds: int, directory: str) -> dict[str, Any]:
    table = f"bench_{uuid.uuid4().hex[:10]}"
    pool = StoragePool.from_dict({"storages": [_entry(backend, table, directory)]})
    try:
        storage = pool.get_connected_storage("Results")
        storage.store_many([("Bench", "single", str(i), RESULT) for i in range(1000)])
        single = interleaved(
            {
                "store": lambda i: storage.store("Bench", "single", str(i % 1000), RESULT),
                "retrieve": lambda i: storage.retrieve("Bench", "single", str(i % 1000)),
            },
            repeat,
            rounds=rounds,
        )
        loop, bulk, loop_r, bulk_r = [], [], [], []
        for r in range(rounds):
            items = [("Bench", "bulk", f"{r}-{i}", {"i": i}) for i in range(1000)]
            keys = [item[:3] for item in items]
            started = time.perf_counter()
            for item in items:
                storage.store(*item)
            loop.append(time.perf_counter() - started)
            started = time.perf_counter()
            storage.store_many(items)
            bulk.append(time.perf_counter() - started)
            started = time.perf_counter()
            for key in keys:
                storage.retrieve(*key)
            loop_r.append(time.perf_counter() - started)
            started = time.perf_counter()
            found = storage.retrieve_many(keys)
            bulk_r.append(time.perf_counter() - started)
            if len(found) != 1000:
                raise SystemExit(f"{backend}: retrieve_many found {len(found)} of 1000")
        big_store, big_read = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            storage.store("Bench", "big", "1", BIG)
            big_store.append(time.perf_counter() - started)
            started = time.perf_counter()
            if storage.retrieve("Bench", "big", "1") != BIG:
                raise SystemExit(f"{backend}: the 15 MiB result came back changed")
            big_read.append(time.perf_counter() - started)
        errors = sum(t.errors for t in single.values())
        if errors:
            raise SystemExit(f"{backend}: {errors} calls failed")

        def ms(samples: list[float]) -> str:
            return f"{statistics.median(samples) * 1e3:.1f}"

        def ratio(a: list[float], b: list[float]) -> str:
            return f"{statistics.median(x / y for x, y in zip(a, b, strict=True)):.1f}x"

        return {
            "database": backend,
            "store_us": round(single["store"].median * 1e6),
            "retrieve_us": round(single["retrieve"].median * 1e6),
            "1000 store ms": ms(loop),
            "store_many ms": ms(bulk),
            "store x": ratio(loop, bulk),
            "1000 retrieve ms": ms(loop_r),
            "retrieve_many ms": ms(bulk_r),
            "retrieve x": ratio(loop_r, bulk_r),
            "15 MiB store ms": ms(big_store),
            "15 MiB read ms": ms(big_read),
        }
    finally:
        pool.disconnect_all()
        _drop(backend, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1000, help="single calls per operation")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bulk rounds")
    parser.add_argument("--only", default="sqlite,postgresql,mysql", help="databases to run")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for backend in args.only.split(","):
            rows.append(_bench(backend.strip(), args.repeat, args.rounds, directory))
    print(
        f"SqlStorage: single calls ({args.repeat} each, medians), and 1,000 small results one "
        f"by one vs in one bulk call (medians of {args.rounds} rounds)"
    )
    _table(rows)


if __name__ == "__main__":
    main()
