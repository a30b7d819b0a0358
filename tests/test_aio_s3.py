"""AsyncS3Storage (storages/aio/s3.py) on the suite's private SeaweedFS S3 gateway.

The kit's async contract (every operation, expiry, compression, chunks, streams, listing,
gathered and cancelled calls, ``async with``, an unreachable port) under a prefix of each
test's own in one bucket of this module's; the kit's twin suite (either adapter reads what
the other stored, the same ``ConfigError`` messages, the async pool built from the blocking
adapter's YAML, nothing unclosed under ``-W error``); over-long keys, object names, expiry
and compression shared, either adapter's purge finding the same records by their metadata;
multipart streams both ways; calls cancelled midway leaving the client working; a
SIGSTOPped server failing calls with ``StorageUnavailable`` within ``operation_timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import S3Server
from test_aio_redis import _fails_within

from selinon_like import ResultNotFound, StorageError
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry
from selinon_like.keys import Key
from selinon_like.retry import NO_RETRY
from selinon_like.testing import (
    AsyncStorageContract,
    AsyncTwinContract,
    AsyncUnreachableServiceContract,
)
from selinon_like.testing.aio import AsyncFactory, no_unclosed_resources
from selinon_like.testing.expiry import MovableClock
from storages.aio.s3 import AsyncS3Storage
from storages.s3 import MIN_PART_SIZE, S3Storage

REPO = Path(__file__).resolve().parent.parent

# Over-long keys: named by their digest, the exact key in the object's first line.
LONG_KEY: Key = ("flow-" + "f" * 300, "task-" + "t" * 400, "id-" + "i" * 600)
LONG_FLOW_KEY: Key = ("F" * 1200, "t", "1")


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> Iterator[str]:
    """One bucket for the module; each test works under a prefix of its own."""
    name = s3_server.new_bucket("aio")
    yield name
    s3_server.delete_bucket(name)


@pytest.fixture
def options(s3_server: S3Server, bucket: str) -> dict[str, Any]:
    """The configuration of both adapters for this test: its own prefix in the bucket."""
    return {
        **s3_server.client_options(),
        "bucket": bucket,
        "prefix": f"t-{uuid.uuid4().hex[:12]}",
        "addressing_style": "path",
    }


def _run(storage: AsyncS3Storage, body: Callable[[AsyncS3Storage], Awaitable[Any]]) -> Any:
    async def scenario() -> Any:
        async with storage:
            return await body(storage)

    return asyncio.run(scenario())


async def _keys(listing: AsyncIterator[Key]) -> list[Key]:
    return sorted([key async for key in listing])


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# A request per record, as in tests/test_s3.py: 250 items still overlap on all 10
# connections, and 8 threads x 25 calls still interleave.
class TestAsyncS3OnSeaweedFS(AsyncStorageContract, AsyncUnreachableServiceContract):
    concurrency_per_thread = 25
    bulk_items = 250
    cancelled_items = 300  # a PUT per item: SeaweedFS takes ~5 ms each

    @pytest.fixture
    def async_storage(self, options: dict[str, Any]) -> AsyncFactory:
        return lambda: AsyncS3Storage(**options)

    @pytest.fixture
    def unreachable_async_storage(self, unreachable_port: int, secret: str) -> AsyncFactory:
        return lambda: AsyncS3Storage(
            bucket="nowhere",
            endpoint_url=f"http://127.0.0.1:{unreachable_port}",
            aws_access_key_id="AKIASELINONLIKETEST",
            aws_secret_access_key=secret,
            aws_session_token=secret,
            region_name="us-east-1",
            connect_timeout=1,
            read_timeout=1,
        )


# -- one layout for both adapters ---------------------------------------------------------------


class TestTwinsOnSeaweedFS(AsyncTwinContract):
    @pytest.fixture
    def blocking_entry(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"import": "storages.s3", "classname": "S3Storage", "configuration": options}

    @pytest.fixture(
        params=[
            {"aws_access_key_id": "only-one"},
            {"aws_session_token": "token"},
            {"endpoint_url": "ftp://host"},
            {"endpoint_url": "http://127.0.0.1:1", "use_ssl": True},
            {"prefix": "p" * 900},
            {"addressing_style": "sideways"},
            {"part_size": 1024},
            {"max_pool_connections": 0},
        ]
    )
    def bad_configuration(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return {"bucket": "b", **request.param}


def test_over_long_keys_object_names_and_the_metadata_purge_are_shared(
    options: dict[str, Any],
) -> None:
    clock = MovableClock()
    formats: dict[str, Any] = {
        "ttl": Expiry(results=60),
        "compression": Compression("gzip", threshold=100),
        "clock": clock,
    }
    blocking = S3Storage(**options)
    blocking.set_record_format(**formats)
    big = {"rows": [{"n": i, "text": "the same words again"} for i in range(200)]}

    async def body(storage: AsyncS3Storage) -> None:
        # Blocking -> async: plain and over-long keys, compressed, an error, a stream.
        assert blocking.store("f", "t", "1", big) == storage.object_key("results", "f", "t", "1")
        blocking.store(*LONG_KEY, {"long": 1})
        blocking.store(*LONG_FLOW_KEY, {"longer": 2})
        blocking.store_error({"arg": 1}, "f", "t", "bad", ValueError("boom"))
        blocking.store_stream("f", "t", "blob", [b"s" * 1000])
        assert await storage.retrieve("f", "t", "1") == big
        assert await storage.retrieve(*LONG_KEY) == {"long": 1}
        assert await storage.retrieve(*LONG_FLOW_KEY) == {"longer": 2}
        assert (await storage.retrieve_error("f", "t", "bad"))["message"] == "boom"
        stream = await storage.retrieve_stream("f", "t", "blob")
        assert b"".join([chunk async for chunk in stream]) == b"s" * 1000
        listed = [("f", "t", "1"), ("f", "t", "blob"), LONG_KEY, LONG_FLOW_KEY]
        assert await _keys(storage.iter_keys()) == sorted(listed)
        assert await _keys(storage.iter_keys(LONG_FLOW_KEY[0])) == [LONG_FLOW_KEY]
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "bad")]
        # Async -> blocking, the same object names.
        assert await storage.store("g", "t", "2", [2]) == blocking.object_key(
            "results", "g", "t", "2"
        )
        await storage.store(*LONG_KEY, {"long": "again"})
        await storage.store_many([("h", "t", str(i), i) for i in range(30)])
        await storage.store_error(None, "g", "t", "1", KeyError("gone"))
        assert await storage.delete_many([LONG_FLOW_KEY, ("f", "t", "missing")]) == 1
        assert blocking.retrieve("g", "t", "2") == [2]
        assert blocking.retrieve(*LONG_KEY) == {"long": "again"}
        assert blocking.retrieve_many([("h", "t", str(i)) for i in range(31)]) == {
            ("h", "t", str(i)): i for i in range(30)
        }
        assert blocking.retrieve_error("g", "t", "1")["exception_type"] == "builtins.KeyError"
        with pytest.raises(ResultNotFound):
            blocking.retrieve(*LONG_FLOW_KEY)
        assert sorted(blocking.iter_keys()) == await _keys(storage.iter_keys())
        # Past the results' ttl: either adapter's purge finds the same 33 by their metadata.
        clock.advance(61)
        with pytest.raises(ResultNotFound):
            await storage.retrieve("g", "t", "2")
        assert await storage.purge_expired(dry_run=True) == 33 == blocking.purge_expired(True)
        assert await storage.purge_expired() == 33
        assert blocking.purge_expired() == 0
        assert sorted(blocking.iter_keys()) == [("f", "t", "blob")]
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "bad"), ("g", "t", "1")]

    storage = AsyncS3Storage(**options)
    storage.set_record_format(**formats)
    blocking.connect()
    try:
        _run(storage, body)
    finally:
        blocking.disconnect()


def test_a_multipart_stream_goes_both_ways(options: dict[str, Any]) -> None:
    data = hashlib.sha256(b"seed").digest() * ((2 * MIN_PART_SIZE + 12345) // 32)
    options = {**options, "part_size": MIN_PART_SIZE}

    async def body(storage: AsyncS3Storage) -> Any:
        # An async iterable of odd-sized chunks, under an over-long key: 3 parts.
        digest = await storage.store_stream(*LONG_KEY, _chunks(data, 1_000_003))
        assert digest.size == len(data) and digest.sha256 == hashlib.sha256(data).hexdigest()
        name = storage.object_key("results", *LONG_KEY)
        head = await storage.client.head_object(Bucket=storage.bucket, Key=name)
        assert head["ETag"].endswith('-3"')
        # A failing stream aborts its upload and leaves the stored object as it was.
        with pytest.raises(StorageError, match="iterable of bytes"):
            await storage.store_stream(*LONG_KEY, [data[:MIN_PART_SIZE], "not bytes"])
        uploads = await storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert [u for u in uploads.get("Uploads", []) if u["Key"] == name] == []
        return digest

    digest = _run(AsyncS3Storage(**options), body)
    blocking = S3Storage(**options)
    blocking.connect()
    try:
        assert b"".join(blocking.retrieve_stream(*LONG_KEY)) == data
        blocking.store_stream("f", "t", "back", [data])
    finally:
        blocking.disconnect()

    async def back(storage: AsyncS3Storage) -> bytes:
        with pytest.raises(ResultNotFound):
            await storage.retrieve_stream("f", "t", "missing")
        return b"".join([c async for c in await storage.retrieve_stream("f", "t", "back")])

    assert _run(AsyncS3Storage(**options), back) == data
    assert digest.size == len(data)


# -- configuration --------------------------------------------------------------------------------


def test_the_same_options_reach_the_driver(options: dict[str, Any]) -> None:
    options = {**options, "connect_timeout": 5, "read_timeout": 10}

    async def body(storage: AsyncS3Storage) -> None:
        config = storage.client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (5, 10)
        assert config.max_pool_connections == 10
        assert config.s3 == {"addressing_style": "path"}
        assert storage.default_operation_timeout() == 15

    _run(AsyncS3Storage(**options), body)


def test_a_disconnected_storage_says_so(options: dict[str, Any]) -> None:
    async def body() -> None:
        storage = AsyncS3Storage(**options)
        assert not storage.is_connected()
        await storage.connect()
        await storage.disconnect()
        await storage.disconnect()  # idempotent
        assert not storage.is_connected()

    asyncio.run(body())


def test_a_missing_bucket_is_named_or_created(s3_server: S3Server, options: dict[str, Any]) -> None:
    name = f"aio-new-{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        with pytest.raises(Exception, match=f"bucket '{name}' does not exist"):
            await AsyncS3Storage(**{**options, "bucket": name}).connect()
        async with AsyncS3Storage(**{**options, "bucket": name, "create_bucket": True}) as s:
            await s.store("f", "t", "1", 1)
            assert await s.retrieve("f", "t", "1") == 1

    with no_unclosed_resources():
        asyncio.run(body())
    s3_server.delete_bucket(name)


# -- cancellation, a hung server, closing ---------------------------------------------------------


def test_calls_cancelled_midway_leave_the_client_working(options: dict[str, Any]) -> None:
    big = b"b" * (8 * 1024 * 1024)

    async def body(storage: AsyncS3Storage) -> None:
        storage.serializer = _RAW
        await storage.store("f", "t", "big", big)
        await storage.store_many([("f", "t", str(i), b"%d" % i) for i in range(40)])
        for delay in (0.0, 0.001, 0.005, 0.02):
            calls = [
                storage.retrieve("f", "t", "big"),
                storage.store("f", "t", "big", big),
                storage.retrieve_many([("f", "t", str(i)) for i in range(40)]),
                storage.store_many([("f", "t", str(i), b"%d" % i) for i in range(40)]),
            ]
            for call in calls:
                task = asyncio.ensure_future(call)
                await asyncio.sleep(delay)
                # On a loaded machine the sleep can outlast a call: a done one has no cancel.
                if task.cancel():
                    with pytest.raises(asyncio.CancelledError):
                        await task
                else:
                    await task
            # The next calls work, and every result is whole.
            assert await storage.retrieve("f", "t", "big") == big
            got = await storage.retrieve_many([("f", "t", str(i)) for i in range(40)])
            assert got == {("f", "t", str(i)): b"%d" % i for i in range(40)}
        # A stream abandoned midway.
        await storage.store_stream("f", "t", "blob", [big])
        chunks = await storage.retrieve_stream("f", "t", "blob")
        first = await anext(chunks)
        assert first and big.startswith(first)
        await chunks.aclose()  # type: ignore[attr-defined]
        assert await storage.retrieve("f", "t", "big") == big

    with no_unclosed_resources():
        _run(AsyncS3Storage(**options), body)


def test_a_thousand_gathered_calls_need_no_retry(options: dict[str, Any]) -> None:
    """Requests wait their turn for a connection before botocore prepares them: gathered by
    the thousand, none times out waiting for the busy event loop (no retry allowed here)."""

    async def body(storage: AsyncS3Storage) -> None:
        storage.retry_policy = NO_RETRY
        await storage.store_many([("f", "t", str(i), i) for i in range(50)])
        got = await asyncio.gather(*(storage.retrieve("f", "t", str(i % 50)) for i in range(1000)))
        assert got == [i % 50 for i in range(1000)]

    _run(AsyncS3Storage(**options), body)


class _Raw:
    """Stores bytes as they are (a cancelled 8 MiB store costs no pickling)."""

    name = "raw"

    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, data: bytes) -> bytes:
        return bytes(data)


_RAW: Any = _Raw()


@pytest.mark.faults
@pytest.mark.timing
def test_a_stopped_server_fails_calls_within_operation_timeout(
    s3_server: S3Server, options: dict[str, Any]
) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. operation_timeout
    (1 s here, shorter than the 10 s read_timeout) ends every call with StorageUnavailable;
    after SIGCONT the next calls work on the same instance."""

    async def body(storage: AsyncS3Storage) -> None:
        await storage.store_many([("f", "t", str(i), i) for i in range(20)])
        # set after the setup: 20 puts may take over a second on a loaded machine
        storage.operation_timeout = 1.0
        storage.retry_policy = NO_RETRY
        assert s3_server.pid is not None
        s3_server.process.signal(signal.SIGSTOP)
        try:
            await _fails_within(storage.retrieve("f", "t", "1"), 2.5)
            await _fails_within(storage.store("f", "t", "new", 1), 2.5)
            await _fails_within(storage.retrieve_many([("f", "t", "1"), ("f", "t", "2")]), 2.5)
            await _fails_within(storage.ping(), 2.5)
            await asyncio.gather(
                *(_fails_within(storage.retrieve("f", "t", str(i)), 2.5) for i in range(12))
            )
        finally:
            s3_server.process.signal(signal.SIGCONT)
        storage.operation_timeout = None
        assert await storage.retrieve("f", "t", "1") == 1
        await storage.store("f", "t", "new", 2)
        assert await storage.retrieve("f", "t", "new") == 2

    with no_unclosed_resources():
        _run(AsyncS3Storage(**options), body)
