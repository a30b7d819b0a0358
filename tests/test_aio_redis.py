"""AsyncRedis (storages/aio/redis.py) on real servers.

The kit's async contract (every operation, expiry, compression, chunks, streams, listing,
gathered and cancelled calls, ``async with``, an unreachable port) on the machine's Redis,
under a key prefix of each test's own (as test_redis.py); the kit's twin suite on the three
topologies (either adapter reads what the other stored, the same ``ConfigError`` messages, the
async pool built from the blocking adapter's YAML, nothing unclosed under ``-W error``); key
names, expiry and the purge script shared; a client given ready; Unix sockets and TLS
(test_redis.py's private servers); the purge script and the purge without scripting; a round
trip with bulk calls on the suite's Redis Cluster and Sentinel setups (a 10,000-key ``MGET``
cancelled midway across the cluster's nodes); and on a private redis-server of this module's
own: 10,000-key
``MGET``/``MSET`` calls cancelled midway (the server SIGSTOPped meanwhile, then at points
spread over a call), a SIGSTOPped server failing calls within their deadline, and a restart
the next calls recover from.

Auto-pipelining (storages/aio/autopipeline.py): the contract again on two connections, so the
kit's concurrent calls go in pipelines; gathered calls of every kind giving what the same calls
one by one give, records byte for byte; a burst's round trips counted by the server and on the
wire (a counting connection class), lone calls going alone, ``auto_pipeline: false``; calls
cancelled while queued and while their pipeline is in flight; a command Redis refuses
(``maxmemory``) failing only its calls; a server lost mid-pipeline (SIGSTOPped, then killed)
failing each call as alone, then retried; ``disconnect()`` with calls queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_redis
from conftest import REDIS_URL, start_or_skip
from servers import (
    RedisClusterSetup,
    RedisSentinelSetup,
    ServerProcess,
    free_ports,
)
from servers.process import find_executable, make_workdir

from selinon_like import ResultNotFound, StorageError, StorageUnavailable
from selinon_like.compression import Compression
from selinon_like.deadline import bounded
from selinon_like.envelope import Expiry
from selinon_like.keys import Key, pack_key
from selinon_like.retry import NO_RETRY, RetryPolicy
from selinon_like.testing import (
    AsyncStorageContract,
    AsyncTwinContract,
    AsyncUnreachableServiceContract,
)
from selinon_like.testing.aio import AsyncFactory, no_unclosed_resources
from selinon_like.testing.expiry import MovableClock
from storages.aio.redis import AsyncRedis
from storages.redis import Redis, _glob_escape

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parent.parent
BULK = 10_000  # keys of the bulk calls cut midway

# test_redis.py's fixtures: the machine's Redis (a redis-py client after a round trip), and a
# key prefix of each test's own under the run's, whose keys are all deleted at the end.
raw, run_prefix, prefix = test_redis.raw, test_redis.run_prefix, test_redis.prefix
# Its private servers: one on a Unix socket only (with a password), one speaking only TLS.
unix_server, tls_server = test_redis.unix_server, test_redis.tls_server


def _run(storage: AsyncRedis, body: Callable[[AsyncRedis], Awaitable[None]]) -> None:
    """``body(storage)`` on a new event loop, connected, closed after."""

    async def main() -> None:
        async with storage:
            await body(storage)

    asyncio.run(main())


async def _keys(listing: AsyncIterator[Key]) -> list[Key]:
    return sorted([key async for key in listing])


# -- the contract ------------------------------------------------------------------------------


class TestAsyncRedisOnServer(AsyncStorageContract, AsyncUnreachableServiceContract):
    @pytest.fixture
    def async_storage(self, prefix: str) -> AsyncFactory:
        return lambda: AsyncRedis(url=REDIS_URL, key_prefix=prefix)

    @pytest.fixture(params=["url", "password"])
    def unreachable_async_storage(
        self, request: pytest.FixtureRequest, unreachable_port: int, secret: str
    ) -> AsyncFactory:
        """The secret in the URL's credentials, or in the ``password`` option."""
        if request.param == "url":
            url = f"redis://worker:{secret}@127.0.0.1:{unreachable_port}/0"
            return lambda: AsyncRedis(url=url, socket_timeout=1, socket_connect_timeout=1)
        return lambda: AsyncRedis(
            host="127.0.0.1",
            port=unreachable_port,
            password=secret,
            socket_timeout=1,
            socket_connect_timeout=1,
        )


# -- one data layout, one configuration ---------------------------------------------------------


class TestTwins(AsyncTwinContract):
    @pytest.fixture(params=["server", "cluster", "sentinel"])
    def blocking_entry(self, request: pytest.FixtureRequest, prefix: str) -> dict[str, Any]:
        configuration: dict[str, Any] = {"key_prefix": prefix}
        if request.param == "server":
            request.getfixturevalue("raw")
            configuration["url"] = REDIS_URL
        elif request.param == "cluster":
            cluster: RedisClusterSetup = request.getfixturevalue("redis_cluster")
            host, port = cluster.startup_nodes[0]
            configuration.update(cluster=True, host=host, port=port)
        else:
            setup: RedisSentinelSetup = request.getfixturevalue("redis_sentinel")
            configuration["sentinels"] = [list(address) for address in setup.sentinel_addresses]
            configuration["service_name"] = setup.service_name
        return {"import": "storages.redis", "classname": "Redis", "configuration": configuration}

    @pytest.fixture(
        params=[
            {"url": "http://x"},
            {"url": "redis://h", "host": "h"},
            {"unix_socket_path": "/s", "port": 1},
            {"cluster": True, "db": 2},
            {"cluster": True, "unix_socket_path": "/s"},
            {"sentinels": "s:1"},
            {"sentinels": [["s", 1]]},
            {"sentinels": [["s", 1]], "service_name": "m", "cluster": True},
            {"service_name": "m"},
            {"ssl_ca_certs": "/ca"},
            {"ssl_cert_reqs": "maybe", "ssl": True},
            {"charset": "utf-8", "encoding": "latin-1"},
            {"encoding": "nope"},
            {"errors": "nope"},
            {"socket_timeout": 0},
            {"port": 70000},
            {"expire": 0},
            {"max_connections": 0},
            {"auto_pipeline": "maybe"},
            {"url": "redis://h/0?password=x"},
            {"colour": "red"},
        ]
    )
    def bad_configuration(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return dict(request.param)


def test_record_names_expiry_and_the_purge_script_are_shared(raw: Any, prefix: str) -> None:
    clock = MovableClock()
    formats: dict[str, Any] = {
        "ttl": Expiry(3600, 7200),
        "compression": Compression("gzip", threshold=100),
        "clock": clock,
    }
    blocking = Redis(url=REDIS_URL, key_prefix=prefix)
    blocking.set_record_format(**formats)
    big = {"rows": [{"n": i, "text": "the same words again"} for i in range(200)]}

    async def body(storage: AsyncRedis) -> None:
        # Blocking -> async: a plain result, a compressed one, bulk, an error record.
        assert blocking.store("f", "t", "1", {"v": 1}) == prefix + "r:" + pack_key("f", "t", "1")
        blocking.store("f", "t", "big", big)
        blocking.store_many([("f", "t", str(i), i) for i in range(2, 6)])
        blocking.store_error({"arg": 1}, "f", "t", "1", ValueError("boom"))
        assert await storage.retrieve("f", "t", "1") == {"v": 1}
        assert await storage.retrieve("f", "t", "big") == big
        found = await storage.retrieve_many([("f", "t", str(i)) for i in range(2, 7)])
        assert found == {("f", "t", str(i)): i for i in range(2, 6)}
        assert (await storage.retrieve_error("f", "t", "1"))["message"] == "boom"
        # Async -> blocking, the same keys and ids.
        assert await storage.store("g", "t", "1", [1]) == prefix + "r:" + pack_key("g", "t", "1")
        await storage.store("g", "t", "big", big)
        await storage.store_many([("g", "t", str(i), {"i": i}) for i in range(2, 6)])
        await storage.store_error(None, "g", "t", "1", KeyError("gone"))
        assert blocking.retrieve("g", "t", "1") == [1]
        assert blocking.retrieve("g", "t", "big") == big
        assert blocking.retrieve_many([("g", "t", "2")]) == {("g", "t", "2"): {"i": 2}}
        assert blocking.retrieve_error("g", "t", "1")["exception_type"] == "builtins.KeyError"
        # Redis frees them itself: PX of the time left, the async adapter's as the blocking one's.
        for name in (pack_key("f", "t", "1"), pack_key("g", "t", "1"), pack_key("g", "t", "3")):
            assert 3_500_000 < raw.pttl(prefix + "r:" + name) <= 3_600_000
        assert 7_100_000 < raw.pttl(prefix + "e:" + pack_key("g", "t", "1")) <= 7_200_000
        assert await _keys(storage.iter_keys()) == sorted(blocking.iter_keys())
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "1"), ("g", "t", "1")]
        # Past the results' ttl by the storages' clock (Redis still holds them): not
        # returned, and the purge script of either adapter removes them.
        clock.advance(3601)
        with pytest.raises(ResultNotFound):
            await storage.retrieve("f", "t", "1")
        assert await storage.purge_expired(dry_run=True) == 12
        assert await storage.purge_expired() == 12
        assert blocking.purge_expired() == 0
        assert await _keys(storage.iter_keys()) == []
        assert sorted(blocking.iter_error_keys()) == [("f", "t", "1"), ("g", "t", "1")]

    storage = AsyncRedis(url=REDIS_URL, key_prefix=prefix)
    storage.set_record_format(**formats)
    blocking.connect()
    try:
        _run(storage, body)
    finally:
        blocking.disconnect()


def test_the_same_options_reach_the_driver() -> None:
    configuration: dict[str, Any] = {
        "url": "redis://worker:pw@cache.internal:6380/3",
        "socket_timeout": 4,
        "socket_connect_timeout": 2,
        "max_connections": 7,
        "key_prefix": "app:",
        "expire": 60,
    }
    blocking, native = Redis(**configuration), AsyncRedis(**configuration)
    assert native._connection_kwargs() == blocking._connection_kwargs()
    assert native._prefixes == blocking._prefixes
    assert native.default_operation_timeout() == blocking.default_operation_timeout() == 6
    assert native._expiry_args(None) == ("EX", 60)
    assert "pw" not in repr(native)


def test_a_client_given_ready_stays_open(prefix: str) -> None:
    import redis.asyncio

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            storage = AsyncRedis.from_client(client, key_prefix=prefix, expire=30)
            async with storage:
                await storage.store("f", "t", "1", 1)
                assert await storage.retrieve("f", "t", "1") == 1
            assert await client.ttl(prefix + "r:" + pack_key("f", "t", "1")) > 0
            assert await client.ping() is True  # left to its owner
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_disconnected_storage_says_so() -> None:
    async def main() -> None:
        storage = AsyncRedis(url=REDIS_URL)
        with pytest.raises(StorageError, match="not connected"):
            await storage.store("f", "t", "1", 1)
        async with storage:
            pass
        with pytest.raises(StorageError, match="not connected"):
            await storage.retrieve("f", "t", "1")

    asyncio.run(main())


@pytest.mark.parametrize("how", ["unix_socket_path", "unix_url", "ssl", "rediss_url"])
def test_unix_sockets_and_tls(
    request: pytest.FixtureRequest, raw: Any, prefix: str, how: str
) -> None:
    """The pools built from ``redis.asyncio``'s connection classes, as the blocking ones."""
    import redis

    password = test_redis.PRIVATE_PASSWORD
    if how.startswith("unix"):
        path: str = request.getfixturevalue("unix_server")
        configuration: dict[str, Any] = (
            {"unix_socket_path": path, "db": 1, "password": password}
            if how == "unix_socket_path"
            else {"url": f"unix://{path}?db=1", "password": password}
        )
        direct: Any = redis.Redis(unix_socket_path=path, password=password, db=1)
    else:
        port, cert = request.getfixturevalue("tls_server")
        configuration = (
            {"host": "127.0.0.1", "port": port, "ssl": True, "ssl_ca_certs": cert}
            if how == "ssl"
            else {"url": f"rediss://127.0.0.1:{port}/0", "ssl_ca_certs": cert}
        )
        direct = redis.Redis(port=port, ssl=True, ssl_ca_certs=cert)

    async def body(storage: AsyncRedis) -> None:
        record_id = await storage.store("f", "t", "1", {"via": how})
        assert await storage.retrieve("f", "t", "1") == {"via": how}
        assert direct.get(record_id) == b'{"via":"%s"}' % how.encode()
        assert raw.get(record_id) is None  # the machine's server never saw it
        await storage.delete("f", "t", "1")

    with direct:
        _run(AsyncRedis(key_prefix=prefix, **configuration), body)


# -- purge ------------------------------------------------------------------------------------


EXPIRED = 1050


@pytest.mark.parametrize("scripts", [True, False], ids=["script", "watch"])
@pytest.mark.parametrize("adapter", ["async", "blocking"])
def test_purge_removes_only_what_expired(prefix: str, scripts: bool, adapter: str) -> None:
    """By the script, and on a server without scripting by ``GETRANGE`` then
    ``WATCH``/``MULTI``/``DEL``: the same steps, driven by each adapter."""
    clock = MovableClock()

    def configured(storage: Any) -> Any:
        storage.set_record_format(ttl=Expiry(3600, None), clock=clock)  # an hour in Redis
        return storage

    async def body(storage: Any) -> None:
        storage._scripts = scripts
        await storage.store_many([("f", "t", str(i), i) for i in range(EXPIRED)])
        clock.advance(3601)
        await storage.store_many([("f", "t", str(i), i) for i in range(EXPIRED, EXPIRED + 10)])
        await storage.store_error(None, "f", "t", "e", ValueError("kept: no ttl"))
        assert await storage.purge_expired(dry_run=True) == EXPIRED
        counts: list[int] = []
        assert await storage.purge_expired(progress=counts.append) == EXPIRED
        assert sum(counts) == EXPIRED and len(counts) == 2  # in batches of 1,000 keys
        assert await _keys(storage.iter_keys()) == sorted(
            ("f", "t", str(i)) for i in range(EXPIRED, EXPIRED + 10)
        )
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "e")]

    if adapter == "async":
        _run(configured(AsyncRedis(url=REDIS_URL, key_prefix=prefix)), body)
    else:
        blocking = configured(Redis(url=REDIS_URL, key_prefix=prefix))
        blocking.connect()
        try:
            asyncio.run(body(_Awaited(blocking)))
        finally:
            blocking.disconnect()


class _Awaited:
    """A blocking storage whose calls can be awaited, so one test body serves both."""

    def __init__(self, storage: Redis) -> None:
        self._storage = storage

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_storage":
            object.__setattr__(self, name, value)
        else:
            setattr(self._storage, name, value)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._storage, name)
        if name in ("iter_keys", "iter_error_keys"):
            return lambda *args: _aiter(method(*args))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


async def _aiter(items: Iterator[Key]) -> AsyncIterator[Key]:
    for item in items:
        yield item


# -- the other topologies -------------------------------------------------------------------------


def test_a_redis_cluster_round_trip(redis_cluster: RedisClusterSetup, prefix: str) -> None:
    host, port = redis_cluster.startup_nodes[0]
    configuration: dict[str, Any] = {
        "cluster": True,
        "host": host,
        "port": port,
        "key_prefix": prefix,
    }
    keys = [("f", "t", str(i)) for i in range(BULK)]
    clock = MovableClock()

    async def body(storage: AsyncRedis) -> None:
        assert await storage.ping() is True
        await storage.store("f", "t", "one", {"v": 1})
        assert await storage.retrieve("f", "t", "one") == {"v": 1}
        # Bulk calls across the hash slots: a pipeline per node, every node's at once.
        await storage.store_many([(*key, int(key[2])) for key in keys])
        assert await storage.retrieve_many(keys) == {key: int(key[2]) for key in keys}
        assert len(await _keys(storage.iter_keys("f"))) == BULK + 1
        # Cancelled midway across the nodes: the connections it sent on are dropped.
        for delay in (0.001, 0.005, 0.02):
            task = asyncio.ensure_future(storage.retrieve_many(keys))
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await storage.recover(RuntimeError("a retry"))  # reads the slot map again
        sample = keys[::500]
        assert await asyncio.gather(*(storage.retrieve(*key) for key in sample)) == [
            int(key[2]) for key in sample
        ]
        assert await storage.delete_many(keys) == BULK
        # The purge script, one call per slot of a batch.
        storage.set_record_format(ttl=Expiry(3600, None), clock=clock)  # an hour in Redis
        await storage.store_many([("p", "t", str(i), i) for i in range(50)])
        clock.advance(3601)
        assert await storage.purge_expired() == 50
        await storage.store_error(None, "f", "t", "one", ValueError("x"))
        assert await _keys(storage.iter_error_keys()) == [("f", "t", "one")]

    with no_unclosed_resources():
        _run(AsyncRedis(**configuration), body)
    blocking = Redis(**configuration)
    blocking.connect()
    try:
        assert blocking.retrieve("f", "t", "one") == {"v": 1}
        assert blocking.retrieve_error("f", "t", "one")["message"] == "x"
    finally:
        client = blocking._client
        for name in list(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000)):
            client.delete(name)  # one by one: a cluster refuses a DEL across slots
        blocking.disconnect()


def test_a_moved_reply_amid_a_clusters_bulk_replies_is_retried(
    redis_cluster: RedisClusterSetup, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One slot believed to be on the wrong primary: its MOVED reply comes amid that node's
    replies; the call is retried on a fresh slot map, and the connections it dropped leave
    no reply behind for the next calls."""
    host, port = redis_cluster.startup_nodes[0]
    items = [("moved", "t", str(i), i) for i in range(900)]
    keys = [item[:3] for item in items]

    async def body(storage: AsyncRedis) -> None:
        storage.retry_policy = RetryPolicy(attempts=3, backoff=0.01)
        await storage.store_many(items)
        manager = storage._client.nodes_manager
        names = [prefix + "r:" + pack_key(*key) for key in keys]
        wrong = storage._client.get_primaries()[0]
        theirs = [
            slot
            for slot, _group in storage._slot_groups(names)
            if manager.slots_cache[slot][0] is not wrong
        ]
        manager.slots_cache[theirs[len(theirs) // 2]] = [wrong]
        changed = [(*item[:3], -item[3]) for item in items]
        with caplog.at_level("WARNING", logger="selinon_like"):
            await storage.store_many(changed)
        assert "MovedError" in caplog.text and "retry 1 of" in caplog.text
        for _ in range(3):
            assert await storage.retrieve_many(keys) == {item[:3]: item[3] for item in changed}
        assert await storage.delete_many(keys) == 900

    with no_unclosed_resources():
        _run(AsyncRedis(cluster=True, host=host, port=port, key_prefix=prefix), body)


def test_a_sentinel_round_trip(redis_sentinel: RedisSentinelSetup, prefix: str) -> None:
    configuration: dict[str, Any] = {
        "sentinels": [list(address) for address in redis_sentinel.sentinel_addresses],
        "service_name": redis_sentinel.service_name,
        "key_prefix": prefix,
        "max_connections": 2,  # the Sentinel pool that waits for a free connection
    }

    async def body(storage: AsyncRedis) -> None:
        assert await storage.ping() is True
        await storage.store_many([("f", "t", str(i), i) for i in range(20)])
        assert await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(20))) == [
            *range(20)
        ]
        assert len(await storage.retrieve_many([("f", "t", str(i)) for i in range(20)])) == 20
        assert await storage.delete_many([("f", "t", str(i)) for i in range(20)]) == 20
        await storage.store("f", "t", "one", "one")

    with no_unclosed_resources():
        _run(AsyncRedis(**configuration), body)
    blocking = Redis(**configuration)
    blocking.connect()
    try:
        assert blocking.retrieve("f", "t", "one") == "one"
    finally:
        blocking.delete("f", "t", "one")
        blocking.disconnect()


# -- a private server: hung, restarted -----------------------------------------------------------


class _PrivateRedis:
    """A redis-server of this module's own, persisting every write (``appendfsync always``),
    that a test may SIGSTOP, SIGCONT, kill and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = make_workdir("aio-redis")
        argv = [
            find_executable("redis-server"),
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
        ]  # fmt: skip
        self.process = ServerProcess("redis", argv, workdir=self.workdir)
        self.start()

    def start(self) -> None:
        import redis

        def ping() -> None:
            with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                client.ping()

        self.process.start()
        self.process.wait_ready(ping, timeout=30)

    def kill(self) -> None:
        self.process.signal(signal.SIGKILL)
        self.process.wait_exit(10)

    def close(self) -> None:
        self.process.signal(signal.SIGCONT)  # a stopped server would not see the SIGTERM
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[_PrivateRedis]:
    server = start_or_skip("a private redis-server", _PrivateRedis)
    try:
        yield server
    finally:
        server.close()


async def _fails_within(call: Awaitable[Any], seconds: float) -> float:
    """How long ``call`` took to raise ``StorageUnavailable``; fails past ``seconds``."""
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(call, seconds * 4)  # a hang fails the test, not the run
    took = time.monotonic() - started
    assert took < seconds, f"StorageUnavailable after {took:.2f} s, not within {seconds} s"
    return took


@pytest.mark.faults
def test_bulk_calls_cancelled_midway_leave_every_connection_in_step(
    private_redis: _PrivateRedis,
) -> None:
    """A 10,000-key ``MGET`` and ``MSET`` (3 MB each way) cancelled while waiting on the
    server (SIGSTOPped, so the cut is midway for sure) by ``task.cancel()`` and
    ``asyncio.wait_for``, then at points spread over how long one takes: the connection whose
    reply was not read, or whose request was half sent, is dropped, so every later call gets
    its own reply, and every result is whole. (Python 3.11's ``asyncio.wait_for``, which
    redis-py sends under, loses a cancellation that lands as a send completes: the call then
    just completes, so the spread cuts are not counted.)"""
    keys = [("f", "t", str(i)) for i in range(BULK)]
    items = [(*key, {"i": i, "pad": "x" * 300}) for i, key in enumerate(keys)]

    async def cut(call: Callable[[], Awaitable[Any]], delay: float) -> bool:
        task = asyncio.ensure_future(call())
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return task.cancelled()

    async def body(storage: AsyncRedis) -> None:
        started = time.monotonic()
        await storage.store_many(items)
        took = time.monotonic() - started
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: storage.retrieve_many(keys),
            lambda: storage.store_many(items),
        ]
        for call in calls:
            private_redis.process.signal(signal.SIGSTOP)
            try:
                assert await cut(call, took + 0.3), "not cancelled while the server was stopped"
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(call(), took + 0.3)
            finally:
                private_redis.process.signal(signal.SIGCONT)
        for fraction in (0, 0.1, 0.3, 0.5, 0.7, 0.9):
            for call in calls:
                await cut(call, took * fraction)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(calls[0](), took * fraction)
        # Every connection the pool hands out answers its own request.
        sample = keys[:: BULK // 50]
        values = await asyncio.gather(*(storage.retrieve(*key) for key in sample))
        assert [value["i"] for value in values] == [int(key[2]) for key in sample]
        found = await storage.retrieve_many(keys)
        assert found == {(f, t, i): result for f, t, i, result in items}
        assert await storage.delete_many(keys) == BULK
        assert await storage.ping() is True

    _run(AsyncRedis(url=private_redis.url), body)


@pytest.mark.faults
@pytest.mark.timing
def test_a_hung_server_fails_calls_within_their_deadline(private_redis: _PrivateRedis) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. ``operation_timeout``
    (which the socket timeouts never exceed) bounds every call; so does an enclosing deadline
    shorter than the driver's socket timeout, which only the adapter's own bound of each
    request (what is left of the deadline) can end in time. After SIGCONT the calls cut
    midway left no reply behind: each call gets its own."""

    async def body(short: AsyncRedis, long: AsyncRedis) -> None:
        await short.store_many([("f", "t", str(i), i) for i in range(20)])
        assert await long.retrieve("f", "t", "1") == 1  # a connection in each pool
        private_redis.process.signal(signal.SIGSTOP)
        try:
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: short.retrieve("f", "t", "1"),
                lambda: short.store("f", "t", "new", 1),
                lambda: short.retrieve_many([("f", "t", "1"), ("f", "t", "2")]),
                lambda: short.ping(),
            ]
            for call in calls:
                await _fails_within(call(), 1.5 + 1.5)
            await asyncio.gather(
                *(_fails_within(short.retrieve("f", "t", str(i)), 3) for i in range(8))
            )

            async def enclosed() -> None:
                with bounded(0.5):  # the driver's socket_timeout is 10 s
                    await long.retrieve("f", "t", "1")

            await _fails_within(enclosed(), 0.5 + 1.5)
        finally:
            private_redis.process.signal(signal.SIGCONT)
        for storage in (short, long):
            values = await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(20)))
            assert values == list(range(20))
            assert await storage.ping() is True

    async def main() -> None:
        short = AsyncRedis(url=private_redis.url, socket_connect_timeout=10)
        short.operation_timeout = 1.5
        short.retry_policy = RetryPolicy(attempts=3, backoff=0.05)
        async with short, AsyncRedis(url=private_redis.url) as long:
            await body(short, long)

    asyncio.run(main())


def test_small_requests_are_written_without_the_drivers_timer(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request of at most 64 KiB on an open connection is written without the driver's
    ``asyncio.wait_for`` (a task and three turns of the event loop a call on Python 3.11);
    a larger one, and the connection's ``socket_timeout``, are as the driver has them."""
    timed: list[float] = []
    wait_for = asyncio.wait_for

    async def counted(awaitable: Awaitable[Any], timeout: float) -> Any:
        timed.append(timeout)
        return await wait_for(awaitable, timeout)

    async def body(storage: AsyncRedis) -> None:
        await storage.store("f", "t", "first", 1)  # opens the connection
        monkeypatch.setattr(asyncio, "wait_for", counted)
        small, large = "s" * 60_000, "l" * 70_000
        await storage.store("f", "t", "small", small)
        assert await storage.retrieve("f", "t", "small") == small
        keys = [("f", "t", "first"), ("f", "t", "small")]
        assert await storage.retrieve_many(keys) == dict(zip(keys, [1, small], strict=True))
        assert timed == []
        await storage.store("f", "t", "large", large)
        assert timed == [3]
        assert await storage.retrieve("f", "t", "large") == large
        pool = storage._client.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert connections
        assert {connection.socket_timeout for connection in connections} == {3}

    _run(AsyncRedis(url=REDIS_URL, key_prefix=prefix, socket_timeout=3), body)


@pytest.mark.faults
def test_the_next_calls_recover_after_a_server_restart(private_redis: _PrivateRedis) -> None:
    async def body(storage: AsyncRedis) -> None:
        await storage.store_many([("f", "t", str(i), i) for i in range(10)])
        # Ten connections in the pool, each broken by the restart.
        assert await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(10))) == [
            *range(10)
        ]
        private_redis.kill()
        storage.retry_policy = NO_RETRY
        with pytest.raises(StorageUnavailable):
            await storage.retrieve("f", "t", "1")  # no server
        # A call made while the server is down waits it out under its retry policy.
        storage.retry_policy = RetryPolicy(attempts=40, backoff=0.1, max_backoff=0.2)
        waiting = asyncio.ensure_future(storage.retrieve("f", "t", "2"))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(private_redis.start)
        assert await waiting == 2  # acknowledged writes survived (appendfsync always)
        storage.retry_policy = RetryPolicy()  # the default: 3 attempts
        for _round in range(3):
            values = await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(10)))
            assert values == list(range(10))
        await storage.store("f", "t", "after", "ok")
        assert await storage.retrieve("f", "t", "after") == "ok"

    storage = AsyncRedis(url=private_redis.url, socket_timeout=2, socket_connect_timeout=1)
    storage.operation_timeout = 30
    _run(storage, body)


# -- auto-pipelining ------------------------------------------------------------------------------


class TestAsyncRedisAutoPipelined(TestAsyncRedisOnServer):
    """The whole contract again on two connections: the kit's concurrent calls (gathered, or
    from eight threads) then go in the adapter's pipelines (storages/aio/autopipeline.py)."""

    @pytest.fixture
    def async_storage(self, prefix: str) -> AsyncFactory:
        return lambda: AsyncRedis(url=REDIS_URL, key_prefix=prefix, max_connections=2)


class _Wire:
    """Each request an AsyncRedis writes on its connections (a lone command, or a pipeline),
    as RESP bytes, and a hook called once one is written, before its reply is read (on the
    task that sent it). Installed on a connected instance before its pool opens a connection."""

    def __init__(self, storage: AsyncRedis) -> None:
        self.requests: list[bytes] = []
        self.after_send: Callable[[bytes], None] | None = None
        pool = storage._client.connection_pool
        wire = self

        class Recorded(pool.connection_class):  # type: ignore[misc, name-defined]
            async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                await super().send_packed_command(command, check_health)
                request = command if isinstance(command, bytes) else b"".join(command)
                wire.requests.append(request)
                if wire.after_send is not None:
                    wire.after_send(request)

        pool.connection_class = Recorded

    def commands(self) -> list[list[list[bytes]]]:
        """Each request's commands, each as its arguments (a new connection's handshake left
        out), in the order they were written."""
        parsed = [_parsed(request) for request in self.requests]
        return [commands for commands in parsed if commands[0][0] not in (b"HELLO", b"CLIENT")]


def _parsed(request: bytes) -> list[list[bytes]]:
    """The commands of a RESP request (arrays of bulk strings)."""
    commands: list[list[bytes]] = []
    at = 0
    while at < len(request):
        end = request.index(b"\r\n", at)
        count, at = int(request[at + 1 : end]), end + 2
        arguments = []
        for _ in range(count):
            end = request.index(b"\r\n", at)
            size, at = int(request[at + 1 : end]), end + 2
            arguments.append(request[at : at + size])
            at += size + 2
        commands.append(arguments)
    return commands


@contextlib.asynccontextmanager
async def _all_connections_held(storage: AsyncRedis) -> AsyncIterator[None]:
    """Every connection of the pool taken for the block: a call made meanwhile queues its
    command; given back on leaving, when the queued commands go as one pipeline."""
    pool = storage._client.connection_pool
    held = [await pool.get_connection() for _ in range(pool.max_connections)]
    try:
        yield
    finally:
        for connection in held:
            await pool.release(connection)


async def _queued(storage: AsyncRedis, count: int) -> None:
    """Once ``count`` commands wait in the instance's queue (the calls' tasks have run)."""
    for _turn in range(100):
        if storage._batches is not None and len(storage._batches._queue) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} commands never queued")


def _name(prefix: str, key: Key, kind: str = "r") -> bytes:
    return f"{prefix}{kind}:{pack_key(*key)}".encode()


@pytest.mark.parametrize("records", ["plain", "ttl-compressed", "expire"])
def test_gathered_calls_return_what_sequential_calls_would(
    raw: Any, prefix: str, records: str
) -> None:
    """The same calls, one after another on one instance and gathered on another of two
    connections (so most go in pipelines): the same results and errors, and Redis holds the
    same records (byte for byte: one frozen clock), with the same expiry. Reads of results,
    missing keys, error records and chunked results (a ``max_value_bytes`` of 80 kB), writes
    of small results, of one over the pipelines' 64 KiB (sent alone), of chunked ones and of
    error records."""
    clock = MovableClock()
    small = {"status": "ok", "items": list(range(12))}
    chunked = {"rows": [f"row {n} of a result cut in chunks" for n in range(6000)]}
    big = {"blob": "z" * 70_000}
    record = {
        "flow_name": "f",
        "task_name": "e",
        "task_id": "old",
        "node_args": {"n": 1},
        "exception_type": "builtins.ValueError",
        "message": "boom",
        "traceback": "Traceback (most recent call last): ...",
        "time": "2026-12-01T00:00:00+00:00",
    }

    def instance(name: str, **configuration: Any) -> AsyncRedis:
        if records == "expire":
            configuration["expire"] = 600
        storage = AsyncRedis(url=REDIS_URL, key_prefix=f"{prefix}{name}:", **configuration)
        if records == "ttl-compressed":
            storage.set_record_format(
                ttl=Expiry(3600, 7200), compression=Compression("gzip", threshold=100), clock=clock
            )
        else:
            storage.set_record_format(clock=clock)
        storage.max_value_bytes = 80_000
        return storage

    async def setup(s: AsyncRedis) -> None:
        await s.store_many([("f", "r", str(i), {"i": i}) for i in range(10)])
        await s.store_many([("f", "w", str(i), {"old": i}) for i in range(5)])
        await s.store("f", "c", "old", chunked)
        await s.store_error_record(dict(record))  # type: ignore[arg-type]

    def calls(s: AsyncRedis) -> list[Callable[[], Awaitable[Any]]]:
        found: list[Callable[[], Awaitable[Any]]] = []
        for i in range(10):
            found.append(lambda i=i: s.retrieve("f", "r", str(i)))
            found.append(lambda i=i: s.retrieve("f", "missing", str(i)))
            found.append(lambda i=i: s.store("f", "n", str(i), {**small, "i": i}))
        found += [lambda i=i: s.store("f", "w", str(i), {"new": i}) for i in range(5)]
        found += [
            lambda: s.store("f", "big", "1", big),
            lambda: s.store("f", "c", "new", chunked),
            lambda: s.retrieve("f", "c", "old"),
            lambda: s.retrieve_error("f", "e", "old"),
            lambda: s.retrieve_error("f", "e", "missing"),
            lambda: s.store_error_record({**record, "task_id": "new"}),  # type: ignore[dict-item]
        ]
        return found

    def outcome(name: str, value: Any) -> Any:
        if isinstance(value, BaseException):
            return type(value).__name__, str(value).replace(f"{prefix}{name}:", "<prefix>")
        return json.loads(json.dumps(value).replace(f"{prefix}{name}:", "<prefix>"))

    written = [("f", "n", str(i)) for i in range(10)] + [("f", "w", str(i)) for i in range(5)]
    written.append(("f", "big", "1"))

    def held(name: str) -> list[tuple[bytes | None, bool]]:
        """What Redis holds under the written keys (results, and the error record), and
        whether each expires."""
        names = [_name(f"{prefix}{name}:", key) for key in written]
        names.append(_name(f"{prefix}{name}:", ("f", "e", "new"), "e"))
        return [(raw.get(n), raw.pttl(n) > 0) for n in names]

    async def main() -> None:
        one_by_one, gathered = instance("seq"), instance("gathered", max_connections=2)
        async with one_by_one, gathered:
            wire = _Wire(gathered)
            await setup(one_by_one)
            await setup(gathered)
            expected = []
            for call in calls(one_by_one):
                try:
                    expected.append(outcome("seq", await call()))
                except Exception as exc:
                    expected.append(outcome("seq", exc))
            wire.requests.clear()
            got = await asyncio.gather(
                *(call() for call in calls(gathered)), return_exceptions=True
            )
            assert [outcome("gathered", value) for value in got] == expected
            assert held("gathered") == held("seq")
            assert any(value is not None and expires for value, expires in held("seq")) is (
                records != "plain"
            )
            for s in (one_by_one, gathered):
                assert await s.retrieve("f", "c", "new") == chunked
                assert await s.retrieve_error("f", "e", "new") == {**record, "task_id": "new"}
            # The calls that found both connections busy (all but the first two, and the
            # store over 64 KiB when not compressed) went in one pipeline.
            carried = [sum(map(_calls_carried, commands)) for commands in wire.commands()]
            assert max(carried) >= len(got) - 3

    asyncio.run(main())


def _calls_carried(command: list[bytes]) -> int:
    """How many calls' commands ``command`` sends: an MGET one per key, an MSET one per pair."""
    if command[0] == b"MGET":
        return len(command) - 1
    if command[0] == b"MSET":
        return (len(command) - 1) // 2
    return 1


def _calls_of(client: Any, *names: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names}


def test_a_burst_goes_in_a_few_round_trips(private_redis: _PrivateRedis) -> None:
    """200 calls gathered on two connections: the first two go alone, the 198 that would wait
    for a connection in one pipeline (one MGET, one MSET, or 198 SET … PX), counted by the
    server (``INFO commandstats``) and on the wire. Calls one at a time go alone, and with
    ``auto_pipeline: false`` every call does."""
    import redis

    count = 200
    keys = [("f", "t", str(i)) for i in range(count)]
    names = [_name("selinon:", key) for key in keys]
    server = redis.Redis.from_url(private_redis.url)

    async def burst(storage: AsyncRedis, wire: _Wire, call: Callable[[Key], Awaitable[Any]]) -> Any:
        server.config_resetstat()
        wire.requests.clear()
        return await asyncio.gather(*(call(key) for key in keys))

    async def main() -> None:
        async with AsyncRedis(url=private_redis.url, max_connections=2) as storage:
            wire = _Wire(storage)
            await storage.store_many([(*key, int(key[2])) for key in keys])
            assert await burst(storage, wire, lambda key: storage.retrieve(*key)) == [*range(count)]
            assert _calls_of(server, "get", "mget") == {"get": 2, "mget": 1}
            assert sorted(wire.commands()) == [
                [[b"GET", names[0]]],
                [[b"GET", names[1]]],
                [[b"MGET", *names[2:]]],
            ]
            await burst(storage, wire, lambda key: storage.store(*key, -int(key[2])))
            assert _calls_of(server, "set", "mset") == {"set": 2, "mset": 1}
            requests = wire.commands()
            assert sorted(commands[0][0] for commands in requests) == [b"MSET", b"SET", b"SET"]
            (pipelined,) = [commands[0] for commands in requests if commands[0][0] == b"MSET"]
            assert pipelined[1::2] == names[2:]
            # Each record with its own PX: a SET each, all 198 in one request.
            storage.set_record_format(ttl=Expiry(3600, None))
            await burst(storage, wire, lambda key: storage.store(*key, int(key[2])))
            assert _calls_of(server, "set", "mset") == {"set": count, "mset": 0}
            requests = sorted(wire.commands(), key=len)
            assert [len(commands) for commands in requests] == [1, 1, count - 2]
            assert [command[1] for command in requests[2]] == names[2:]
            assert all(command[0] == b"SET" and command[3] == b"PX" for command in requests[2])
            assert await storage.retrieve_many(keys) == {key: int(key[2]) for key in keys}
            assert 3_500_000 < server.pttl(names[-1]) <= 3_600_000
            # One at a time: each alone, and no sender was ever needed.
            server.config_resetstat()
            for key in keys[:10]:
                await storage.retrieve(*key)
            assert _calls_of(server, "get", "mget") == {"get": 10, "mget": 0}
            assert storage._batches is not None and not storage._batches._senders
        configuration = {"url": private_redis.url, "max_connections": 2, "auto_pipeline": "false"}
        async with AsyncRedis(**configuration) as storage:
            assert storage._batches is None
            wire = _Wire(storage)
            assert await burst(storage, wire, lambda key: storage.retrieve(*key)) == [*range(count)]
            assert _calls_of(server, "get", "mget") == {"get": count, "mget": 0}
            assert len(wire.commands()) == count

    try:
        asyncio.run(main())
    finally:
        server.close()


def test_calls_cancelled_in_a_pipeline_leave_the_others_and_the_connection_right(
    raw: Any, prefix: str
) -> None:
    """Of calls queued on one busy connection, some are cancelled while queued (left out of
    the pipeline: a store never reaches Redis), some once the pipeline is written (their
    replies are read and dropped: a store did happen); the others get their own results, and
    every later call on the connection its own reply."""

    async def body(storage: AsyncRedis) -> None:
        wire = _Wire(storage)
        await storage.store_many([("f", "t", str(i), i) for i in range(40)])
        async with _all_connections_held(storage):
            reads = [asyncio.ensure_future(storage.retrieve("f", "t", str(i))) for i in range(20)]
            writes = [asyncio.ensure_future(storage.store("f", "w", str(i), i)) for i in range(6)]
            await _queued(storage, 26)
            for task in reads[:5] + writes[:3]:
                task.cancel()  # while queued

            def cut(request: bytes) -> None:
                wire.after_send = None
                for task in reads[5:10] + writes[3:5]:
                    task.cancel()  # the pipeline is written, its replies not read yet

            wire.after_send = cut
        done = await asyncio.gather(*reads, *writes, return_exceptions=True)
        cancelled = reads[:10] + writes[:5]
        assert [task.cancelled() for task in reads + writes] == [
            task in cancelled for task in reads + writes
        ]
        assert done[10:20] == [*range(10, 20)]
        assert done[25] == prefix + "r:" + pack_key("f", "w", "5")
        # The pipeline: the 15 reads and 3 writes not cancelled while queued.
        reads_sent, writes_sent = wire.commands()[-1]
        assert reads_sent == [b"MGET", *[_name(prefix, ("f", "t", str(i))) for i in range(5, 20)]]
        assert writes_sent[0] == b"MSET"
        assert writes_sent[1::2] == [_name(prefix, ("f", "w", str(i))) for i in range(3, 6)]
        stored = [raw.exists(_name(prefix, ("f", "w", str(i)))) for i in range(6)]
        assert stored == [0, 0, 0, 1, 1, 1]
        # The connection is in step: each later call gets its own reply.
        values = await asyncio.gather(*(storage.retrieve("f", "t", str(i)) for i in range(40)))
        assert values == [*range(40)]
        for i in (3, 17, 39):
            assert await storage.retrieve("f", "t", str(i)) == i
        assert await storage.retrieve("f", "w", "4") == 4

    _run(AsyncRedis(url=REDIS_URL, key_prefix=prefix, max_connections=1), body)


def test_a_command_refused_in_a_pipeline_fails_only_its_calls(private_redis: _PrivateRedis) -> None:
    """Over ``maxmemory``, Redis refuses the pipeline's ``MSET`` and answers its ``MGET``: the
    stores fail as a store alone does (``StorageError``, not retried), the reads succeed."""
    import redis

    server = redis.Redis.from_url(private_redis.url)

    async def body(storage: AsyncRedis) -> None:
        wire = _Wire(storage)
        await storage.store_many([("f", "t", str(i), i) for i in range(10)])
        server.config_set("maxmemory", 1)
        try:
            with pytest.raises(StorageError) as alone:
                await storage.store("f", "w", "alone", 1)
            async with _all_connections_held(storage):
                reads = [storage.retrieve("f", "t", str(i)) for i in range(10)]
                writes = [storage.store("f", "w", str(i), i) for i in range(3)]
                calls = [asyncio.ensure_future(call) for call in [*reads, *writes]]
                await _queued(storage, 13)
            done = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            server.config_set("maxmemory", 0)
        assert type(alone.value) is StorageError and "maxmemory" in str(alone.value)
        reason = str(alone.value).partition(" failed: ")[2]
        assert done[:10] == [*range(10)]
        for error in done[10:]:
            assert type(error) is StorageError and str(error).partition(" failed: ")[2] == reason
            assert type(error.__cause__) is type(alone.value.__cause__)
        assert [command[0] for command in wire.commands()[-1]] == [b"MGET", b"MSET"]
        await storage.store("f", "w", "after", "ok")
        assert await storage.retrieve("f", "w", "after") == "ok"

    try:
        _run(AsyncRedis(url=private_redis.url, max_connections=1), body)
    finally:
        server.close()


@pytest.mark.faults
def test_a_server_lost_mid_pipeline_fails_each_call_as_alone_then_retries(
    private_redis: _PrivateRedis,
) -> None:
    """The server stopped, the pipeline written, the server killed before it read it: every
    call of the pipeline fails as a lone call on a lost server does (no retry:
    ``StorageUnavailable`` from the driver's ``ConnectionError``); with a retry policy each
    call is retried on its own and succeeds once the server is back."""
    from redis.exceptions import ConnectionError as DriverConnectionError

    keys = [("f", "t", str(i)) for i in range(8)]
    restarts: list[asyncio.Future[None]] = []

    async def pipelined(storage: AsyncRedis, wire: _Wire, round_: int, restart: bool) -> list[Any]:
        async with _all_connections_held(storage):
            calls = [asyncio.ensure_future(storage.retrieve(*key)) for key in keys]
            calls += [
                asyncio.ensure_future(storage.store("f", "w", f"{round_}-{i}", i)) for i in range(2)
            ]
            await _queued(storage, len(calls))
            private_redis.process.signal(signal.SIGSTOP)

            def lose(request: bytes) -> None:
                wire.after_send = None
                private_redis.kill()  # stopped, so it never read the pipeline
                if restart:  # while the calls retry
                    restarts.append(asyncio.ensure_future(asyncio.to_thread(private_redis.start)))

            wire.after_send = lose
        return await asyncio.gather(*calls, return_exceptions=True)

    async def body(storage: AsyncRedis) -> None:
        wire = _Wire(storage)
        await storage.store_many([(*key, int(key[2])) for key in keys])
        storage.retry_policy = NO_RETRY
        done = await pipelined(storage, wire, 1, restart=False)
        with pytest.raises(StorageUnavailable) as alone:
            await storage.retrieve("f", "t", "1")  # the server is down
        for error in done:
            assert type(error) is StorageUnavailable, error
            assert type(error.__cause__) is type(alone.value.__cause__) is DriverConnectionError
        await asyncio.to_thread(private_redis.start)
        assert await storage.retrieve("f", "t", "1") == 1
        assert len(wire.commands()[-2]) == 2  # the pipeline lost: MGET and MSET
        storage.retry_policy = RetryPolicy(attempts=60, backoff=0.1, max_backoff=0.2)
        done = await pipelined(storage, wire, 2, restart=True)
        await restarts.pop()
        ids = [_name("selinon:", ("f", "w", f"2-{i}")).decode() for i in range(2)]
        assert done == [*range(8), *ids]
        assert await storage.retrieve_many([("f", "w", f"2-{i}") for i in range(2)]) == {
            ("f", "w", "2-0"): 0,
            ("f", "w", "2-1"): 1,
        }

    storage = AsyncRedis(url=private_redis.url, max_connections=1, socket_timeout=5)
    storage.operation_timeout = 60
    _run(storage, body)


@pytest.mark.parametrize("count", [5, 1200])
def test_disconnect_fails_the_calls_still_queued(prefix: str, count: int) -> None:
    """``disconnect()`` with calls queued (more than one pipeline takes, too): each fails (the
    storage is no longer connected), no task or connection is left behind."""

    async def main() -> None:
        storage = AsyncRedis(url=REDIS_URL, key_prefix=prefix, max_connections=1)
        await storage.connect()
        pool = storage._client.connection_pool
        await pool.release(await pool.get_connection())  # opened
        held = await pool.get_connection()
        calls = [asyncio.ensure_future(storage.retrieve("f", "t", str(i))) for i in range(count)]
        await _queued(storage, count)
        for _turn in range(3):
            await asyncio.sleep(0)  # the sender waits for the connection held
        await storage.disconnect()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(error, StorageError) for error in done), done
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no sender left waiting
        assert not held.is_connected

    with no_unclosed_resources():
        asyncio.run(main())
