"""MongoDB under the contract kit — on mongomock (fast, in-process) and on a real
MongoDB-compatible server, the one the suite starts or the one ``SELINON_LIKE_MONGODB_URL``
names — plus its own guarantees: one document per key, one round trip per operation, results as
exact bytes, no operator injection, the 16 MiB document cap, no leaked credentials, and the
documents of the first release still read."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pymongo
import pytest
from conftest import MONGODB_URL, require_service
from mongomock_client import mongomock_client
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

import storages.mongodb
from selinon_like import (
    ConfigError,
    ResultNotFound,
    RetryPolicy,
    StorageError,
    StoragePool,
)
from selinon_like.envelope import Expiry
from selinon_like.keys import key_digest
from selinon_like.serializers import PICKLE
from selinon_like.testing import (
    BulkContract,
    DeleteContract,
    ErrorRecordsContract,
    ListingContract,
    MovableClock,
    ResilienceContract,
    ResultsContract,
    UnreachableServiceContract,
)
from storages.mongodb import MongoDB

REPO = Path(__file__).resolve().parent.parent
SERVER_DB = "selinon_like_test"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _mock_storage(**configuration: Any) -> MongoDB:
    configuration.setdefault("db_name", _unique("db"))
    return MongoDB.from_client(mongomock_client(), **configuration)


def _server_storage(url: str, **configuration: Any) -> MongoDB:
    """A storage on the suite's server, in a collection of its own."""
    configuration.setdefault("db_name", SERVER_DB)
    configuration.setdefault("collection_name", _unique("results"))
    return MongoDB(url=url, **configuration)


def _drop(storage: MongoDB) -> None:
    # Clean-up, not the test: past socket_timeout_ms (30 s) if it must. In make test,
    # SecantusDB (pure Python) once took longer than that to drop a collection holding a
    # chunked 16 MiB result.
    with pymongo.timeout(120):
        storage._results.drop()
        storage._errors.drop()


def _connected(storage: MongoDB) -> Iterator[MongoDB]:
    storage.connect()
    try:
        yield storage
    finally:
        _clean_up(storage)


def _clean_up(storage: MongoDB) -> None:
    """Drop the storage's collections and disconnect it, even when the drop fails (a client
    left open is warned of in whichever test collects it)."""
    try:
        _drop(storage)
    finally:
        storage.disconnect()


@pytest.fixture(scope="module")
def mongodb_url(request: pytest.FixtureRequest) -> str:
    """The server under test: the one ``SELINON_LIKE_MONGODB_URL`` names (a real mongod, say),
    else the MongoDB-compatible server the suite starts (tests/servers/mongodb.py)."""
    if MONGODB_URL is None:
        url: str = request.getfixturevalue("mongodb_server_url")
        return url

    def probe() -> None:
        # Through the adapter, so that the skip or failure message has its secrets masked.
        storage = _server_storage(MONGODB_URL, server_selection_timeout_ms=3000)
        storage.retry_policy = RetryPolicy(attempts=1)
        storage.connect()
        try:
            storage.ping()
        finally:
            _clean_up(storage)

    require_service("MongoDB at SELINON_LIKE_MONGODB_URL", probe)
    return MONGODB_URL


BACKENDS = ["mongomock", pytest.param("server", marks=pytest.mark.mongodb)]


@pytest.fixture(params=BACKENDS)
def mongo(request: pytest.FixtureRequest) -> Iterator[MongoDB]:
    """A connected storage on mongomock, then on the server."""
    if request.param == "mongomock":
        yield from _connected(_mock_storage())
    else:
        yield from _connected(_server_storage(request.getfixturevalue("mongodb_url")))


@pytest.fixture
def on_server(mongodb_url: str) -> Iterator[MongoDB]:
    """A connected storage on the server only (what mongomock does not model)."""
    yield from _connected(_server_storage(mongodb_url))


# The data suites of what MongoDB offers: not StreamingContract (no store_stream/retrieve_stream;
# add the suite with them: under SELINON_LIKE_REQUIRE_SERVICES=1 nothing may skip); its
# ExpiryContract and PurgeContract run in test_expiry_services.py, on every service.
class _Suites(ResultsContract, ErrorRecordsContract, ListingContract, DeleteContract, BulkContract):
    pass


class TestMongoDBOnMongomock(_Suites):
    """The fast run: the data suites in process (forks, threads and an unreachable service
    are the server's to prove)."""

    # mongomock runs queries as scans of the collection, so a call costs in proportion to
    # what is stored: smaller batches here, the full sizes on the server.
    bulk_items = 300
    concurrency_per_thread = 25

    @pytest.fixture
    def storage(self) -> Iterator[MongoDB]:
        yield from _connected(_mock_storage())


@pytest.mark.mongodb
class TestMongoDBOnServer(_Suites, ResilienceContract, UnreachableServiceContract):
    @pytest.fixture
    def storage(self, mongodb_url: str) -> Iterator[MongoDB]:
        yield from _connected(_server_storage(mongodb_url))

    @pytest.fixture(params=["url", "password"])
    def unreachable_storage(
        self, request: pytest.FixtureRequest, unreachable_port: int, secret: str
    ) -> MongoDB:
        timeouts = {
            "server_selection_timeout_ms": 1000,
            "connect_timeout_ms": 1000,
            "socket_timeout_ms": 1000,
        }
        if request.param == "url":
            url = f"mongodb://worker:{secret}@127.0.0.1:{unreachable_port}/db"
            return MongoDB(url=url, **timeouts)
        return MongoDB(
            "db",
            host="127.0.0.1",
            port=unreachable_port,
            username="worker",
            password=secret,
            **timeouts,
        )


# -- through the pool ----------------------------------------------------------------------


def _pool_mapping(configuration: dict[str, Any], classname: str = "MongoDB") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "Results", "classname": classname}
    if classname == "MongoDB":
        entry["import"] = "storages.mongodb"
    entry["configuration"] = configuration
    return {"storages": [entry]}


@pytest.mark.mongodb
def test_the_entry_point_name_resolves_to_the_adapter(mongodb_url: str) -> None:
    configuration = {"url": mongodb_url, "db_name": SERVER_DB, "collection_name": _unique("r")}
    with StoragePool.from_dict(_pool_mapping(configuration, classname="mongodb")) as pool:
        storage = pool.get_connected_storage("Results")
        assert type(storage) is MongoDB
        try:
            storage.store("f", "t", "1", [1])
            assert storage.retrieve("f", "t", "1") == [1]
        finally:
            _drop(storage)


# -- layout: one document per key, results as bytes ----------------------------------------


def test_one_document_per_key_holding_the_serializer_bytes(mongo: MongoDB) -> None:
    first = mongo.store("flow", "task", "1", {"try": 1})
    second = mongo.store("flow", "task", "1", {"try": 2})
    assert first == second == key_digest("flow", "task", "1")
    documents = list(mongo._results.find({}))
    assert len(documents) == 1
    document = documents[0]
    assert document["_id"] == first
    assert (document["flow_name"], document["task_name"], document["task_id"]) == (
        "flow",
        "task",
        "1",
    )
    assert bytes(document["result"]) == mongo.serializer.dumps({"try": 2})
    assert set(document) == {"_id", "flow_name", "task_name", "task_id", "result"}


# The unique index earlier builds made on both collections (connect() makes none now).
LEGACY_KEY_INDEX = [("flow_name", 1), ("task_name", 1), ("task_id", 1)]


def _legacy_indexed(storage: MongoDB) -> MongoDB:
    """``storage``'s collections as an earlier build's connect() left them, with the unique
    key index; reconnected, as a worker of this build meets them."""
    for collection in (storage._results, storage._errors):
        collection.create_index(LEGACY_KEY_INDEX, unique=True, name="selinon_like_key")
    storage.disconnect()
    storage.connect()
    return storage


def _indexes(collection: Any) -> dict[str, Any]:
    return {name: index["key"] for name, index in collection.index_information().items()}


def test_connect_pings_and_creates_no_index(mongo: MongoDB) -> None:
    client = mock.MagicMock()
    storage = MongoDB.from_client(client, db_name="d")
    storage.connect()
    # One round trip, a ping; nothing asked of the collections (looked up, not called).
    assert [c for c in client.mock_calls if not c[0].startswith("__getitem__")] == [
        mock.call.admin.command("ping")
    ]
    mongo.store("f", "t", "1", 1)
    mongo.store_error(None, "f", "t", "1", ValueError("x"))
    # Only the server's own unique index on _id, the key's digest.
    for collection in (mongo._results, mongo._errors):
        assert list(_indexes(collection)) == ["_id_"]


def test_one_document_per_key_by_id_alone(mongo: MongoDB) -> None:
    mongo.store("f", "t", "1", "first")
    mongo.store("f", "t", "1", "second")
    mongo.store_many([("f", "t", "1", "a"), ("f", "t", "2", "b"), ("f", "t", "1", "third")])
    mongo.store_many([("f", "t", "2", "c"), ("f", "t", "2", "d"), ("f", "t", "3", "e")])
    mongo.store("f", "t", "3", "f")
    assert mongo._results.count_documents({}) == 3
    for task_id in ("1", "2", "3"):
        assert mongo._results.count_documents({"task_id": task_id}) == 1
    assert mongo.retrieve_many([("f", "t", "1"), ("f", "t", "2"), ("f", "t", "3")]) == {
        ("f", "t", "1"): "third",
        ("f", "t", "2"): "d",
        ("f", "t", "3"): "f",
    }
    mongo.store_error(None, "f", "t", "1", ValueError("one"))
    mongo.store_error(None, "f", "t", "1", ValueError("two"))
    assert mongo._errors.count_documents({}) == 1
    assert mongo.retrieve_error("f", "t", "1")["message"] == "two"
    # A second document of the key, written raw: refused by _id, the key's digest.
    with pytest.raises(DuplicateKeyError):
        mongo._results.insert_one(
            {"_id": key_digest("f", "t", "1"), "flow_name": "f", "task_name": "t", "task_id": "1"}
        )


def test_one_document_per_key_under_concurrent_stores(on_server: MongoDB) -> None:
    # 8 threads store the same 20 keys one by one, then in a store_many with a key repeated:
    # first stores race (an upsert that lost is retried as a replace), and store_many's
    # inserts meet the others' writes.
    keys = [("f", "t", str(i)) for i in range(20)]
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        for key in keys if n % 2 else reversed(keys):
            on_server.store(*key, n)
        on_server.store_many([(*key, n) for key in keys] + [(*keys[0], n)])

    with concurrent.futures.ThreadPoolExecutor(8) as executor:
        list(executor.map(writer, range(8)))
    assert on_server._results.count_documents({}) == 20
    assert sorted(on_server.iter_keys("f")) == sorted(keys)
    assert set(on_server.retrieve_many(keys).values()) <= set(range(8))


def test_iter_keys_of_a_flow_without_an_index(mongo: MongoDB) -> None:
    # Flow names that are prefixes of others or differ in case, task names equal to flows.
    flows = ("f", "f1", "F", "g")
    items = [(flow, task, str(i), i) for flow in flows for task in ("t", "f") for i in range(30)]
    mongo.store_many(items)
    mongo.store_error(None, "f1", "t", "e", ValueError("x"))
    mongo.store_error(None, "f", "t", "e", ValueError("y"))
    for flow in flows:
        expected = sorted(item[:3] for item in items if item[0] == flow)
        assert sorted(mongo.iter_keys(flow)) == expected
    assert list(mongo.iter_keys("h")) == []
    assert list(mongo.iter_error_keys("f1")) == [("f1", "t", "e")]
    assert len(list(mongo.iter_keys())) == len(items)


def test_a_collection_with_the_earlier_unique_index_works_and_keeps_it(mongo: MongoDB) -> None:
    _legacy_indexed(mongo)
    before = [_indexes(collection) for collection in (mongo._results, mongo._errors)]
    assert all("selinon_like_key" in indexes for indexes in before)
    mongo.store("f", "t", "1", "old")
    mongo.store("f", "t", "1", "new")
    mongo.store_many([("f", "t", str(i), i) for i in range(1, 6)] + [("f", "t", "2", "two")])
    mongo.store_many([("f", "t", "5", "five"), ("g", "t", "1", "g")])
    mongo.store_error(None, "f", "t", "1", ValueError("x"))
    mongo.store_error(None, "f", "t", "1", ValueError("y"))
    assert mongo.retrieve_many([("f", "t", str(i)) for i in range(1, 6)]) == {
        ("f", "t", "1"): 1,
        ("f", "t", "2"): "two",
        ("f", "t", "3"): 3,
        ("f", "t", "4"): 4,
        ("f", "t", "5"): "five",
    }
    assert mongo.retrieve_error("f", "t", "1")["message"] == "y"
    assert sorted(mongo.iter_keys("f")) == [("f", "t", str(i)) for i in range(1, 6)]
    assert list(mongo.iter_keys("g")) == [("g", "t", "1")]
    assert mongo._results.count_documents({}) == 6
    assert mongo.delete_many([("f", "t", "1"), ("g", "t", "1")]) == 2
    mongo.delete("f", "t", "2")
    assert sorted(mongo.iter_keys()) == [("f", "t", "3"), ("f", "t", "4"), ("f", "t", "5")]
    mongo.disconnect()
    mongo.connect()  # connect() leaves what it finds as it is
    after = [_indexes(collection) for collection in (mongo._results, mongo._errors)]
    assert after == before


def test_the_ttl_index_is_made_by_the_first_write_with_an_expiry_not_by_connect(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    # Every insert updates every index: with no ttl, no TTL index to pay for.
    mongo.store("f", "t", "1", 1)
    mongo.store_many([("f", "t", "2", 2)])
    assert "selinon_like_expiry" not in mongo._results.index_information()
    spy.reset_mock()
    assert mongo.purge_expired() == 0  # no index, so no document with an expiry: no scan
    assert spy.method_calls[0][0] == "index_information"
    # (the record layer's look for orphaned chunks follows, by flow_name)
    assert not [c for c in spy.method_calls if "expires_at" in repr(c)]
    mongo.set_record_format(ttl=Expiry(60, 60))
    spy.reset_mock()
    mongo.store("f", "t", "3", 3)
    mongo.store_many([("f", "t", "4", 4)])
    mongo.store("f", "t", "5", 5)
    assert [c[0] for c in spy.method_calls] == [
        "create_index",
        "replace_one",
        "insert_many",
        "replace_one",
    ]
    index = mongo._results.index_information()["selinon_like_expiry"]
    assert index["key"] == [("expires_at", 1)] and index["expireAfterSeconds"] == 0
    assert "selinon_like_expiry" not in mongo._errors.index_information()  # its own, later
    mongo.store_error(None, "f", "t", "1", ValueError("x"))
    assert mongo._errors.index_information()["selinon_like_expiry"]["expireAfterSeconds"] == 0


def test_a_collection_made_by_a_release_that_indexed_expiry_on_connect_still_purges(
    mongo: MongoDB,
) -> None:
    # What connect() made before: the key index and the TTL index, on both collections.
    for collection in (mongo._results, mongo._errors):
        collection.create_index(
            [("expires_at", 1)], expireAfterSeconds=0, name="selinon_like_expiry"
        )
    mongo.disconnect()
    mongo.connect()  # a new connection knows of no TTL index yet
    clock = MovableClock()
    mongo.set_record_format(ttl=Expiry(60), clock=clock)
    mongo.store("f", "t", "due", 1)
    mongo.set_record_format(ttl=Expiry())
    mongo.store("f", "t", "kept", 2)
    mongo.disconnect()
    mongo.connect()  # a new connection: its purge looks the index up
    mongo.set_record_format(clock=clock)
    clock.advance(120)
    assert mongo.purge_expired() == 1
    assert list(mongo.iter_keys()) == [("f", "t", "kept")]


def test_a_foreign_duplicate_of_the_key_is_refused_only_by_the_earlier_index(
    mongo: MongoDB,
) -> None:
    # Someone else's document holds the key under another _id. With no index on the key
    # fields it is not refused: reads go by _id and never see it, listings show it too.
    foreign = {"_id": "foreign", "flow_name": "f", "task_name": "t", "task_id": "1"}
    mongo._results.insert_one(foreign)
    mongo.store("f", "t", "1", {"v": 1})
    assert mongo.retrieve("f", "t", "1") == {"v": 1}
    assert list(mongo.iter_keys("f")) == [("f", "t", "1")] * 2
    mongo.delete("f", "t", "1")
    assert mongo._results.count_documents({}) == 1
    # A collection that kept the earlier builds' unique index still refuses ours.
    _legacy_indexed(mongo)
    with pytest.raises(StorageError) as info:
        mongo.store("f", "t", "1", {"v": 1})
    assert isinstance(info.value.__cause__, DuplicateKeyError)
    assert mongo._results.count_documents({}) == 1


def test_store_many_retries_duplicate_key_errors_once_then_fails(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    # A foreign document holding the key, refused by the earlier builds' unique index.
    mongo._results.create_index(LEGACY_KEY_INDEX, unique=True, name="selinon_like_key")
    mongo._results.insert_one(
        {"_id": "foreign", "flow_name": "f", "task_name": "t", "task_id": "1"}
    )
    spy.reset_mock()
    with pytest.raises(StorageError) as info:
        mongo.store_many([("f", "t", "1", 1), ("f", "t", "2", 2)])
    assert type(info.value.__cause__).__name__ == "BulkWriteError"
    calls = spy.method_calls
    assert [c[0] for c in calls] == ["insert_many", "bulk_write", "bulk_write"]
    # Only the write the insert refused goes on to the upserts; the other key is stored.
    assert [op._filter for op in calls[1].args[0]] == [{"_id": key_digest("f", "t", "1")}]
    assert mongo.retrieve("f", "t", "2") == 2


def test_a_lost_upsert_race_is_retried_as_a_replace(mongo: MongoDB) -> None:
    real = mongo._results
    attempts: list[Any] = []

    def loses_the_first_race(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        if len(attempts) == 1:
            raise DuplicateKeyError("E11000 duplicate key error")
        return real.replace_one(*args, **kwargs)

    spy = mock.Mock(wraps=real)
    spy.replace_one.side_effect = loses_the_first_race
    mongo._results = spy
    try:
        mongo.store("f", "t", "1", {"v": 1})
    finally:
        mongo._results = real
    assert len(attempts) == 2
    assert mongo.retrieve("f", "t", "1") == {"v": 1}


# -- one round trip per operation ----------------------------------------------------------


@pytest.fixture
def spy(mongo: MongoDB) -> Iterator[mock.Mock]:
    real = mongo._results
    mongo._results = mock.Mock(wraps=real)
    yield mongo._results
    mongo._results = real


def test_store_is_one_upsert_and_retrieve_one_projected_find_one(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    record_id = mongo.store("f", "t", "1", {"v": 1})
    assert [c[0] for c in spy.method_calls] == ["replace_one"]
    _name, args, kwargs = spy.method_calls[0]
    # replace_one(filter, replacement, upsert): an upsert, its flag given by position
    assert args[0] == {"_id": record_id} and args[2:] == (True,) and not kwargs
    spy.reset_mock()
    assert mongo.retrieve("f", "t", "1") == {"v": 1}
    assert spy.method_calls == [mock.call.find_one({"_id": record_id}, {"_id": 0, "result": 1})]
    spy.reset_mock()
    with pytest.raises(ResultNotFound):
        mongo.retrieve("f", "t", "2")
    assert [c[0] for c in spy.method_calls] == ["find_one"]


def test_store_many_of_new_keys_is_one_unordered_insert_many_and_last_duplicate_wins(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    items = [("f", "t", str(i), {"i": i}) for i in range(300)] + [("f", "t", "7", "last")]
    ids = mongo.store_many(items)
    assert [c[0] for c in spy.method_calls] == ["insert_many"]
    _name, args, kwargs = spy.method_calls[0]
    assert kwargs == {"ordered": False} and len(args[0]) == 300
    assert ids == [key_digest(f, t, i) for f, t, i, _r in items]
    spy.reset_mock()
    found = mongo.retrieve_many([("f", "t", str(i)) for i in range(300)] + [("f", "t", "x")])
    assert [c[0] for c in spy.method_calls] == ["find"]
    assert len(found) == 300 and found[("f", "t", "7")] == "last"
    assert found[("f", "t", "299")] == {"i": 299}


def test_store_many_replaces_the_stored_keys_in_one_bulk_write_of_upserts(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    mongo.store_many([("f", "t", str(i), "old") for i in range(0, 10, 2)])
    spy.reset_mock()
    items = [("f", "t", str(i), f"new {i}") for i in range(10)]
    assert mongo.store_many(items) == [key_digest(*item[:3]) for item in items]
    assert [c[0] for c in spy.method_calls] == ["insert_many", "bulk_write"]
    _name, args, kwargs = spy.method_calls[1]
    assert kwargs == {"ordered": False}
    assert [op._filter for op in args[0]] == [
        {"_id": key_digest("f", "t", str(i))} for i in range(0, 10, 2)
    ]
    assert all(op._upsert for op in args[0])
    found = mongo.retrieve_many([item[:3] for item in items])
    assert found == {item[:3]: item[3] for item in items}
    assert mongo._results.count_documents({}) == 10
    spy.reset_mock()
    mongo.store_many(items)  # every key stored: every insert refused, all replaced
    assert [c[0] for c in spy.method_calls] == ["insert_many", "bulk_write"]
    assert len(spy.method_calls[1].args[0]) == 10
    assert mongo._results.count_documents({}) == 10


def test_store_many_replaces_after_a_lost_race_once(mongo: MongoDB) -> None:
    # The insert finds the key stored, the upsert then loses an insert race (the document was
    # deleted meanwhile and stored again): the upserts are sent a second time.
    mongo.store("f", "t", "1", "old")
    real = mongo._results
    attempts: list[Any] = []

    def loses_the_first_race(requests: Any, **kwargs: Any) -> Any:
        attempts.append(requests)
        if len(attempts) == 1:
            raise BulkWriteError({"writeErrors": [{"index": 0, "code": 11000}]})
        return real.bulk_write(requests, **kwargs)

    spy = mock.Mock(wraps=real)
    spy.bulk_write.side_effect = loses_the_first_race
    mongo._results = spy
    try:
        mongo.store_many([("f", "t", "1", "new"), ("f", "t", "2", 2)])
    finally:
        mongo._results = real
    assert len(attempts) == 2
    assert mongo.retrieve_many([("f", "t", "1"), ("f", "t", "2")]) == {
        ("f", "t", "1"): "new",
        ("f", "t", "2"): 2,
    }


@pytest.mark.parametrize(
    "details",
    [
        {"writeErrors": [{"index": 0, "code": 11000}, {"index": 1, "code": 121}]},
        {"writeErrors": [{"index": 0, "code": 11000}], "writeConcernErrors": [{"code": 64}]},
    ],
    ids=["another-write-error", "write-concern-error"],
)
def test_store_many_fails_on_an_insert_error_other_than_a_duplicate(
    mongo: MongoDB, spy: mock.Mock, details: dict[str, Any]
) -> None:
    spy.insert_many.side_effect = BulkWriteError(details)
    with pytest.raises(StorageError) as info:
        mongo.store_many([("f", "t", "1", 1), ("f", "t", "2", 2)])
    assert isinstance(info.value.__cause__, BulkWriteError)
    assert [c[0] for c in spy.method_calls] == ["insert_many"]


def test_retrieve_many_and_delete_many_send_one_query_per_batch(
    mongo: MongoDB, spy: mock.Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storages.mongodb, "_BATCH", 4)
    mongo.store_many([("f", "t", str(i), i) for i in range(10)])
    spy.reset_mock()
    found = mongo.retrieve_many([("f", "t", str(i)) for i in range(10)])
    assert found == {("f", "t", str(i)): i for i in range(10)}
    assert [c[0] for c in spy.method_calls] == ["find", "find", "find"]
    spy.reset_mock()
    assert mongo.delete_many([("f", "t", str(i)) for i in range(12)]) == 10
    assert [c[0] for c in spy.method_calls] == ["delete_many"] * 3
    assert mongo._results.count_documents({}) == 0


def test_delete_many_is_one_delete_many_counting_each_key_once(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    mongo.store_many([("f", "t", str(i), i) for i in range(5)])
    spy.reset_mock()
    keys = [("f", "t", "1"), ("f", "t", "1"), ("f", "t", "3"), ("f", "t", "missing")]
    assert mongo.delete_many(keys) == 2
    assert spy.method_calls == [
        mock.call.delete_many({"_id": {"$in": [key_digest(*key) for key in keys[1:]]}})
    ]
    assert sorted(mongo.iter_keys()) == [("f", "t", "0"), ("f", "t", "2"), ("f", "t", "4")]


def test_retrieve_many_of_repeated_keys_is_one_find_of_each_id(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    mongo.store("f", "t", "1", "one")
    spy.reset_mock()
    found = mongo.retrieve_many([("f", "t", "1"), ("f", "t", "2"), ("f", "t", "1")])
    assert found == {("f", "t", "1"): "one"}
    ids = [key_digest("f", "t", "1"), key_digest("f", "t", "2")]
    assert spy.method_calls == [mock.call.find({"_id": {"$in": ids}}, {"_id": 1, "result": 1})]


def test_iter_keys_reads_the_key_fields_only(mongo: MongoDB, spy: mock.Mock) -> None:
    mongo.store_many([("a", "t", "1", "x" * 1000), ("b", "t", "2", "y")])
    spy.reset_mock()
    assert list(mongo.iter_keys("a")) == [("a", "t", "1")]
    projection = {"_id": 0, "flow_name": 1, "task_name": 1, "task_id": 1}
    assert spy.method_calls == [mock.call.find({"flow_name": "a"}, projection)]
    spy.reset_mock()
    assert sorted(mongo.iter_keys()) == [("a", "t", "1"), ("b", "t", "2")]
    assert spy.method_calls == [mock.call.find({}, projection)]


# -- the first release's documents -----------------------------------------------------------


def test_documents_of_the_first_release_are_read_listed_and_deleted(mongo: MongoDB) -> None:
    # Built by hand as the first release wrote them (its store and store_error).
    key = ("flow", "task", "old")
    record = {
        "flow_name": "flow",
        "task_name": "task",
        "task_id": "old",
        "exception_type": "builtins.KeyError",
        "message": "'k'",
        "traceback": "Traceback (most recent call last): ...",
        "node_args": {"a": 1},
        "time": "2026-01-02T03:04:05.000006+00:00",
    }
    fields = {"_id": key_digest(*key), "flow_name": "flow", "task_name": "task", "task_id": "old"}
    mongo._results.insert_one({**fields, "result": json.dumps({"v": [1, 2]}).encode()})
    mongo._errors.insert_one(
        {
            **fields,
            "exception_type": record["exception_type"],
            "time": record["time"],
            "record": json.dumps(record, ensure_ascii=False).encode(),
        }
    )
    assert mongo.retrieve(*key) == {"v": [1, 2]}
    assert mongo.retrieve_many([key]) == {key: {"v": [1, 2]}}
    assert mongo.retrieve_error(*key) == record
    assert list(mongo.iter_keys("flow")) == list(mongo.iter_error_keys("flow")) == [key]
    assert mongo.store(*key, "new") == key_digest(*key)  # the same document, replaced
    assert mongo._results.count_documents({}) == 1
    mongo.delete(*key)
    assert mongo._results.count_documents({}) == 0


def test_error_documents_keep_the_first_release_fields(mongo: MongoDB) -> None:
    record_id = mongo.store_error({"n": 1}, "f", "t", "1", ValueError("boom"))
    document = mongo._errors.find_one({"_id": record_id})
    assert set(document) == {
        "_id",
        "flow_name",
        "task_name",
        "task_id",
        "exception_type",
        "time",
        "record",
    }
    record = json.loads(bytes(document["record"]))
    assert document["exception_type"] == record["exception_type"] == "builtins.ValueError"
    assert document["time"] == record["time"]
    assert dt.datetime.fromisoformat(document["time"]).tzinfo is not None
    # store_error_record writes the same document, replacing the first.
    copied = mongo.retrieve_error("f", "t", "1")
    copied["message"] = "copied"
    again = mongo.store_error_record(copied)
    assert again == record_id and mongo._errors.count_documents({}) == 1
    assert mongo.retrieve_error("f", "t", "1")["message"] == "copied"


def test_error_bytes_that_are_not_plain_json_are_kept_as_they_are(mongo: MongoDB) -> None:
    key = ("f", "t", "1")
    data = b"\xffSL\x01 a header, then anything"
    assert mongo.write("errors", key, data) == key_digest(*key)
    assert mongo.read("errors", key) == data
    document = mongo._errors.find_one({})
    assert set(document) == {"_id", "flow_name", "task_name", "task_id", "record"}


# -- awkward results and operator injection -------------------------------------------------


def _nested(levels: int) -> Any:
    value: Any = "bottom"
    for level in range(levels):
        value = {f"$l{level}.x": value} if level % 2 else [value]
    return value


AWKWARD = {
    "dollar-keys": {"$set": {"a": 1}, "$where": "sleep(1)", "$in": [{"$ne": None}]},
    "dotted-keys": {"a.b": 1, "a": {"b.c.": 2}, ".": 3, "": 4},
    "int-2**200": 2**200,
    "int--2**70": -(2**70),
    "ints-in-dicts": {"big": [2**64, -(2**63) - 1, 2**63]},
    "nested-100": _nested(100),
    "nul-and-unicode": {"\u0000k": "\u0000v 🐍"},
}


@pytest.mark.parametrize("result", list(AWKWARD.values()), ids=list(AWKWARD))
def test_awkward_results_round_trip_exactly(mongo: MongoDB, result: Any) -> None:
    mongo.store("f", "t", "1", result)
    assert mongo.retrieve("f", "t", "1") == result
    assert mongo.retrieve_many([("f", "t", "1")]) == {("f", "t", "1"): result}
    assert isinstance(mongo._results.find_one({})["result"], bytes)


def test_awkward_results_round_trip_with_pickle(mongo: MongoDB) -> None:
    mongo.serializer = PICKLE
    result = {"tuple": (1, 2), "set": {2**100}, 3: _nested(100), "$x.y": b"\x00"}
    mongo.store("f", "t", "1", result)
    assert mongo.retrieve("f", "t", "1") == result


@pytest.mark.parametrize("position", [0, 1, 2])
def test_operator_injection_is_refused_before_any_query(mongo: MongoDB, position: int) -> None:
    real = (mongo._client, mongo._results, mongo._errors)
    spies = [mock.Mock(wraps=part) for part in real]
    mongo._client, mongo._results, mongo._errors = spies
    key: list[Any] = ["f", "t", "1"]
    key[position] = {"$ne": None}
    calls: list[Any] = [
        lambda: mongo.retrieve(*key),
        lambda: mongo.store(*key, "x"),
        lambda: mongo.delete(*key),
        lambda: mongo.retrieve_error(*key),
        lambda: mongo.store_error(None, *key, ValueError("x")),
        lambda: mongo.store_many([(*key, "x")]),
        lambda: mongo.retrieve_many([tuple(key)]),
    ]
    try:
        for call in calls:
            with pytest.raises(TypeError):
                call()
        assert [s.mock_calls for s in spies] == [[], [], []]
        mongo.retrieve_many([("f", "t", "1")])  # the spies do record a real query
        assert spies[1].method_calls
    finally:
        mongo._client, mongo._results, mongo._errors = real
    assert mongo._results.count_documents({}) == 0
    assert mongo._errors.count_documents({}) == 0


def test_iter_keys_refuses_a_non_str_flow_name_before_any_query(
    mongo: MongoDB, spy: mock.Mock
) -> None:
    mongo.store("f", "t", "1", 1)
    spy.reset_mock()
    with pytest.raises((TypeError, StorageError)) as info:
        list(mongo.iter_keys({"$ne": None}))  # type: ignore[arg-type]
    error = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert isinstance(error, TypeError)
    assert spy.method_calls == []
    assert list(mongo.iter_keys("f")) == [("f", "t", "1")]


# -- errors, connection state ----------------------------------------------------------------


def test_errors_live_in_their_own_collection(mongo: MongoDB) -> None:
    mongo.store("f", "t", "1", {"ok": True})
    record_id = mongo.store_error({"$arg": 1}, "f", "t", "1", ValueError("boom"))
    assert mongo._results.count_documents({}) == 1
    document = mongo._errors.find_one({"_id": record_id})
    assert document is not None
    assert document["exception_type"] == "builtins.ValueError"
    assert mongo.retrieve_error("f", "t", "1")["node_args"] == {"$arg": 1}
    assert mongo.retrieve("f", "t", "1") == {"ok": True}
    assert mongo._errors.name == mongo._results.name + "_errors"


def test_errors_collection_name_is_used() -> None:
    storage = _mock_storage(collection_name="res", errors_collection_name="failures")
    storage.connect()
    try:
        storage.store_error(None, "f", "t", "1", KeyError("k"))
        names = storage._client[storage.db_name].list_collection_names()
        assert storage._errors.name == "failures" and "failures" in names
        assert storage._errors.count_documents({}) == 1
        assert storage._results.count_documents({}) == 0
    finally:
        _clean_up(storage)


def test_a_client_given_ready_stays_open_and_keeps_its_data_across_reconnects() -> None:
    client = mongomock_client()
    storage = MongoDB.from_client(client, db_name=_unique("db"), collection_name="res")
    with mock.patch.object(client, "close") as close:
        storage.connect()
        storage.store("f", "t", "1", 1)
        storage.disconnect()
        assert not storage.is_connected()
        with pytest.raises(StorageError, match="not connected"):
            storage.retrieve("f", "t", "1")
        with pytest.raises(StorageError, match="not connected"):
            storage.ping()
        storage.connect()
        assert storage.retrieve("f", "t", "1") == 1
        # Another adapter on the same client sees the same documents.
        other = MongoDB.from_client(client, db_name=storage.db_name, collection_name="res")
        other.connect()
        assert other.retrieve("f", "t", "1") == 1
        other.disconnect()
        _drop(storage)
        storage.disconnect()
        close.assert_not_called()


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ({"db_name": "d", "url": "mongodb://h/d"}, "url"),
        ({"db_name": "d", "host": "h", "port": 1}, "host"),
        ({"db_name": "d", "username": "u", "password": "S3cr3t-pw"}, "password"),
        ({"db_name": "d", "socket_timeout_ms": 5}, "socket_timeout_ms"),
        ({"collection_name": "r"}, "db_name"),
    ],
)
def test_from_client_refuses_what_only_builds_a_client(
    configuration: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        MongoDB.from_client(mongomock_client(), **configuration)
    assert info.value.key == key
    assert "S3cr3t-pw" not in str(info.value)


def test_a_mongomock_url_points_to_from_client() -> None:
    with pytest.raises(ConfigError, match=r"from_client\(\)") as info:
        MongoDB(url="mongomock://tests/db")
    assert info.value.key == "url"


def test_a_failed_first_round_trip_leaves_a_client_given_ready_open() -> None:
    client = mock.MagicMock()
    client.admin.command.side_effect = OperationFailure("not allowed")
    storage = MongoDB.from_client(client, db_name="d")
    with pytest.raises(StorageError, match="not allowed"):
        storage.connect()
    assert not storage.is_connected()
    client.close.assert_not_called()


@pytest.mark.parametrize(
    "exc",
    [
        AutoReconnect("x"),
        NetworkTimeout("x"),
        ServerSelectionTimeoutError("x"),
        ConnectionFailure("x"),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_errors_are_transient(exc: BaseException) -> None:
    assert _mock_storage().is_transient(exc) is True


@pytest.mark.parametrize(
    "exc",
    [OperationFailure("x"), DuplicateKeyError("x"), DocumentTooLarge("x"), ValueError("x")],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_not_transient(exc: BaseException) -> None:
    assert _mock_storage().is_transient(exc) is False


def test_a_missing_driver_names_the_extra_with_a_client_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (Built from a configuration: tests/test_no_drivers.py, for every adapter.)
    monkeypatch.setitem(sys.modules, "pymongo", None)
    storage = _mock_storage()
    with pytest.raises(ConfigError, match=r"selinon-like\[mongodb\]"):
        storage.connect()
    assert not storage.is_connected()


# -- the 16 MiB document limit ----------------------------------------------------------------

_MIB_16 = 16 * 1024 * 1024


def _oversized() -> str:
    return "x" * (_MIB_16 + 1)  # its JSON alone passes 16 MiB


def test_a_result_over_16_mib_is_stored_in_chunks(mongo: MongoDB) -> None:
    # SPEC §9: past the adapter's max_value_bytes the record layer writes chunk documents and
    # a manifest (selinon_like.chunks), so no document reaches the 16 MiB cap.
    mongo.store("f", "t", "1", "before")
    mongo.store("f", "t", "1", _oversized())
    assert mongo.retrieve("f", "t", "1") == _oversized()
    largest = max(len(doc["result"]) for doc in mongo._results.find({}, {"result": 1}))
    assert largest <= 15 * 1024 * 1024  # MongoDB.max_value_bytes
    assert list(mongo.iter_keys()) == [("f", "t", "1")]


def test_store_many_with_a_result_over_16_mib_stores_it_in_chunks(mongo: MongoDB) -> None:
    items = [("f", "t", "small", 1), ("f", "t", "big", _oversized()), ("f", "t", "after", 2)]
    mongo.store_many(items)
    assert mongo.retrieve_many([key[:3] for key in items]) == {
        ("f", "t", "small"): 1,
        ("f", "t", "big"): _oversized(),
        ("f", "t", "after"): 2,
    }


def test_a_document_near_the_cap_is_measured_exactly(mongo: MongoDB) -> None:
    # The adapter's own check, under the record layer's chunking: long key parts make the
    # quick upper bound pass 16 MiB while the document itself fits.
    task_id = "i" * 1000
    record = b'"' + b"y" * (_MIB_16 - 2500) + b'"'
    mongo.write("results", ("f", "t", task_id), record)
    assert mongo.read("results", ("f", "t", task_id)) == record
    with pytest.raises(StorageError, match="16 MiB"):
        mongo.write("results", ("f", "t", task_id), record + b"y" * 1500)
    assert mongo.read("results", ("f", "t", task_id)) == record


@pytest.mark.mongodb
def test_the_server_itself_refuses_a_document_over_16_mib(on_server: MongoDB) -> None:
    # What the size check saves a call from: the server's refusal, after the bytes are sent.
    document = {"_id": "big", "result": b"x" * (_MIB_16 + 1)}
    with pytest.raises(OperationFailure, match="16777216"):
        on_server._results.replace_one({"_id": "big"}, document, upsert=True)


# -- pymongo client options and credentials --------------------------------------------------


def test_pymongo_gets_the_options_and_finite_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    clients: list[Any] = []

    def fake_client(**kwargs: Any) -> Any:
        made.append(kwargs)
        client = mongomock_client()
        client.close = mock.Mock()
        clients.append(client)
        return client

    monkeypatch.setattr(pymongo, "MongoClient", fake_client)
    storage = MongoDB("db", "res", "db.example", "27018", username="u", password="pw", tls="yes")
    storage.connect()
    storage.store("f", "t", "1", 1)
    assert storage.retrieve("f", "t", "1") == 1
    storage.disconnect()
    assert made == [
        {
            "host": "db.example",
            "port": 27018,
            "username": "u",
            "password": "pw",
            "tls": True,
            "serverSelectionTimeoutMS": 5000,
            "connectTimeoutMS": 5000,
            "socketTimeoutMS": 30000,
            "retryWrites": False,  # the storage's retry policy retries, under its deadline
            "retryReads": False,
            "journal": True,
            "appname": "selinon_like",
        }
    ]
    clients[0].close.assert_called_once_with()
    url_storage = MongoDB(url="mongodb://h1,h2/app?replicaSet=rs", socket_timeout_ms=1000)
    url_storage.connect()
    assert url_storage.db_name == "app"
    assert made[1]["host"] == "mongodb://h1,h2/app?replicaSet=rs" and "port" not in made[1]
    assert made[1]["socketTimeoutMS"] == 1000 and "tls" not in made[1]
    url_storage.disconnect()


SECRETS = ["S3cr3t-pw", "p%40ss%2Fw0rd-xyz", "p@ss/w0rd-xyz"]


def test_a_driver_message_quoting_the_password_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pymongo, "MongoClient", lambda **kwargs: mongomock_client())
    storage = MongoDB(url="mongodb://u:p%40ss%2Fw0rd-xyz@h/db", username="u", password="S3cr3t-pw")
    storage.connect()
    failing = mock.Mock()
    failing.find_one.side_effect = OperationFailure(
        "auth failed: mongodb://u:p%40ss%2Fw0rd-xyz@h, decoded p@ss/w0rd-xyz, other S3cr3t-pw"
    )
    storage._results = failing
    with pytest.raises(StorageError) as info:
        storage.retrieve("f", "t", "1")
    assert "auth failed" in str(info.value) and "***" in str(info.value)
    for secret in SECRETS:
        assert secret not in str(info.value) and secret not in repr(storage)
    storage.disconnect()


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ({"collection_name": "r"}, "db_name"),
        ({"db_name": "d", "url": "mongodb://h", "host": "h"}, "url"),
        ({"db_name": "d", "url": "http://u:S3cr3t-pw@h"}, "url"),
        ({"db_name": "d", "port": 70000}, "port"),
        ({"db_name": "d", "collection_name": "x", "errors_collection_name": "x"}, None),
        ({"db_name": "d", "password": "S3cr3t-pw"}, "password"),
        ({"db_name": "d", "tls": "maybe"}, "tls"),
        ({"db_name": "d", "socket_timeout_ms": 0}, "socket_timeout_ms"),
        ({"db_name": "d", "server_selection_timeout_ms": "soon"}, None),
    ],
)
def test_bad_configuration_is_a_config_error(
    configuration: dict[str, Any], key: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        MongoDB(**configuration)
    if key is not None:
        assert info.value.key == key
    assert "S3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["mongodb://u:S3cr3t-pw@h:notaport/db", "mongodb+srv://u:S3cr3t-pw@h.example:27017/db"],
)
def test_a_url_pymongo_refuses_is_a_config_error_on_connect(url: str) -> None:
    storage = MongoDB(url=url)
    with pytest.raises(ConfigError) as info:
        storage.connect()
    assert info.value.key == "url" and not storage.is_connected()
    assert "S3cr3t-pw" not in str(info.value)


def test_unknown_option_is_a_config_error_through_the_pool() -> None:
    with pytest.raises(ConfigError, match="hots"):
        StoragePool.from_dict(_pool_mapping({"db_name": "d", "hots": "h"}))


def test_database_comes_from_the_url_and_db_name_wins() -> None:
    assert MongoDB(url="mongodb://h/app%20db").db_name == "app db"
    assert MongoDB(url="mongodb://h/app", db_name="other").db_name == "other"


def test_whether_a_server_answers_is_worked_out_once_per_topology_description() -> None:
    # pymongo replaces its (immutable) topology description when anything changes: the
    # answer follows each new one, and is not worked out again for the same one.
    reads: list[str] = []

    class Description:
        def __init__(self, name: str, known: list[str]) -> None:
            self.name, self.known = name, known

        @property
        def known_servers(self) -> list[str]:
            reads.append(self.name)
            return self.known

    class Client:
        topology_description = Description("up", ["primary"])

    storage = MongoDB(url="mongodb://127.0.0.1:1/", db_name="test")
    client = Client()
    assert storage._answering(client) and storage._answering(client)
    client.topology_description = Description("down", [])
    assert not storage._answering(client) and not storage._answering(client)
    client.topology_description = Description("back", ["primary"])
    assert storage._answering(client)
    assert reads == ["up", "down", "back"]
