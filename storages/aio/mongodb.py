"""``AsyncMongoDB``: :class:`storages.mongodb.MongoDB` for asyncio programs (pymongo's
``AsyncMongoClient``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from selinon_like.aio.records import AsyncRecordStorage, AwaitsSteps
from selinon_like.cutoff import within
from selinon_like.deadline import current
from selinon_like.keys import Key, Kind
from selinon_like.steps import Steps, arun
from selinon_like.storage import StorageBase
from storages.mongodb import MongoLogic

__all__ = ["AsyncMongoDB"]

T = TypeVar("T")
# Key documents a listing reads per request (pymongo's first batch is 101 documents).
_SCAN_BATCH = 1000


class AsyncMongoDB(MongoLogic, AwaitsSteps, AsyncRecordStorage):
    """Results in a MongoDB collection, errors in a second one, through pymongo's native
    async client (``pymongo.AsyncMongoClient``, pymongo 4.13 or later): the async form of
    :class:`~storages.mongodb.MongoDB`, with its YAML ``configuration``, its documents,
    indexes and queries (:class:`~storages.mongodb.MongoLogic`, whose steps this class
    awaits), so either adapter reads what the other stored.

    A call lasts at most ``operation_timeout``, as with the blocking adapter, but the bound
    is asyncio's, not pymongo's: the layers cancel an attempt at the call's deadline
    (:func:`selinon_like.cutoff.within`), and the client has no socket timeout. Any pymongo
    timeout (``pymongo.timeout``, ``timeoutMS`` or ``socketTimeoutMS``) makes pymongo send
    each request through ``asyncio.wait_for``, a task of its own: a retrieve cost ~120 more
    Python calls and one more turn of the event loop than raw pymongo's. Client instructions
    a call (callgrind, SecantusDB, 2026-12-03): retrieve 1,024k (1,036k with a coroutine
    more for the attempt, the record layer's ``retrieve`` and each primitive; 1,065k when the
    layers used ``asyncio.timeout``; 1,221k under ``pymongo.timeout`` before that), raw
    pymongo 961k; store 1,002k (1,017k; 1,054k), raw 935k. A request made outside a call (a
    stream's chunks, a listing's next batch) is bounded by ``socket_timeout_ms`` the same
    way. pymongo then sends no ``maxTimeMS``: a server goes on with a request whose call was
    cut (a read or write of one document here). A call cancelled midway leaves the client
    usable: pymongo closes a connection whose request or reply was cut. One limit is
    pymongo's (PYTHON-5867, in 4.20.1): a task cancelled while pymongo opens a connection for
    it (or its server monitor stopped by ``disconnect()`` while connecting) leaves that socket
    to the garbage collector, which warns ``ResourceWarning: unclosed <socket.socket …>``.
    ``disconnect()`` (or leaving ``async with``) closes the client; :meth:`from_client` takes
    a ready ``AsyncMongoClient``, which ``disconnect()`` leaves to its owner. The async pool
    makes one instance, so one client, per event loop.
    """

    _client_class = "AsyncMongoClient"
    # The layers cut each attempt at the call's deadline (cutoff.within): not pymongo.
    deadline_in_driver = False
    bound_attempt = StorageBase.bound_attempt  # no pymongo.timeout: no attempt-bound layer

    def _client_options(self) -> dict[str, Any]:
        settings = super()._client_options()
        del settings["socketTimeoutMS"]  # see the class docstring: asyncio's bound instead
        return settings

    def _awaited(self, steps: Steps[T]) -> Coroutine[Any, Any, T]:
        """``steps`` awaited (by :class:`~selinon_like.aio.records.AwaitsSteps`'s primitives
        and ``connect()``); outside a call (no deadline: a stream's chunk) within
        ``socket_timeout_ms``. A plain function giving the coroutine to await: no coroutine
        of its own a request."""
        if current() is not None:
            return arun(steps)  # the layers cut the attempt at the call's deadline
        return within(arun(steps), self.socket_timeout_ms / 1000)

    async def connect(self) -> None:
        await self._awaited(self._mongo_connect_steps())

    async def disconnect(self) -> None:
        await arun(self._mongo_disconnect_steps())

    async def ping(self) -> bool:
        await self._connected_client().admin.command("ping")
        return True

    # -- the primitives: MongoLogic's steps, awaited by AwaitsSteps; the scan reads a cursor --

    async def scan(self, kind: Kind, flow_name: str | None) -> AsyncIterator[Key]:
        cursor = self._scan_cursor(kind, flow_name).batch_size(_SCAN_BATCH)
        try:
            while True:
                # Each batch within socket_timeout_ms (the client has no socket timeout).
                seconds = self.socket_timeout_ms / 1000
                documents = await within(cursor.to_list(_SCAN_BATCH), seconds)
                if not documents:
                    return
                for document in documents:
                    yield self._key_of(document)
        finally:
            await cursor.close()  # a listing left early frees its server-side cursor now
