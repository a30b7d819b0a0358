"""AsyncMongoDB (storages/aio/mongodb.py) on a real MongoDB-compatible server: the one the suite
starts (SecantusDB, tests/servers/mongodb.py) or the one ``SELINON_LIKE_MONGODB_URL`` names.

Every operation awaited; expiry, compression and chunks; the kit's twin suite (either adapter
reads what the other stored, the same ``ConfigError`` messages, the async pool built from the
blocking adapter's YAML, nothing unclosed under ``-W error``); the same document whichever
adapter writes it; each attempt cut at the call's deadline by asyncio, not pymongo (no pymongo
timeout, no socket timeout: a request outside a call within ``socket_timeout_ms``); calls
cancelled midway; and on a private server of its own, a stopped server (StorageUnavailable
within operation_timeout) and a restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from conftest import MONGODB_URL, require_service, start_or_skip
from pymongo import _csot
from servers import MongoServer, start_mongodb

import storages.mongodb
from selinon_like import ConfigError, ResultNotFound, StorageUnavailable, deadline
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry
from selinon_like.keys import key_digest
from selinon_like.retry import NO_RETRY, RetryPolicy
from selinon_like.testing import (
    AsyncStorageContract,
    AsyncTwinContract,
    AsyncUnreachableServiceContract,
)
from selinon_like.testing.aio import AsyncFactory
from storages.aio.mongodb import AsyncMongoDB
from storages.mongodb import MongoDB

pytestmark = pytest.mark.mongodb

REPO = Path(__file__).resolve().parent.parent
SERVER_DB = "selinon_like_test"


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest) -> str:
    """The server under test: ``SELINON_LIKE_MONGODB_URL``'s, else the suite's SecantusDB."""
    if MONGODB_URL is None:
        started: str = request.getfixturevalue("mongodb_server_url")
        return started

    async def ping() -> None:
        # Through the adapter: a skip or failure message has its secrets masked.
        storage = AsyncMongoDB(url=MONGODB_URL, db_name=SERVER_DB, server_selection_timeout_ms=3000)
        storage.retry_policy = NO_RETRY
        async with storage:
            await storage.ping()

    require_service("MongoDB at SELINON_LIKE_MONGODB_URL", lambda: asyncio.run(ping()))
    return MONGODB_URL


@pytest.fixture
def names() -> dict[str, Any]:
    """A collection of this test's own (its errors' collection beside it)."""
    return {"db_name": SERVER_DB, "collection_name": f"aio_{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def blocking(url: str, names: dict[str, Any]) -> Iterator[MongoDB]:
    """The blocking adapter on the test's collection; drops it at the end."""
    storage = MongoDB(url=url, **names)
    storage.connect()
    try:
        yield storage
    finally:
        storage._results.drop()
        storage._errors.drop()
        storage.disconnect()


def _run(
    url: str,
    names: dict[str, Any],
    body: Callable[[AsyncMongoDB], Awaitable[None]],
    **configuration: Any,
) -> None:
    """``body(storage)`` on a connected AsyncMongoDB in a new event loop, then disconnect."""

    async def main() -> None:
        storage = AsyncMongoDB(url=url, **names, **configuration)
        async with storage:
            await body(storage)
        assert not storage.is_connected()

    asyncio.run(main())


async def _keys(iterator: AsyncIterator[Any]) -> list[Any]:
    return sorted([key async for key in iterator])


@contextlib.contextmanager
def _pymongo_socket_leaks() -> Iterator[list[str]]:
    """pymongo's async client abandons the socket of a connection it is opening when the task
    opening it is cancelled (PYTHON-5867, still in 4.20.1): a call cancelled or timed out
    midway, or the server monitor stopped by ``close()``; the garbage collector then warns
    (an error in ``__del__`` under ``-W error``). The block's warnings of unclosed sockets are
    collected and returned; any other unraisable exception goes to the previous hook."""
    leaked: list[str] = []
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        if isinstance(info.object, socket.socket) and isinstance(info.exc_value, ResourceWarning):
            leaked.append(str(info.exc_value))
        else:
            previous(info)

    sys.unraisablehook = hook
    try:
        yield leaked
    finally:
        gc.collect()
        sys.unraisablehook = previous


@pytest.fixture(autouse=True)
def _pymongo_sockets_collected() -> Iterator[None]:
    # Every test here, the stopped-server ones too: a socket pymongo abandoned in one test is
    # otherwise collected, and warned about, in whichever test runs next in the worker.
    with _pymongo_socket_leaks():
        yield


# -- the contract ------------------------------------------------------------------------------


class TestAsyncMongoDBOnServer(AsyncStorageContract, AsyncUnreachableServiceContract):
    # SecantusDB (pure Python) upserts a few hundred documents a second here: the kit's
    # 3,000-item store_many would outlast operation_timeout before it could be cancelled.
    cancelled_items = 300

    @pytest.fixture
    def async_storage(self, url: str, names: dict[str, Any], blocking: MongoDB) -> AsyncFactory:
        return lambda: AsyncMongoDB(url=url, **names)

    @pytest.fixture(params=["url", "password"])
    def unreachable_async_storage(
        self, request: pytest.FixtureRequest, unreachable_port: int, secret: str
    ) -> AsyncFactory:
        """The secret in the URL's credentials, or in the ``password`` option."""
        timeouts: dict[str, Any] = {
            "server_selection_timeout_ms": 1000,
            "connect_timeout_ms": 1000,
            "socket_timeout_ms": 1000,
        }
        if request.param == "url":
            url = f"mongodb://worker:{secret}@127.0.0.1:{unreachable_port}/db"
            return lambda: AsyncMongoDB(url=url, **timeouts)
        return lambda: AsyncMongoDB(
            "db",
            host="127.0.0.1",
            port=unreachable_port,
            username="worker",
            password=secret,
            **timeouts,
        )


# -- every operation ---------------------------------------------------------------------------


def test_every_operation_awaited(url: str, names: dict[str, Any], blocking: MongoDB) -> None:
    blob = bytes(range(256)) * 300

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(blob), 10_000):
            yield blob[start : start + 10_000]

    async def body(storage: AsyncMongoDB) -> None:
        assert await storage.ping() is True
        assert await storage.store("f", "t", "1", {"v": 1}) == key_digest("f", "t", "1")
        assert await storage.retrieve("f", "t", "1") == {"v": 1}
        with pytest.raises(ResultNotFound):
            await storage.retrieve("f", "t", "missing")

        items = [("f", "t", str(i), {"i": i}) for i in range(2, 6)] + [("g", "t", "1", "g")]
        ids = await storage.store_many(items)
        assert ids == [key_digest(f, t, i) for f, t, i, _result in items]
        found = await storage.retrieve_many([("f", "t", "2"), ("f", "t", "5"), ("f", "t", "x")])
        assert found == {("f", "t", "2"): {"i": 2}, ("f", "t", "5"): {"i": 5}}
        assert await _keys(storage.iter_keys("f")) == [("f", "t", str(i)) for i in range(1, 6)]
        assert len(await _keys(storage.iter_keys())) == 6

        await storage.store_error({"arg": 1}, "f", "t", "1", ValueError("boom"))
        record = await storage.retrieve_error("f", "t", "1")
        assert record["exception_type"] == "builtins.ValueError"
        assert record["node_args"] == {"arg": 1}
        copy = {**record, "task_id": "copy"}
        await storage.store_error_record(copy)  # type: ignore[arg-type]
        assert await storage.retrieve_error("f", "t", "copy") == copy
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "1"), ("f", "t", "copy")]
        assert await storage.retrieve("f", "t", "1") == {"v": 1}  # an error hides no result

        await storage.delete("f", "t", "1")
        with pytest.raises(ResultNotFound):
            await storage.retrieve("f", "t", "1")
        with pytest.raises(ResultNotFound):
            await storage.delete("f", "t", "1")
        assert await storage.delete_many([("f", "t", "2"), ("f", "t", "3"), ("f", "t", "x")]) == 2

        digest = await storage.store_stream("f", "t", "blob", chunks())
        assert digest.size == len(blob)
        assert b"".join([c async for c in await storage.retrieve_stream("f", "t", "blob")]) == blob
        with pytest.raises(ResultNotFound):
            await storage.retrieve_stream("f", "t", "none")
        assert await storage.purge_expired(dry_run=True) == 0
        assert await storage.purge_expired() == 0
        # The blocking adapter sees what is left, the stream's chunks hidden.
        assert sorted(blocking.iter_keys("f")) == [
            ("f", "t", "4"),
            ("f", "t", "5"),
            ("f", "t", "blob"),
        ]

    _run(url, names, body)


def test_expiry_by_ttl_the_ttl_index_and_purge_in_batches(
    url: str, names: dict[str, Any], blocking: MongoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storages.mongodb, "PURGE_BATCH", 2)
    now = [time.time()]
    counts: list[int] = []

    async def body(storage: AsyncMongoDB) -> None:
        storage.set_record_format(ttl=Expiry(60, 60), clock=lambda: now[0])
        await storage.store_many([("f", "t", str(i), i) for i in range(4)])
        await storage.store_error(None, "f", "t", "0", KeyError("k"))
        document = await storage._results.find_one({"_id": key_digest("f", "t", "0")})
        assert document["expires_at"].timestamp() == pytest.approx(now[0] + 60, abs=0.01)
        indexes = await storage._errors.index_information()
        assert indexes["selinon_like_expiry"]["expireAfterSeconds"] == 0
        assert sorted(indexes) == ["_id_", "selinon_like_expiry"]  # no index on the key

        now[0] += 120
        with pytest.raises(ResultNotFound):
            await storage.retrieve("f", "t", "0")  # expired, though still stored
        assert await storage.purge_expired(dry_run=True) == 5
        assert await storage.purge_expired(progress=counts.append) == 5
        assert await storage._results.count_documents({}) == 0
        assert await storage._errors.count_documents({}) == 0

    _run(url, names, body)
    assert counts == [2, 2, 1]  # the results in batches of PURGE_BATCH, then the error record


# -- the blocking adapter's documents, both ways -------------------------------------------------


class TestTwins(AsyncTwinContract):
    @pytest.fixture
    def blocking_entry(self, url: str, names: dict[str, Any], blocking: MongoDB) -> dict[str, Any]:
        return {
            "import": "storages.mongodb",
            "classname": "MongoDB",
            "configuration": {"url": url, **names},
        }

    @pytest.fixture(
        params=[
            {"url": "redis://h/db"},
            {"url": "mongodb://h/db", "host": "h"},
            {"host": "h"},
            {"db_name": "d", "collection_name": "c", "errors_collection_name": "c"},
            {"db_name": "d", "password": "p"},
            {"db_name": "d", "port": 0},
            {"url": "mongodb+srv://h:27017/db"},
            {"url": "mongodb://u:secret@h:99999/db"},
        ]
    )
    def bad_configuration(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return dict(request.param)


def test_either_adapter_writes_the_same_document(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    async def body(storage: AsyncMongoDB) -> None:
        record_id = blocking.store("f", "t", "same", {"v": [1, 2]})
        by_sync = blocking._results.find_one({"_id": record_id})
        assert await storage.store("f", "t", "same", {"v": [1, 2]}) == record_id
        assert blocking._results.find_one({"_id": record_id}) == by_sync  # field for field

    _run(url, names, body)


def test_one_document_per_key_whichever_adapter_writes_it(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    # The blocking adapter in 4 threads and the async one in 4 tasks store the same 20 keys
    # at once, one by one and in a store_many with a key repeated: no index but _id, the
    # key's digest, and still one document a key.
    keys = [("f", "t", str(i)) for i in range(20)]

    def sync_writer(n: int) -> None:
        for key in keys if n % 2 else reversed(keys):
            blocking.store(*key, f"sync {n}")
        blocking.store_many([(*key, f"sync {n}") for key in keys] + [(*keys[0], "sync")])

    async def async_writer(storage: AsyncMongoDB, n: int) -> None:
        for key in keys if n % 2 else reversed(keys):
            await storage.store(*key, f"async {n}")
        await storage.store_many([(*key, f"async {n}") for key in keys] + [(*keys[0], "a")])

    async def body(storage: AsyncMongoDB) -> None:
        await storage.store_error(None, "f", "t", "1", ValueError("async"))
        blocking.store_error(None, "f", "t", "1", ValueError("sync"))
        with concurrent.futures.ThreadPoolExecutor(4) as executor:
            threads = [executor.submit(sync_writer, n) for n in range(4)]
            await asyncio.gather(*(async_writer(storage, n) for n in range(4)))
            for thread in threads:
                thread.result()
        assert await storage._results.count_documents({}) == 20
        assert await storage._errors.count_documents({}) == 1
        assert await _keys(storage.iter_keys("f")) == sorted(keys)
        assert sorted(blocking.iter_keys("f")) == sorted(keys)
        found = await storage.retrieve_many(keys)
        assert found == blocking.retrieve_many(keys) and len(found) == 20

    _run(url, names, body)


def test_a_collection_with_the_earlier_unique_index_works_and_keeps_it(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    # As an earlier build's connect() left the collections: a unique index on the key fields.
    for collection in (blocking._results, blocking._errors):
        collection.create_index(
            [("flow_name", 1), ("task_name", 1), ("task_id", 1)],
            unique=True,
            name="selinon_like_key",
        )
    before = [blocking._results.index_information(), blocking._errors.index_information()]
    blocking.store("f", "t", "sync", "by sync")

    async def body(storage: AsyncMongoDB) -> None:
        await storage.store("f", "t", "1", "old")
        await storage.store("f", "t", "1", "new")
        await storage.store_many([("f", "t", "2", 2), ("f", "t", "1", 1), ("g", "t", "1", "g")])
        await storage.store_many([("f", "t", "2", "two"), ("f", "t", "sync", "by async")])
        await storage.store_error(None, "f", "t", "1", ValueError("x"))
        await storage.store_error(None, "f", "t", "1", ValueError("y"))
        assert await storage.retrieve_many([("f", "t", "1"), ("f", "t", "2")]) == {
            ("f", "t", "1"): 1,
            ("f", "t", "2"): "two",
        }
        assert (await storage.retrieve_error("f", "t", "1"))["message"] == "y"
        assert await _keys(storage.iter_keys("f")) == [
            ("f", "t", "1"),
            ("f", "t", "2"),
            ("f", "t", "sync"),
        ]
        assert await _keys(storage.iter_keys("g")) == [("g", "t", "1")]
        assert await storage._results.count_documents({}) == 4
        assert await storage.delete_many([("f", "t", "1"), ("g", "t", "1")]) == 2

    _run(url, names, body)
    assert blocking.retrieve("f", "t", "sync") == "by async"
    assert sorted(blocking.iter_keys()) == [("f", "t", "2"), ("f", "t", "sync")]
    after = [blocking._results.index_information(), blocking._errors.index_information()]
    assert after == before  # neither adapter's connect() touched it


def test_compressed_records_read_back_either_way(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    result = {"text": "compress me " * 2_000}
    gzip = Compression("gzip", threshold=0)

    async def body(storage: AsyncMongoDB) -> None:
        storage.set_record_format(compression=gzip)
        record_id = await storage.store("f", "t", "1", result)
        stored = bytes(blocking._results.find_one({"_id": record_id})["result"])
        assert len(stored) < len(blocking.serializer.dumps(result)) // 10
        assert blocking.retrieve("f", "t", "1") == result
        blocking.set_record_format(compression=gzip)
        blocking.store("f", "t", "2", result)
        assert await storage.retrieve("f", "t", "2") == result

    _run(url, names, body)


# -- configuration, from_client, the pool --------------------------------------------------------


def test_a_refused_url_never_shows_its_password() -> None:
    configuration = {"url": "mongodb://u:secret@h:99999/db"}
    for adapter in (MongoDB, AsyncMongoDB):
        with pytest.raises(ConfigError) as info:
            outcome = adapter(**configuration).connect()
            if outcome is not None:
                asyncio.run(outcome)
        assert "secret" not in str(info.value)


def test_same_options_and_attempt_bound_as_the_blocking_adapter() -> None:
    configuration: dict[str, Any] = {
        "url": "mongodb://127.0.0.1/",
        "db_name": "d",
        "socket_timeout_ms": 6000,
    }
    ours, theirs = AsyncMongoDB(**configuration), MongoDB(**configuration)
    ours.operation_timeout = theirs.operation_timeout = 2.5
    # but no socket timeout: asyncio bounds the async client's requests (see the next tests)
    options = theirs._client_options()
    assert options.pop("socketTimeoutMS") == 2500
    assert ours._client_options() == options
    assert ours.default_operation_timeout() == theirs.default_operation_timeout() == 11
    assert ours.max_value_bytes == theirs.max_value_bytes
    assert MongoDB.async_adapter == "storages.aio.mongodb:AsyncMongoDB"


def test_a_client_given_ready_stays_open(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    with pytest.raises(ConfigError, match="from_client"):
        AsyncMongoDB.from_client(object(), url=url, db_name="d")

    async def main() -> None:
        client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(url)
        try:
            storage = AsyncMongoDB.from_client(client, **names)
            async with storage:
                await storage.store("f", "t", "1", 1)
            assert not storage.is_connected()
            collection = client[names["db_name"]][names["collection_name"]]
            assert await collection.count_documents({}) == 1  # the client still works
            async with storage:
                assert await storage.retrieve("f", "t", "1") == 1
        finally:
            await client.close()

    asyncio.run(main())
    assert blocking.retrieve("f", "t", "1") == 1


# -- the deadline, cancellation, closing ---------------------------------------------------------


class _Recording:
    """A collection whose method calls note the pymongo timeout and the call's time left when
    they start."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.timeouts: list[float | None] = []
        self.left: list[float | None] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.timeouts.append(_csot.get_timeout())
            self.left.append(deadline.remaining())
            return method(*args, **kwargs)

        return call


def test_each_attempt_runs_within_its_own_deadline_and_no_pymongo_timeout(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    async def body(storage: AsyncMongoDB) -> None:
        # Any pymongo timeout sends each request through asyncio.wait_for (a task): none.
        assert storage._client.options.pool_options.socket_timeout is None
        recording = _Recording(storage._results)
        storage._results = recording
        storage.operation_timeout = 7
        await storage.store("f", "t", "1", 1)
        assert await storage.retrieve("f", "t", "1") == 1
        assert deadline.current() is None  # not left set in the calling task
        # Tasks interleaving their calls each see their own deadline.
        await asyncio.gather(*(storage.retrieve("f", "t", "1") for _ in range(10)))
        assert recording.timeouts == [None] * 12
        assert all(t is not None and 0 < t <= 7 for t in recording.left), recording.left
        storage._results = recording.real

    _run(url, names, body)


def test_a_call_cancelled_midway_leaves_the_client_working(
    url: str, names: dict[str, Any], blocking: MongoDB
) -> None:
    big = "y" * 4_000_000  # a reply long enough to be cut in the middle

    async def body(storage: AsyncMongoDB) -> None:
        await storage.store_many(
            [("f", "t", "big", big)] + [("f", "t", str(i), i) for i in range(20)]
        )
        cut = 0
        for delay in (0, 0.0005, 0.001, 0.002, 0.004, 0.008) * 3:
            for call in (
                lambda: storage.retrieve("f", "t", "big"),
                lambda: storage.store("f", "t", "big", big),
            ):
                task = asyncio.ensure_future(call())
                await asyncio.sleep(delay)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                cut += task.cancelled()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(storage.retrieve("f", "t", "big"), 0.0001)
        assert cut > 0, "no call was cancelled midway"
        # Every connection the pool hands out now answers its own request.
        results = await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(20)))
        assert results == list(range(20))
        assert await storage.retrieve("f", "t", "big") == big  # the last write is whole
        assert await storage.ping() is True

    with _pymongo_socket_leaks():  # nothing else may be left open
        _run(url, names, body)


# -- a private server: stopped, then restarted ---------------------------------------------------


@pytest.fixture(scope="module")
def private_server() -> Iterator[MongoServer]:
    """A SecantusDB of this module's own: these tests stop and kill it."""
    with start_or_skip("the MongoDB-compatible server (secantusdb)", start_mongodb) as server:
        yield server


@pytest.mark.timing
def test_a_stopped_server_gives_storage_unavailable_within_operation_timeout(
    private_server: MongoServer, names: dict[str, Any]
) -> None:
    limit = 2.0
    process = private_server.process

    async def timed(call: Awaitable[Any]) -> tuple[float, BaseException | None]:
        began = time.monotonic()
        try:
            await call
        except BaseException as exc:
            return time.monotonic() - began, exc
        return time.monotonic() - began, None

    async def body(storage: AsyncMongoDB) -> None:
        storage.operation_timeout = limit
        storage.retry_policy = RetryPolicy(attempts=5, backoff=0.05, max_backoff=0.2)
        await storage.store("f", "t", "before", 1)
        process.signal(signal.SIGSTOP)
        try:
            outcomes = await asyncio.gather(
                *(timed(storage.store("f", "t", f"hung{n}", n)) for n in range(4)),
                *(timed(storage.retrieve("f", "t", "before")) for _ in range(4)),
                timed(storage.ping()),
            )
        finally:
            process.signal(signal.SIGCONT)
        for elapsed, error in outcomes:
            assert isinstance(error, StorageUnavailable), (elapsed, error)
            assert elapsed < limit + 1.0, (elapsed, error)  # the deadline, not socket_timeout
        assert await storage.retrieve("f", "t", "before") == 1  # resumed: works again

    _run(private_server.url, names, body, socket_timeout_ms=60_000)


@pytest.mark.timing
def test_requests_outside_a_call_end_within_socket_timeout_on_a_stopped_server(
    private_server: MongoServer, names: dict[str, Any]
) -> None:
    process = private_server.process

    async def timed(call: Awaitable[Any]) -> tuple[float, BaseException | None]:
        began = time.monotonic()
        try:
            await call
        except BaseException as exc:
            return time.monotonic() - began, exc
        return time.monotonic() - began, None

    async def body(storage: AsyncMongoDB) -> None:
        storage.operation_timeout = 60
        storage.retry_policy = NO_RETRY
        await storage.store_many([("f", "t", str(n), n) for n in range(3)])
        process.signal(signal.SIGSTOP)
        try:
            # A primitive called with no call's deadline (as a stream's chunks are), and a
            # listing's request: neither outlasts socket_timeout_ms (1 s).
            read = await timed(storage.read("results", ("f", "t", "1")))
            listed = await timed(_keys(storage.iter_keys("f")))
        finally:
            process.signal(signal.SIGCONT)
        elapsed, error = read
        assert isinstance(error, TimeoutError) and elapsed < 2.5, read
        elapsed, error = listed
        assert isinstance(error, StorageUnavailable) and elapsed < 2.5, listed
        assert await _keys(storage.iter_keys("f")) == [("f", "t", str(n)) for n in range(3)]

    _run(private_server.url, names, body, socket_timeout_ms=1000)


def test_the_next_calls_recover_after_a_server_restart(
    private_server: MongoServer, names: dict[str, Any]
) -> None:
    process = private_server.process

    def answers() -> None:
        probe = MongoDB(url=private_server.url, db_name="d", server_selection_timeout_ms=500)
        probe.retry_policy = NO_RETRY
        probe.connect()
        probe.disconnect()

    def restart() -> None:
        process.signal(signal.SIGKILL)
        process.wait_exit(10)
        process.start()
        process.wait_ready(answers, timeout=60)

    async def body(storage: AsyncMongoDB) -> None:
        storage.retry_policy = RetryPolicy(attempts=10, backoff=0.1, max_backoff=1.0)
        await asyncio.gather(*(storage.store("f", "t", str(n), n) for n in range(8)))
        await asyncio.to_thread(restart)
        # Pooled connections to the killed server fail once; the retries open new ones.
        assert await asyncio.gather(
            *(storage.retrieve("f", "t", str(n)) for n in range(8))
        ) == list(range(8))
        await storage.store("f", "t", "after", "after")
        assert await storage.retrieve("f", "t", "after") == "after"

    _run(private_server.url, names, body)
