"""``AsyncMongoDB``: :class:`storages.mongodb.MongoDB` for asyncio programs (pymongo's
``AsyncMongoClient``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from selinon_like.aio.records import AsyncRecordStorage
from selinon_like.keys import Key, Kind
from selinon_like.steps import aiterate, arun
from storages.mongodb import MongoLogic

__all__ = ["AsyncMongoDB"]


class AsyncMongoDB(MongoLogic, AsyncRecordStorage):
    """Results in a MongoDB collection, errors in a second one, through pymongo's native
    async client (``pymongo.AsyncMongoClient``, pymongo 4.13 or later): the async form of
    :class:`~storages.mongodb.MongoDB`, with its YAML ``configuration``, its documents,
    indexes and queries (:class:`~storages.mongodb.MongoLogic`, whose steps this class
    awaits), so either adapter reads what the other stored.

    The bound of a call is the blocking adapter's: each attempt runs under
    ``pymongo.timeout`` with what is left of the call's ``operation_timeout`` (a context
    variable, so it holds for the awaiting task alone). A call cancelled midway leaves the
    client usable: pymongo closes a connection whose request or reply was cut. One limit is
    pymongo's (PYTHON-5867, in 4.20.1): a task cancelled while pymongo opens a connection for
    it (or its server monitor stopped by ``disconnect()`` while connecting) leaves that socket
    to the garbage collector, which warns ``ResourceWarning: unclosed <socket.socket …>``.
    ``disconnect()`` (or leaving ``async with``) closes the client; :meth:`from_client` takes
    a ready ``AsyncMongoClient``, which ``disconnect()`` leaves to its owner. The async pool
    makes one instance, so one client, per event loop.
    """

    _client_class = "AsyncMongoClient"
    # bound_attempt: each attempt runs under pymongo.timeout of what is left of the deadline.
    deadline_in_driver = True

    def _times_attempts(self) -> bool:
        # A client given ready runs without pymongo.timeout (see bound_attempt): the layers
        # cut its attempts at the deadline instead.
        return self._injected is not None

    async def connect(self) -> None:
        await arun(self._mongo_connect_steps())

    async def disconnect(self) -> None:
        await arun(self._mongo_disconnect_steps())

    async def ping(self) -> bool:
        await self._connected_client().admin.command("ping")
        return True

    # -- the primitives (MongoLogic's steps, awaited) -----------------------------------------

    async def read(self, kind: Kind, key: Key) -> bytes | None:
        return await arun(self._mongo_read_steps(kind, key))

    async def write(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None
    ) -> str:
        return await arun(self._mongo_write_steps(kind, key, data, expires_at))

    async def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        return await arun(self._mongo_write_many_steps(kind, items, expires_at))

    async def remove(self, kind: Kind, key: Key) -> bool:
        return await arun(self._mongo_remove_steps(kind, key))

    async def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        return await arun(self._mongo_read_many_steps(kind, keys))

    async def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        return await arun(self._mongo_remove_many_steps(kind, keys))

    async def purge(self, kind: Kind, now: float, dry_run: bool) -> AsyncIterator[int]:
        async for count in await aiterate(self._mongo_purge_steps(kind, now, dry_run)):
            yield count

    async def scan(self, kind: Kind, flow_name: str | None) -> AsyncIterator[Key]:
        cursor = self._scan_cursor(kind, flow_name)
        try:
            async for document in cursor:
                yield self._key_of(document)
        finally:
            await cursor.close()  # a listing left early frees its server-side cursor now
