"""The native async PostgreSQL adapter (``storages.aio.postgresql.AsyncPostgreSQL``) on the real
server (127.0.0.1:5432, database ``test``): the async contract kit and its twin suite (either
adapter reads what the other stored, the same ``ConfigError`` messages, the async pool built
from the blocking adapter's YAML, nothing unclosed under ``-W error``); expiry, compression
and the purge shared with the blocking adapter; calls cancelled midway (a query
blocked on a lock, ``pg_sleep``, a bulk write inside its transaction) leaving no connection
mid-transaction in the pool; the deadline cutting a blocked call; the pool's limits; and, on
a private server of tests/faults, a hung (SIGSTOPped) server and a restart.

Every test works in tables of its own (random suffix) and drops them afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import psycopg
import pytest
from conftest import POSTGRESQL_URL, drop_tables, require_service, sql_probe
from faults.conftest import postgresql_server  # noqa: F401 - a fixture (a private server)
from test_sql import _table

from selinon_like import ConfigError, ResultNotFound, StorageError, StorageUnavailable
from selinon_like.compression import Compression
from selinon_like.envelope import Expiry
from selinon_like.retry import NO_RETRY
from selinon_like.testing import (
    AsyncStorageContract,
    AsyncTwinContract,
    AsyncUnreachableServiceContract,
)
from selinon_like.testing.aio import AsyncFactory, no_unclosed_resources
from selinon_like.testing.expiry import MovableClock
from storages.aio import postgresql as module
from storages.aio.postgresql import AsyncPostgreSQL
from storages.postgresql import PostgreSQL
from storages.sql.statements import Sql

pytestmark = pytest.mark.postgresql

# psycopg's own URL (no SQLAlchemy driver suffix), for the test's side connections.
DSN = POSTGRESQL_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def pg_url() -> str:
    require_service("PostgreSQL", sql_probe(POSTGRESQL_URL))
    return POSTGRESQL_URL


@pytest.fixture
def table(pg_url: str) -> Iterator[str]:
    name = _table()
    yield name
    drop_tables(pg_url, name)


@pytest.fixture
def make(pg_url: str, table: str) -> Callable[..., AsyncPostgreSQL]:
    """Unconnected instances on the test's table (options as in the YAML)."""

    def build(**options: Any) -> AsyncPostgreSQL:
        return AsyncPostgreSQL(connection_string=pg_url, table_name=table, **options)

    return build


@pytest.fixture
def blocking(pg_url: str, table: str) -> Iterator[PostgreSQL]:
    """The blocking adapter on the same table, connected."""
    storage = PostgreSQL(connection_string=pg_url, table_name=table)
    storage.connect()
    yield storage
    storage.disconnect()


def run(scenario: Callable[[AsyncPostgreSQL], Coroutine[Any, Any, None]], storage: Any) -> None:
    """Run ``scenario`` on ``storage``, connected for it, under ``asyncio.run``; no connection
    or socket is left unclosed."""

    async def main() -> None:
        async with storage:
            await scenario(storage)

    with no_unclosed_resources():
        asyncio.run(main())


def pool_of(storage: AsyncPostgreSQL) -> module.Connections:
    return storage._connections


def idle_states(storage: AsyncPostgreSQL) -> list[Any]:
    """The transaction status of every idle connection of ``storage``'s pool."""
    return [conn.info.transaction_status for conn, _cursor, _since in pool_of(storage)._idle]


IDLE = psycopg.pq.TransactionStatus.IDLE


# -- the contract kit ---------------------------------------------------------------------------


class TestAsyncPostgreSQL(AsyncStorageContract, AsyncUnreachableServiceContract):
    @pytest.fixture
    def async_storage(self, make: Callable[..., AsyncPostgreSQL]) -> AsyncFactory:
        return make

    @pytest.fixture
    def unreachable_async_storage(self, unreachable_port: int, secret: str) -> AsyncFactory:
        # One try per connect (libpq's sslmode=prefer would try again without SSL).
        url = f"postgresql://worker:{secret}@127.0.0.1:{unreachable_port}/db?sslmode=disable"
        return lambda: AsyncPostgreSQL(
            connection_string=url, connect_timeout=1, statement_timeout=1
        )


# -- one data layout for both adapters ---------------------------------------------------------


class TestTwins(AsyncTwinContract):
    @pytest.fixture
    def blocking_entry(self, pg_url: str, table: str) -> dict[str, Any]:
        return {
            "import": "storages.postgresql",
            "classname": "PostgreSQL",
            "configuration": {"connection_string": pg_url, "table_name": table},
        }

    @pytest.fixture(
        params=[
            {"table_name": "no spaces"},
            {"port": 5432},
            {"pool_size": 0},
        ]
    )
    def bad_configuration(self, request: pytest.FixtureRequest, pg_url: str) -> dict[str, Any]:
        return {"connection_string": pg_url, **request.param}


def test_expiry_and_compression_agree_across_adapters(
    make: Callable[..., AsyncPostgreSQL], blocking: PostgreSQL
) -> None:
    clock = MovableClock()
    storage = make()
    for each in (storage, blocking):
        each.set_record_format(
            ttl=Expiry(results=60), compression=Compression("gzip", threshold=16), clock=clock
        )
    big = {"rows": [{"n": n, "text": "many words " * 5} for n in range(200)]}
    blocking.store("F", "t", "sync-big", big)
    blocking.store("F", "t", "sync-small", 1)
    blocking.store_error(None, "F", "t", "sync-big", ValueError("kept"))

    async def scenario(s: AsyncPostgreSQL) -> None:
        assert await s.retrieve("F", "t", "sync-big") == big
        await s.store("F", "t", "async-big", big)
        clock.advance(61)
        with pytest.raises(ResultNotFound):
            await s.retrieve("F", "t", "sync-small")
        assert await s.purge_expired(dry_run=True) == 3
        await s.store("F", "t", "fresh", 2)
        assert await s.purge_expired() == 3  # by the expires_at column both adapters set
        assert [key async for key in s.iter_keys("F")] == [("F", "t", "fresh")]

    run(scenario, storage)
    with pytest.raises(ResultNotFound):
        blocking.retrieve("F", "t", "async-big")
    assert blocking.retrieve("F", "t", "fresh") == 2
    assert blocking.retrieve_error("F", "t", "sync-big")["message"] == "kept"


def test_another_database_is_refused_and_another_driver_at_connect_without_its_password() -> None:
    with pytest.raises(ConfigError, match="AsyncPostgreSQL needs a postgresql or postgres URL"):
        AsyncPostgreSQL(connection_string="mysql://root@127.0.0.1/test")
    other_driver = AsyncPostgreSQL(connection_string="postgresql+pg8000://u:hush@h/db")

    async def connect() -> None:
        with pytest.raises(ConfigError, match="runs on psycopg 3") as caught:
            await other_driver.connect()
        assert "hush" not in str(caught.value)
        assert not other_driver.is_connected()

    asyncio.run(connect())


# -- cancellation, deadlines and the pool --------------------------------------------------------


@contextlib.asynccontextmanager
async def table_locked(table: str) -> Any:
    """The results table locked by another connection (every statement on it waits) until
    the block ends."""
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as other:
        await other.execute("BEGIN")
        await other.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await other.execute("ROLLBACK")


async def cancelled_when_blocked(call: Coroutine[Any, Any, Any], table: str) -> None:
    """Run ``call`` until its statement waits for the lock on ``table`` on the server, then
    cancel it; it must end cancelled."""
    task = asyncio.ensure_future(call)
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database() AND query LIKE %s"
    )
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as watcher:
        for _ in range(600):  # a guard: 60 s
            cursor = await watcher.execute(query, (f"% {table} %",))
            if (await cursor.fetchone() or (0,))[0] or task.done():
                break
            await asyncio.sleep(0.1)
    assert not task.done(), "the call did not wait for the lock"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_call_cancelled_mid_query_leaves_its_connection_idle_in_the_pool(
    make: Callable[..., AsyncPostgreSQL], table: str
) -> None:
    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.store("F", "t", "kept", 1)
        async with table_locked(table):
            await cancelled_when_blocked(s.store("F", "t", "cut", 2), table)
            await cancelled_when_blocked(s.retrieve("F", "t", "kept"), table)
            with pytest.raises(TimeoutError):  # the same by asyncio.wait_for
                await asyncio.wait_for(s.retrieve("F", "t", "kept"), 0.3)
            # psycopg had the server cancel each query: the connection is idle again, kept.
            assert idle_states(s) == [IDLE]
        assert await s.retrieve("F", "t", "kept") == 1
        with pytest.raises(ResultNotFound):
            await s.retrieve("F", "t", "cut")  # cancelled on the server, not stored
        assert pool_of(s)._open == 1

    run(scenario, make())


def test_a_cancelled_sleep_is_cancelled_on_the_server(
    make: Callable[..., AsyncPostgreSQL],
) -> None:
    sleep = Sql("SELECT pg_sleep(5), pg_backend_pid()", None, {})

    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.ping()
        (pid,) = await s._run(Sql("SELECT pg_backend_pid()", None, {}), {}, module.ONE)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s._run(sleep, {}, module.ONE), 0.2)
        assert idle_states(s) == [IDLE]
        async with await psycopg.AsyncConnection.connect(DSN) as other:
            cursor = await other.execute(
                "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
            )
            state, query = await cursor.fetchone() or (None, None)
        assert state == "idle" and "pg_sleep" in query  # its last query, no longer running
        assert await s.ping() is True

    run(scenario, make())


def test_a_bulk_write_cancelled_in_its_transaction_commits_nothing_and_its_connection_goes(
    make: Callable[..., AsyncPostgreSQL], table: str
) -> None:
    items = [("F", "bulk", str(i), {"i": i, "pad": "x" * 1000}) for i in range(2000)]

    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.store("F", "bulk", "0", "old")
        async with table_locked(table):
            await cancelled_when_blocked(s.store_many(items), table)  # inside BEGIN … COMMIT
            # Interrupted inside its transaction: closed, not given back.
            assert idle_states(s) == [] and pool_of(s)._open == 0
        assert await s.retrieve("F", "bulk", "0") == "old"
        assert await s.retrieve_many([key[:3] for key in items[1:]]) == {}
        assert await s.store_many(items[:3]) and await s.retrieve("F", "bulk", "0") == {
            "i": 0,
            "pad": "x" * 1000,
        }

    run(scenario, make())


def test_an_error_psycopg_raises_in_place_of_a_cancellation_stays_a_cancellation(
    make: Callable[..., AsyncPostgreSQL], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = psycopg.AsyncCursor.executemany

    async def scenario(s: AsyncPostgreSQL) -> None:
        started = asyncio.Event()

        async def cut_in_enter(self: Any, *args: Any, **kwargs: Any) -> None:
            # What psycopg's _pipeline_nolock does when the task is cancelled in its
            # __aenter__: the assertion of its finally replaces the CancelledError.
            try:
                started.set()
                await asyncio.sleep(10)
            finally:
                raise AssertionError  # as psycopg's `assert pipeline.level == 0`

        async def fails_alone(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                raise asyncio.CancelledError  # caught: no cancellation of the task
            except asyncio.CancelledError:
                raise AssertionError("a real failure") from None

        monkeypatch.setattr(psycopg.AsyncCursor, "executemany", cut_in_enter)
        bulk = asyncio.ensure_future(s.store_many([("F", "t", str(i), i) for i in range(3)]))
        await started.wait()
        bulk.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bulk
        monkeypatch.setattr(psycopg.AsyncCursor, "executemany", fails_alone)
        with pytest.raises(StorageError, match="a real failure"):
            await s.store_many([("F", "t", "0", 0)])
        monkeypatch.setattr(psycopg.AsyncCursor, "executemany", original)
        # The connections those calls left mid-transaction were closed: the next calls work.
        await s.store_many([("F", "t", "after", 1)])
        assert await s.retrieve("F", "t", "after") == 1
        assert all(state == IDLE for state in idle_states(s))

    run(scenario, make())


def test_an_error_inside_a_transaction_rolls_back_and_keeps_the_connection(
    make: Callable[..., AsyncPostgreSQL],
) -> None:
    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.ping()
        with pytest.raises(psycopg.errors.UndefinedTable):
            async with s._transaction() as cursor:
                await cursor.execute("SELECT * FROM no_such_table_here")
        assert idle_states(s) == [IDLE] and pool_of(s)._open == 1
        assert await s.ping() is True

    run(scenario, make())


def test_the_deadline_cuts_a_blocked_call_and_the_instance_works_after(
    make: Callable[..., AsyncPostgreSQL], table: str
) -> None:
    storage = make()
    storage.retry_policy = NO_RETRY
    storage.operation_timeout = 1.0

    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.store("F", "t", "kept", 1)
        async with table_locked(table):
            with pytest.raises(StorageUnavailable, match="before the call's deadline") as caught:
                await s.store("F", "t", "blocked", 2)
            assert isinstance(caught.value.__cause__, TimeoutError)
            assert pool_of(s)._open == 0  # the watchdog shut its socket: closed
        assert await s.retrieve("F", "t", "kept") == 1

    run(scenario, storage)


def test_statement_timeout_cancels_on_the_server(make: Callable[..., AsyncPostgreSQL]) -> None:
    storage = make(statement_timeout=0.2)
    storage.retry_policy = NO_RETRY

    async def scenario(s: AsyncPostgreSQL) -> None:
        with pytest.raises(psycopg.errors.QueryCanceled):
            await s._run(Sql("SELECT pg_sleep(2)", None, {}), {}, module.ONE)
        assert s.is_transient(psycopg.errors.QueryCanceled())
        assert idle_states(s) == [IDLE]  # the server's cancel leaves the connection usable

    run(scenario, storage)


def test_calls_beyond_the_pool_wait_their_turn(make: Callable[..., AsyncPostgreSQL]) -> None:
    async def scenario(s: AsyncPostgreSQL) -> None:
        await asyncio.gather(*(s.store("F", "t", str(i), i) for i in range(60)))
        values = await asyncio.gather(*(s.retrieve("F", "t", str(i)) for i in range(60)))
        assert values == list(range(60))
        assert pool_of(s)._open <= 2

    run(scenario, make(pool_size=1, max_overflow=1))


def test_a_call_that_finds_every_connection_busy_fails_clearly(
    make: Callable[..., AsyncPostgreSQL], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "POOL_WAIT", 0.3)
    storage = make(pool_size=1, max_overflow=0)
    storage.retry_policy = NO_RETRY

    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.ping()
        async with s._transaction():  # holds the only connection
            with pytest.raises(StorageUnavailable, match=r"connections stayed busy for 0\.3 s"):
                await s.store("F", "t", "1", 1)
        await s.store("F", "t", "1", 1)  # free again
        assert await s.retrieve("F", "t", "1") == 1

    run(scenario, storage)


# -- a private server: hung, restarted -----------------------------------------------------------


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_a_hung_server_fails_calls_by_their_deadline_and_a_restart_is_survived(
    postgresql_server: Any,  # noqa: F811 - the fixture imported above
) -> None:
    storage = AsyncPostgreSQL(
        connection_string=postgresql_server.url, connect_timeout=20, statement_timeout=20
    )
    storage.operation_timeout = 3.0

    async def scenario(s: AsyncPostgreSQL) -> None:
        await s.store("F", "t", "before", {"n": 1})
        pids = postgresql_server.pids()
        _signal(pids, signal.SIGSTOP)
        try:
            calls = [s.store("F", "t", "x", 1), s.retrieve("F", "t", "before"), s.ping()]
            # A guard, not a bound: a call that never ends fails the test here.
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)
        finally:
            _signal(pids, signal.SIGCONT)
        assert all(isinstance(outcome, StorageUnavailable) for outcome in outcomes), outcomes
        assert await s.retrieve("F", "t", "before") == {"n": 1}  # resumed: works again

        postgresql_server.stop()  # immediate shutdown: every connection drops
        postgresql_server.start()
        await s.store("F", "t", "after", {"n": 2})  # a lost connection, retried on a new one
        assert await s.retrieve("F", "t", "before") == {"n": 1}
        assert await s.retrieve("F", "t", "after") == {"n": 2}

    run(scenario, storage)
