"""Streaming benchmark: 256 MiB and 1 GiB through ``store_stream`` and back through
``retrieve_stream``.

For every built-in adapter — Filesystem and S3 (their own streams: a file, a multipart upload;
S3 on a server in a process of its own, so that the server's copy of the 256 MB is not
counted: ``python -m benchmarks`` uses a private SeaweedFS, this script alone moto's server),
and memory, SQLite, PostgreSQL, MariaDB, Redis and MongoDB (the record layer's chunks,
:mod:`selinon_like.chunks`) — each measured in a fresh child process of its own (memory keeps
the stream in the process, so its growth is the stream itself; a service that does not answer
is left out, saying so):

* peak RSS growth: the peak RSS (VmHWM) after the round trip minus the peak before it (after
  imports, connect and a 1 MiB warm-up stream), i.e. what streaming added to the process's
  peak;
* Python heap peak during a second round trip, by ``tracemalloc`` (up to 256 MiB: the 1 GiB
  row makes one round trip, which takes minutes on the SQL services);
* throughput, and whether the SHA-256 returned by ``store_stream``, the producer's own and the
  one of what ``retrieve_stream`` gave back all agree.

The producer makes 1 MiB chunks as they are consumed (never the whole stream); the consumer
hashes and drops each chunk. The budget is 64 MiB of growth (memory excepted: it keeps the
stream).

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_streaming [--size MIB]
[ADAPTER...]`` (names as in :data:`RECORD_ADAPTERS`, ``filesystem``, ``s3``; all of them by
default; ``--size`` repeatable, 256 and 1024 by default; ``--help``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_s3 import moto_server, storage_for
from selinon_like.storage import DataStorage

MiB = 1024 * 1024
GiB = 1024 * MiB
TOTAL = 256 * MiB
SIZES = (TOTAL, GiB)
"""The stream sizes measured by default (``python -m benchmarks`` runs both)."""
HEAP_UP_TO = TOTAL  # larger streams make one round trip, without tracemalloc's second
CHUNK = MiB
BUDGET = 64 * MiB


def produce(total: int, sha: Any) -> Iterator[bytes]:
    """``total`` bytes in fresh 1 MiB chunks (each one different), hashed as they go."""
    base = os.urandom(CHUNK)
    for index in range(total // CHUNK):
        chunk = index.to_bytes(8, "big") + base[8:]
        sha.update(chunk)
        yield chunk


def round_trip(storage: DataStorage, task_id: str, total: int) -> dict[str, Any]:
    produced = hashlib.sha256()
    started = time.perf_counter()
    digest = storage.store_stream("bench", "stream", task_id, produce(total, produced))
    stored = time.perf_counter()
    read, size, largest = hashlib.sha256(), 0, 0
    for chunk in storage.retrieve_stream("bench", "stream", task_id):
        read.update(chunk)
        size += len(chunk)
        largest = max(largest, len(chunk))
    done = time.perf_counter()
    return {
        "store_s": stored - started,
        "retrieve_s": done - stored,
        "size_ok": digest.size == size == total,
        "sha_ok": digest.sha256 == produced.hexdigest() == read.hexdigest(),
        "largest_chunk": largest,
    }


def maxrss() -> int:
    """This process's peak RSS in bytes: VmHWM, its own memory's high-water mark. Not
    ``ru_maxrss``: Linux carries that over an exec from the process that started it (a child
    of the benchmark suite, hundreds of MB by then, read 0 growth for every stream)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


RECORD_ADAPTERS = ("memory", "sqlite", "postgresql", "mariadb", "redis", "mongodb")
POSTGRESQL_URL = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SELINON_LIKE_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SELINON_LIKE_REDIS_URL", "redis://127.0.0.1:6379/9")


def record_storage(backend: str, target: str) -> DataStorage:
    """A storage on the record layer's streams; ``target``: a directory (SQLite) or a URL."""
    suffix = os.urandom(5).hex()
    if backend == "memory":
        from storages.memory import InMemoryStorage

        return InMemoryStorage()
    if backend == "sqlite":
        from storages.sql import SQLite

        return SQLite(connection_string=f"sqlite:///{target}/stream.db")
    if backend == "postgresql":
        from storages.postgresql import PostgreSQL

        return PostgreSQL(connection_string=target, table_name=f"bench_stream_{suffix}")
    if backend == "mariadb":
        from storages.mysql import MySQL

        return MySQL(connection_string=target, table_name=f"bench_stream_{suffix}")
    if backend == "redis":
        from storages.redis import Redis

        return Redis(url=target, key_prefix=f"bench-stream-{suffix}:")
    from storages.mongodb import MongoDB

    return MongoDB(url=target, db_name="bench", collection_name=f"stream_{suffix}")


def _drop_tables(storage: DataStorage) -> None:
    """Leave no benchmark table, key or collection behind."""
    name = type(storage).__name__
    if name in ("PostgreSQL", "MySQL"):
        import sqlalchemy as sa

        engine = sa.create_engine(storage.connection_string)  # type: ignore[attr-defined]
        try:
            with engine.begin() as conn:
                for table in (storage.table_name, storage.table_name + "_errors"):  # type: ignore[attr-defined]
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        finally:
            engine.dispose()
    elif name == "MongoDB":
        storage._results.drop()  # type: ignore[attr-defined]
        storage._errors.drop()  # type: ignore[attr-defined]
    elif name == "Redis":
        storage.orphan_age = 0.0  # type: ignore[attr-defined]
        storage.purge_expired()  # the deleted stream's chunks


def child(backend: str, target: str, total: int = TOTAL) -> None:
    """One measurement of a ``total``-byte stream in this fresh process; prints one JSON
    line. ``target`` is the Filesystem's or SQLite's directory, a service's URL, moto's
    endpoint, or ``-``: S3Storage options as JSON on stdin (credentials stay off the command
    line)."""
    storage: DataStorage
    if backend == "filesystem":
        from storages.filesystem import Filesystem

        storage = Filesystem(path=target)
    elif backend in RECORD_ADAPTERS:
        storage = record_storage(backend, target)
    elif target == "-":
        from storages.s3 import S3Storage

        storage = S3Storage(**json.loads(sys.stdin.read()))
    else:
        storage = storage_for(target)
    storage.connect()
    round_trip(storage, "warm-up", CHUNK)  # load the code paths, allocate no big buffer
    before = maxrss()
    first = round_trip(storage, "big", total)
    growth = max(0, maxrss() - before)
    second: dict[str, Any] = {"sha_ok": True}
    heap_peak = None
    if total <= HEAP_UP_TO:
        tracemalloc.start()
        second = round_trip(storage, "big", total)
        _current, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    storage.delete("bench", "stream", "big")
    storage.delete("bench", "stream", "warm-up")
    if backend in RECORD_ADAPTERS:
        _drop_tables(storage)
    storage.disconnect()
    print(
        json.dumps(
            {
                **first,
                "total": total,
                "rss_growth": growth,
                "heap_peak": heap_peak,
                "again": second,
            }
        )
    )


def measure(
    backend: str, target: str, options: dict[str, Any] | None = None, total: int = TOTAL
) -> dict[str, Any]:
    """Run :func:`child` in a fresh process for a ``total``-byte stream: ``target`` as there,
    or ``options`` (with ``target`` ``-``) the S3Storage options of another S3 server."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", backend, target, str(total)],
        input=json.dumps(options) if options is not None else "",
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _measured(
    name: str, backend: str, target: str, total: int
) -> tuple[str, dict[str, Any]] | None:
    try:
        return name, measure(backend, target, total=total)
    except subprocess.CalledProcessError as exc:
        print(f"  {name}: left out ({(exc.stderr or '').strip().splitlines()[-1:]})")
        return None


def size_label(total: int) -> str:
    return f"{total // GiB} GiB" if total % GiB == 0 else f"{total // MiB} MiB"


def main(only: list[str], sizes: list[int]) -> None:
    wanted = set(only) or {"filesystem", "s3", *RECORD_ADAPTERS}
    found: list[tuple[str, dict[str, Any]] | None] = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as directory:
        for total in sizes:
            if "filesystem" in wanted:
                found.append(_measured("Filesystem", "filesystem", directory, total))
            if "memory" in wanted:
                found.append(_measured("memory (chunks)", "memory", "-", total))
            if "sqlite" in wanted:
                found.append(_measured("SQLite file (chunks)", "sqlite", directory, total))
    urls = {"postgresql": POSTGRESQL_URL, "mariadb": MYSQL_URL, "redis": REDIS_URL}
    for backend, url in urls.items():
        if backend in wanted:
            for total in sizes:
                found.append(_measured(f"{backend} (chunks)", backend, url, total))
    if "mongodb" in wanted:
        from benchmarks.bench_mongodb import mongodb_server

        with mongodb_server() as (_label, url):
            for total in sizes:
                found.append(_measured("MongoDB (chunks)", "mongodb", url, total))
    if "s3" in wanted:
        with moto_server() as (endpoint, _pid):
            for total in sizes:
                found.append(_measured("S3 (moto server, 8 MiB parts)", "s3", endpoint, total))
    rows = [row for row in found if row is not None]
    print("\nstreams through store_stream and back through retrieve_stream")
    print(
        f"  {'adapter':<30} {'size':>7} {'store MB/s':>10} {'read MB/s':>10} {'RSS growth':>11}"
        f" {'heap peak':>10} {'chunk':>7} {'sha256':>7} {'budget':>7}"
    )
    for name, r in rows:
        mb = r["total"] / MiB
        heap = "-" if r["heap_peak"] is None else f"{r['heap_peak'] / MiB:7.1f} MB"
        print(
            f"  {name:<30} {size_label(r['total']):>7} {mb / r['store_s']:10.0f} "
            f"{mb / r['retrieve_s']:10.0f} {r['rss_growth'] / MiB:8.1f} MB {heap:>10} "
            f"{r['largest_chunk'] // MiB:3d} MiB "
            f"{'ok' if r['sha_ok'] and r['size_ok'] and r['again']['sha_ok'] else 'WRONG':>7} "
            f"{'ok' if r['rss_growth'] < BUDGET else 'OVER':>7}"
        )
    print(f"  (budget: RSS growth under {BUDGET // MiB} MiB; chunk: largest read back)")


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_streaming",
        description="Streams through store_stream and back, peak RSS growth of each adapter.",
    )
    parser.add_argument(
        "adapters",
        nargs="*",
        metavar="ADAPTER",
        help=f"of filesystem, s3, {', '.join(RECORD_ADAPTERS)} (default: all)",
    )
    parser.add_argument(
        "--size",
        type=int,
        action="append",
        metavar="MIB",
        help="stream size in MiB (repeatable; default: 256 and 1024)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else TOTAL)
    else:
        arguments = _arguments(sys.argv[1:])
        main(arguments.adapters, [size * MiB for size in arguments.size or ()] or list(SIZES))
