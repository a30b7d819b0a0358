"""Issue 16 against the real services: each adapter's native expiry, a damaged header on every
adapter, purging while another process stores, SQL tables of the first release, S3 lifecycle
rules. (The contract kit's ExpiryContract runs in each adapter's own test module too.)"""

from __future__ import annotations

import contextlib
import datetime as _dt
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MYSQL_URL,
    POSTGRESQL_URL,
    REDIS_URL,
    delete_redis_keys,
    drop_tables,
    redis_probe,
    require_service,
    sql_probe,
)

from selinon_like import StoragePool
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry, has_header
from selinon_like.errors import ResultNotFound, StorageError
from selinon_like.keys import Key, key_digest, pack_key
from selinon_like.records import ERRORS, RESULTS, RecordStorage
from selinon_like.testing import (
    ErrorRecordsContract,
    ExpiryContract,
    MovableClock,
    PurgeContract,
)

SERVICES = ["memory", "filesystem", "sqlite", "postgresql", "mariadb", "redis", "mongodb", "s3"]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=SERVICES)
def entry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A ``storages`` entry of a fresh storage on the service (its own table, key prefix,
    collection, bucket or directory), removed afterwards; a child process can build the same
    storage from it."""
    service: str = request.param
    name = service.capitalize()
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if service == "memory":
        config: dict[str, Any] = {"classname": "memory"}
    elif service == "filesystem":
        config = {"classname": "filesystem", "configuration": {"path": str(tmp_path / "fs")}}
    elif service == "sqlite":
        config = {"classname": "sqlite", "configuration": {"path": str(tmp_path / "db.sqlite")}}
    elif service in ("postgresql", "mariadb"):
        url = POSTGRESQL_URL if service == "postgresql" else MYSQL_URL
        require_service(service, sql_probe(url))
        table = _unique("expiry")
        config = {
            "classname": "sql",
            "configuration": {"connection_string": url, "table_name": table},
        }
        cleanup = lambda: drop_tables(url, table)  # noqa: E731
    elif service == "redis":
        require_service("Redis", redis_probe)
        prefix = _unique("expiry") + ":"
        config = {"classname": "redis", "configuration": {"url": REDIS_URL, "key_prefix": prefix}}
        cleanup = lambda: delete_redis_keys(prefix)  # noqa: E731
    elif service == "mongodb":
        url = request.getfixturevalue("mongodb_server_url")
        collection = _unique("expiry")
        config = {
            "classname": "mongodb",
            "configuration": {
                "url": url,
                "db_name": "selinon_like_test",
                "collection_name": collection,
            },
        }
    else:
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        config = {
            "classname": "s3",
            "configuration": {
                **server.client_options(),
                "bucket": bucket,
                "addressing_style": "path",
            },
        }
    yield {"name": name, **config}
    cleanup()


@contextlib.contextmanager
def opened(entry: dict[str, Any], **storage_keys: Any) -> Iterator[Any]:
    """The storage of ``entry`` (with extra storage-level keys such as ``ttl``), connected:
    a :class:`RecordStorage` (typed ``Any`` for the adapters' own attributes)."""
    pool = StoragePool.from_dict({"storages": [{**entry, **storage_keys}]})
    try:
        storage = pool.get_connected_storage(entry["name"])
        assert isinstance(storage, RecordStorage)
        yield storage
    finally:
        pool.disconnect_all()


# -- every adapter ---------------------------------------------------------------------------


def test_a_damaged_header_is_a_storage_error_naming_storage_and_key(entry: dict[str, Any]) -> None:
    with opened(entry, ttl=600, compression="gzip") as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        key: Key = ("flow", "task", "damaged")
        storage.store(*key, {"v": 1})
        data = storage.read(RESULTS, key)
        assert data is not None and has_header(data)
        storage.write(RESULTS, key, data[:8] + bytes([data[8] ^ 0x40]) + data[9:])
        attempts: list[Callable[[], object]] = [
            lambda: storage.retrieve(*key),
            lambda: storage.retrieve_many([key]),
        ]
        for attempt in attempts:
            with pytest.raises(StorageError) as info:
                attempt()
            message = str(info.value)
            assert message.startswith(
                f"{entry['name']}: the result stored for flow 'flow', task 'task', "
                "task id 'damaged' is unreadable"
            ), message
            assert not isinstance(info.value, ResultNotFound)
        storage.write(RESULTS, key, data[:10])
        with pytest.raises(StorageError, match="truncated"):
            storage.retrieve(*key)
        clock.advance(10_000)
        storage.purge_expired()  # what cannot be read is never taken for expired
        assert storage.read(RESULTS, key) == data[:10]


def test_error_records_outlive_results_and_compression_switches_both_ways(
    entry: dict[str, Any],
) -> None:
    big = {"rows": [{"id": n, "ok": True, "note": "finished"} for n in range(5000)]}
    with opened(entry) as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        storage.store("f", "t", "plain", big)
        storage.set_record_format(
            ttl=Expiry(results=1, errors=3600), compression=Compression("zstd")
        )
        storage.store("f", "t", "packed", big)
        storage.store_error(None, "f", "t", "packed", ValueError("it failed"))
        stored = storage.read(RESULTS, ("f", "t", "packed")) or b""
        assert len(stored) < len(storage.record_codec.serializer.dumps(big)) / 5
        assert storage.retrieve("f", "t", "plain") == big
        clock.advance(2)
        with pytest.raises(ResultNotFound):
            storage.retrieve("f", "t", "packed")
        assert storage.retrieve_error("f", "t", "packed")["message"] == "it failed"
        assert storage.purge_expired() >= 1
        assert storage.read(RESULTS, ("f", "t", "packed")) is None
        assert storage.retrieve_error("f", "t", "packed")["message"] == "it failed"
        storage.set_record_format(ttl=Expiry())
        storage.store("f", "t", "again", big)
        storage.set_record_format(compression=Compression())
        assert storage.retrieve("f", "t", "again") == big
        assert storage.retrieve("f", "t", "plain") == big
        assert storage.retrieve_error("f", "t", "packed")["message"] == "it failed"


# -- purging while another process stores ------------------------------------------------------

RACE_KEYS = 400


def _store_fresh(entry: dict[str, Any], started: Any) -> None:
    """In a child process: store a record that never expires under every even key, from the
    last to the first (purge walks its own order), one store at a time."""
    with opened(entry) as storage:
        started.set()
        for n in reversed(range(0, RACE_KEYS, 2)):
            storage.store("race", "t", str(n), "fresh")


@pytest.mark.parametrize("entry", [s for s in SERVICES if s != "memory"], indirect=True)
def test_purge_never_removes_a_record_another_process_stores_meanwhile(
    entry: dict[str, Any],
) -> None:
    with opened(entry, ttl={"results": 1, "errors": 1}) as storage:
        storage.set_record_format(clock=lambda: time.time() - 100)  # expired as stored
        storage.store_many([("race", "t", str(n), "expired") for n in range(RACE_KEYS)])
        storage.set_record_format(clock=time.time)
        context = multiprocessing.get_context("spawn")
        started = context.Event()
        writer = context.Process(target=_store_fresh, args=(entry, started))
        writer.start()
        try:
            assert started.wait(60), "the writer process did not start"
            purged = 0
            while writer.is_alive():
                purged += storage.purge_expired()
            purged += storage.purge_expired()
        finally:
            writer.join(60)
        assert writer.exitcode == 0
        for n in range(RACE_KEYS):
            data = storage.read(RESULTS, ("race", "t", str(n)))
            if n % 2:
                assert data is None, n  # expired, never stored again: purged
            else:
                assert storage.retrieve("race", "t", str(n)) == "fresh", n
        assert purged <= RACE_KEYS


# -- each service's own expiry -----------------------------------------------------------------


@pytest.mark.parametrize("entry", ["redis"], indirect=True)
def test_redis_gets_px_of_the_time_left_and_loses_it_when_stored_without_ttl(
    entry: dict[str, Any],
) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = entry["configuration"]["key_prefix"]
    try:
        with opened(entry, ttl={"results": 60, "errors": 120}) as storage:
            storage.store("f", "t", "one", 1)
            storage.store_many([("f", "t", "many", 2), ("f", "t", "more", 3)])
            storage.store_error(None, "f", "t", "one", ValueError("x"))
            for task_id in ("one", "many", "more"):
                assert 59_000 < client.pttl(prefix + "r:" + pack_key("f", "t", task_id)) <= 60_000
            assert 119_000 < client.pttl(prefix + "e:" + pack_key("f", "t", "one")) <= 120_000
            storage.set_record_format(ttl=Expiry())
            storage.store("f", "t", "one", 1)
            storage.store_many([("f", "t", "many", 2)])
            assert client.pttl(prefix + "r:" + pack_key("f", "t", "one")) == -1
            assert client.pttl(prefix + "r:" + pack_key("f", "t", "many")) == -1
        with opened(entry, ttl=1) as storage:
            storage.store("f", "t", "short", 1)
            time.sleep(1.2)  # Redis' own expiry, the one wait of this module
            assert client.get(prefix + "r:" + pack_key("f", "t", "short")) is None
    finally:
        client.close()


@pytest.mark.parametrize("entry", ["postgresql", "mariadb", "sqlite"], indirect=True)
def test_sql_keeps_the_expiry_in_an_indexed_column(entry: dict[str, Any]) -> None:
    import sqlalchemy as sa

    with opened(entry, ttl={"results": 60}) as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        storage.store("f", "t", "one", 1)
        storage.store_many([("f", "t", "many", 2)])
        storage.set_record_format(ttl=Expiry())
        storage.store("f", "t", "forever", 3)
        engine = storage.engine
        table = storage.table_name
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text(f"SELECT task_id, expires_at FROM {table}")).all())
            indexes = sa.inspect(conn).get_indexes(table)
        expected = int(clock.now * 1000) + 60_000
        assert rows["one"] in (expected, expected + 1) and rows["many"] in (expected, expected + 1)
        assert rows["forever"] is None
        assert any(index["column_names"] == ["expires_at"] for index in indexes)


@pytest.mark.parametrize("entry", ["postgresql", "mariadb", "sqlite"], indirect=True)
def test_a_table_of_the_first_release_gets_the_column_and_keeps_its_rows(
    entry: dict[str, Any],
) -> None:
    import sqlalchemy as sa

    url = (
        entry["configuration"].get("connection_string")
        or "sqlite:///" + entry["configuration"]["path"]
    )
    table = entry["configuration"].get("table_name", "selinon_results")
    blob = "BYTEA" if url.startswith("postgresql") else "LONGBLOB" if "mysql" in url else "BLOB"
    text = "TEXT"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # the first release's tables, with one result each
            for name, column in ((table, "result"), (table + "_errors", "error")):
                conn.execute(
                    sa.text(
                        f"CREATE TABLE {name} (key_digest CHAR(64) PRIMARY KEY, flow_name {text} "
                        f"NOT NULL, task_name {text} NOT NULL, task_id {text} NOT NULL, "
                        f"{column} {blob} NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT "
                        "CURRENT_TIMESTAMP, updated_at TIMESTAMP NOT NULL DEFAULT "
                        "CURRENT_TIMESTAMP)"
                    )
                )
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (key_digest, flow_name, task_name, task_id, result) "
                    "VALUES (:d, 'f', 't', 'old', :r)"
                ),
                {"d": key_digest("f", "t", "old"), "r": b'{"from": "the first release"}'},
            )
    finally:
        engine.dispose()
    with opened(entry, ttl=1) as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        assert storage.retrieve("f", "t", "old") == {"from": "the first release"}
        storage.store("f", "t", "new", 1)
        clock.advance(5)
        assert storage.purge_expired() == 1
        assert storage.retrieve("f", "t", "old") == {"from": "the first release"}
    with opened(entry) as again:  # a second connect finds the column there
        assert again.retrieve("f", "t", "old") == {"from": "the first release"}


@pytest.mark.parametrize("entry", ["mongodb"], indirect=True)
def test_mongodb_documents_hold_a_date_under_a_ttl_index(entry: dict[str, Any]) -> None:
    with opened(entry, ttl={"results": 60}) as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        storage.store("f", "t", "one", 1)
        storage.store_many([("f", "t", "many", 2)])
        collection = storage._results
        document = collection.find_one({"task_id": "one"})
        expected = _dt.datetime.fromtimestamp(clock.now + 60, _dt.timezone.utc)
        stored = document["expires_at"].replace(tzinfo=_dt.timezone.utc)
        assert abs((stored - expected).total_seconds()) < 0.01
        assert collection.find_one({"task_id": "many"})["expires_at"] == document["expires_at"]
        index = collection.index_information()["selinon_like_expiry"]
        assert index["key"] == [("expires_at", 1)] and index["expireAfterSeconds"] == 0
        storage.set_record_format(ttl=Expiry())
        storage.store("f", "t", "one", 1)
        assert "expires_at" not in collection.find_one({"task_id": "one"})
        storage._results.drop()
        storage._errors.drop()


@pytest.mark.parametrize("entry", ["s3"], indirect=True)
def test_s3_objects_carry_their_expiry_and_lifecycle_rules_follow_the_ttl(
    entry: dict[str, Any],
) -> None:
    bucket = entry["configuration"]["bucket"]
    with opened(entry) as other:  # a rule of someone else's, which must survive
        other.client.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "theirs",
                        "Status": "Enabled",
                        "Filter": {"Prefix": "logs/"},
                        "Expiration": {"Days": 30},
                    }
                ]
            },
        )
    configured = {**entry, "configuration": {**entry["configuration"], "lifecycle": True}}
    with opened(configured, ttl={"results": 90_000, "errors": 3600}) as storage:
        clock = MovableClock()
        storage.set_record_format(clock=clock)
        storage.store("f", "t", "one", 1)
        name = storage.object_key("results", "f", "t", "one")
        head = storage.client.head_object(Bucket=bucket, Key=name)
        expected = (clock.now + 90_000) * 1000
        assert int(head["Metadata"]["expires-at"]) == pytest.approx(expected, abs=2)
        tags = storage.client.get_object_tagging(Bucket=bucket, Key=name)["TagSet"]
        assert tags == [{"Key": "selinon-like-ttl", "Value": "2"}]  # 25 hours: 2 days
        rules = storage.client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        by_id = {rule["ID"]: rule for rule in rules}
        assert "theirs" in by_id and len(by_id) == 3
        days = sorted(rule["Expiration"]["Days"] for rule in rules if rule["ID"] != "theirs")
        assert days == [1, 2]
    with opened(configured, ttl={"results": 60}) as storage:  # errors no longer expire
        rules = storage.client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert sorted(rule["ID"] for rule in rules)[-1] == "theirs" and len(rules) == 2
        storage.set_record_format(ttl=Expiry())
        storage.store("f", "t", "one", 1)
        head = storage.client.head_object(Bucket=bucket, Key=name)
        assert "expires-at" not in head["Metadata"]


def test_the_compression_extras_are_installed_for_the_suite() -> None:
    # The benchmarks and the codec tests need them; the test extra installs both.
    import lz4.frame
    import zstandard

    assert zstandard.__version__ and lz4.frame.compress(b"x")
    assert Compression("zstd").enabled and os.environ is not None
    assert ERRORS == "errors"


class TestExpiryContractOnEveryService(ExpiryContract, PurgeContract, ErrorRecordsContract):
    """The contract kit's expiry and purge suites on every built-in adapter and service, and its
    error-records suite, whose error records under ``ttl`` are part of expiry."""

    @pytest.fixture
    def storage(self, entry: dict[str, Any]) -> Iterator[RecordStorage]:
        with opened(entry) as storage:
            yield storage
