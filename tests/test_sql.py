"""SqlStorage under the contract kit on SQLite (file and in-memory), PostgreSQL and MariaDB
(forked children, eight threads and unreachable servers included), plus its own guarantees:
upserts that keep the record id (the key digest), batched bulk calls, the instance's own
connection limits, a forked child using its parent's instance, 15 MiB results (on MariaDB's
default max_allowed_packet), every byte value through MariaDB's literals, connections killed
by the server, configuration.

Every test works in tables of its own (random suffix) and drops them afterwards."""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from conftest import MYSQL_URL, POSTGRESQL_URL, drop_tables, require_service, sql_probe

from selinon_like import (
    ConfigError,
    ResultNotFound,
    StorageError,
    StoragePool,
    StorageUnavailable,
)
from selinon_like.keys import key_digest
from selinon_like.retry import NO_RETRY
from selinon_like.serializers import PickleSerializer
from selinon_like.testing import StorageContract, UnreachableServiceContract
from storages.mysql import MySQL
from storages.postgresql import PostgreSQL
from storages.sql import SQLite, SqlStorage
from storages.sql.dialects import MySqlByDigest, PgArrayUpsert
from storages.sql.statements import Sql, TableSql, tables

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def _table() -> str:
    return f"sl_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    require_service("PostgreSQL", sql_probe(POSTGRESQL_URL))
    return POSTGRESQL_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    require_service("MariaDB/MySQL", sql_probe(MYSQL_URL))
    return MYSQL_URL


def _connected(storage: SqlStorage, url: str | None) -> Iterator[SqlStorage]:
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()
        if url is not None:
            drop_tables(url, storage.table_name)


# -- the contract kit, and the SQL adapter's own guarantees, on every database ----------------


class SqlGuarantees:
    """Run on every database next to the contract kit (same ``storage`` fixture)."""

    shares_database = True  # a second instance with the same settings sees the same rows

    def _count(self, storage: SqlStorage, table: str, key: tuple[str, str, str]) -> int:
        query = sa.text(f"SELECT COUNT(*) FROM {table} WHERE key_digest = :d")
        with storage.engine.connect() as conn:
            return int(conn.execute(query, {"d": key_digest(*key)}).scalar_one())

    def test_store_returns_the_key_digest_and_keeps_it(
        self, storage: SqlStorage, flow: str
    ) -> None:
        first = storage.store(flow, "t", "1", {"try": 1})
        again = storage.store(flow, "t", "1", {"try": 2})
        other = storage.store(flow, "t", "2", {"try": 1})
        assert first == again == key_digest(flow, "t", "1") != other
        assert storage.store_error(None, flow, "t", "1", ValueError("x")) == first
        assert self._count(storage, storage.table_name, (flow, "t", "1")) == 1
        assert storage.retrieve(flow, "t", "1") == {"try": 2}

    def test_the_digest_is_the_primary_key(self, storage: SqlStorage) -> None:
        for table in (storage.table_name, storage.table_name + "_errors"):
            key = sa.inspect(storage.engine).get_pk_constraint(table)
            assert key["constrained_columns"] == ["key_digest"]

    def test_store_many_batches_repeated_keys_and_pages(
        self, storage: SqlStorage, flow: str
    ) -> None:
        items = [(flow, f"t{i % 7}", str(i), {"i": i}) for i in range(1203)]
        items.append((flow, "t0", "0", "last one wins"))
        ids = storage.store_many(items)
        assert len(ids) == len(items) and ids[0] == ids[-1]
        assert len(set(ids)) == 1203
        assert ids[5] == storage.store(flow, "t5", "5", {"i": 5})
        expected = {(f, t, i): r for f, t, i, r in items}
        assert storage.retrieve_many([*expected, (flow, "t0", "nope")]) == expected
        keys = list(storage.iter_keys(flow))  # more than one page of 1,000
        assert len(keys) == 1203 and set(keys) == set(expected)

    def test_delete_many_and_read_many_in_batches(self, storage: SqlStorage, flow: str) -> None:
        """More keys than one IN list holds, a key given twice, one never stored; the errors
        table is left alone."""
        items = [(flow, "t", str(i), i) for i in range(1203)]
        storage.store_many(items)
        storage.store_error(None, flow, "t", "0", ValueError("kept"))
        keys = [item[:3] for item in items] + [(flow, "t", "0"), (flow, "t", "missing")]
        found = storage.read_many("results", keys)
        assert found[0] == found[1203] == b"0" and found[1204] is None
        assert [storage.serializer.loads(data) for data in found[:1203]] == list(range(1203))
        assert storage.delete_many(keys) == 1203
        assert storage.retrieve_many(keys) == {} and storage.delete_many(keys) == 0
        assert storage.retrieve_error(flow, "t", "0")["message"] == "kept"

    def test_update_then_insert_fallback(
        self, storage: SqlStorage, flow: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The path for dialects with no native upsert, exercised on this one."""
        generic = {
            kind: TableSql.compile(storage.engine.dialect, sql.table, sql.column, "generic")
            for kind, sql in storage._sql.items()
        }
        assert all(sql.upsert is None for sql in generic.values())
        monkeypatch.setattr(storage, "_sql", generic)
        first = storage.store(flow, "t", "1", 1)
        assert storage.store(flow, "t", "1", 2) == first
        assert storage.retrieve(flow, "t", "1") == 2
        ids = storage.store_many([(flow, "t", "1", 3), (flow, "t", "2", 4)])
        assert ids[0] == first and storage.retrieve(flow, "t", "2") == 4
        storage.store_error(None, flow, "t", "1", ValueError("a"))
        storage.store_error(None, flow, "t", "1", ValueError("b"))
        assert storage.retrieve_error(flow, "t", "1")["message"] == "b"

    def test_flow_names_compare_exactly(self, storage: SqlStorage, flow: str) -> None:
        for name in ("a", "a ", "A", "á"):
            storage.store(flow + name, "t", "1", name)
        for name in ("a", "a ", "A", "á"):
            assert list(storage.iter_keys(flow + name)) == [(flow + name, "t", "1")]
            assert storage.retrieve(flow + name, "t", "1") == name

    def test_errors_live_in_their_own_table(self, storage: SqlStorage, flow: str) -> None:
        storage.store(flow, "t", "1", {"ok": True})
        storage.store_error({"n": 1}, flow, "t", "1", RuntimeError("one"))
        storage.store_error({"n": 2}, flow, "t", "1", RuntimeError("two"))
        errors = storage.table_name + "_errors"
        assert self._count(storage, errors, (flow, "t", "1")) == 1  # the last error only
        assert self._count(storage, storage.table_name, (flow, "t", "1")) == 1
        storage.delete(flow, "t", "1")
        assert storage.retrieve_error(flow, "t", "1")["node_args"] == {"n": 2}

    def test_timestamps_are_kept(self, storage: SqlStorage, flow: str) -> None:
        storage.store(flow, "t", "1", 1)
        storage.store(flow, "t", "1", 2)
        query = sa.text(
            f"SELECT created_at, updated_at FROM {storage.table_name} WHERE key_digest = :d"
        )
        with storage.engine.connect() as conn:
            created, updated = conn.execute(query, {"d": key_digest(flow, "t", "1")}).one()
        assert created is not None and updated is not None and updated >= created

    def test_another_instance_sees_the_same_tables(self, storage: SqlStorage, flow: str) -> None:
        storage.store(flow, "t", "1", {"shared": True})
        other = type(storage)(**storage._configuration)
        other.connect()  # the tables exist: connect must not fail creating them
        try:
            if self.shares_database:
                assert other.retrieve(flow, "t", "1") == {"shared": True}
            else:  # an in-memory database belongs to its instance
                with pytest.raises(ResultNotFound):
                    other.retrieve(flow, "t", "1")
        finally:
            other.disconnect()
        assert storage.retrieve(flow, "t", "1") == {"shared": True}

    def test_a_store_many_that_fails_midway_stores_nothing(
        self, storage: SqlStorage, flow: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The first batch reached the database inside BEGIN; the failure rolls it back."""
        import storages.sql.adapter as adapter_module

        storage.store(flow, "t", "kept", "before")
        real_batches = adapter_module.batches

        def first_then_fail(*args: Any, **kwargs: Any) -> Iterator[Any]:
            batches = real_batches(*args, **kwargs)
            yield next(batches)
            raise RuntimeError("the disk is on fire")

        monkeypatch.setattr(adapter_module, "batches", first_then_fail)
        items = [(flow, "t", str(i), i) for i in range(1200)] + [(flow, "t", "kept", "after")]
        with pytest.raises(StorageError, match="the disk is on fire"):
            storage.store_many(items)
        monkeypatch.undo()
        assert storage.retrieve_many([(flow, "t", str(i)) for i in range(1200)]) == {}
        assert storage.retrieve(flow, "t", "kept") == "before"
        # The connection is healthy afterwards: no transaction left open on it.
        assert storage.store_many([(flow, "t", "x", 1)]) and storage.retrieve(flow, "t", "x") == 1

    def test_disconnect_and_connect_again(self, storage: SqlStorage, flow: str) -> None:
        storage.disconnect()
        storage.disconnect()
        assert storage.is_connected() is False
        with pytest.raises(StorageError, match="not connected"):
            storage.retrieve(flow, "t", "1")
        storage.connect()
        storage.store(flow, "t", "1", "back")
        assert storage.retrieve(flow, "t", "1") == "back"


# One connected instance per database for a whole class (every test uses flows of its own).


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStorage]:
    path = tmp_path_factory.mktemp("sqlite") / "sub" / "results.sqlite"  # sub/ is created
    yield from _connected(SQLite(path=str(path), table_name=_table()), None)


@pytest.fixture(scope="module")
def sqlite_memory() -> Iterator[SqlStorage]:
    yield from _connected(SQLite(path=":memory:"), None)


@pytest.fixture(scope="module")
def postgresql(pg_url: str) -> Iterator[SqlStorage]:
    yield from _connected(PostgreSQL(connection_string=pg_url, table_name=_table()), pg_url)


@pytest.fixture(scope="module")
def mariadb(mysql_url: str) -> Iterator[SqlStorage]:
    yield from _connected(MySQL(connection_string=mysql_url, table_name=_table()), mysql_url)


class TestSQLiteFile(StorageContract, SqlGuarantees):
    @pytest.fixture
    def storage(self, sqlite_file: SqlStorage) -> SqlStorage:
        return sqlite_file

    def test_file_database_is_in_wal_mode(self, storage: SqlStorage) -> None:
        with storage.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"

    def test_writers_queue_and_readers_do_not(self, storage: SqlStorage, flow: str) -> None:
        """This instance's writers take turns on a lock (SQLite would make them poll with
        sleeps of 1-100 ms); reads go on while a write is queued."""
        storage.store(flow, "t", "read", "before")
        writer = storage._calls.writer
        assert writer is not None
        done: list[str] = []
        with writer:  # another thread of this instance is "writing"
            threads = [
                threading.Thread(target=lambda: done.append(storage.store(flow, "t", "w", 1))),
                threading.Thread(target=lambda: storage.store_many([(flow, "t", "m", 2)])),
                threading.Thread(target=lambda: storage.delete(flow, "t", "read")),
            ]
            for thread in threads:
                thread.start()
            assert storage.retrieve(flow, "t", "read") == "before"
            threads[0].join(0.3)
            assert done == [] and storage.retrieve_many([(flow, "t", "w")]) == {}
        for thread in threads:
            thread.join(10)
        assert done == [key_digest(flow, "t", "w")]
        assert storage.retrieve_many([(flow, "t", "w"), (flow, "t", "m")]) == {
            (flow, "t", "w"): 1,
            (flow, "t", "m"): 2,
        }
        assert not storage.retrieve_many([(flow, "t", "read")])

    def test_a_writer_queued_past_connect_timeout_is_unavailable(
        self, storage: SqlStorage, flow: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(storage._calls, "write_wait", 0.2)
        monkeypatch.setattr(storage, "retry_policy", NO_RETRY)
        writer = storage._calls.writer
        assert writer is not None
        with writer, pytest.raises(StorageUnavailable, match=r"kept writing for 0\.2 s"):
            storage.store(flow, "t", "1", 1)
        storage.store(flow, "t", "1", 2)  # the queue works again once the writer is done
        assert storage.retrieve(flow, "t", "1") == 2


def _counting_opens(storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the instance's engine so every connection it opens is counted."""
    opened: list[int] = []
    engine = storage.engine
    real = engine.raw_connection

    def counted() -> Any:
        opened.append(1)
        return real()

    monkeypatch.setattr(engine, "raw_connection", counted)
    return opened


def _hammer(storage: SqlStorage, threads: int, calls: int, flow: str) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(calls):
                storage.store(flow, f"t{n}", str(i), i)
                assert storage.retrieve(flow, f"t{n}", str(i)) == i
        except BaseException as exc:  # pragma: no cover - reported by the assertion
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return errors


class TestConnectionLimits:
    """The instance's own pool: at most pool_size + max_overflow connections, reused, the
    surplus closed once idle, and a clear error when every one stays busy."""

    @pytest.fixture
    def make(self, tmp_path: Path) -> Iterator[Callable[..., SqlStorage]]:
        made: list[SqlStorage] = []

        def make(**options: Any) -> SqlStorage:
            storage = SQLite(path=str(tmp_path / "limits.sqlite"), **options)
            storage.retry_policy = NO_RETRY
            storage.connect()
            made.append(storage)
            return storage

        yield make
        for storage in made:
            storage.disconnect()

    def test_threads_share_at_most_the_limit(
        self, make: Callable[..., SqlStorage], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage = make(pool_size=2, max_overflow=1)
        opened = _counting_opens(storage, monkeypatch)
        assert _hammer(storage, threads=8, calls=100, flow="limit") == []
        assert 1 <= len(opened) <= 3  # reused, never more than pool_size + max_overflow

    def test_calls_wait_for_the_only_connection(
        self, make: Callable[..., SqlStorage], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        storage = make(pool_size=1, max_overflow=0)
        opened = _counting_opens(storage, monkeypatch)
        assert _hammer(storage, threads=4, calls=50, flow="one") == []
        assert len(opened) <= 1

    def test_connections_beyond_pool_size_close_once_idle(
        self, make: Callable[..., SqlStorage], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import storages.sql.pool as pool_module

        storage = make(pool_size=1, max_overflow=5)
        assert _hammer(storage, threads=6, calls=30, flow="surplus") == []
        connections = storage._calls.connections
        assert connections is not None and connections._open >= 2  # surplus kept for reuse
        monkeypatch.setattr(pool_module, "SURPLUS_IDLE", 0.0)
        for i in range(10):
            storage.store("surplus", "t", str(i), i)
        assert connections._open == 1 and len(connections._idle) == 1

    def test_a_call_that_finds_every_connection_busy_fails_clearly(
        self, make: Callable[..., SqlStorage], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import storages.sql.pool as pool_module

        monkeypatch.setattr(pool_module, "POOL_WAIT", 0.3)
        storage = make(pool_size=1, max_overflow=0)
        with (
            storage._calls.cursor(),  # holds the only connection
            pytest.raises(StorageUnavailable, match=r"connections stayed busy for 0\.3 s"),
        ):
            storage.store("busy", "t", "1", 1)
        storage.store("busy", "t", "1", 1)  # free again


class TestSQLiteMemory(StorageContract, SqlGuarantees):
    shares_database = False

    @pytest.fixture
    def storage(self, sqlite_memory: SqlStorage) -> SqlStorage:
        return sqlite_memory


@pytest.mark.postgresql
class TestPostgreSQL(StorageContract, UnreachableServiceContract, SqlGuarantees):
    @pytest.fixture
    def storage(self, postgresql: SqlStorage) -> SqlStorage:
        return postgresql

    @pytest.fixture
    def unreachable_storage(self, unreachable_port: int, secret: str) -> SqlStorage:
        # One try per connect (libpq's sslmode=prefer would try again without SSL), 2 s each.
        url = f"postgresql://worker:{secret}@127.0.0.1:{unreachable_port}/db?sslmode=disable"
        return PostgreSQL(connection_string=url, connect_timeout=1, statement_timeout=1)

    def test_columns_are_text_and_bytea(self, storage: SqlStorage) -> None:
        columns = {
            c["name"]: c["type"] for c in sa.inspect(storage.engine).get_columns(storage.table_name)
        }
        assert isinstance(columns["result"], sa.LargeBinary)  # bytea: up to 1 GB
        assert isinstance(columns["task_id"], sa.Text)


@pytest.mark.mysql
class TestMariaDB(StorageContract, UnreachableServiceContract, SqlGuarantees):
    @pytest.fixture
    def storage(self, mariadb: SqlStorage) -> SqlStorage:
        return mariadb

    @pytest.fixture
    def unreachable_storage(self, unreachable_port: int, secret: str) -> SqlStorage:
        url = f"mysql://worker:{secret}@127.0.0.1:{unreachable_port}/db"
        return MySQL(connection_string=url, connect_timeout=0.5, statement_timeout=0.5)

    def test_columns_hold_long_keys_and_results(self, storage: SqlStorage) -> None:
        query = sa.text(
            "SELECT column_name, column_type, collation_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = :t"
        )
        with storage.engine.connect() as conn:
            rows = {
                name: (kind, collation)
                for name, kind, collation in conn.execute(query, {"t": storage.table_name})
            }
        assert rows["result"][0] == "longblob"  # up to 4 GB, not BLOB's 64 KB
        assert rows["task_id"] == ("longtext", "utf8mb4_bin")


# -- one pool, many threads and processes, on the three databases -----------------------------

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mariadb", marks=pytest.mark.mysql),
]


@pytest.fixture
def backend_entry(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(backend, a pool's storage entry named "Results" on it, in tables of its own)."""
    backend: str = request.param
    table = _table()
    url: str | None = None
    if backend == "sqlite":
        entry = {"classname": "sqlite", "configuration": {"path": str(tmp_path / "r.sqlite")}}
    elif backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        entry = {"classname": "postgresql", "configuration": {"connection_string": url}}
    else:
        url = request.getfixturevalue("mysql_url")
        entry = {"classname": "mysql", "configuration": {"connection_string": url}}
    entry["configuration"]["table_name"] = table
    yield backend, {"name": "Results", **entry}
    if url is not None:
        drop_tables(url, table)


@pytest.mark.postgresql
def test_a_child_using_the_parents_instance_never_touches_its_connections(pg_url: str) -> None:
    storage = PostgreSQL(connection_string=pg_url, table_name=_table())
    for _ in _connected(storage, pg_url):
        storage.store("F", "t", "parent", 1)
        with storage.engine.connect() as conn:
            backend_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                storage.store("F", "t", "child", 2)
                storage.disconnect()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        with storage.engine.connect() as conn:  # the same server session, still alive
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() == backend_pid
        assert storage.retrieve_many([("F", "t", "parent"), ("F", "t", "child")]) == {
            ("F", "t", "parent"): 1,
            ("F", "t", "child"): 2,
        }


# -- big results -------------------------------------------------------------------------------


def _json_of_size(size: int) -> dict[str, str]:
    """A result whose JSON is exactly ``size`` bytes."""
    return {"blob": "ab" * ((size - 12) // 2) + "a" * ((size - 12) % 2)}


def _max_packet(storage: SqlStorage) -> int:
    assert storage._mysql is not None and storage._mysql.max_packet is not None
    return storage._mysql.max_packet


BIG = _json_of_size(15 * MiB)


@pytest.mark.parametrize("backend_entry", BACKENDS, indirect=True)
def test_a_15_mib_result_round_trips(backend_entry: tuple[str, dict[str, Any]]) -> None:
    """On MariaDB with the server's own max_allowed_packet (16 MiB by default; this test never
    changes it): a result travels as an escaped _binary literal, about its own size."""
    backend, entry = backend_entry
    with StoragePool.from_dict({"storages": [entry]}) as pool:
        storage = pool.get_connected_storage("Results")
        assert isinstance(storage, SqlStorage)
        big = BIG
        if backend == "mariadb":  # as big as the server's limit allows, 15 MiB on its default
            big = _json_of_size(min(15 * MiB, _max_packet(storage) - MiB))
        storage.store("F", "t", "big", big)
        assert storage.retrieve("F", "t", "big") == big
        assert storage.store_many([("F", "t", "big", big), ("F", "t", "small", 1)])
        assert storage.retrieve_many([("F", "t", "big")]) == {("F", "t", "big"): big}


EVERY_BYTE = bytes(range(256)) * 4 + b"\\'\"\x00\x1a\r\n_binary'\\0%s%%"


@pytest.mark.mysql
@pytest.mark.parametrize("sql_mode", [None, "NO_BACKSLASH_ESCAPES"])
def test_every_byte_value_survives_the_literals(mysql_url: str, sql_mode: str | None) -> None:
    """Results and keys written into the statement as escaped literals come back exactly,
    whether or not the session reads backslashes as escapes."""
    url = mysql_url if sql_mode is None else f"{mysql_url}?sql_mode={sql_mode}"
    storage = MySQL(connection_string=url, table_name=_table())
    storage.serializer = PickleSerializer()  # the bytes as they are, quotes and NULs included
    for _ in _connected(storage, mysql_url):
        with storage._calls.cursor() as cursor:
            cursor.execute("SELECT @@sql_mode")
            mode = cursor.fetchone()[0]
        assert ("NO_BACKSLASH_ESCAPES" in mode) == (sql_mode is not None)
        odd = 'it\'s \\ "quoted" \x1a ž 🐍 %s %%'
        storage.store(odd, "t", "1", EVERY_BYTE)
        storage.store_many([(odd, "t", str(n), EVERY_BYTE[n:]) for n in range(2, 300)])
        assert storage.retrieve(odd, "t", "1") == EVERY_BYTE
        found = storage.retrieve_many([(odd, "t", str(n)) for n in range(2, 300)])
        assert found == {(odd, "t", str(n)): EVERY_BYTE[n:] for n in range(2, 300)}
        assert sorted(storage.iter_keys(odd))[0] == (odd, "t", "1")


@pytest.mark.postgresql
def test_postgresql_store_many_sends_arrays_and_keeps_the_last_of_a_key(pg_url: str) -> None:
    """psycopg's store_many is one INSERT … SELECT FROM unnest(arrays) per batch: keys that
    mean something in an array's text form, every byte value, a key given three times in one
    batch (the last wins: ON CONFLICT may touch a row once per statement), rows updated."""
    storage = PostgreSQL(connection_string=pg_url, table_name=_table())
    storage.serializer = PickleSerializer()  # the bytes as they are, NULs included
    for _ in _connected(storage, pg_url):
        assert all(isinstance(sql.upsert, PgArrayUpsert) for sql in storage._sql.values())
        odd = 'it\'s {a,"b"} \\ NULL ž 🐍 %s %%'
        storage.store(odd, "t", "0", "before")
        items = [(odd, "t", str(n % 300), EVERY_BYTE[n % 300 :]) for n in range(400)]
        items[5] = (odd, "t", "0", "first")  # "0" three times: at 0, 5 and 300
        items[300] = (odd, "t", "0", "last")
        ids = storage.store_many(items)
        assert ids[0] == ids[5] == ids[300] == key_digest(odd, "t", "0")
        expected = {(odd, "t", str(n)): EVERY_BYTE[n:] for n in range(1, 300)}
        expected[(odd, "t", "5")] = EVERY_BYTE[5:]  # given again at 305
        found = storage.retrieve_many([(odd, "t", str(n)) for n in range(300)])
        assert found == {**expected, (odd, "t", "0"): "last"}
        assert len(list(storage.iter_keys(odd))) == 300


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "mysql"])
def test_statements_say_whether_they_return_rows(dialect_name: str) -> None:
    """A call reads the first row of a statement that returns rows and the row count of one
    that does not, by the flag compiled with the statement (not by asking the cursor)."""
    dialect = importlib.import_module(f"sqlalchemy.dialects.{dialect_name}").dialect()
    results, _errors = tables("t")
    upsert = "mysql" if dialect_name == "mysql" else "on_conflict"
    sql = TableSql.compile(dialect, results, "result", upsert)
    returning = [sql.load, sql.count_due(), sql.select_in(3), sql.key_page(by_flow=True)]
    changing = [sql.upsert, sql.update, sql.insert, sql.delete, sql.delete_in(3), sql.purge()]
    assert all(stmt is not None and stmt.rows is True for stmt in returning)
    assert all(stmt is not None and stmt.rows is False for stmt in changing)
    if dialect_name != "mysql":
        stmt = sa.delete(results).returning(results.c.key_digest)
        assert Sql.compile(stmt, dialect).rows is True


@pytest.mark.mysql
def test_a_result_over_max_allowed_packet_is_a_clear_error(mysql_url: str) -> None:
    storage = MySQL(connection_string=mysql_url, table_name=_table())
    storage.max_value_bytes = None  # the adapter's own check, not the record layer's chunks
    for _ in _connected(storage, mysql_url):
        limit = _max_packet(storage)
        storage.store("F", "t", "1", "kept")
        with pytest.raises(StorageError, match="max_allowed_packet") as info:
            storage.store("F", "t", "1", "x" * limit)
        assert not isinstance(info.value, StorageUnavailable)  # not retried as a lost server
        # Fits as it is, not once escaped: every quote takes two bytes in the statement.
        with pytest.raises(StorageError, match=r"max_allowed_packet.*escaped"):
            storage.store("F", "t", "1", "'" * (limit * 2 // 3))
        with pytest.raises(StorageError, match="max_allowed_packet"):
            storage.store_many([("F", "t", "2", 1), ("F", "t", "3", "x" * limit)])
        assert storage.retrieve_many([("F", "t", "1"), ("F", "t", "2")]) == {
            ("F", "t", "1"): "kept"
        }
        # Many results that fit alone are sent in several statements, each within the limit.
        items = [("F", "many", str(i), "y" * (limit // 3)) for i in range(6)]
        storage.store_many(items)
        assert storage.retrieve_many([item[:3] for item in items]) == {
            item[:3]: item[3] for item in items
        }


@pytest.mark.mysql
def test_other_character_sets_send_results_hex_encoded(mysql_url: str) -> None:
    """Escaping bytes is safe only where no byte of a multi-byte character is a quote or a
    backslash (UTF-8); with another character set results go through PyMySQL as hex, twice
    their size, and one that would not fit that way is refused before it is sent."""
    storage = MySQL(connection_string=mysql_url, table_name=_table(), encoding="latin1")
    storage.max_value_bytes = None  # the adapter's own check, not the record layer's chunks
    storage.serializer = PickleSerializer()
    for _ in _connected(storage, mysql_url):
        limit = _max_packet(storage)
        storage.store("F", "t", "1", EVERY_BYTE)
        storage.store_many([("F", "t", "2", EVERY_BYTE), ("F", "t", "3", b"")])
        assert storage.retrieve_many([("F", "t", "1"), ("F", "t", "2")]) == {
            ("F", "t", "1"): EVERY_BYTE,
            ("F", "t", "2"): EVERY_BYTE,
        }
        with pytest.raises(StorageError, match=r"max_allowed_packet.*hex-encoded"):
            storage.store("F", "t", "4", b"x" * (limit // 2))


class _Sent:
    """A cursor that keeps what it is asked to execute."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def execute(self, query: Any, args: Any = None) -> None:
        self.calls.append((query, args))


@pytest.mark.mysql
@pytest.mark.parametrize("sql_mode", [None, "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("encoding", [None, "latin1"])
def test_mysql_reads_and_deletes_send_what_pymysql_would(
    mysql_url: str, sql_mode: str | None, encoding: str | None
) -> None:
    """PyMySQL's read and delete by digest have the digest written in, quoted (MySqlByDigest):
    byte for byte the statement PyMySQL's own escaping makes of the compiled one, whatever
    the session's character set and sql_mode; a value that is not letters and digits goes
    through PyMySQL's escaping as before."""
    url = mysql_url if sql_mode is None else f"{mysql_url}?sql_mode={sql_mode}"
    storage = MySQL(connection_string=url, table_name=_table(), encoding=encoding)
    for _ in _connected(storage, mysql_url):
        for kind in ("results", "errors"):
            table = storage._sql[kind]  # type: ignore[index]
            for stmt in (table.load, table.delete):
                assert isinstance(stmt, MySqlByDigest)
                plain = Sql(stmt.text, stmt.names, stmt.bound, stmt.rows)
                with storage._calls.cursor() as cursor:
                    encoding = cursor.connection.encoding
                    for value in (key_digest("F", "t", kind), "it's \\ %s"):
                        expected = cursor.mogrify(plain.text, plain.args({"key_digest": value}))
                        sent = _Sent()
                        stmt.execute(sent, {"key_digest": value})
                        query, args = sent.calls[0]
                        got = cursor.mogrify(query, args)  # bytes as they are, when args is None
                        if isinstance(got, str):
                            got = got.encode(encoding)
                        assert got == expected.encode(encoding)
                        assert (args is None) == value.isalnum()
        storage.store("F", "t", "1", {"a": 1})
        assert storage.retrieve("F", "t", "1") == {"a": 1}
        storage.delete("F", "t", "1")
        with pytest.raises(ResultNotFound):
            storage.retrieve("F", "t", "1")


# -- connections killed by the server ---------------------------------------------------------

KILL = {
    "postgresql": ("SELECT pg_backend_pid()", "SELECT pg_terminate_backend({})"),
    "mariadb": ("SELECT CONNECTION_ID()", "KILL {}"),
}


@pytest.mark.parametrize(
    "backend_entry",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mysql),
    ],
    indirect=True,
)
def test_killed_connections_do_not_fail_the_next_call(
    backend_entry: tuple[str, dict[str, Any]],
) -> None:
    backend, entry = backend_entry
    whoami, kill = KILL[backend]
    url = entry["configuration"]["connection_string"]
    with StoragePool.from_dict({"storages": [entry]}) as pool:
        storage = pool.get_connected_storage("Results")
        assert isinstance(storage, SqlStorage)
        for round_ in range(3):
            storage.store("F", "t", str(round_), round_)
            # One thread so far: the storage holds one connection, the one every call used.
            with storage._calls.cursor() as cursor:
                cursor.execute(whoami)
                session = cursor.fetchone()[0]
            admin = sa.create_engine(url)
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(kill.format(int(session))))
            finally:
                admin.dispose()
            assert storage.retrieve("F", "t", str(round_)) == round_
            with storage._calls.cursor() as cursor:
                cursor.execute(whoami)
                assert cursor.fetchone()[0] != session


# -- driver options ---------------------------------------------------------------------------


@pytest.mark.postgresql
def test_postgresql_timeouts_and_encoding_reach_the_session(pg_url: str) -> None:
    storage = PostgreSQL(
        connection_string=pg_url, table_name=_table(), statement_timeout=0.5, encoding="utf-8"
    )
    for _ in _connected(storage, pg_url):
        with storage.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "500ms"
            assert conn.execute(sa.text("SHOW client_encoding")).scalar_one() == "UTF8"
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                conn.execute(sa.text("SELECT pg_sleep(3)"))
        storage.store("F", "t", "ü", "žluť")
        assert storage.retrieve("F", "t", "ü") == "žluť"


@pytest.mark.mysql
def test_mariadb_timeouts_and_encoding_reach_the_session(mysql_url: str) -> None:
    storage = MySQL(
        connection_string=mysql_url, table_name=_table(), statement_timeout=0.5, encoding="utf-8"
    )
    for _ in _connected(storage, mysql_url):
        with storage.engine.connect() as conn:
            query = "SELECT @@max_statement_time, @@character_set_client"
            timeout, charset = conn.execute(sa.text(query)).one()
            assert (float(timeout), charset) == (0.5, "utf8mb4")
        storage.store("F", "t", "🐎", "žluť 🐍")
        assert storage.retrieve("F", "t", "🐎") == "žluť 🐍"


@pytest.mark.mysql
def test_a_wrong_password_fails_at_once_and_stays_secret(mysql_url: str) -> None:
    url = sa.engine.make_url(mysql_url).set(username="nobody_sl", password="Pw-hush-42")
    storage = MySQL(connection_string=url.render_as_string(hide_password=False))
    with pytest.raises(StorageError) as info:
        storage.connect()
    assert not isinstance(info.value, StorageUnavailable)  # access denied: not retried
    assert "Pw-hush-42" not in str(info.value) and "Pw-hush-42" not in repr(storage)


# -- configuration, URLs, drivers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "url", "driver"),
    [
        (PostgreSQL, "postgres://u:p@db:5432/x", "postgresql+psycopg"),
        (PostgreSQL, "postgresql://u:p@db/x", "postgresql+psycopg"),
        (PostgreSQL, "postgresql+psycopg://db/x", "postgresql+psycopg"),
        (MySQL, "mysql://u:p@db/x", "mysql+pymysql"),
        (MySQL, "mariadb://u:p@db/x", "mariadb+pymysql"),
        (SqlStorage, "sqlite:///x.db", "sqlite"),
        (SqlStorage, "mysql+mysqldb://db/x", "mysql+mysqldb"),
    ],
)
def test_plain_urls_use_the_drivers_we_ship(cls: type[SqlStorage], url: str, driver: str) -> None:
    assert cls(connection_string=url)._url().drivername == driver


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("postgresql+psycopg2://db/x", "postgresql"),
        ("mysql+mysqldb://db/x", "mysql"),
    ],
)
def test_a_missing_driver_names_the_extra(url: str, extra: str) -> None:
    with pytest.raises(ConfigError, match=rf"pip install 'selinon-like\[{extra}\]'"):
        SqlStorage(connection_string=url).connect()


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: PostgreSQL(connection_string="mysql://db/x"), "connection_string"),
        (lambda: MySQL(connection_string="postgres://db/x"), "connection_string"),
        (lambda: SQLite(connection_string="postgresql://db/x"), "connection_string"),
        (lambda: SQLite(), "path"),
        (lambda: SQLite(path="a.db", connection_string="sqlite://"), "path"),
        (lambda: SqlStorage(connection_string=""), "connection_string"),
        (lambda: SqlStorage(connection_string="sqlite://", table_name="x; DROP"), "table_name"),
        (lambda: SqlStorage(connection_string="sqlite://", table_name="9a"), "table_name"),
        (lambda: SqlStorage(connection_string="sqlite://", table_name="a" * 49), "table_name"),
        (lambda: SqlStorage(connection_string="sqlite://", pool_size=0), "pool_size"),
        (lambda: SqlStorage(connection_string="sqlite://", echo="maybe"), "echo"),
        (lambda: SqlStorage(connection_string="sqlite://", connect_timeout="x"), "connect_timeout"),
    ],
)
def test_bad_options_are_config_errors(make: Callable[[], Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key


def test_unknown_url_is_a_config_error_without_the_password() -> None:
    storage = SqlStorage(connection_string="nosuchdb://user:Hush-99@db/x")
    with pytest.raises(ConfigError) as info:
        storage.connect()
    assert "Hush-99" not in str(info.value) and "nosuchdb" in str(info.value)


def test_selinon_configuration_loads_by_entry_point_name() -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Results",
                    "classname": "postgresql",
                    "configuration": {
                        "connection_string": "postgres://postgres:s3cr3t-pw@db:5432/postgres",
                        "encoding": "utf-8",
                        "echo": False,
                    },
                },
                {"name": "Embedded", "classname": "sqlite", "configuration": {"path": "x.db"}},
                {
                    "name": "Any",
                    "classname": "sql",
                    "configuration": {"connection_string": "sqlite://"},
                },
            ]
        }
    )
    assert "s3cr3t-pw" not in repr(pool.config.storages["Results"].build())
    with pytest.raises(ConfigError, match="port"):
        StoragePool.from_dict(
            {"storages": [{"name": "S", "classname": "sqlite", "configuration": {"port": 1}}]}
        )


def test_is_transient_classifies_driver_errors() -> None:
    storage = SQLite(path=":memory:")

    def operational(orig: BaseException) -> sa.exc.OperationalError:
        return sa.exc.OperationalError("SELECT 1", {}, orig)

    assert storage.is_transient(operational(sqlite3.OperationalError("database is locked")))
    assert not storage.is_transient(operational(sqlite3.OperationalError("no such table: x")))
    assert storage.is_transient(operational(pymysql.err.OperationalError(2006, "gone away")))
    assert not storage.is_transient(operational(pymysql.err.OperationalError(1045, "denied")))
    lost = sa.exc.InterfaceError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
    assert storage.is_transient(lost)
    assert storage.is_transient(sa.exc.TimeoutError("QueuePool limit reached"))
    assert storage.is_transient(ConnectionRefusedError())
    assert not storage.is_transient(sa.exc.IntegrityError("INSERT", {}, Exception("dup")))


def test_the_embedded_default_configuration_stores_in_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELINON_LIKE_DATA", str(tmp_path))
    with StoragePool.from_yaml(REPO / "config" / "storages.yml") as pool:
        storage = pool.get_connected_storage("Embedded")
        assert isinstance(storage, SQLite)
        storage.store("F", "t", "1", {"embedded": True})
        assert storage.retrieve("F", "t", "1") == {"embedded": True}
    assert (tmp_path / "results.sqlite").is_file()


def test_tables_of_the_earlier_layout_still_work(tmp_path: Path) -> None:
    """Tables made before the key digest became the primary key (an integer id as the key,
    the digest unique) take upserts, bulk stores, errors and key listing as they are."""
    path = tmp_path / "earlier.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name, data in (("selinon_results", "result"), ("selinon_results_errors", "error")):
            conn.execute(
                f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, key_digest CHAR(64) NOT NULL "
                "UNIQUE, flow_name TEXT NOT NULL, task_name TEXT NOT NULL, task_id TEXT NOT NULL, "
                f"{data} BLOB NOT NULL, created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, "
                "updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
    storage = SQLite(path=str(path))
    storage.connect()
    try:
        first = storage.store("f", "t", "1", 1)
        assert first == storage.store("f", "t", "1", 2) == key_digest("f", "t", "1")
        storage.store_many([("f", "t", str(i), i) for i in range(2, 1203)])
        storage.store_error(None, "f", "t", "1", ValueError("boom"))
        assert storage.retrieve("f", "t", "1") == 2 and storage.retrieve("f", "t", "1202") == 1202
        assert storage.retrieve_error("f", "t", "1")["message"] == "boom"
        assert sorted(int(task_id) for _f, _t, task_id in storage.iter_keys("f")) == list(
            range(1, 1203)
        )
    finally:
        storage.disconnect()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        counts = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM selinon_results")
        assert counts.fetchone() == (1202, 1202)  # one row per key, each with its own id


@pytest.mark.postgresql
def test_postgresql_streams_in_chunk_rows_of_at_most_1_mib() -> None:
    """psycopg holds a bytea read as hex text beside its bytes: smaller rows keep a stream's
    memory under the budget (storages.postgresql.STREAM_CHUNK_BYTES)."""
    from storages.aio.postgresql import AsyncPostgreSQL

    require_service("PostgreSQL", sql_probe(POSTGRESQL_URL))
    table = f"sl_stream_{uuid.uuid4().hex[:10]}"
    assert AsyncPostgreSQL(connection_string=POSTGRESQL_URL).chunk_bytes(True) == 1024 * 1024
    storage = PostgreSQL(connection_string=POSTGRESQL_URL, table_name=table)
    assert storage.chunk_bytes(False) == SQLite(path=":memory:").chunk_bytes(False)
    storage.connect()
    try:
        blob = os.urandom(3 * 1024 * 1024 + 5)
        storage.store_stream("f", "t", "blob", [blob[:100], blob[100:]])
        chunks = list(storage.retrieve_stream("f", "t", "blob"))
        assert b"".join(chunks) == blob
        assert max(map(len, chunks)) <= 1024 * 1024 and len(chunks) == 4
        storage.delete("f", "t", "blob")
    finally:
        storage.disconnect()
        drop_tables(POSTGRESQL_URL, table)
