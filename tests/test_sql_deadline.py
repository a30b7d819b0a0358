"""The SQL adapter under a call's deadline: its default operation_timeout, the waits it gives
its drivers, and the PyMySQL attributes it relies on to bound each call."""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path

import pytest

from selinon_like import deadline
from storages.mysql import MySQL
from storages.postgresql import PostgreSQL
from storages.sql import SQLite


def test_the_default_operation_timeout_is_one_connection_and_one_wait() -> None:
    storage = PostgreSQL(
        connection_string="postgresql://u@h/db", connect_timeout=2, statement_timeout=3
    )
    assert storage.default_operation_timeout() == 2 + 3 + 2
    assert storage.io_timeout == 3 + 2
    assert PostgreSQL(connection_string="postgresql://u@h/db").operation_timeout == 320
    assert SQLite(path=":memory:", connect_timeout=2).operation_timeout == 6


def test_no_wait_for_the_server_passes_the_operation_timeout() -> None:
    storage = MySQL(connection_string="mysql://u@h/db", connect_timeout=10, statement_timeout=30)
    assert storage.io_timeout == 40
    storage.operation_timeout = 4
    assert storage.io_timeout == 4


def test_pymysql_still_reads_the_timeouts_the_adapter_sets() -> None:
    pymysql = pytest.importorskip("pymysql")
    connection = pymysql.connections.Connection(defer_connect=True, read_timeout=7)
    assert connection._read_timeout == 7 and connection._write_timeout is None
    source = inspect.getsource(pymysql.connections.Connection)
    assert "settimeout(self._read_timeout)" in source
    assert "settimeout(self._write_timeout)" in source


@pytest.mark.mysql
def test_a_mysql_call_waits_no_longer_than_its_deadline_leaves(tmp_path: Path) -> None:
    from conftest import MYSQL_URL, require_service

    storage = MySQL(connection_string=MYSQL_URL, connect_timeout=5, statement_timeout=30)
    require_service("MariaDB", storage.connect)
    try:
        storage.store("f", "t", "1", 1)  # outside a deadline of ours: the configured wait
        with deadline.bounded(0.8):
            assert storage.retrieve("f", "t", "1") == 1
        connection, _cursor = storage._calls.connections.get()
        try:
            assert connection.dbapi_connection._read_timeout <= 0.8
        finally:
            storage._calls.connections.put(connection, _cursor, False)
        storage.delete("f", "t", "1")
    finally:
        storage.disconnect()


@pytest.mark.postgresql
def test_a_postgresql_call_cut_just_as_it_ended_gives_up_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog may shut a call's socket after its last read, before its release: the
    call returns what it read, and its connection, shut down, is closed, never lent again."""
    from conftest import POSTGRESQL_URL, drop_tables, require_service

    from selinon_like.watchdog import WATCHDOG
    from storages.sql import execution

    class CutAtTheEnd:
        def watch(self, fd: int, seconds: float) -> int:
            return WATCHDOG.watch(fd, seconds)

        def release(self, token: int) -> bool:
            WATCHDOG.release(token)
            return True

    table = f"sl_test_{uuid.uuid4().hex[:10]}"
    storage = PostgreSQL(connection_string=POSTGRESQL_URL, table_name=table)
    require_service("PostgreSQL", storage.connect)
    try:
        storage.store("f", "t", "1", 1)
        connections = storage._calls.connections
        [(first, _cursor, _since)] = connections._idle
        with monkeypatch.context() as patch:
            patch.setattr(execution, "WATCHDOG", CutAtTheEnd())
            assert storage.retrieve("f", "t", "1") == 1
        assert first.dbapi_connection is None or first.dbapi_connection.closed
        assert connections._idle == []
        assert storage.retrieve("f", "t", "1") == 1  # on a new connection
    finally:
        storage.disconnect()
        drop_tables(POSTGRESQL_URL, table)
