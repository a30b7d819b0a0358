"""Raw async drivers: the baselines of the async benchmark rows (issue 19, SPEC section 10).

For each service a reusable async context manager yields a :class:`RawService`: an async
``raw_store(key, data)`` / ``raw_retrieve(key)`` on the driver's native async client, the same
two on the sync driver (the reference), and ``adapter_entry``, the YAML entry of our adapter
to reach the same server (for the pool rows that will sit beside these):

* Redis: ``redis.asyncio`` on 127.0.0.1:6379 db 9 (SELINON_LIKE_BENCH_REDIS_URL), keys under a
  fresh prefix, deleted on exit; SET / GET of the bytes.
* PostgreSQL: psycopg's ``AsyncConnectionPool`` (psycopg_pool) on database ``test``
  (SELINON_LIKE_POSTGRESQL_URL) in autocommit, a fresh ``(k text primary key, v bytea)``
  table dropped on exit; a store is one upsert, a retrieve one ``SELECT v``.
* MongoDB: pymongo's ``AsyncMongoClient`` on a private SecantusDB (``tests.servers``; the
  server SELINON_LIKE_MONGODB_URL names instead), a fresh database dropped on exit; a store
  upserts ``{_id: key, v: bytes}`` acknowledged once journaled (``j: true``, as the
  adapter's ``journal`` default), a retrieve finds by ``_id``.
* S3: aiobotocore (the client ``storages.aio.s3`` uses: it keeps working in a forked child,
  where obstore hangs; ``bench_s3_async_clients.py``) on a private SeaweedFS
  (``tests.servers``), a fresh bucket; put / get of the object. obstore's ``S3Store`` (its
  async API) is an extra system (:attr:`RawService.extras`), for context.

``adapter_entry`` sizes our adapter's connections as the raw async client's (``--connections``).

Measured per service on a ~100-byte JSON value: (a) sequential store / retrieve latency
(median µs, interleaved blocks), async and sync; (b) 1,000 concurrent retrieves and stores
with ``asyncio.gather`` (ops/s from wall time, and this process's CPU time a call: the median
of 3 rounds after a warm-up round) against the same 1,000 calls of the sync driver on 8
threads. On a machine busy with other work the threads get more of the CPU than the one
event-loop thread: compare the CPU per call there. The async clients get
``--connections`` connections (16 by default; the sync ones 8, one a thread). A service that
does not answer is left out, saying so.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_async_raw [SERVICE...]``
(redis, postgresql, mongodb, s3; all by default).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from benchmarks.common import AwakeCpus, Timing, rotated

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Store

REDIS_URL = os.environ.get("SELINON_LIKE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
# psycopg's own URL form (no "+psycopg" driver suffix: no SQLAlchemy here)
POSTGRESQL_DSN = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
).replace("postgresql+psycopg://", "postgresql://")
SMALL = json.dumps(
    {"status": "ok", "items": list(range(12)), "name": "task result", "score": 0.5}
).encode()  # 102 bytes
KEYS = 200  # the sequential rows rotate over this many keys
CONCURRENCY = 1000
THREADS = 8
CONNECTIONS = 16
REPEAT = 1000
ROUNDS = 3

AsyncCall = Callable[[int], Awaitable[object]]
SyncCall = Callable[[int], object]
RawRetrieve = Callable[[str], Awaitable[bytes | None]]


@dataclass
class RawService:
    """One service's raw drivers: async ``raw_store`` / ``raw_retrieve`` (None for a missing
    key) on the native async client, ``sync_store`` / ``sync_retrieve`` on the sync driver,
    safe to call from several threads. ``adapter_entry`` holds our adapter's options for
    the same server, in a namespace of its own: a storage entry of the pool's YAML
    (``import``, ``classname``, ``configuration``; ``name`` is the caller's)."""

    name: str
    raw_store: Callable[[str, bytes], Awaitable[object]]
    raw_retrieve: Callable[[str], Awaitable[bytes | None]]
    sync_store: Callable[[str, bytes], object]
    sync_retrieve: Callable[[str], bytes | None]
    adapter_entry: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    # other async clients of the same server, for context: label -> (store, retrieve)
    extras: dict[str, tuple[Callable[[str, bytes], Awaitable[object]], RawRetrieve]] = field(
        default_factory=dict
    )


# -- timing ---------------------------------------------------------------------------------


async def async_interleaved(
    calls: dict[str, AsyncCall],
    repeat: int,
    rounds: int = 5,
    warmup: int = 20,
    cpu_us: dict[str, float] | None = None,
) -> dict[str, Timing]:
    """The async form of :func:`benchmarks.common.interleaved`: each awaited call timed, in
    ``rounds`` blocks of ``repeat // rounds`` calls per system, in the order
    :func:`benchmarks.common.rotated` gives. With ``cpu_us``, each system's CPU µs a call
    (this process's CPU time over its blocks) is put there."""
    timings = {name: Timing(name, []) for name in calls}
    cpu = dict.fromkeys(calls, 0.0)
    for call in calls.values():
        for i in range(warmup):
            await call(-1 - i)
    block = max(1, repeat // rounds)
    clock = time.perf_counter
    for r, name in rotated(list(calls), rounds):
        call, timing = calls[name], timings[name]
        began = time.process_time()
        for i in range(r * block, (r + 1) * block):
            started = clock()
            try:
                await call(i)
            except Exception:
                timing.errors += 1
            timing.samples.append(clock() - started)
        cpu[name] += time.process_time() - began
    if cpu_us is not None:
        cpu_us.update({name: spent * 1e6 / (rounds * block) for name, spent in cpu.items()})
    return timings


@dataclass(frozen=True)
class Rate:
    """A batch of concurrent calls: ops/s from wall time, and this process's CPU time (all its
    threads) per call in µs, which a machine busy with other work changes much less."""

    ops_per_second: float
    cpu_us: float


def _median_rate(samples: Sequence[tuple[float, float]], count: int) -> Rate:
    """``samples``: (wall seconds, CPU seconds) of rounds of ``count`` calls."""
    return Rate(
        statistics.median(count / wall for wall, _cpu in samples),
        statistics.median(cpu * 1e6 / count for _wall, cpu in samples),
    )


async def gathered(
    call: AsyncCall, count: int = CONCURRENCY, rounds: int = ROUNDS, warmup: bool = True
) -> Rate:
    """``count`` calls started at once with ``asyncio.gather``: the median of ``rounds``
    rounds, after a warm-up round (which opens the connections) if ``warmup``."""
    samples = []
    for r in range(rounds + warmup):
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(call(i) for i in range(count)))
        if r >= warmup:
            samples.append((time.perf_counter() - wall, time.process_time() - cpu))
    return _median_rate(samples, count)


def threaded(
    call: SyncCall,
    count: int = CONCURRENCY,
    threads: int = THREADS,
    rounds: int = ROUNDS,
    warmup: bool = True,
) -> Rate:
    """``count`` calls on ``threads`` threads (the pool made beforehand): the median of
    ``rounds`` rounds, after a warm-up round if ``warmup``."""
    samples = []
    with concurrent.futures.ThreadPoolExecutor(threads, "bench-sync") as executor:
        for r in range(rounds + warmup):
            wall, cpu = time.perf_counter(), time.process_time()
            list(executor.map(call, range(count)))
            if r >= warmup:
                samples.append((time.perf_counter() - wall, time.process_time() - cpu))
    return _median_rate(samples, count)


# -- the services ---------------------------------------------------------------------------


def _entry(import_: str, classname: str, **configuration: Any) -> dict[str, Any]:
    return {"import": import_, "classname": classname, "configuration": configuration}


@contextlib.asynccontextmanager
async def redis_raw(connections: int = CONNECTIONS) -> AsyncIterator[RawService]:
    """redis.asyncio with a blocking pool of ``connections`` (a call waits for a free one,
    as redis-py's default pool would instead open a connection per waiting call)."""
    import redis
    import redis.asyncio

    prefix = f"bench-async-{uuid.uuid4().hex[:8]}:"
    pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=connections)
    client = redis.asyncio.Redis(connection_pool=pool)
    sync = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()

        async def raw_retrieve(key: str) -> bytes | None:
            return cast("bytes | None", await client.get(prefix + key))

        def sync_retrieve(key: str) -> bytes | None:
            return cast("bytes | None", sync.get(prefix + key))

        yield RawService(
            "Redis",
            lambda key, data: client.set(prefix + key, data),
            raw_retrieve,
            lambda key, data: sync.set(prefix + key, data),
            sync_retrieve,
            _entry(
                "storages.redis",
                "Redis",
                url=REDIS_URL,
                key_prefix=prefix + "ours:",
                max_connections=connections,
            ),
            f"redis.asyncio, BlockingConnectionPool({connections})",
        )
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
        await client.aclose()
        await pool.aclose()
        sync.close()


@contextlib.asynccontextmanager
async def postgresql_raw(connections: int = CONNECTIONS) -> AsyncIterator[RawService]:
    """psycopg's AsyncConnectionPool of ``connections`` (without psycopg_pool: one
    AsyncConnection, on which concurrent calls take turns), autocommit; the sync reference is
    a psycopg ConnectionPool of 8, or a connection per thread without psycopg_pool."""
    import psycopg

    table = f"bench_async_raw_{uuid.uuid4().hex[:8]}"
    upsert = (
        f"INSERT INTO {table} (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    )
    select = f"SELECT v FROM {table} WHERE k = %s"
    with psycopg.connect(POSTGRESQL_DSN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE TABLE {table} (k text PRIMARY KEY, v bytea NOT NULL)")
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                from psycopg_pool import AsyncConnectionPool, ConnectionPool
            except ImportError:
                raw_store, raw_retrieve, note = await _postgresql_one_connection(
                    stack, upsert, select
                )
                sync_store, sync_retrieve = _postgresql_thread_connections(stack, upsert, select)
            else:
                pool = AsyncConnectionPool(
                    POSTGRESQL_DSN,
                    min_size=connections,
                    max_size=connections,
                    kwargs={"autocommit": True},
                    open=False,
                )
                await pool.open(wait=True, timeout=10)
                stack.push_async_callback(pool.close)

                async def raw_store(key: str, data: bytes) -> None:
                    async with pool.connection() as conn:
                        await conn.execute(upsert, (key, data))

                async def raw_retrieve(key: str) -> bytes | None:
                    async with pool.connection() as conn:
                        cursor = await conn.execute(select, (key,))
                        row = await cursor.fetchone()
                    return None if row is None else bytes(row[0])

                note = f"psycopg AsyncConnectionPool({connections})"
                sync_pool = ConnectionPool(
                    POSTGRESQL_DSN,
                    min_size=THREADS,
                    max_size=THREADS,
                    kwargs={"autocommit": True},
                    open=False,
                )
                sync_pool.open(wait=True, timeout=10)
                stack.callback(sync_pool.close)

                def sync_store(key: str, data: bytes) -> None:
                    with sync_pool.connection() as conn:
                        conn.execute(upsert, (key, data))

                def sync_retrieve(key: str) -> bytes | None:
                    with sync_pool.connection() as conn:
                        row = conn.execute(select, (key,)).fetchone()
                    return None if row is None else bytes(row[0])

            yield RawService(
                "PostgreSQL",
                raw_store,
                raw_retrieve,
                sync_store,
                sync_retrieve,
                _entry(
                    "storages.postgresql",
                    "PostgreSQL",
                    connection_string=POSTGRESQL_DSN,
                    table_name=table + "_ours",
                    pool_size=connections,
                    max_overflow=0,
                ),
                note,
            )
    finally:
        with psycopg.connect(POSTGRESQL_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {table}")
            admin.execute(f"DROP TABLE IF EXISTS {table}_ours")
            admin.execute(f"DROP TABLE IF EXISTS {table}_ours_errors")


async def _postgresql_one_connection(
    stack: contextlib.AsyncExitStack, upsert: str, select: str
) -> tuple[
    Callable[[str, bytes], Awaitable[object]], Callable[[str], Awaitable[bytes | None]], str
]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(POSTGRESQL_DSN, autocommit=True)
    stack.push_async_callback(conn.close)

    async def raw_store(key: str, data: bytes) -> None:
        await conn.execute(upsert, (key, data))

    async def raw_retrieve(key: str) -> bytes | None:
        cursor = await conn.execute(select, (key,))
        row = await cursor.fetchone()
        return None if row is None else bytes(row[0])

    return raw_store, raw_retrieve, "psycopg AsyncConnection (one; psycopg_pool missing)"


def _postgresql_thread_connections(
    stack: contextlib.AsyncExitStack, upsert: str, select: str
) -> tuple[Callable[[str, bytes], object], Callable[[str], bytes | None]]:
    import threading

    import psycopg

    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []

    @stack.callback
    def close_all() -> None:
        for each in opened:
            each.close()

    def conn() -> psycopg.Connection[Any]:
        found: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if found is None:
            found = local.conn = psycopg.connect(POSTGRESQL_DSN, autocommit=True)
            opened.append(found)
        return found

    def sync_store(key: str, data: bytes) -> None:
        conn().execute(upsert, (key, data))

    def sync_retrieve(key: str) -> bytes | None:
        row = conn().execute(select, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    return sync_store, sync_retrieve


@contextlib.asynccontextmanager
async def mongodb_raw(connections: int = CONNECTIONS) -> AsyncIterator[RawService]:
    """pymongo's AsyncMongoClient (``maxPoolSize=connections``) against MongoClient."""
    import pymongo
    from pymongo import AsyncMongoClient
    from pymongo.write_concern import WriteConcern

    from benchmarks.bench_mongodb import mongodb_server

    db = f"bench_async_{uuid.uuid4().hex[:8]}"
    with mongodb_server() as (label, url):
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, maxPoolSize=connections, serverSelectionTimeoutMS=5000
        )
        sync: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=5000
        )
        try:
            await client.admin.command("ping")
            journaled = WriteConcern(j=True)  # as the adapter's writes, by default
            coll = client[db].get_collection("raw", write_concern=journaled)
            sync_coll = sync[db].get_collection("raw", write_concern=journaled)

            async def raw_retrieve(key: str) -> bytes | None:
                doc = await coll.find_one({"_id": key}, {"v": 1})
                return None if doc is None else bytes(doc["v"])

            def sync_retrieve(key: str) -> bytes | None:
                doc = sync_coll.find_one({"_id": key}, {"v": 1})
                return None if doc is None else bytes(doc["v"])

            yield RawService(
                f"MongoDB ({label.split(' (')[0]})",
                lambda key, data: coll.replace_one({"_id": key}, {"v": data}, upsert=True),
                raw_retrieve,
                lambda key, data: sync_coll.replace_one({"_id": key}, {"v": data}, upsert=True),
                sync_retrieve,
                _entry("storages.mongodb", "MongoDB", url=url, db_name=db + "_ours"),
                f"AsyncMongoClient(maxPoolSize={connections}), pymongo {pymongo.version}",
            )
        finally:
            for name in await client.list_database_names():
                if name.startswith(db):
                    await client.drop_database(name)
            await client.close()
            sync.close()


class S3Endpoint(Protocol):
    """Where an S3 server is and the identity it accepts (as ``tests.servers.S3Server``)."""

    @property
    def endpoint_url(self) -> str: ...
    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def region(self) -> str: ...


def obstore_store(
    server: S3Endpoint, bucket: str, client_options: ClientConfig | None = None
) -> S3Store:
    """An obstore ``S3Store`` for ``bucket`` on an S3 server (plain HTTP, path-style
    requests, obstore's retries off: the adapter's retry policy is the one that retries)."""
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=server.endpoint_url,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, **(client_options or {})},
        retry_config={"max_retries": 0},
    )


@contextlib.asynccontextmanager
async def s3_raw(connections: int = CONNECTIONS) -> AsyncIterator[RawService]:
    """aiobotocore (path-style requests, ``connections`` in its pool and at most that many
    requests in flight, its retries off: the adapter's settings) against boto3, each in a
    bucket of its own on a private SeaweedFS; obstore, at most ``connections`` requests in
    flight (a semaphore: its pool has no cap on busy connections), as an extra system."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    from tests.servers import start_s3

    with start_s3() as server:
        sync = server.client()
        sync_bucket = server.new_bucket("bench-sync-raw")
        bucket = server.new_bucket("bench-async-raw")
        config = AioConfig(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=connections,
        )
        async with (
            contextlib.AsyncExitStack() as stack,
            AioSession().create_client(
                "s3",
                endpoint_url=server.endpoint_url,
                region_name=server.region,
                aws_access_key_id=server.access_key,
                aws_secret_access_key=server.secret_key,
                config=config,
            ) as client,
        ):
            stack.callback(sync.close)
            in_flight = asyncio.Semaphore(connections)  # as storages.aio.s3 bounds its requests

            async def raw_store(key: str, data: bytes) -> None:
                async with in_flight:
                    await client.put_object(Bucket=bucket, Key=key, Body=data)

            async def raw_retrieve(key: str) -> bytes | None:
                async with in_flight:
                    try:
                        response = await client.get_object(Bucket=bucket, Key=key)
                    except client.exceptions.NoSuchKey:
                        return None
                    async with response["Body"] as body:
                        return await body.read()

            def sync_store(key: str, data: bytes) -> None:
                sync.put_object(Bucket=sync_bucket, Key=key, Body=data)

            def sync_retrieve(key: str) -> bytes | None:
                try:
                    response = sync.get_object(Bucket=sync_bucket, Key=key)
                except sync.exceptions.NoSuchKey:
                    return None
                with contextlib.closing(response["Body"]) as body:
                    return body.read()

            yield RawService(
                "S3 (SeaweedFS)",
                raw_store,
                raw_retrieve,
                sync_store,
                sync_retrieve,
                _entry(
                    "storages.s3",
                    "S3Storage",
                    bucket=server.new_bucket("bench-async-ours"),
                    addressing_style="path",
                    max_pool_connections=connections,
                    **server.client_options(),
                ),
                f"aiobotocore, {connections} connections, vs boto3, 8 threads",
                _obstore_extra(server, server.new_bucket("bench-async-obstore"), connections),
            )


def _obstore_extra(
    server: S3Endpoint, bucket: str, connections: int
) -> dict[str, tuple[Callable[[str, bytes], Awaitable[object]], RawRetrieve]]:
    """obstore's put / get on ``bucket`` (at most ``connections`` in flight), or nothing
    where obstore is not installed."""
    try:
        import obstore
    except ImportError:
        return {}
    store = obstore_store(server, bucket)
    in_flight = asyncio.Semaphore(connections)

    async def raw_store(key: str, data: bytes) -> None:
        async with in_flight:
            await obstore.put_async(store, key, data)

    async def raw_retrieve(key: str) -> bytes | None:
        async with in_flight:
            try:
                result = await obstore.get_async(store, key)
                return bytes(await result.bytes_async())
            except FileNotFoundError:
                return None

    return {f"raw obstore {obstore.__version__}": (raw_store, raw_retrieve)}


SERVICES: dict[str, Callable[[int], contextlib.AbstractAsyncContextManager[RawService]]] = {
    "redis": redis_raw,
    "postgresql": postgresql_raw,
    "mongodb": mongodb_raw,
    "s3": s3_raw,
}


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    """One service's figures: latencies in seconds (median), and the concurrent batches."""

    name: str
    note: str
    async_store: Timing
    async_retrieve: Timing
    sync_store: Timing
    sync_retrieve: Timing
    gather_retrieve: Rate
    gather_store: Rate
    threads_retrieve: Rate
    threads_store: Rate


async def measure(
    service: RawService,
    repeat: int = REPEAT,
    concurrency: int = CONCURRENCY,
    threads: int = THREADS,
    data: bytes = SMALL,
) -> Row:
    """(a) sequential store / retrieve, async and sync, interleaved; (b) ``concurrency``
    retrieves then stores with asyncio.gather, and on ``threads`` threads. Every key read
    was written first; the concurrent rows use ``concurrency`` keys of their own."""
    for i in range(max(KEYS, concurrency)):
        await service.raw_store(f"k{i}", data)
        service.sync_store(f"k{i}", data)

    async def store(i: int) -> None:
        await service.raw_store(f"k{i % KEYS}", data)

    async def retrieve(i: int) -> None:
        if await service.raw_retrieve(f"k{i % KEYS}") is None:
            raise LookupError(f"k{i % KEYS} is missing")

    async def sync_store(i: int) -> None:
        service.sync_store(f"k{i % KEYS}", data)

    async def sync_retrieve(i: int) -> None:
        if service.sync_retrieve(f"k{i % KEYS}") is None:
            raise LookupError(f"k{i % KEYS} is missing")

    timings = await async_interleaved(
        {
            "store": store,
            "retrieve": retrieve,
            "sync store": sync_store,
            "sync retrieve": sync_retrieve,
        },
        repeat,
    )

    async def many_retrieve(i: int) -> None:
        if await service.raw_retrieve(f"k{i}") is None:
            raise LookupError(f"k{i} is missing")

    def threads_retrieve(i: int) -> None:
        if service.sync_retrieve(f"k{i}") is None:
            raise LookupError(f"k{i} is missing")

    return Row(
        service.name,
        service.note,
        timings["store"],
        timings["retrieve"],
        timings["sync store"],
        timings["sync retrieve"],
        await gathered(many_retrieve, concurrency),
        await gathered(lambda i: service.raw_store(f"k{i}", data), concurrency),
        threaded(threads_retrieve, concurrency, threads),
        threaded(lambda i: service.sync_store(f"k{i}", data), concurrency, threads),
    )


def print_table(
    rows: Sequence[Row], concurrency: int = CONCURRENCY, threads: int = THREADS
) -> None:
    size = len(SMALL)
    print(f"\nRaw drivers, a {size}-byte value: sequential latency (median µs; async / sync)")
    print(f"  {'service':<22} {'store':>15} {'retrieve':>15}  driver")
    for row in rows:
        print(
            f"  {row.name:<22} {_us(row.async_store)} / {_us(row.sync_store)} "
            f"{_us(row.async_retrieve)} / {_us(row.sync_retrieve)}  {row.note}"
        )
    print(
        f"\n{concurrency:,} concurrent calls: asyncio.gather vs the sync driver on {threads} "
        "threads (ops/s, and this process's CPU µs a call; median of 3 rounds)"
    )
    print(
        f"  {'service':<22} {'retrieve async':>14} {'threads':>9} {'x':>5}"
        f" {'store async':>12} {'threads':>9} {'x':>5}   CPU µs: async / threads"
    )
    for row in rows:
        print(
            f"  {row.name:<22} {_ratio(row.gather_retrieve, row.threads_retrieve, 14)} "
            f"{_ratio(row.gather_store, row.threads_store, 12)}   "
            f"retrieve {row.gather_retrieve.cpu_us:.0f} / {row.threads_retrieve.cpu_us:.0f}, "
            f"store {row.gather_store.cpu_us:.0f} / {row.threads_store.cpu_us:.0f}"
        )
    errors = {
        f"{row.name} {t.name}": t.errors
        for row in rows
        for t in (row.async_store, row.async_retrieve, row.sync_store, row.sync_retrieve)
        if t.errors
    }
    if errors:
        print(f"  errors: {errors}")


def _ratio(rate: Rate, reference: Rate, width: int) -> str:
    return (
        f"{rate.ops_per_second:{width},.0f} {reference.ops_per_second:9,.0f} "
        f"{rate.ops_per_second / reference.ops_per_second:5.2f}"
    )


def _us(timing: Timing) -> str:
    return f"{timing.median * 1e6:7.0f}"


async def run(
    names: Sequence[str], repeat: int, concurrency: int, threads: int, connections: int
) -> list[Row]:
    rows = []
    for name in names:
        try:
            async with SERVICES[name](connections) as service:
                rows.append(await measure(service, repeat, concurrency, threads))
        except Exception as exc:  # a service that does not answer is left out
            print(f"  {name}: left out ({type(exc).__name__}: {exc})"[:300])
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(SERVICES))
    parser.add_argument("--repeat", type=int, default=REPEAT, help="sequential calls per row")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args(argv)
    names = args.services or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        parser.error(f"unknown services {unknown}; choose from {list(SERVICES)}")
    with AwakeCpus() as cpus:
        rows = asyncio.run(
            run(names, args.repeat, args.concurrency, args.threads, args.connections)
        )
    print_table(rows, args.concurrency, args.threads)
    print(f"  ({cpus.note})")


if __name__ == "__main__":
    main()
