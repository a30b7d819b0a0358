"""Which async S3 client for ``selinon_like.aio``: aiobotocore or obstore, measured.

Against a private SeaweedFS (``weed mini``'s S3 gateway, ``tests.servers``), one bucket:

1. Client creation: a new client (aiobotocore: session and client; obstore: ``S3Store``;
   boto3: ``boto3.client``), the median of 5, and aiobotocore's very first one apart (it
   loads the S3 service model).
2. For a ~100-byte JSON value and a 1 MiB one: sequential put / get latency (median µs,
   interleaved blocks, every client on the same keys), then ``--concurrency`` (1,000) puts and
   gets started at once with ``asyncio.gather`` (ops/s from wall time, and this process's
   CPU time a call: the median of 3 rounds after a warm-up for the small value; for 1 MiB
   one round of ``--big-concurrency``, 100 by default: 1,000 are 1 GB a round), beside boto3
   on 8 threads, the sync reference. A client that fails a round (obstore's default request
   timeout is 30 s) says so in its row instead of a rate. aiobotocore runs with its default
   pool (10 connections) and with ``--connections``; obstore with no cap (its pool opens a
   connection per request in flight) and with at most ``--connections`` requests in flight
   (a semaphore).
3. What an adapter needs, per client: conditional PUT (If-None-Match: * and If-Match) and
   GET (If-Match, If-None-Match), object names as the sync adapter writes them (``_`` and
   ``%xx`` tokens) read back from boto3's objects, listing under a prefix past one page of
   1,000, deleting 1,100 objects, the errors of a missing object, of a refused connection
   and of a server that never answers (with a 0.5 s timeout), a clean close (no warning,
   unraisable exception, asyncio error log or socket left behind: what ``-W error`` would
   fail on, with an unclosed aiobotocore client as the control), requests cancelled midway
   (the client then still serves 100 concurrent gets), and a forked child (a new client in
   it, and the parent's).

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_s3_async_clients``
(``--quick`` for small counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import multiprocessing
import os
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.bench_async_raw import (
    SMALL,
    THREADS,
    AsyncCall,
    Rate,
    S3Endpoint,
    async_interleaved,
    gathered,
    obstore_store,
    threaded,
)
from benchmarks.common import AwakeCpus, Timing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from obstore.store import ClientConfig, S3Store
    from types_aiobotocore_s3 import S3Client as AioS3Client

    from tests.servers.s3 import S3Server

MiB = 1024 * 1024
CONCURRENCY = 1000
BIG_CONCURRENCY = 100  # 1 MiB objects: 100 MB a round (--big-concurrency 1000: 1 GB)
CONNECTIONS = 32
SEQUENTIAL_KEYS = 20  # the sequential rows rotate over this many keys
CANCEL = "cancel a 16 MiB get midway, 50 times"
TIMEOUT = 0.5  # seconds: the timeout the error checks configure
SPECIAL_NAMES = [  # names as the sync adapter writes them (selinon_like.keys.encode_part)
    "p/results/_flow/_task/_id",
    "p/results/_a%2fb%20c/_%c3%a9t%e2%80%a6/_x%41%25-_~",
    "p/results/_f/~" + "0" * 64,
]


@dataclass
class Client:
    """An S3 client under test: ``put``/``get``/``close`` are coroutines (boto3's run its
    sync calls in place, for the sequential rows; ``sync_put``/``sync_get`` for threads)."""

    name: str
    put: Callable[[str, bytes], Awaitable[object]]
    get: Callable[[str], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]
    sync_put: Callable[[str, bytes], object] | None = None
    sync_get: Callable[[str], bytes] | None = None
    notes: list[str] = field(default_factory=list)


# -- the clients ----------------------------------------------------------------------------


async def open_aiobotocore(
    server: S3Server,
    *,
    connections: int | None = None,
    timeout: float | None = None,
    endpoint_url: str | None = None,
) -> tuple[AioS3Client, contextlib.AsyncExitStack]:
    """An aiobotocore S3 client (entered; close the stack to close it): path-style requests,
    botocore's retries off, ``connections`` in its pool (aiobotocore's default 10 if None)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "retries": {"total_max_attempts": 1, "mode": "standard"},
    }
    if connections is not None:
        options["max_pool_connections"] = connections
    if timeout is not None:
        options["connect_timeout"] = options["read_timeout"] = timeout
    stack = contextlib.AsyncExitStack()
    client = await stack.enter_async_context(
        get_session().create_client(
            "s3",
            endpoint_url=endpoint_url or server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
            config=AioConfig(**options),
        )
    )
    return client, stack


async def aiobotocore_client(server: S3Server, bucket: str, connections: int | None) -> Client:
    client, stack = await open_aiobotocore(server, connections=connections)

    async def get(key: str) -> bytes:
        response = await client.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    return Client(
        f"aiobotocore ({connections or 10} conns)",
        lambda key, data: client.put_object(Bucket=bucket, Key=key, Body=data),
        get,
        stack.aclose,
    )


def obstore_client(server: S3Server, bucket: str, in_flight: int | None) -> Client:
    import obstore

    store = obstore_store(server, bucket)
    gate: asyncio.Semaphore | contextlib.nullcontext[None] = (
        asyncio.Semaphore(in_flight) if in_flight else contextlib.nullcontext()
    )

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await obstore.put_async(store, key, data)

    async def get(key: str) -> bytes:
        async with gate:
            result = await obstore.get_async(store, key)
            return bytes(await result.bytes_async())

    async def close() -> None:
        pass  # obstore has no close: the store's connections go when it is dropped

    cap = f"{in_flight} in flight" if in_flight else "no cap"
    return Client(f"obstore ({cap})", put, get, close)


def boto3_client(server: S3Server, bucket: str) -> Client:
    client: S3Client = server.client()  # 10 connections in its pool: one for each thread

    def sync_get(key: str) -> bytes:
        with contextlib.closing(client.get_object(Bucket=bucket, Key=key)["Body"]) as body:
            return body.read()

    def sync_put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    async def put(key: str, data: bytes) -> None:
        sync_put(key, data)

    async def get(key: str) -> bytes:
        return sync_get(key)

    async def close() -> None:
        client.close()

    return Client(f"boto3 ({THREADS} threads)", put, get, close, sync_put, sync_get)


# -- 1. creation ------------------------------------------------------------------------------


async def creation_costs(server: S3Server, bucket: str) -> list[tuple[str, float, str]]:
    """(client, median seconds of 5 creations, note)."""
    clock = time.perf_counter
    started = clock()
    _client, stack = await open_aiobotocore(server)
    first = clock() - started
    await stack.aclose()
    samples: dict[str, list[float]] = {"aiobotocore": [], "obstore": [], "boto3": []}
    for _ in range(5):
        started = clock()
        _client, stack = await open_aiobotocore(server)
        samples["aiobotocore"].append(clock() - started)
        await stack.aclose()
        started = clock()
        obstore_store(server, bucket)
        samples["obstore"].append(clock() - started)
        started = clock()
        server.client().close()
        samples["boto3"].append(clock() - started)
    return [
        ("aiobotocore", statistics.median(samples["aiobotocore"]), f"first: {first * 1e3:.0f} ms"),
        ("obstore", statistics.median(samples["obstore"]), ""),
        ("boto3", statistics.median(samples["boto3"]), ""),
    ]


# -- 2. speed ---------------------------------------------------------------------------------


@dataclass
class SpeedRow:
    client: str
    put: Timing
    get: Timing
    gather_get: Rate | str  # or what failed
    gather_put: Rate | str


async def speed(
    clients: Sequence[Client], data: bytes, repeat: int, concurrency: int, rounds: int
) -> list[SpeedRow]:
    """Sequential latency (every client on the same ``SEQUENTIAL_KEYS`` keys), then ``concurrency``
    concurrent gets and puts (boto3: the same calls on its threads), the median of ``rounds``
    rounds, after a warm-up round when there are several."""
    warmup = rounds > 1
    label = f"{len(data)}B"
    keys = [f"{label}/k{i}" for i in range(concurrency)]
    writer = next(c for c in clients if c.sync_put is None)
    await asyncio.gather(*(writer.put(key, data) for key in keys))
    calls: dict[str, AsyncCall] = {}
    for client in clients:
        calls[f"put {client.name}"] = _seq_put(client, keys, data)
        calls[f"get {client.name}"] = _seq_get(client, keys, len(data))
    timings = await async_interleaved(calls, repeat, warmup=5)
    rows = []
    for client in clients:
        gather_put, gather_get = await _concurrent(client, keys, data, rounds, warmup)
        rows.append(
            SpeedRow(
                client.name,
                timings[f"put {client.name}"],
                timings[f"get {client.name}"],
                gather_get,
                gather_put,
            )
        )
    return rows


async def _concurrent(
    client: Client, keys: Sequence[str], data: bytes, rounds: int, warmup: bool
) -> tuple[Rate | str, Rate | str]:
    """Ops/s of ``len(keys)`` puts, then as many gets, all at once (boto3: on its threads)."""
    count = len(keys)
    if client.sync_get is not None and client.sync_put is not None:
        get_i, put_i = _sync_calls(client.sync_get, client.sync_put, keys, data)
        return (
            await _rate(lambda: threaded(put_i, count, THREADS, rounds, warmup)),
            await _rate(lambda: threaded(get_i, count, THREADS, rounds, warmup)),
        )
    get_a, put_a = _checked_get(client, keys, len(data)), _put_i(client, keys, data)
    return (
        await _rate(lambda: gathered(put_a, count, rounds, warmup)),
        await _rate(lambda: gathered(get_a, count, rounds, warmup)),
    )


async def _rate(measure: Callable[[], Rate | Awaitable[Rate]]) -> Rate | str:
    """The rate ``measure`` gives, or what failed (a row, not the run, fails)."""
    try:
        rate = measure()
        return rate if isinstance(rate, Rate) else await rate
    except Exception as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:40]}"


def _sync_calls(
    get: Callable[[str], bytes],
    put: Callable[[str, bytes], object],
    keys: Sequence[str],
    data: bytes,
) -> tuple[Callable[[int], object], Callable[[int], object]]:
    return (lambda i: get(keys[i])), (lambda i: put(keys[i], data))


def _seq_put(client: Client, keys: Sequence[str], data: bytes) -> AsyncCall:
    return lambda i: client.put(keys[i % SEQUENTIAL_KEYS], data)


def _seq_get(client: Client, keys: Sequence[str], size: int) -> AsyncCall:
    return _checked_get(client, keys[:SEQUENTIAL_KEYS], size)


def _put_i(client: Client, keys: Sequence[str], data: bytes) -> AsyncCall:
    return lambda i: client.put(keys[i], data)


def _checked_get(client: Client, keys: Sequence[str], size: int) -> AsyncCall:
    async def call(i: int) -> None:
        if len(await client.get(keys[i % len(keys)])) != size:
            raise ValueError(f"{client.name}: wrong size for {keys[i % len(keys)]}")

    return call


# -- 3. behaviour -----------------------------------------------------------------------------


def _outcome(exc: BaseException | None, started: float | None = None) -> str:
    took = f" after {time.perf_counter() - started:.2f} s" if started is not None else ""
    if exc is None:
        return f"succeeded{took}"
    # obstore's messages end in the Rust error's debug dump: its "kind: ..." lines say what
    # happened (Timeout, Connect), the first line where
    text = " ".join(str(exc).split())
    kinds = [part.split(",")[0] for part in text.split("kind: ")[1:]]
    detail = text[:50] + (f" [kind: {', '.join(kinds)}]" if kinds else "")
    return f"{type(exc).__module__}.{type(exc).__qualname__}{took}: {detail!r}"


async def _try(call: Awaitable[object], timed: bool = False) -> str:
    started = time.perf_counter() if timed else None
    try:
        await call
    except Exception as exc:
        return _outcome(exc, started)
    return _outcome(None, started)


async def aiobotocore_checks(server: S3Server, bucket: str, sync: S3Client) -> dict[str, str]:
    from botocore.exceptions import ClientError

    found: dict[str, str] = {}
    client, stack = await open_aiobotocore(server)
    async with stack:
        etag = (await client.put_object(Bucket=bucket, Key="c/x", Body=b"1"))["ETag"]
        put = client.put_object
        found["PUT If-None-Match: * on an existing object"] = await _try(
            put(Bucket=bucket, Key="c/x", Body=b"2", IfNoneMatch="*")
        )
        found["PUT If-Match: a stale ETag"] = await _try(
            put(Bucket=bucket, Key="c/x", Body=b"2", IfMatch='"0123"')
        )
        found["PUT If-Match: the current ETag"] = await _try(
            put(Bucket=bucket, Key="c/x", Body=b"2", IfMatch=etag)
        )
        etag = (await client.head_object(Bucket=bucket, Key="c/x"))["ETag"]
        found["GET If-Match: a stale ETag"] = await _try(
            client.get_object(Bucket=bucket, Key="c/x", IfMatch='"0123"')
        )
        found["GET If-None-Match: the current ETag"] = await _try(
            client.get_object(Bucket=bucket, Key="c/x", IfNoneMatch=etag)
        )

        async def get(key: str) -> bytes:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data

        found["sync adapter's names: boto3 wrote, read, listed"] = await _names(
            sync, bucket, get, _aiobotocore_lister(client, bucket)
        )
        names = [f"list/many/{i:05d}" for i in range(1100)]
        await _gather_bounded([put(Bucket=bucket, Key=n, Body=b"x") for n in names])
        await put(Bucket=bucket, Key="list/manyother", Body=b"x")
        listed = await _aiobotocore_lister(client, bucket)("list/many/")
        pages = 0
        async for _page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="list/many/"
        ):
            pages += 1
        found["list 1,100 under a prefix (paginator)"] = (
            f"{len(listed)} listed in {pages} pages, sibling 'list/manyother' "
            f"{'excluded' if 'list/manyother' not in listed else 'INCLUDED'}"
        )
        started = time.perf_counter()
        failed = 0
        for start in range(0, len(names), 1000):
            response = await client.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": n} for n in names[start : start + 1000]]},
            )
            failed += len(response.get("Errors", []))
        left = await _aiobotocore_lister(client, bucket)("list/many/")
        found["delete 1,100 (DeleteObjects, 2 requests)"] = (
            f"{time.perf_counter() - started:.2f} s, {failed} failed, {len(left)} left; "
            "per-object ETag conditions: DeleteObjects' ETag field"
        )
        try:
            await client.get_object(Bucket=bucket, Key="c/missing")
            found["GET a missing object"] = "no error"
        except ClientError as exc:
            found["GET a missing object"] = (
                f"{_outcome(exc)[:60]} (Error.Code {exc.response['Error']['Code']})"
            )
    client_under_test = await aiobotocore_client(server, bucket, None)
    try:
        found[CANCEL] = await cancel_check(client_under_test, "cancel/big", 16 * MiB)
    finally:
        await client_under_test.close()
    found["connection refused"] = await _aiobotocore_error(server, _closed_port())
    with _black_hole() as port:
        found[f"server never answers, {TIMEOUT} s timeouts"] = await _aiobotocore_error(
            server, port, timeout=TIMEOUT
        )
    return found


def _aiobotocore_lister(client: AioS3Client, bucket: str) -> Callable[[str], Awaitable[list[str]]]:
    async def names(prefix: str) -> list[str]:
        found = []
        async for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            found += [entry["Key"] for entry in page.get("Contents", [])]
        return found

    return names


async def _aiobotocore_error(server: S3Server, port: int, timeout: float | None = None) -> str:
    client, stack = await open_aiobotocore(
        server, endpoint_url=f"http://127.0.0.1:{port}", timeout=timeout or TIMEOUT
    )
    async with stack:
        return await _try(client.get_object(Bucket="b", Key="k"), timed=True)


async def obstore_checks(server: S3Server, bucket: str, sync: S3Client) -> dict[str, str]:
    import obstore

    found: dict[str, str] = {}
    store = obstore_store(server, bucket)
    etag = (await obstore.put_async(store, "c/x", b"1"))["e_tag"]
    found["PUT If-None-Match: * on an existing object"] = await _try(
        obstore.put_async(store, "c/x", b"2", mode="create")
    )
    found["PUT If-Match: a stale ETag"] = await _try(
        obstore.put_async(store, "c/x", b"2", mode={"e_tag": '"0123"'})
    )
    found["PUT If-Match: the current ETag"] = await _try(
        obstore.put_async(store, "c/x", b"2", mode={"e_tag": etag})
    )
    etag = (await obstore.head_async(store, "c/x"))["e_tag"]
    found["GET If-Match: a stale ETag"] = await _try(
        obstore.get_async(store, "c/x", options={"if_match": '"0123"'})
    )
    found["GET If-None-Match: the current ETag"] = await _try(
        obstore.get_async(store, "c/x", options={"if_none_match": etag})
    )

    async def get(key: str) -> bytes:
        return bytes(await (await obstore.get_async(store, key)).bytes_async())

    async def lister(prefix: str) -> list[str]:
        return [entry["path"] async for page in obstore.list(store, prefix) for entry in page]

    found["sync adapter's names: boto3 wrote, read, listed"] = await _names(
        sync, bucket, get, lister
    )
    names = [f"list/many/{i:05d}" for i in range(1100)]
    await _gather_bounded([obstore.put_async(store, n, b"x") for n in names])
    await obstore.put_async(store, "list/manyother", b"x")
    listed = await lister("list/many/")
    by_string = await lister("list/many")
    found["list 1,100 under a prefix (ListStream)"] = (
        f"{len(listed)} listed, sibling 'list/manyother' "
        f"{'excluded' if 'list/manyother' not in listed else 'INCLUDED'}; prefix 'list/many' "
        f"(no slash) gives {len(by_string)}: prefixes are whole path segments"
    )
    started = time.perf_counter()
    await obstore.delete_async(store, names)
    left = await lister("list/many/")
    found["delete 1,100 (delete_async of a list: DeleteObjects)"] = (
        f"{time.perf_counter() - started:.2f} s, {len(left)} left; no per-object ETag "
        "condition, no per-object errors (one exception)"
    )
    found["GET a missing object"] = await _try(obstore.get_async(store, "c/missing"))
    found[CANCEL] = await cancel_check(obstore_client(server, bucket, None), "cancel/big", 16 * MiB)
    found["connection refused"] = await _obstore_error(server, _closed_port())
    with _black_hole() as port:
        found[f"server never answers, {TIMEOUT} s timeouts"] = await _obstore_error(
            server, port, {"timeout": f"{int(TIMEOUT * 1000)}ms", "connect_timeout": "500ms"}
        )
    return found


async def _obstore_error(server: S3Server, port: int, options: ClientConfig | None = None) -> str:
    import obstore

    elsewhere = Endpoint(f"http://127.0.0.1:{port}", server.access_key, server.secret_key)
    return await _try(obstore.get_async(obstore_store(elsewhere, "b", options), "k"), timed=True)


@dataclass(frozen=True)
class Endpoint:
    """An :class:`~benchmarks.bench_async_raw.S3Endpoint` that pickles (for a spawned child)."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


async def _gather_bounded(calls: Sequence[Awaitable[object]], limit: int = 64) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[object]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def _names(
    sync: S3Client,
    bucket: str,
    get: Callable[[str], Awaitable[bytes]],
    lister: Callable[[str], Awaitable[list[str]]],
) -> str:
    """boto3 writes objects under the sync adapter's kind of names; the client must read each
    by the same name and list them with the same names."""
    for name in SPECIAL_NAMES:
        sync.put_object(Bucket=bucket, Key=name, Body=name.encode())
    read = [await get(name) == name.encode() for name in SPECIAL_NAMES]
    listed = sorted(await lister("p/results/"))
    same = listed == sorted(SPECIAL_NAMES)
    return f"{sum(read)}/{len(read)} read back, listing {'identical' if same else listed}"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: a connection to it is refused


@contextlib.contextmanager
def _black_hole() -> Iterator[int]:
    """A loopback port whose listener accepts connections (in the kernel's backlog) and never
    answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


# -- clean close, cancellation ----------------------------------------------------------------


def _sockets() -> set[str]:
    """This process's open sockets (``socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:"):
                found.add(link)
    return found


async def leftovers(use: Callable[[], Awaitable[None]]) -> str:
    """What ``use`` (which makes a client, uses it, and closes it or not) leaves behind once it
    is gone: warnings, unraisable exceptions, asyncio error-log messages, open sockets."""
    found: list[str] = []
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: found.append(str(context.get("message"))))
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: found.append(f"unraisable {u.exc_type.__name__}")
    for _ in range(3):  # what earlier work left to collect is not counted
        gc.collect()
        await asyncio.sleep(0.1)
    before = _sockets()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await use()
            quiet = 0
            for _ in range(20):  # until two rounds in a row find nothing new
                seen = len(found) + len(caught)
                gc.collect()
                await asyncio.sleep(0.1)
                quiet = quiet + 1 if len(found) + len(caught) == seen else 0
                if quiet == 2:
                    break
        found += [f"{w.category.__name__}: {str(w.message)[:60]}" for w in caught]
    finally:
        loop.set_exception_handler(handler)
        sys.unraisablehook = hook
    opened = len(_sockets() - before)  # opened during ``use`` and still open
    summary = f"{len(found)} warnings/errors, {opened} sockets left"
    return summary + (f" ({'; '.join(sorted(set(found)))[:160]})" if found else "")


async def close_checks(server: S3Server, bucket: str) -> dict[str, dict[str, str]]:
    import obstore

    leaked: list[Any] = []

    async def aio(close: bool) -> None:
        client, stack = await open_aiobotocore(server)
        await asyncio.gather(*(client.head_bucket(Bucket=bucket) for _ in range(20)))
        if close:
            await stack.aclose()
        else:
            stack.pop_all()  # forgotten: the client is never closed
            # aiohttp's connector outlives the session while its connections stay open (it
            # would warn later, outside the check): kept aside to be closed afterwards.
            sessions = client._endpoint.http_session._sessions.values()  # type: ignore[attr-defined]
            leaked.extend(session.connector for session in sessions)

    async def obs() -> None:
        store = obstore_store(server, bucket)
        await asyncio.gather(*(obstore.put_async(store, f"close/{i}", b"x") for i in range(20)))
        del store

    found = {
        "aiobotocore": {
            "closed (async with)": await leftovers(lambda: aio(True)),
            "never closed (control)": await leftovers(lambda: aio(False)),
        },
        "obstore": {"dropped (no close method)": await leftovers(obs)},
    }
    for connector in leaked:
        await connector.close()
    return found


async def cancel_check(client: Client, key: str, size: int, times: int = 50) -> str:
    """Cancel ``times`` gets of a ``size``-byte object at 0.5 to 10 ms in, then check 100
    concurrent gets of it all answer within 20 s."""
    cancelled = 0
    for i in range(times):
        try:
            await asyncio.wait_for(client.get(key), timeout=0.0005 + 0.0002 * i)
        except asyncio.TimeoutError:
            cancelled += 1
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.get(key) for _ in range(100))), timeout=20
        )
    except Exception as exc:
        return f"{cancelled}/{times} cancelled midway; then 100 gets: {_outcome(exc)}"
    good = sum(len(result) == size for result in results)
    return f"{cancelled}/{times} cancelled midway; then 100 concurrent gets: {good} whole"


# -- fork ---------------------------------------------------------------------------------------


def fork_checks(server: S3Server, bucket: str) -> dict[str, str]:
    """The parent uses a client, forks; the child (a) makes a new client and gets an object,
    (b) uses the parent's client (obstore only: aiobotocore's is bound to the parent's loop)."""
    import obstore

    async def obstore_get(store: S3Store) -> None:
        await obstore.get_async(store, "fork/x")

    async def aiobotocore_get() -> None:
        client, stack = await open_aiobotocore(server)
        async with stack:
            response = await client.get_object(Bucket=bucket, Key="fork/x")
            async with response["Body"] as body:
                await body.read()

    def obstore_sync_get(store: S3Store) -> None:
        obstore.get(store, "fork/x").bytes()

    async def obstore_put(store: S3Store) -> None:
        await obstore.put_async(store, "fork/x", b"x")

    parent_store = obstore_store(server, bucket)
    asyncio.run(obstore_put(parent_store))
    asyncio.run(aiobotocore_get())  # the parent has used both clients
    endpoint = Endpoint(server.endpoint_url, server.access_key, server.secret_key, server.region)
    return {
        "aiobotocore, new client in the child": _in_child(lambda: asyncio.run(aiobotocore_get())),
        "obstore, new store in the child": _in_child(
            lambda: asyncio.run(obstore_get(obstore_store(server, bucket)))
        ),
        "obstore, the parent's store in the child": _in_child(
            lambda: asyncio.run(obstore_get(parent_store))
        ),
        "obstore, sync get of a new store in the child": _in_child(
            lambda: obstore_sync_get(obstore_store(server, bucket))
        ),
        "obstore, parent made a store, no request": _in_fresh_parent(endpoint, bucket),
    }


def _in_fresh_parent(endpoint: Endpoint, bucket: str) -> str:
    """The fork check in a fresh interpreter that makes an ``S3Store`` but sends nothing
    before forking (obstore starts its Rust runtime at the first request)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_fresh_parent, args=(endpoint, bucket, results))
    process.start()
    try:
        outcome: str = results.get(timeout=60)
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
    return outcome


def _fresh_parent(endpoint: S3Endpoint, bucket: str, results: Any) -> None:
    import obstore

    async def get(store: S3Store) -> None:
        await obstore.get_async(store, "fork/x")

    obstore_store(endpoint, bucket)  # made, not used
    first = _in_child(lambda: asyncio.run(get(obstore_store(endpoint, bucket))))
    asyncio.run(get(obstore_store(endpoint, bucket)))  # now the parent has sent a request
    after = _in_child(lambda: asyncio.run(get(obstore_store(endpoint, bucket))))
    results.put(f"child {first}; once the parent sent a request, child {after}")


def _in_child(work: Callable[[], None], timeout: float = 15.0) -> str:
    def child() -> None:
        try:
            work()
        except BaseException:
            os._exit(1)
        os._exit(0)

    context = multiprocessing.get_context("fork")
    process = context.Process(target=child)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the point
        process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return f"HUNG (killed after {timeout:.0f} s)"
    took = time.perf_counter() - started
    return f"{'works' if process.exitcode == 0 else 'FAILED'} ({took:.2f} s)"


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Settings:
    small_repeat: int = 500
    big_repeat: int = 50
    concurrency: int = CONCURRENCY
    big_concurrency: int = BIG_CONCURRENCY
    connections: int = CONNECTIONS
    speed: bool = True


async def measure_all(server: S3Server, settings: Settings) -> None:
    bucket = server.new_bucket("bench-clients")
    if settings.speed:
        print("\nClient creation (median of 5)")
        for name, seconds, note in await creation_costs(server, bucket):
            print(f"  {name:<12} {seconds * 1e3:8.2f} ms  {note}")
        clients = [
            await aiobotocore_client(server, bucket, None),
            await aiobotocore_client(server, bucket, settings.connections),
            obstore_client(server, bucket, None),
            obstore_client(server, bucket, settings.connections),
            boto3_client(server, bucket),
        ]
        try:
            cases = [
                (f"{len(SMALL)}-byte JSON", SMALL, settings.small_repeat, settings.concurrency, 3),
                ("1 MiB", os.urandom(MiB), settings.big_repeat, settings.big_concurrency, 1),
            ]
            for label, data, repeat, concurrency, rounds in cases:
                rows = await speed(clients, data, repeat, concurrency, rounds)
                _print_speed(label, rows, repeat, concurrency, rounds, len(data))
        finally:
            for client in clients:
                await client.close()
    sync = server.client()
    try:
        sync.put_object(Bucket=bucket, Key="cancel/big", Body=os.urandom(16 * MiB))
        checks = {
            "aiobotocore": await aiobotocore_checks(server, bucket, sync),
            "obstore": await obstore_checks(server, bucket, sync),
        }
    finally:
        sync.close()
    closing = await close_checks(server, bucket)
    for name, outcomes in closing.items():
        for what, outcome in outcomes.items():
            checks[name][f"clean close: {what}"] = outcome
    print("\nWhat an adapter needs")
    for name, found in checks.items():
        print(f"  {name}")
        for check, outcome in found.items():
            print(f"    {check:<48} {outcome}")


def _print_speed(
    label: str, rows: Sequence[SpeedRow], repeat: int, concurrency: int, rounds: int, size: int
) -> None:
    runs = "median of 3 rounds" if rounds == 3 else "one round"
    print(
        f"\n{label}: sequential latency (median µs of {repeat}), {concurrency:,} concurrent "
        f"(ops/s, {runs}; boto3: on {THREADS} threads)"
    )
    mb = size >= MiB // 2
    print(
        f"  {'client':<28} {'put µs':>9} {'get µs':>9} {'put ops/s':>10} {'get ops/s':>10}"
        + (f" {'put MB/s':>9} {'get MB/s':>9}" if mb else "")
        + "  CPU µs a call, put / get"
    )
    for row in rows:
        line = f"  {row.client:<28} {row.put.median * 1e6:9.0f} {row.get.median * 1e6:9.0f}"
        rates = [rate for rate in (row.gather_put, row.gather_get) if isinstance(rate, Rate)]
        if len(rates) == 2:
            line += "".join(f" {rate.ops_per_second:10,.0f}" for rate in rates)
            if mb:
                line += "".join(f" {rate.ops_per_second * size / MiB:9,.0f}" for rate in rates)
            line += f"  {rates[0].cpu_us:.0f} / {rates[1].cpu_us:.0f}"
        failed = [
            f"{op} failed: {rate}"
            for op, rate in (("put", row.gather_put), ("get", row.gather_get))
            if isinstance(rate, str)
        ]
        errors = row.put.errors + row.get.errors
        notes = failed + ([f"{errors} sequential errors"] if errors else [])
        print(line + (f"  ({'; '.join(notes)})" if notes else ""))


def main(argv: Sequence[str] | None = None) -> None:
    from tests.servers import start_s3

    parser = argparse.ArgumentParser(description="aiobotocore vs obstore on a private SeaweedFS")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--big-concurrency", type=int, default=BIG_CONCURRENCY)
    parser.add_argument("--checks-only", action="store_true", help="no speed measurements")
    args = parser.parse_args(argv)
    missing = [
        name for name in ("aiobotocore", "obstore") if importlib.util.find_spec(name) is None
    ]
    if missing:
        # Neither is in the project's extras until one is chosen; aiobotocore pins botocore.
        parser.exit(
            2,
            f"{', '.join(missing)} not installed; the measured pair: pip install "
            "aiobotocore==3.10.0 boto3==1.43.117 obstore==0.12.1\n",
        )
    settings = Settings(
        big_concurrency=args.big_concurrency,
        connections=args.connections,
        speed=not args.checks_only,
    )
    if args.quick:
        settings = Settings(50, 10, 100, SEQUENTIAL_KEYS, args.connections, settings.speed)
    with start_s3() as server, AwakeCpus() as cpus:
        asyncio.run(measure_all(server, settings))
        print("\nA forked child (the parent used its clients first)")
        for check, outcome in fork_checks(server, server.new_bucket("bench-fork")).items():
            print(f"  {check:<45} {outcome}")
        print(f"  ({cpus.note})")
    _versions()


def _versions() -> None:
    from importlib.metadata import version

    names = ("aiobotocore", "botocore", "boto3", "aiohttp", "obstore")
    print("\n" + ", ".join(f"{name} {version(name)}" for name in names))


if __name__ == "__main__":
    main()
