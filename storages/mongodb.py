"""``MongoDB``: one document per result, keyed by the SHA-256 of the key, the result as bytes."""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

from selinon_like import options
from selinon_like.errors import ConfigError, StorageError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, key_digest
from selinon_like.masking import mask_url, scrub
from selinon_like.records import ERRORS, PURGE_BATCH, RESULTS, Kind, RecordStorage, RunsSteps
from selinon_like.steps import Emit, Steps, run
from selinon_like.storage import StorageBase

__all__ = ["MongoDB", "MongoLogic"]

M = TypeVar("M", bound="MongoLogic")

_SCHEMES = ("mongodb", "mongodb+srv")
# A record's expiry time, as a BSON date: what the TTL index and purge look at.
_EXPIRY_FIELD = "expires_at"
_EXPIRY_INDEX = "selinon_like_expiry"
_KEY_FIELDS = {"_id": 0, "flow_name": 1, "task_name": 1, "task_id": 1}
# The server's TTL monitor removes a document once its expires_at is past (documents without
# the field, stored with no ttl, never). Created by the first write of a document with an
# expiry on a connection, not by connect(): every insert updates every index (a document
# without the field too, as null), which cost a store ~10-15% on SecantusDB with no ttl.
_TTL_INDEX: tuple[list[tuple[str, int]], dict[str, Any]] = (
    [(_EXPIRY_FIELD, 1)],
    {"expireAfterSeconds": 0, "name": _EXPIRY_INDEX},
)
# The field holding the bytes of each kind of record (the first release's layout).
_DATA_FIELD: dict[Kind, str] = {"results": "result", "errors": "record"}
# Ids per $in query: 10,000 64-character ids keep the query far below 16 MB.
_BATCH = 10_000
_DUPLICATE_KEY = 11000
# MongoDB's cap on one document's BSON size, the same on every server since 1.8.
_MAX_DOCUMENT = 16 * 1024 * 1024
# More than the field names, _id and BSON framing of a document take beside its values.
_FRAMING = 512
# Options that only say how to build a client: meaningless next to a client given ready.
_CLIENT_OPTIONS = (
    "url",
    "host",
    "port",
    "username",
    "password",
    "tls",
    "server_selection_timeout_ms",
    "connect_timeout_ms",
    "socket_timeout_ms",
    "journal",
)


def _date(seconds: float) -> _dt.datetime:
    """Seconds since the epoch as the UTC datetime a BSON date holds."""
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)


def _listed(cursor: Any) -> Any:
    """The documents of ``cursor`` as a list; of an async cursor, the coroutine giving it."""
    return cursor.to_list() if hasattr(cursor, "__aiter__") else list(cursor)


def _duplicates(exc: Any) -> list[int] | None:
    """The positions of the writes a ``BulkWriteError`` refused as duplicate keys, or None
    when it holds any other error (a write concern error included)."""
    details = exc.details
    errors = details.get("writeErrors", [])
    if details.get("writeConcernErrors") or any(e.get("code") != _DUPLICATE_KEY for e in errors):
        return None
    return [error["index"] for error in errors]


class MongoLogic(StorageBase):
    """What :class:`MongoDB` and its async form (:class:`storages.aio.mongodb.AsyncMongoDB`)
    share, written once: the configuration (see :class:`MongoDB`), the client's options,
    the attempt bound, the transient errors, the documents and their size check, and each
    primitive but the scan as steps (:mod:`selinon_like.steps`) under
    :class:`~selinon_like.records.StepsLogic`'s names (``_read_io``, ``_write_io``, …
    ``_purge_io``), which ``MongoDB`` runs blocking (:class:`~selinon_like.records.RunsSteps`)
    and the async adapter awaits (:class:`~selinon_like.aio.records.AwaitsSteps`): the same
    queries, filters, indexes and documents on either client. The scan is each adapter's own,
    a cursor read as it goes."""

    # A document stops at 16 MiB, key fields included: larger records go in chunks.
    max_value_bytes: int | None = 15 * 1024 * 1024
    # The pymongo class connect() builds a client of.
    _client_class: ClassVar[str] = "MongoClient"
    _injected: Any = None  # the client given to from_client()

    def __init__(
        self,
        db_name: str | None = None,
        collection_name: str = "selinon_results",
        host: str | None = None,
        port: int | None = None,
        *,
        url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool | None = None,
        server_selection_timeout_ms: int = 5000,
        connect_timeout_ms: int = 5000,
        socket_timeout_ms: int = 30000,
        errors_collection_name: str | None = None,
        journal: bool = True,
    ) -> None:
        url_db = None
        if url is not None:
            url = options.as_str("url", url)
            parts = urlsplit(url)
            if parts.scheme == "mongomock":
                # The first release took this URL for tests; say where that went.
                raise ConfigError(
                    "mongomock:// is not a server URL: in tests, give a mongomock client to "
                    "MongoDB.from_client()",
                    key="url",
                )
            if parts.scheme not in _SCHEMES:
                raise ConfigError(
                    f"must start with mongodb:// or mongodb+srv://, not {mask_url(url)!r}",
                    key="url",
                )
            if host is not None or port is not None:
                raise ConfigError("give either url or host/port, not both", key="url")
            url_db = unquote(parts.path.lstrip("/")) or None
        self._url = url
        self.host = "localhost" if host is None else options.as_str("host", host)
        self.port = (
            27017 if port is None else options.as_int("port", port, minimum=1, maximum=65535)
        )
        database = db_name if db_name is not None else url_db
        if database is None:
            raise ConfigError("name the database, here or in the path of url", key="db_name")
        self.db_name = options.as_str("db_name", database)
        self.collection_name = options.as_str("collection_name", collection_name)
        self.errors_collection_name = (
            f"{self.collection_name}_errors"
            if errors_collection_name is None
            else options.as_str("errors_collection_name", errors_collection_name)
        )
        if self.errors_collection_name == self.collection_name:
            raise ConfigError(
                "must differ from collection_name: errors would replace results",
                key="errors_collection_name",
            )
        self.username = None if username is None else options.as_str("username", username)
        self._password = None if password is None else options.as_str("password", password)
        if self._password is not None and self.username is None:
            raise ConfigError("a password needs a username", key="password")
        self.tls = None if tls is None else options.as_bool("tls", tls)
        self.server_selection_timeout_ms = options.as_int(
            "server_selection_timeout_ms", server_selection_timeout_ms, minimum=1
        )
        self.connect_timeout_ms = options.as_int(
            "connect_timeout_ms", connect_timeout_ms, minimum=1
        )
        self.socket_timeout_ms = options.as_int("socket_timeout_ms", socket_timeout_ms, minimum=1)
        self.journal = options.as_bool("journal", journal)
        # A percent-encoded URL password may reach a message decoded: mask both spellings.
        self._secrets = sorted(
            {*self._secrets, *(unquote(secret) for secret in self._secrets)},
            key=len,
            reverse=True,
        )
        self._injected = None
        self._client: Any = None
        self._results: Any = None
        self._errors: Any = None
        self._replace_one: Any = None
        self._duplicate_key: Any = None  # pymongo's DuplicateKeyError, once connected
        self._described: tuple[Any, bool] = (None, False)  # see _answering
        self._ttl_indexed: set[Kind] = set()  # the collections whose TTL index is known here

    @classmethod
    def from_client(cls: type[M], client: Any, **configuration: Any) -> M:
        """An adapter using ``client`` instead of building its own on ``connect()``: for
        :class:`MongoDB` a ``pymongo.MongoClient``-compatible object (e.g.
        ``mongomock.MongoClient()``), for the async adapter a ``pymongo.AsyncMongoClient``.

        ``db_name`` is required; ``collection_name`` and ``errors_collection_name`` apply.
        Options that only say how to build a client (``url``, ``host``, timeouts,
        credentials...) are a ``ConfigError``: the client brings its own. ``connect()`` still
        pings the server; ``disconnect()`` does not close the client."""
        given = sorted(name for name in _CLIENT_OPTIONS if name in configuration)
        if given:
            raise ConfigError(
                f"{', '.join(given)}: the client given to from_client() brings its own "
                "connection settings",
                key=given[0],
            )
        if "db_name" not in configuration:
            raise ConfigError("from_client() needs db_name", key="db_name")
        storage = cls(**configuration)
        storage._injected = client
        storage._rechain()  # the layers an attempt needs may depend on whose client it is
        return storage

    # -- connection -----------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        limit = round(self.operation_timeout * 1000)  # no single wait outlasts a call
        settings: dict[str, Any] = {
            "serverSelectionTimeoutMS": min(self.server_selection_timeout_ms, limit),
            "connectTimeoutMS": min(self.connect_timeout_ms, limit),
            "socketTimeoutMS": min(self.socket_timeout_ms, limit),
            # One retry policy, ours, under the call's deadline (a pymongo retry would add a
            # server selection and another socket timeout to a hung call).
            "retryWrites": False,
            "retryReads": False,
            "journal": self.journal,
            "appname": "selinon_like",
        }
        if self._url is not None:
            settings["host"] = self._url
        else:
            settings["host"], settings["port"] = self.host, self.port
        if self.username is not None:
            settings["username"] = self.username
        if self._password is not None:
            settings["password"] = self._password
        if self.tls is not None:
            settings["tls"] = self.tls
        return settings

    def bound_attempt(self, seconds: float | None) -> contextlib.AbstractContextManager[object]:
        """pymongo bounds an attempt as a whole (server selection, connection and reply) by
        what is left of the call's deadline (``pymongo.timeout``). While no server is known to
        answer, an attempt waits for one no longer than ``server_selection_timeout_ms``, as
        without a deadline: under pymongo's timeout a selection would wait the whole budget."""
        pymongo = sys.modules.get("pymongo")
        if seconds is None or pymongo is None or self._injected is not None:
            return contextlib.nullcontext()
        client = self._client
        if client is None or not self._answering(client):
            seconds = min(seconds, self.server_selection_timeout_ms / 1000)
        timeout: contextlib.AbstractContextManager[object] = pymongo.timeout(seconds)
        return timeout

    def _answering(self, client: Any) -> bool:
        """Whether ``client`` knows a server that answers. Its topology description is an
        immutable object the client replaces when anything changes: the answer is worked out
        once per description (its list of known servers is built anew on every read), and
        kept with it in one attribute, which threads replace whole."""
        description = client.topology_description
        seen = self._described
        if seen[0] is not description:
            seen = self._described = (description, bool(description.known_servers))
        return seen[1]

    def default_operation_timeout(self) -> float:
        """``server_selection_timeout_ms`` + ``socket_timeout_ms`` (in seconds): finding the
        server (connecting included), then waiting for its reply."""
        return (self.server_selection_timeout_ms + self.socket_timeout_ms) / 1000

    def is_transient(self, exc: BaseException) -> bool:
        # Only when pymongo is loaded: classifying an error must not import the driver.
        errors = sys.modules.get("pymongo.errors")
        if errors is not None and isinstance(
            exc,
            (
                errors.AutoReconnect,
                errors.NetworkTimeout,
                errors.ServerSelectionTimeoutError,
                errors.ConnectionFailure,
            ),
        ):
            return True
        return super().is_transient(exc)

    def is_connected(self) -> bool:
        return self._client is not None

    def _mongo_connect_steps(self) -> Steps[None]:
        if self._client is not None:
            return
        try:
            import pymongo
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        owned = self._injected is None
        if owned:
            try:
                # No I/O yet (but DNS for mongodb+srv://): what fails here is the configuration.
                client = getattr(pymongo, self._client_class)(**self._client_options())
            except (pymongo.errors.ConfigurationError, ValueError, TypeError) as exc:
                raise ConfigError(
                    scrub(f"{type(exc).__name__}: {exc}", self._secrets),
                    key="url" if self._url is not None else "host",
                ) from exc
        else:
            client = self._injected
        try:
            database = client[self.db_name]
            results = database[self.collection_name]
            errors = database[self.errors_collection_name]
            # The first round trip: an unreachable server fails connect(), not a later call.
            # No index is made: _id, the key's digest, is one document per key (see MongoDB).
            yield client.admin.command, ("ping",)
        except BaseException as exc:
            if owned and not isinstance(exc, GeneratorExit):
                yield client.close, ()
            raise
        self._replace_one = pymongo.ReplaceOne
        self._duplicate_key = pymongo.errors.DuplicateKeyError
        self._ttl_indexed = set()
        self._client, self._results, self._errors = client, results, errors

    def _mongo_disconnect_steps(self) -> Steps[None]:
        client, self._client = self._client, None
        self._results = self._errors = None
        if client is not None and self._injected is None:
            yield client.close, ()

    # -- helpers --------------------------------------------------------------------------

    def _not_connected(self) -> StorageError:
        return StorageError(f"{self.storage_name}: not connected; call connect() first")

    def _connected_client(self) -> Any:
        client = self._client
        if client is None:
            raise self._not_connected()
        return client

    def _collection(self, kind: Kind) -> Any:
        # Read once: a disconnect() in another thread may clear the attribute meanwhile.
        collection = self._errors if kind == ERRORS else self._results
        if collection is None:
            raise self._not_connected()
        return collection

    def _document(
        self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None
    ) -> dict[str, Any]:
        """The document of ``data`` under ``key``, refused (``StorageError``) before any write
        when the server would refuse it: on its own it would fail the call with the whole
        document quoted in the error, and inside a bulk write only after the other results
        were stored."""
        flow_name, task_name, task_id = key
        record_id = key_digest(flow_name, task_name, task_id)
        # An upper bound of the document's size first (a str takes at most 4 bytes a
        # character in UTF-8, a date 8, within _FRAMING): encoding to measure exactly costs
        # a copy, so only a document near the cap pays for it.
        bound = (
            _FRAMING
            + len(data)
            + 4 * (len(record_id) + len(flow_name) + len(task_name) + len(task_id))
        )
        document: dict[str, Any] = {
            "_id": record_id,
            "flow_name": flow_name,
            "task_name": task_name,
            "task_id": task_id,
        }
        if kind == ERRORS:
            # The first release kept these two beside the record, for queries: so does
            # this, when the record is plain JSON (bytes behind a header are left as they
            # are).
            try:
                record = json.loads(data)
            except ValueError:
                pass
            else:
                document["exception_type"] = record["exception_type"]
                document["time"] = record["time"]
                extra = (document["exception_type"], document["time"])
                bound += sum(4 * len(value) for value in extra if isinstance(value, str))
        document[_DATA_FIELD[kind]] = data
        if expires_at is not None:
            document[_EXPIRY_FIELD] = _date(expires_at)
        if bound > _MAX_DOCUMENT:
            self._check_size(kind, document)
        return document

    def _check_size(self, kind: Kind, document: dict[str, Any]) -> None:
        """The exact size of a document near the cap: ``StorageError`` past it."""
        import bson

        size = len(bson.encode(document))
        if size > _MAX_DOCUMENT:
            key = (document["flow_name"], document["task_name"], document["task_id"])
            what = "result" if kind == RESULTS else "error record"
            raise StorageError(
                f"{self.storage_name}: the {what} of {key!r:.300} makes a document of "
                f"{size:,} bytes; MongoDB holds at most {_MAX_DOCUMENT:,} bytes (16 MiB) in one"
            )

    def _scan_cursor(self, kind: Kind, flow_name: str | None) -> Any:
        """A cursor of the key fields of every document (of ``flow_name``: a str here,
        checked by the iter_keys wrapper, never a query operator)."""
        query = {} if flow_name is None else {"flow_name": flow_name}
        return self._collection(kind).find(query, _KEY_FIELDS)

    @staticmethod
    def _key_of(document: dict[str, Any]) -> Key:
        return (document["flow_name"], document["task_name"], document["task_id"])

    def _ttl_index_steps(self, kind: Kind, collection: Any) -> Steps[None]:
        """Before the first write of a document with an expiry on this connection: the TTL
        index on ``expires_at`` (``create_index`` of an index that exists is a no-op)."""
        if kind in self._ttl_indexed:
            return
        keys, index_options = _TTL_INDEX
        yield functools.partial(collection.create_index, **index_options), (keys,)
        self._ttl_indexed.add(kind)

    # -- the primitives, as steps ---------------------------------------------------------

    def _read_io(self, kind: Kind, key: Key) -> Steps[bytes | None]:
        field = _DATA_FIELD[kind]
        document = yield (
            self._collection(kind).find_one,
            (
                {"_id": key_digest(*key)},
                {"_id": 0, field: 1},
            ),
        )
        return None if document is None else bytes(document[field])

    def _write_io(self, kind: Kind, key: Key, data: bytes, expires_at: float | None) -> Steps[str]:
        document = self._document(kind, key, data, expires_at)
        collection = self._collection(kind)
        if expires_at is not None:
            yield from self._ttl_index_steps(kind, collection)
        record_id: str = document["_id"]
        # replace_one(filter, replacement, upsert): upsert given by position, no partial.
        step = collection.replace_one, ({"_id": record_id}, document, True)
        try:
            yield step
        except self._duplicate_key:
            # Two first stores of one key raced and the server did not retry the insert that
            # lost; the document exists now, so this second upsert is a plain replace.
            yield step
        return record_id

    def _write_many_io(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        """One unordered ``insert_many`` of the documents, then one unordered ``bulk_write``
        of upserts replacing those whose key was already stored (the insert's duplicate-key
        errors name them). An insert is the cheaper write on any server (no query phase: an
        upsert first looks the ``_id`` up) and a result's key is new as a rule; a store_many
        of keys all stored before pays the second round trip."""
        from pymongo.errors import BulkWriteError

        document = self._document
        documents = [document(kind, key, data, expires_at) for key, data in items]
        # An unordered write may apply two writes of one key in any order: keep the last.
        by_id = {d["_id"]: d for d in documents}
        latest = documents if len(by_id) == len(documents) else list(by_id.values())
        collection = self._collection(kind)
        if expires_at is not None:
            yield from self._ttl_index_steps(kind, collection)
        try:
            yield functools.partial(collection.insert_many, ordered=False), (latest,)
        except BulkWriteError as exc:
            taken = _duplicates(exc)
            if taken is None:
                raise
            yield from self._mongo_replace_many_steps(collection, [latest[i] for i in taken])
        return [d["_id"] for d in documents]

    def _mongo_replace_many_steps(
        self, collection: Any, documents: list[dict[str, Any]]
    ) -> Steps[None]:
        """Upserts of ``documents``, by ``_id``, in one unordered ``bulk_write``."""
        from pymongo.errors import BulkWriteError

        bulk_write = functools.partial(collection.bulk_write, ordered=False)
        upsert = self._replace_one
        operations = [upsert({"_id": d["_id"]}, d, upsert=True) for d in documents]
        try:
            yield bulk_write, (operations,)
        except BulkWriteError as exc:
            # As in a single write: inserts that lost a race are replaces on a second try.
            if _duplicates(exc) is None:
                raise
            yield bulk_write, (operations,)

    def _remove_io(self, kind: Kind, key: Key) -> Steps[bool]:
        outcome = yield self._collection(kind).delete_one, ({"_id": key_digest(*key)},)
        return bool(outcome.deleted_count)

    def _read_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[list[bytes | None]]:
        field = _DATA_FIELD[kind]
        collection = self._collection(kind)
        digests = [key_digest(*key) for key in keys]
        ids = list(dict.fromkeys(digests))
        found: dict[str, bytes] = {}
        for start in range(0, len(ids), _BATCH):
            cursor = collection.find(
                {"_id": {"$in": ids[start : start + _BATCH]}}, {"_id": 1, field: 1}
            )
            for document in (yield _listed, (cursor,)):
                found[document["_id"]] = bytes(document[field])
        return [found.get(digest) for digest in digests]

    def _remove_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[int]:
        collection = self._collection(kind)
        ids = list(dict.fromkeys(key_digest(*key) for key in keys))
        removed = 0
        for start in range(0, len(ids), _BATCH):
            outcome = yield collection.delete_many, ({"_id": {"$in": ids[start : start + _BATCH]}},)
            removed += outcome.deleted_count
        return int(removed)

    def _purge_io(self, kind: Kind, now: float, dry_run: bool) -> Steps[None]:
        """The documents whose ``expires_at`` is past, found by its index: ids of a batch,
        then one ``delete_many`` of those ids that still match (a document stored again
        meanwhile has a later ``expires_at``, or none, and stays); each batch's count
        emitted."""
        collection = self._collection(kind)
        if kind not in self._ttl_indexed:
            # Every write of a document with an expiry makes the index first (connect() did
            # before): a collection without it holds none, and the query would scan it all.
            indexes = yield collection.index_information, ()
            if _EXPIRY_INDEX not in indexes:
                return
            self._ttl_indexed.add(kind)
        due = {_EXPIRY_FIELD: {"$lte": _date(now)}}
        if dry_run:
            yield Emit(int((yield collection.count_documents, (due,))))
            return
        while True:
            batch = collection.find(due, {"_id": 1}).limit(PURGE_BATCH)
            ids = [document["_id"] for document in (yield _listed, (batch,))]
            if not ids:
                return
            outcome = yield collection.delete_many, ({"_id": {"$in": ids}, **due},)
            yield Emit(int(outcome.deleted_count))
            if len(ids) < PURGE_BATCH:
                return


class MongoDB(MongoLogic, RunsSteps, RecordStorage):
    """Results in a MongoDB collection, errors in a second one (pymongo).

    Layout: one document per key, ``{_id, flow_name, task_name, task_id, result}``. ``_id`` is
    :func:`selinon_like.keys.key_digest` of the key (also the record id ``store`` returns), the
    SHA-256 of an injective packing of it: the server's unique ``_id`` alone keeps one document
    per key for every writer of this layout, so ``connect()`` creates no index (its first round
    trip is a ``ping``). Earlier builds also made a unique index on ``(flow_name, task_name,
    task_id)``; a collection that has it keeps it and works as before, but it could never
    refuse a write of this layout and only cost every insert its upkeep: on SecantusDB an
    ``insert_many`` of 1,000 documents took 200 ms of the server's CPU with it, 60 ms without
    (130 ms with an index on ``flow_name`` alone). Without one, ``iter_keys(flow_name)``
    reads the whole collection (SecantusDB: 1,000 keys of 20,000 documents in 320 ms, 30 ms
    with that index): a deployment that often lists one flow of a large collection can
    create ``[("flow_name", 1)]`` itself, and the query uses it. A document another program
    writes under another ``_id`` is not refused (reads go by ``_id`` and never see it;
    ``iter_keys`` lists its key too). ``store`` is one upsert, ``retrieve`` one
    ``find_one``, ``delete`` one ``delete_one``; ``store_many`` is one unordered
    ``insert_many``, then, when some keys were already stored, one unordered ``bulk_write``
    of upserts of those (an insert costs a server less than an upsert, which looks the
    ``_id`` up first: on SecantusDB 1,000 new keys took 0.37 s instead of 4.5 s),
    ``retrieve_many`` and ``delete_many`` one ``$in`` query per 10,000 keys; ``iter_keys``
    reads a cursor of the key fields only. Key parts only ever appear as field values and the
    filters hold only digests, so a key cannot inject a query operator.

    Encoding: ``result`` holds the serializer's bytes as BSON binary, never a BSON document. So
    every result comes back exactly — dict keys starting with ``$`` or containing ``.``,
    integers beyond 64 bits, deep nesting, and whatever the pickle or a custom serializer
    produce — but MongoDB cannot query inside results (filter on the key fields only). A
    document holds at most 16 MiB: a result over ``max_value_bytes`` (15 MiB) is stored by the
    record layer as chunk documents and a manifest (:mod:`selinon_like.chunks`), and a
    document that would still pass 16 MiB (huge key parts) raises ``StorageError`` before
    anything is written. Error records (their bytes in
    ``record``; when those are plain JSON, as by default, ``exception_type`` and ``time`` too,
    as plain fields for queries) live in their own collection, so an error never shadows a
    result. With a ``ttl``, each document also holds ``expires_at`` (a date) and a TTL index
    on it lets the server remove it once past (created by the first such write of a
    connection, not by ``connect()``: with no ``ttl``, no insert pays for it); ``purge_expired``
    removes what the server's monitor (once a minute) has not yet, by that index. A collection
    written by Selinon's
    adapter (duplicate keys, BSON results) cannot be reused: point this one at a new collection.

    ``thread_safe`` is True: pymongo's ``MongoClient`` is a thread-safe connection pool, so the
    threads of a worker share one instance without a lock. After ``fork()`` the pool builds the
    child its own client. The async pool (:mod:`selinon_like.aio`) uses its async form,
    :class:`storages.aio.mongodb.AsyncMongoDB` (pymongo's ``AsyncMongoClient``): the same
    configuration and documents.

    Tests may hand the adapter a ready client (``mongomock.MongoClient()``, or a pymongo client
    built with options this adapter does not expose) with :meth:`from_client`;
    ``disconnect()`` leaves it to its owner.

    Configuration:

    ``db_name`` (str, default: the database named in ``url``)
        the database; required when ``url`` names none.
    ``collection_name`` (str, default ``"selinon_results"``)
        the collection of results.
    ``host`` (str, default ``"localhost"``) and ``port`` (int, default ``27017``)
        the server, when ``url`` is not given (giving both is a ``ConfigError``).
    ``url`` (str, default none)
        a MongoDB connection string instead of ``host``/``port``:
        ``mongodb://user:password@host1,host2/db?replicaSet=rs0`` or ``mongodb+srv://…``
        (options such as ``authSource`` or ``tlsCAFile`` go in its query string). Its
        password is masked in every ``repr``, log line and error message.
    ``username`` / ``password`` (str, default none)
        credentials, instead of putting them in ``url``; the password is masked everywhere.
    ``tls`` (bool, default: as ``url`` says, else off)
        connect with TLS.
    ``server_selection_timeout_ms`` (int, default ``5000``)
        how long an operation waits for a usable server before it fails (pymongo: 30000).
    ``connect_timeout_ms`` (int, default ``5000``)
        TCP connect timeout.
    ``socket_timeout_ms`` (int, default ``30000``)
        how long a sent request waits for its reply (pymongo: forever).
    ``journal`` (bool, default ``true``)
        a write is acknowledged once in the server's journal (write concern ``j: true``), so
        an acknowledged result survives a crash of the server; ``false`` trades that for
        latency (a killed server then loses its last writes).

    A call lasts at most the storage's ``operation_timeout`` (default: server selection +
    socket timeout, 35 s): each attempt runs under ``pymongo.timeout`` with what is left of
    it (selection, connection and reply included), waiting for a server no longer than
    ``server_selection_timeout_ms`` while none is known to answer; pymongo's own retries are
    off (the storage's ``retry`` policy retries, within the deadline), and none of the three
    timeouts is longer than ``operation_timeout``.
    ``errors_collection_name`` (str, default ``"<collection_name>_errors"``)
        the collection of error records; must differ from ``collection_name``.

    Example::

        storages:
          - name: Results
            import: storages.mongodb
            classname: MongoDB
            configuration:
              url: mongodb://selinon:${MONGODB_PASSWORD}@mongo.internal:27017/?authSource=admin
              db_name: selinon
              collection_name: results
              tls: true
              server_selection_timeout_ms: 5000
    """

    thread_safe = True  # pymongo's MongoClient is a thread-safe connection pool
    async_adapter = "storages.aio.mongodb:AsyncMongoDB"

    def connect(self) -> None:
        run(self._mongo_connect_steps())

    def disconnect(self) -> None:
        run(self._mongo_disconnect_steps())

    def ping(self) -> bool:
        self._connected_client().admin.command("ping")
        return True

    # -- the primitives: MongoLogic's steps, run by RunsSteps; the scan reads a cursor -------

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return map(self._key_of, self._scan_cursor(kind, flow_name))
