"""``AutoPipeline``: the single-key commands of concurrent calls that would wait for a Redis
connection, sent together as one pipeline (the technique of ioredis's
``enableAutoPipelining`` and of DataLoader), for :class:`storages.aio.redis.AsyncRedis`.

A call whose command finds a free connection in the pool, and no call queued before it, sends
it as it always did: :meth:`AutoPipeline.busy` is false, the adapter calls the driver, nothing
is added to its path but that check. A call that would wait for a connection instead queues
its command (:meth:`AutoPipeline.send`) and awaits a future. The first command queued starts
a sender task, which waits for a connection in the pool like any call; when it has one, it
takes every command queued by then (up to :data:`BATCH`: the rest start the next sender) and
sends them in one write, in the order they were queued, a run of consecutive ``GET`` as one
``MGET`` and of consecutive ``SET`` without an expiry as one ``MSET``; then it reads each
reply and settles the calls' futures with them. Calls that arrive while it sends queue for
the next sender. So under a burst (1,000 calls gathered on 16 connections) a few round trips
carry them all, each command costing the client a few µs instead of a whole request through
the driver (about 75 µs of CPU), and a lone call keeps its latency: no extra turn of the
event loop, no timer.

Each call keeps its own deadline, retries and cancellation, because it only awaits its
future: the adapter bounds that wait as it bounds a request (what is left of the call's
deadline), and the layers retry a failed call, which queues again or goes alone. A call
cancelled while queued is left out of the pipeline; one cancelled while its pipeline is in
flight leaves it running for the others, and its reply is read and dropped, so the
connection stays in step. A command's error reply (``OOM``, ``READONLY``…) fails that
command's calls with the driver's exception, as it would have failed alone, and the others
go on; a lost connection, a timeout or no connection to be had fails every call of the
pipeline not answered yet with what the driver raised, each then retried by its own policy
(the driver drops a connection whose replies were not all read, as for a single request).

Only the simple cases go this way, so records, expiry, compression and chunks stay the
record layer's: reads of one record (``GET``), writes of one record of at most :data:`SMALL`
bytes (``SET``, with its ``PX``/``EX``), on one server or a Sentinel master. Everything else
(bulk calls, deletes, larger values, a cluster) goes to the driver directly. One difference
only: a key of another type than a string under the adapter's prefix (one the adapter never
writes) reads as absent in an ``MGET``, as ``retrieve_many`` always read it, where ``GET``
fails with ``WRONGTYPE``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from storages.redis import _resp

__all__ = ["BATCH", "SMALL", "AutoPipeline"]

BATCH = 1000
"""The most commands one pipeline takes; the others wait for the next connection."""
SMALL = 64 * 1024
"""The largest value a queued ``SET`` carries: a larger one goes alone, its transfer would
hold up the pipeline's other calls."""

# A queued call: its future and its command.
Waiting = tuple[asyncio.Future[Any], tuple[Any, ...]]
# A command to send, and the futures its reply settles (one for each key of an MGET).
Group = tuple[tuple[Any, ...], list[asyncio.Future[Any]]]


class AutoPipeline:
    """The queue of one adapter instance, hence of one event loop (module docstring), on
    ``pool`` (a ``redis.asyncio`` connection pool that makes a call wait when all its
    connections are busy); command arguments are encoded with ``encoding`` and ``errors``
    as the driver encodes them. Made by ``connect()`` inside the running loop."""

    def __init__(self, pool: Any, encoding: str, errors: str) -> None:
        from redis.exceptions import ConnectionError as DriverConnectionError
        from redis.exceptions import ResponseError

        self._pool = pool
        self._encoding, self._errors = encoding, errors
        self._loop = asyncio.get_running_loop()
        self._queue: list[Waiting] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._response_error = ResponseError
        self._connection_error = DriverConnectionError

    def busy(self) -> bool:
        """Whether a command sent now would wait for a connection: calls are queued already
        (they go first), or every connection of the pool is in use."""
        return bool(self._queue) or not self._pool.can_get_connection()

    def send(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``command`` (``("GET", name)`` or ``("SET", name, value, *expiry)``) for the
        next pipeline; its reply as a future (the driver's exception when it fails).
        Cancelling the future before the pipeline is sent leaves the command out of it."""
        future = self._loop.create_future()
        queue = self._queue
        queue.append((future, command))
        if len(queue) == 1:  # the queue's sender (it stays queued until one takes it)
            self._start()
        return future

    async def close(self) -> None:
        """Stop the senders: a call queued or in flight fails with the driver's
        ``ConnectionError``, as a request does when ``disconnect()`` closes its connection."""
        while self._senders:
            senders = list(self._senders)
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        queued, self._queue = self._queue, []
        self._fail(queued, self._closed())

    # -- the senders ------------------------------------------------------------------------

    def _start(self) -> None:
        sender = self._loop.create_task(self._flush())
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _flush(self) -> None:
        """Wait for a connection; send what is queued by then; settle each call."""
        pool = self._pool
        waiting: list[Waiting] = []
        connection = None
        try:
            connection = await pool.get_connection()
            waiting = self._take()
            if waiting:
                await self._exchange(connection, waiting)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled by close(), which fails the queue
                self._fail(waiting, self._closed())
                raise
            if connection is None:
                waiting = self._take()  # the calls this connection was for
            self._fail(waiting, exc)
        finally:
            if connection is not None:
                await pool.release(connection)

    def _take(self) -> list[Waiting]:
        """The queued calls still waiting (a cancelled one is left out), at most
        :data:`BATCH`; the rest get a sender of their own."""
        queue = self._queue
        if len(queue) > BATCH:
            queue, self._queue = queue[:BATCH], queue[BATCH:]
            self._start()
        else:
            self._queue = []
        return [item for item in queue if not item[0].done()]

    async def _exchange(self, connection: Any, waiting: list[Waiting]) -> None:
        groups = _grouped(waiting)
        packed = _resp([command for command, _futures in groups], self._encoding, self._errors)
        await connection.send_packed_command(packed)
        read = connection.read_response
        for command, futures in groups:
            try:
                reply = await read()
            except self._response_error as exc:  # read whole: the connection is in step
                self._fail([(future, command) for future in futures], exc)
                continue
            if command[0] == "MGET":
                for future, value in zip(futures, reply, strict=True):
                    if not future.done():
                        future.set_result(value)
            else:
                for future in futures:
                    if not future.done():
                        future.set_result(reply)

    @staticmethod
    def _fail(waiting: list[Waiting], exc: BaseException) -> None:
        for future, _command in waiting:
            if not future.done():
                future.set_exception(exc)

    def _closed(self) -> Exception:
        return self._connection_error("the storage was disconnected while the call waited")


def _grouped(waiting: list[Waiting]) -> list[Group]:
    """The commands that send ``waiting``, in its order, with the futures each reply
    settles: a run of consecutive ``GET`` as one ``MGET``, of ``SET`` without an expiry as
    one ``MSET`` (either one alone as itself), any other command as it is."""
    groups: list[Group] = []
    run: str | None = None  # "MGET" or "MSET": the run being gathered
    arguments: list[Any] = []
    futures: list[asyncio.Future[Any]] = []
    for future, command in waiting:
        name = command[0]
        merged = "MGET" if name == "GET" else "MSET" if len(command) == 3 else None
        if merged != run or merged is None:
            if futures:
                groups.append(_merged(run, arguments, futures))
            run, arguments, futures = merged, [], []
            if merged is None:
                groups.append((command, [future]))
                continue
        arguments += command[1:]
        futures.append(future)
    if futures:
        groups.append(_merged(run, arguments, futures))
    return groups


def _merged(run: str | None, arguments: list[Any], futures: list[asyncio.Future[Any]]) -> Group:
    if len(futures) == 1:
        return ("GET" if run == "MGET" else "SET", *arguments), futures
    return (run, *arguments), futures
