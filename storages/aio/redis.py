"""``AsyncRedis``: :class:`storages.redis.Redis` for asyncio programs (``redis.asyncio``).

Auto-pipelining. Tasks come by the thousand where threads come by the eight: 1,000 retrieves
gathered on a pool of 16 connections were 1,000 requests, each through the whole of
redis-py's request path (about 75 µs of CPU of the call's 170), 984 of them first waiting
for a connection. Now the calls that would wait queue their command instead, and what is
queued goes as one pipeline on the next connection free: the burst is 16 lone ``GET`` and one
``MGET`` of 984 keys (``MSET``, or 984 ``SET … PX`` with a ``ttl``, for stores): 17
requests instead of 1,000. How, and what each call keeps (its deadline, retries,
cancellation, its own error), is :mod:`storages.aio.autopipeline`'s docstring;
``auto_pipeline: false`` turns it off. A call that finds a connection free sends alone as
before, after one check of the pool (137 ns).

Measured with ``python -m benchmarks --only aio-redis`` (:mod:`benchmarks.bench_aio`: a
~100-byte JSON result, 16 connections, 1,000 calls gathered against the sync pool's same
calls on 8 threads) on 2026-12-02, on the 2-core VM at a load average of 1-5 from other jobs,
three runs of the commit before this feature and of this one taking turns:

====================================  ==================  ==================
1,000 concurrent calls                before              with it
====================================  ==================  ==================
retrieves, async pool ops/s           4,982-5,265         17,007-27,851
retrieves, async/sync (8 threads)     0.56-0.99           2.73-3.91
stores, async pool ops/s              5,083-6,489         22,783-31,743
stores, async/sync (8 threads)        0.62-0.75           3.24-4.95
CPU µs a call, retrieve / store       167-182 / 139-172   34-53 / 31-41
====================================  ==================  ==================

The raw ``redis.asyncio`` client, gathered on its own 16 connections, did 5,912-10,284
retrieves/s at 84-118 µs of CPU a call in the same runs. The sequential rows did not move:
pool/raw 1.11-1.25 for a store and 1.06-1.17 for a retrieve, before and after alike, at this
load (1.07 and 1.02 before, on a quiet machine). At a load average of 8-9 the async/sync ratios fell
to 1.3-2.0 (retrieves) and 0.9-2.2 (stores) over five runs, the sync pool's eight threads
getting more of a busy machine than one event loop, though each async call still cost 32-43
µs of CPU against the sync pool's 68-136.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from selinon_like.aio.records import AsyncRecordStorage, AwaitsSteps
from selinon_like.cutoff import within
from selinon_like.deadline import remaining
from selinon_like.keys import Key, Kind, pack_key
from selinon_like.steps import arun
from storages.aio.autopipeline import SMALL, AutoPipeline
from storages.redis import Command, RedisBase

__all__ = ["AsyncRedis"]

T = TypeVar("T")

# How much later than a call's deadline the driver's own timeouts may end a request before
# the adapter bounds it itself: this share of operation_timeout.
_SLACK = 0.01
# A cluster node's connections when max_connections is not given: as many as the calls
# waiting (redis.asyncio's RedisCluster caps them at 100 per node by default).
_UNCAPPED = 2**31
# The largest request written without a timer (_quick_writes): asyncio's default high-water
# mark of a socket transport's write buffer, at or under which a write never makes the
# writer wait (the buffer is empty between two requests: the reply came after it was read).
_QUICK_WRITE = 64 * 1024


class AsyncRedis(RedisBase, AwaitsSteps, AsyncRecordStorage):
    """Results in Redis through ``redis.asyncio``: the async form of
    :class:`~storages.redis.Redis`, with its YAML ``configuration`` (the same keys, checks and
    ``ConfigError`` messages), its key layout and records (either adapter reads what the
    other stored), its topologies (one server, a Redis Cluster on
    ``redis.asyncio.cluster.RedisCluster``, a master followed through
    ``redis.asyncio.sentinel.Sentinel``), its purge script and its error classification
    (:class:`~storages.redis.RedisBase`, whose steps this class awaits).

    ``connect()`` builds the pool (on a cluster it reads the slot map: one round trip);
    ``disconnect()`` (or leaving ``async with``) closes every connection, the sentinels'
    too. The async pool makes one instance, so one pool, per event loop.

    Deadlines: the driver's ``socket_timeout`` and ``socket_connect_timeout``, never longer
    than ``operation_timeout``, bound each wait as in the blocking adapter; a request whose
    call has less time left than they allow (a retry, a call inside a shorter enclosing
    deadline) is also cut at what is left (:func:`selinon_like.cutoff.within`), so a server
    that stops answering fails the call in time with :class:`~selinon_like.StorageUnavailable`.
    A call cancelled midway (a timeout, ``task.cancel()``) leaves no half-read reply behind:
    ``redis.asyncio`` drops a connection whose reply was not read, and a cluster call drops
    every connection it had sent on; the next call opens a new one.

    Connections: without ``max_connections`` one server (or the Sentinel master) gets a pool
    of at most 100 connections (redis-py's default size) in which a call finding them all
    busy waits for one, up to ``socket_timeout``, instead of failing as redis-py's default
    pool does; tasks, unlike threads, come by the thousand. On a cluster ``max_connections``
    caps each node's connections and a call finding them all busy fails
    (``redis.asyncio``'s ``MaxConnectionsError``, retried as transient) rather than waiting;
    without it a node opens as many as there are calls waiting.

    Auto-pipelining (``auto_pipeline``, on by default; module docstring): while every
    connection of the pool is busy, a call's read of one record and its write of one record
    of at most 64 KiB queue their command instead of waiting for a connection, and what is
    queued goes as one pipeline on the next connection free (:mod:`storages.aio.autopipeline`);
    each call keeps its own deadline, retries and cancellation. A call that finds a
    connection free sends alone, as without it. Not on a cluster, nor on a client given to
    ``from_client``.

    :meth:`~storages.redis.RedisBase.from_client` takes a ready ``redis.asyncio`` client
    (``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster`` with ``cluster=True``,
    or ``fakeredis.FakeAsyncRedis``) that returns bytes; ``disconnect()`` leaves it to its
    owner.
    """

    deadline_in_driver = True  # _bounded(): the driver's timeouts, or within() the rest

    default_max_connections = 100  # (class docstring)
    _driver_wait = math.inf  # until connect(): every request bounded
    _slack = 0.0
    _batches: AutoPipeline | None = None  # (class docstring) from connect() on, when used

    # -- connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        client = self._new_client("redis.asyncio")
        if self.cluster:
            await client.initialize()  # the slot map, as the blocking client reads it when built
        elif client is not self._injected:
            pool = client.connection_pool
            pool.connection_class = _quick_writes(pool.connection_class)
        self._client = client
        self._connected = True
        # The longest the driver itself waits on one request: a connection, or a reply.
        self._driver_wait = math.inf if client is self._injected else max(self._socket_timeouts())
        self._slack = _SLACK * self.operation_timeout
        if self.auto_pipeline and not self.cluster and client is not self._injected:
            self._batches = AutoPipeline(client.connection_pool, self.encoding, self.errors)

    def _make_cluster(self, redis: Any) -> Any:
        kwargs = self._connection_kwargs()
        kwargs.pop("timeout", None)  # no wait for a free connection (class docstring)
        kwargs["max_connections"] = self.max_connections or _UNCAPPED
        return redis.RedisCluster.from_url(
            self._cluster_url(), retry=self._no_retry(redis), **kwargs
        )

    async def disconnect(self) -> None:
        batches, self._batches = self._batches, None
        if batches is not None:
            await batches.close()
        detached = self._detach()
        if detached is None:
            return
        client, sentinels = detached
        # A client given a pool leaves it open when closed: the pool is closed here.
        await (client if self.cluster else client.connection_pool).aclose()
        for sentinel_client in sentinels:
            await sentinel_client.aclose()

    async def recover(self, exc: BaseException) -> None:
        await arun(self._recover_steps())

    async def ping(self) -> bool:
        return bool(await self._bounded(self._client.ping()))

    # -- primitives -----------------------------------------------------------------------

    async def read(self, kind: Kind, key: Key) -> bytes | None:
        name = self._prefixes[kind] + pack_key(*key)
        batches = self._batches
        if batches is not None and batches.busy():
            request = batches.send(("GET", name))
        else:
            request = self._client.execute_command("GET", name)
        data: bytes | None = await self._bounded(request)
        return data

    async def write(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None
    ) -> str:
        name = self._prefixes[kind] + pack_key(*key)
        command = ("SET", name, data, *self._expiry_args(expires_at))
        batches = self._batches
        if batches is not None and type(data) is bytes and len(data) <= SMALL and batches.busy():
            await self._bounded(batches.send(command))
        else:
            await self._bounded(self._client.execute_command(*command))
        return name

    async def remove(self, kind: Kind, key: Key) -> bool:
        name = self._prefixes[kind] + pack_key(*key)
        return bool(await self._bounded(self._client.execute_command("DEL", name)))

    async def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        return await self._bounded(arun(self._read_many_io(kind, keys)))

    async def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        return await self._bounded(arun(self._write_many_io(kind, items, expires_at)))

    async def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        return await self._bounded(arun(self._remove_many_io(kind, keys)))

    # -- the driver calls of the shared steps -----------------------------------------------

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for _slot, command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute()
        return replies

    def _node_connection(self, node: Any) -> tuple[Any, Callable[[Any], Any]]:
        return node.acquire_connection(), node.release

    async def _read_replies(self, connection: Any, count: int) -> list[Any]:
        read = connection.read_response
        return [await read() for _ in range(count)]

    async def _bounded(self, request: Awaitable[T]) -> T:
        """``await request`` within what is left of the running call's deadline (none
        outside a call): past it, ``TimeoutError`` (transient, so the call then raises
        ``StorageUnavailable``), the request cancelled and its connection dropped.

        Only where the driver's own timeouts would not end it in time: a request whose
        deadline is further away than the longer of ``socket_timeout`` and
        ``socket_connect_timeout`` as the pool got them (less 1% of ``operation_timeout``)
        is awaited as it is, since a timer costs more than the adapter's whole share of a
        small call. So a call's first attempt under the default ``operation_timeout`` (their
        sum), or under one no longer than them (they are never longer than it), runs without
        one; a retry, or a call inside a shorter enclosing deadline, runs under one."""
        left = remaining()
        if left is None or left >= self._driver_wait - self._slack:
            return await request
        try:
            return await within(request, left)
        except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11 on
            raise TimeoutError(
                f"Redis did not answer within the {left:.3g} s left of the call's operation_timeout"
            ) from None


def _quick_writes(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` (a ``redis.asyncio`` connection class) whose requests of at most
    :data:`_QUICK_WRITE` bytes on an open connection are written without a timer.

    With a ``socket_timeout``, ``redis.asyncio`` writes every request under
    ``asyncio.wait_for``, which on Python 3.11 runs the write as a task of its own and
    takes three turns of the event loop: measured on the 2-core VM (2,000 sequential
    ``GET`` of 100 bytes, CPUs awake), 92-95 µs a call against 70-75 µs without a timeout,
    a fifth of a small retrieve. A write that small never waits (:data:`_QUICK_WRITE`), so
    no bound is lost: every reply is still read under ``socket_timeout``, a connection is
    opened under ``socket_connect_timeout``, and a larger request and the health check are
    written under the driver's timer."""

    class QuickWrites(connection_class):  # type: ignore[misc]
        socket_timeout: float | None

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            timeout = self.socket_timeout
            if not timeout or not self.is_connected or _size(command) > _QUICK_WRITE:
                await super().send_packed_command(command, check_health)
                return
            if check_health:
                await self.check_health()
            self.socket_timeout = None  # read by send_packed_command alone, until it returns
            try:
                await super().send_packed_command(command, False)
            finally:
                self.socket_timeout = timeout

    QuickWrites.__name__ = QuickWrites.__qualname__ = f"Quick{connection_class.__name__}"
    return QuickWrites


def _size(command: Any) -> int:
    """The bytes of a packed request (bytes, str, or the chunks of ``pack_command``)."""
    if isinstance(command, str):
        command = command.encode()
    if isinstance(command, bytes):
        return len(command)
    return sum(map(len, command))
