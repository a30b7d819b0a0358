"""``MongoDB``: one document per result, keyed by the SHA-256 of the key, the result as bytes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from selinon_like import options
from selinon_like.errors import ConfigError, StorageError
from selinon_like.keys import Key, key_digest
from selinon_like.masking import mask_url, scrub
from selinon_like.registry import missing_driver
from selinon_like.storage import (
    DataStorage,
    ExcInfo,
    dump_error_record,
    load_error_record,
    make_error_record,
    record_key,
)

__all__ = ["MongoDB"]

_SCHEMES = ("mongodb", "mongodb+srv", "mongomock")
_KEY_INDEX = [("flow_name", 1), ("task_name", 1), ("task_id", 1)]
_INDEX_NAME = "selinon_like_key"
_KEY_FIELDS = {"_id": 0, "flow_name": 1, "task_name": 1, "task_id": 1}
# Ids per retrieve_many query: 10,000 64-character ids keep the query far below 16 MB.
_BATCH = 10_000
_DUPLICATE_KEY = 11000

# ``mongomock://host`` clients, one per host, so that a mock "server" keeps its data across
# disconnect/connect and is shared by the instances of this process, like a real one.
_mock_servers: dict[str, Any] = {}
_mock_lock = threading.Lock()


class _MockReplaceOne:
    """An upsert for mongomock's ``bulk_write``: mongomock 4.3 calls ``op._add_to_bulk(bulk)``
    and its bulk builder refuses the ``sort`` argument that pymongo >= 4.11's ``ReplaceOne``
    passes."""

    def __init__(self, filter: dict[str, Any], replacement: dict[str, Any], upsert: bool) -> None:
        self._filter, self._doc, self._upsert = filter, replacement, upsert

    def _add_to_bulk(self, bulk: Any) -> None:
        bulk.add_replace(self._filter, self._doc, self._upsert)


class MongoDB(DataStorage):
    """Results in a MongoDB collection, errors in a second one (pymongo).

    Layout: one document per key, ``{_id, flow_name, task_name, task_id, result}``. ``_id`` is
    :func:`selinon_like.keys.key_digest` of the key (also the record id ``store`` returns); a
    unique compound index on ``(flow_name, task_name, task_id)``, created by ``connect()``,
    keeps one document per key whoever writes. ``store`` is one upsert, ``retrieve`` one
    ``find_one``, ``store_many`` one unordered ``bulk_write``, ``retrieve_many`` one ``$in``
    query per 10,000 keys. Key parts only ever appear as field values and the filters hold
    only digests, so a key cannot inject a query operator.

    Encoding: ``result`` holds the serializer's bytes as BSON binary, never a BSON document. So
    every result comes back exactly — dict keys starting with ``$`` or containing ``.``,
    integers beyond 64 bits, deep nesting, and whatever the pickle or a custom serializer
    produce — but MongoDB cannot query inside results (filter on the key fields only). A
    document holds at most 16 MB, so neither can a result. Error records (JSON bytes in
    ``record``, plus ``exception_type`` and ``time`` as plain fields for queries) live in their
    own collection, so an error never shadows a result. A collection written by Selinon's
    adapter (duplicate keys, BSON results) cannot be reused: point this one at a new collection.

    ``thread_safe`` is True: pymongo's ``MongoClient`` is a thread-safe connection pool, so the
    threads of a worker share one instance without a lock. After ``fork()`` the pool builds the
    child its own client.

    For tests, ``url: mongomock://`` (or ``mongomock://name/db``) uses ``mongomock.MongoClient``
    instead of pymongo (``pip install mongomock``): an in-process fake, one per host name, that
    keeps its data until the process ends. Timeouts and credentials are then ignored.

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
    ) -> None:
        url_db = None
        if url is not None:
            url = options.as_str("url", url)
            parts = urlsplit(url)
            if parts.scheme not in _SCHEMES:
                raise ConfigError(
                    f"must start with mongodb://, mongodb+srv:// or mongomock://, not "
                    f"{mask_url(url)!r}",
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
        if db_name is None and url_db is None:
            raise ConfigError("name the database, here or in the path of url", key="db_name")
        self.db_name = options.as_str("db_name", db_name) if db_name is not None else url_db
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
        # A percent-encoded URL password may reach a message decoded: mask both spellings.
        self._secrets = sorted(
            {*self._secrets, *(unquote(secret) for secret in self._secrets)},
            key=len,
            reverse=True,
        )
        self._client: Any = None
        self._results: Any = None
        self._errors: Any = None
        self._replace_one: Any = None

    # -- connection -----------------------------------------------------------------------

    def _is_mock(self) -> bool:
        return self._url is not None and self._url.startswith("mongomock:")

    def _client_options(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "serverSelectionTimeoutMS": self.server_selection_timeout_ms,
            "connectTimeoutMS": self.connect_timeout_ms,
            "socketTimeoutMS": self.socket_timeout_ms,
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

    def _mock_client(self) -> Any:
        try:
            import mongomock
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        host = urlsplit(self._url or "").netloc
        with _mock_lock:
            if host not in _mock_servers:
                _mock_servers[host] = mongomock.MongoClient()
            return _mock_servers[host]

    def connect(self) -> None:
        if self._client is not None:
            return
        try:
            import pymongo
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        if self._is_mock():
            client = self._mock_client()
            self._replace_one = _MockReplaceOne
        else:
            try:
                # No I/O yet (but DNS for mongodb+srv://): what fails here is the configuration.
                client = pymongo.MongoClient(**self._client_options())
            except (pymongo.errors.ConfigurationError, ValueError, TypeError) as exc:
                raise ConfigError(
                    scrub(f"{type(exc).__name__}: {exc}", self._secrets),
                    key="url" if self._url is not None else "host",
                ) from exc
            self._replace_one = pymongo.ReplaceOne
        try:
            database = client[self.db_name]
            results = database[self.collection_name]
            errors = database[self.errors_collection_name]
            # The first round trip: an unreachable server fails connect(), not a later call.
            for collection in (results, errors):
                collection.create_index(_KEY_INDEX, unique=True, name=_INDEX_NAME)
        except BaseException:
            if not self._is_mock():
                client.close()
            raise
        self._client, self._results, self._errors = client, results, errors

    def disconnect(self) -> None:
        client, self._client = self._client, None
        self._results = self._errors = None
        if client is not None and not self._is_mock():
            client.close()

    def is_connected(self) -> bool:
        return self._client is not None

    def ping(self) -> bool:
        self._connected_client().admin.command("ping")
        return True

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

    # -- helpers --------------------------------------------------------------------------

    def _not_connected(self) -> StorageError:
        return StorageError(f"{self.storage_name}: not connected; call connect() first")

    def _connected_client(self) -> Any:
        client = self._client
        if client is None:
            raise self._not_connected()
        return client

    def _collection(self, errors: bool = False) -> Any:
        # Read once: a disconnect() in another thread may clear the attribute meanwhile.
        collection = self._errors if errors else self._results
        if collection is None:
            raise self._not_connected()
        return collection

    def _upsert(self, collection: Any, document: dict[str, Any]) -> None:
        from pymongo.errors import DuplicateKeyError

        try:
            collection.replace_one({"_id": document["_id"]}, document, upsert=True)
        except DuplicateKeyError:
            # Two first stores of one key raced and the server did not retry the insert that
            # lost; the document exists now, so this second upsert is a plain replace.
            collection.replace_one({"_id": document["_id"]}, document, upsert=True)

    @staticmethod
    def _document(key: Key, **fields: Any) -> dict[str, Any]:
        flow_name, task_name, task_id = key
        return {
            "_id": key_digest(flow_name, task_name, task_id),
            "flow_name": flow_name,
            "task_name": task_name,
            "task_id": task_id,
            **fields,
        }

    # -- the contract ---------------------------------------------------------------------

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        document = self._collection().find_one(
            {"_id": key_digest(flow_name, task_name, task_id)}, {"_id": 0, "result": 1}
        )
        if document is None:
            raise self.not_found(flow_name, task_name, task_id)
        return self.serializer.loads(bytes(document["result"]))

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        data = self.serializer.dumps(result)
        document = self._document((flow_name, task_name, task_id), result=data)
        self._upsert(self._collection(), document)
        return str(document["_id"])

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        record = make_error_record(node_args, flow_name, task_name, task_id, exc_info)
        return self._write_error((flow_name, task_name, task_id), record)

    def store_error_record(self, record: dict[str, Any]) -> str:
        return self._write_error(record_key(record), record)

    def _write_error(self, key: Key, record: dict[str, Any]) -> str:
        document = self._document(
            key,
            exception_type=record["exception_type"],
            time=record["time"],
            record=dump_error_record(record),
        )
        self._upsert(self._collection(errors=True), document)
        return str(document["_id"])

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> dict[str, Any]:
        document = self._collection(errors=True).find_one(
            {"_id": key_digest(flow_name, task_name, task_id)}, {"_id": 0, "record": 1}
        )
        if document is None:
            raise self.not_found(flow_name, task_name, task_id, "error record")
        return load_error_record(bytes(document["record"]))

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        outcome = self._collection().delete_one({"_id": key_digest(flow_name, task_name, task_id)})
        if outcome.deleted_count == 0:
            raise self.not_found(flow_name, task_name, task_id)

    # -- bulk and listing -----------------------------------------------------------------

    def store_many(self, items: Iterable[tuple[str, str, str, Any]]) -> list[str]:
        # Serialize everything first: one bad result stores nothing.
        documents = [
            self._document((f, t, i), result=self.serializer.dumps(r)) for f, t, i, r in items
        ]
        if not documents:
            return []
        # An unordered bulk write may apply two writes of one key in any order: keep the last.
        latest = {document["_id"]: document for document in documents}
        collection = self._collection()
        operations = [self._replace_one({"_id": i}, d, upsert=True) for i, d in latest.items()]
        from pymongo.errors import BulkWriteError

        try:
            collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # As in _upsert: inserts that lost a race are replaces on a second try.
            codes = {error.get("code") for error in exc.details.get("writeErrors", [])}
            if codes != {_DUPLICATE_KEY} or exc.details.get("writeConcernErrors"):
                raise
            collection.bulk_write(operations, ordered=False)
        return [str(document["_id"]) for document in documents]

    def retrieve_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        wanted = {key_digest(*key): key for key in keys}
        ids = list(wanted)
        found: dict[Key, Any] = {}
        for start in range(0, len(ids), _BATCH):
            cursor = self._collection().find(
                {"_id": {"$in": ids[start : start + _BATCH]}}, {"_id": 1, "result": 1}
            )
            for document in cursor:
                found[wanted[document["_id"]]] = self.serializer.loads(bytes(document["result"]))
        return found

    def iter_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._collection(), flow_name)

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return self._keys(self._collection(errors=True), flow_name)

    @staticmethod
    def _keys(collection: Any, flow_name: str | None) -> Iterator[Key]:
        if flow_name is not None and not isinstance(flow_name, str):
            # Never let a dict reach the filter, where it would be a query operator.
            raise TypeError(f"flow_name must be a str or None, not {type(flow_name).__name__}")
        query = {} if flow_name is None else {"flow_name": flow_name}
        cursor = collection.find(query, _KEY_FIELDS)
        return ((doc["flow_name"], doc["task_name"], doc["task_id"]) for doc in cursor)
