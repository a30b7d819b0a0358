"""``AsyncS3Storage``: :class:`storages.s3.S3Storage` for asyncio programs (aiobotocore).

Why aiobotocore (``benchmarks/bench_s3_async_clients.py`` on a private SeaweedFS): obstore
was 2-7× faster (102-byte GET 1.8 ms against 5.9 ms sequential, 295 against 41 ops/s for
1,000 concurrent), but a forked child whose parent had sent one request hangs on its first
request, even through a store built in the child: prefork workers (Celery's) rule it out.
aiobotocore is botocore, so requests, errors, paginators and the object layout are the
blocking adapter's own; creating a client costs about 0.5 s (botocore's service model),
once per ``connect()``.

A retrieve against raw aiobotocore (``get_object``, one ``read()`` of the body,
``json.loads``; ``benchmarks/bench_aio.py``'s key, private SeaweedFS, 2026-12-03): the same
one GET and one read of the body (no HEAD, no Task, no ``asyncio.wait_for``), two event-loop
turns a call each, and 5.20M instructions a call against 5.00M (callgrind, difference of runs
of N sequential calls). The 0.2M: the layers and steps around the request (~0.12M), of which
the layers' cut at the deadline was 39k and, on Python 3.11, three ``getpid`` system calls
(``get_running_loop``; raw makes none) under ``asyncio.timeout``: about 30k less and one
``getpid`` since :func:`selinon_like.cutoff.within` (measured on AsyncMongoDB's calls,
28-37k less); and botocore
quoting the object name twice a request (the URL's path, and the ``auth_path`` it renders for
its older signer): the ``%`` of the encoded key parts (``keys.encode_part``) takes urllib's
slow path, ~26k instructions a quote against ~8k for a name without one. That name is the
layout, so that cost stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from selinon_like.aio.records import AsyncRecordStorage, AwaitsSteps
from selinon_like.importing import missing_driver
from selinon_like.steps import Steps, aiterate, arun
from selinon_like.streams import Digest
from storages.s3 import S3Base

__all__ = ["AsyncS3Storage"]

A = TypeVar("A")
T = TypeVar("T")

# aiohttp warns (ResourceWarning) of a body of bytes larger than this, which it would send in
# one write; a BytesIO goes in 64 KiB writes that let other tasks run between them.
_LARGE_BODY = 1024 * 1024


class AsyncS3Storage(S3Base, AwaitsSteps, AsyncRecordStorage):
    """Results as objects in an S3 bucket through aiobotocore: the async form of
    :class:`~storages.s3.S3Storage`, with its YAML ``configuration`` (the same keys, checks
    and ``ConfigError`` messages), its object layout (either adapter reads, lists and deletes
    what the other stored, over-long keys included), its expiry metadata, lifecycle rules and
    conditional purge, and its error classification (:class:`~storages.s3.S3Base`, whose
    steps this class awaits).

    ``connect()`` makes one aiobotocore client (an ``AioSession`` of this instance's, entered
    in an :class:`~contextlib.AsyncExitStack`) and checks the bucket; ``disconnect()`` (or
    leaving ``async with``) closes it and its HTTP connections. The async pool makes one
    instance, so one client, per event loop.

    Requests in flight: at most ``max_pool_connections`` at a time (the HTTP connections
    kept), the others waiting their turn on a semaphore. botocore builds and signs a request
    (about 4 ms of CPU a call on the loaded test machine) before it asks for a connection:
    a thousand calls gathered at once would all do that work up front while the first
    connections' timers run, and those expired before the busy event loop saw the replies
    (``ConnectTimeoutError`` on loopback with 1,000 gathered retrieves on SeaweedFS).
    ``read_many``/``write_many``/``remove_many`` and ``purge``'s HEADs overlap their requests
    on that many tasks, as the blocking adapter does on threads.

    ``store_stream`` is the blocking adapter's multipart upload (an iterable or an async
    iterable of bytes, one part in memory; a failed upload is aborted) and
    ``retrieve_stream`` reads the object in 1 MiB chunks.

    Deadlines: ``connect_timeout`` and ``read_timeout`` (never longer than
    ``operation_timeout``) bound each connection and each wait for bytes, and within a call a
    request's ``read_timeout`` is cut to what the deadline leaves, as in the blocking adapter.
    That does not bound a whole request (a wait for one of the pool's connections, a reply
    trickling in), so ``deadline_in_driver`` stays ``False``: the layers cancel each attempt
    at the deadline. A cancelled request drops its HTTP connection (aiohttp closes a
    response not read to its end); the next call takes another.
    """

    _stack: contextlib.AsyncExitStack | None = None
    _slots: asyncio.Semaphore

    # -- connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        if self._client is not None:
            return
        try:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import AioSession
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        self._slots = asyncio.Semaphore(self.max_pool_connections)
        stack = contextlib.AsyncExitStack()
        try:
            session = AioSession(profile=self.profile_name)
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    use_ssl=self.use_ssl,
                    config=AioConfig(**self._client_options()),
                    **self._credential_options(),
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        await arun(self._connect_steps(client, stack.aclose))
        self._stack = stack

    async def disconnect(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    def _request(self, operation: str, arguments: dict[str, Any]) -> Any:
        body = arguments.get("Body")
        if body is not None and len(body) > _LARGE_BODY:
            # A new BytesIO each time: a retried part is sent from its start.
            arguments = {**arguments, "Body": io.BytesIO(body)}
        return self._sent(getattr(self.client, operation), arguments)

    async def _sent(self, method: Callable[..., Awaitable[T]], arguments: dict[str, Any]) -> T:
        """``method(**arguments)`` once one of ``max_pool_connections`` slots is free (class
        docstring: requests waiting their turn)."""
        async with self._slots:
            return await method(**arguments)

    async def ping(self) -> bool:
        await self.client.head_bucket(Bucket=self.bucket)
        return True

    async def _overlapped(self, steps: Callable[[A], Steps[T]], args: Sequence[A]) -> list[T]:
        if len(args) <= 1:
            return [await arun(steps(arg)) for arg in args]
        results: list[Any] = [None] * len(args)
        todo = iter(enumerate(args))

        async def work() -> None:
            for index, arg in todo:
                results[index] = await arun(steps(arg))

        # Tasks copy this context: the call's deadline goes with them.
        workers = min(self.max_pool_connections, len(args))
        tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return results

    # -- streams --------------------------------------------------------------------------

    async def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Any
    ) -> Digest:
        return await arun(self._s3_store_stream_steps((flow_name, task_name, task_id), chunks))

    async def retrieve_stream(
        self, flow_name: str, task_name: str, task_id: str
    ) -> AsyncIterator[bytes]:
        # The GET is made by the await: a missing result fails it, not the first chunk.
        return await aiterate(self._s3_chunks_steps((flow_name, task_name, task_id)))
