"""The async contract kit (``selinon_like.testing.AsyncStorageContract``) on the native async
memory adapter, on a native five-method async adapter, and on ``ThreadedStorage`` around
SQLite, the filesystem, the README's five-method adapter and MariaDB; the settings of a
``ThreadedStorage`` reaching its blocking adapter; and the kit failing async adapters that
break what only asyncio asks (each case in a pytest session of its own, ``pytester``)."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MYSQL_URL, drop_tables, require_service, sql_probe
from test_contract_kit import FiveMethodStorage
from test_sql import _table

from selinon_like.aio import AsyncDataStorage, ThreadedStorage
from selinon_like.cache import ResultCache
from selinon_like.envelope import Expiry
from selinon_like.keys import Key, pack_key
from selinon_like.retry import NO_RETRY
from selinon_like.serializers import PICKLE
from selinon_like.testing import (
    AsyncContract,
    AsyncStorageContract,
    AsyncUnreachableServiceContract,
    BlockingFacade,
    BulkContract,
    ExpiryContract,
    ResilienceContract,
    ResultsContract,
)
from selinon_like.testing.aio import AsyncFactory, no_unclosed_resources
from storages.aio.memory import AsyncInMemoryStorage
from storages.filesystem import Filesystem
from storages.memory import InMemoryStorage
from storages.mysql import MySQL
from storages.sql import SQLite

pytest_plugins = ["pytester"]


# -- native async adapters -----------------------------------------------------------------------


class AsyncFiveMethods(AsyncDataStorage):
    """The five methods, as coroutines, on a dict: what an async custom adapter writes at
    least."""

    def __init__(self) -> None:
        self._results: dict[Key, bytes] = {}
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    async def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            data = self._results[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    async def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self._results[(flow_name, task_name, task_id)] = self.serializer.dumps(result)
        return pack_key(flow_name, task_name, task_id)


class AsyncSocketStorage(AsyncFiveMethods):
    """Speaks to a service at ``host:port`` with a password, each wait bounded by ``timeout``
    (and ``timeout=None``: no bound at all); the kit only gives it unreachable services."""

    def __init__(self, host: str, port: int, password: str, timeout: float | None) -> None:
        super().__init__()
        self.address = (host, port)
        self.password = password
        self.timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.wait_for(
                asyncio.open_connection(*self.address), self.timeout
            )

    async def disconnect(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            await writer.wait_closed()

    def is_connected(self) -> bool:
        return self._streams is not None

    async def recover(self, exc: BaseException) -> None:
        await self.disconnect()

    async def _ask(self, line: str) -> bytes:
        await self.connect()
        assert self._streams is not None
        reader, writer = self._streams
        writer.write(f"AUTH {self.password}\n{line}\n".encode())
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), self.timeout)
        if not reply:
            raise ConnectionResetError("the service closed the connection")
        return reply

    async def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        return self.serializer.loads(
            await self._ask("GET " + pack_key(flow_name, task_name, task_id))
        )

    async def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        data = self.serializer.dumps(result).hex()
        await self._ask(f"SET {pack_key(flow_name, task_name, task_id)} {data}")
        return pack_key(flow_name, task_name, task_id)


# -- the kit on each ----------------------------------------------------------------------------


# The suites of what a five-method adapter offers: no optional operation, so none of the
# suites of one (error records, listing, delete, streaming, purge).
class FiveMethodSuites(
    AsyncContract, ResultsContract, BulkContract, ResilienceContract, ExpiryContract
):
    pass


class TestAsyncInMemory(AsyncStorageContract):
    @pytest.fixture
    def async_storage(self) -> AsyncFactory:
        return AsyncInMemoryStorage


class TestAsyncFiveMethods(FiveMethodSuites, AsyncUnreachableServiceContract):
    @pytest.fixture
    def async_storage(self) -> AsyncFactory:
        return AsyncFiveMethods

    @pytest.fixture
    def unreachable_async_storage(self, unreachable_port: int, secret: str) -> AsyncFactory:
        return lambda: AsyncSocketStorage(
            host="127.0.0.1", port=unreachable_port, password=secret, timeout=0.3
        )

    @pytest.fixture
    def unreachable_timeout(self) -> float:
        return 3.0


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("aio-sqlite") / "results.sqlite")


class TestThreadedSQLite(AsyncStorageContract):
    @pytest.fixture
    def async_storage(self, sqlite_path: str) -> AsyncFactory:
        return lambda: ThreadedStorage.of(SQLite)(SQLite(path=sqlite_path))


class TestThreadedFilesystem(AsyncStorageContract):
    @pytest.fixture
    def async_storage(self, tmp_path: Path) -> AsyncFactory:
        root = str(tmp_path / "store")
        return lambda: ThreadedStorage.of(Filesystem)(Filesystem(path=root))


class TestThreadedFiveMethods(FiveMethodSuites):
    @pytest.fixture
    def async_storage(self) -> AsyncFactory:
        return lambda: ThreadedStorage.of(FiveMethodStorage)(FiveMethodStorage())


@pytest.fixture(scope="module")
def mariadb_table() -> Iterator[str]:
    require_service("MariaDB/MySQL", sql_probe(MYSQL_URL))
    table = _table()
    yield table
    drop_tables(MYSQL_URL, table)


@pytest.mark.mysql
class TestThreadedMariaDB(AsyncStorageContract, AsyncUnreachableServiceContract):
    @pytest.fixture
    def async_storage(self, mariadb_table: str) -> AsyncFactory:
        def build() -> AsyncDataStorage:
            return ThreadedStorage.of(MySQL)(
                MySQL(connection_string=MYSQL_URL, table_name=mariadb_table)
            )

        return build

    @pytest.fixture
    def unreachable_async_storage(self, unreachable_port: int, secret: str) -> AsyncFactory:
        url = f"mysql://worker:{secret}@127.0.0.1:{unreachable_port}/db"
        return lambda: ThreadedStorage.of(MySQL)(
            MySQL(connection_string=url, connect_timeout=0.5, statement_timeout=0.5)
        )


# -- ThreadedStorage: its settings are its blocking adapter's -------------------------------------


def test_the_settings_of_a_threaded_storage_are_its_adapters() -> None:
    blocking = InMemoryStorage()
    threaded = ThreadedStorage.of(InMemoryStorage)(blocking)
    threaded.serializer = PICKLE
    threaded.set_record_format(ttl=Expiry(results=5))
    threaded.retry_policy = NO_RETRY
    threaded.operation_timeout = 2.5
    threaded.storage_name = "Renamed"
    cache = ResultCache(max_size=10)
    threaded.cache = cache
    assert blocking.record_codec.serializer is PICKLE
    assert blocking.record_codec.ttl == Expiry(results=5) == threaded.record_codec.ttl
    assert blocking.retry_policy is NO_RETRY is threaded.retry_policy
    assert blocking.operation_timeout == 2.5 == threaded.operation_timeout
    assert blocking.storage_name == "Renamed" == threaded.storage_name
    assert blocking.cache is cache is threaded.cache

    async def use() -> Any:
        async with threaded:
            await threaded.store("f", "t", "1", {"a", "set"})  # pickled: a set is fine
            return await threaded.retrieve("f", "t", "1")

    assert asyncio.run(use()) == {"a", "set"}


def test_a_facade_refuses_what_is_not_an_async_adapter() -> None:
    with pytest.raises(TypeError, match="building an AsyncDataStorage"):
        BlockingFacade.around(InMemoryStorage)  # type: ignore[arg-type]


# -- the kit fails what breaks async-only guarantees ----------------------------------------------


HEADER = """
import asyncio
import pytest
from test_aio_kit import AsyncFiveMethods, AsyncSocketStorage
from selinon_like.testing import AsyncContract, AsyncUnreachableServiceContract


class StuckAfterCancel(AsyncFiveMethods):
    # A store cancelled midway leaves the instance waiting on a lock nobody releases.
    def __init__(self):
        super().__init__()
        self._busy = False

    async def store(self, flow_name, task_name, task_id, result):
        if self._busy:
            raise RuntimeError("the connection is still busy with a cancelled call")
        self._busy = True
        await asyncio.sleep(0.01)
        stored = await super().store(flow_name, task_name, task_id, result)
        self._busy = False
        return stored


class OpenAfterExit(AsyncFiveMethods):
    async def disconnect(self):
        pass  # async with leaves it connected
"""


def run_kit(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_kit=HEADER + body)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", "-rfs", *args)


def test_a_call_that_breaks_when_cancelled_fails_the_kit(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        """
class TestStuck(AsyncContract):
    @pytest.fixture
    def async_storage(self):
        return StuckAfterCancel
""",
        "-k",
        "cancelled",
    )
    result.assert_outcomes(failed=1)
    assert "still busy with a cancelled call" in result.stdout.str()


def test_an_adapter_that_stays_connected_fails_async_with(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        """
class TestOpen(AsyncContract):
    @pytest.fixture
    def async_storage(self):
        return OpenAfterExit
""",
        "-k",
        "async_with",
    )
    result.assert_outcomes(failed=1)


def test_an_adapter_without_a_timeout_of_its_own_is_cut_at_the_deadline(
    pytester: pytest.Pytester,
) -> None:
    # No timeout in the adapter: on the silent port its call would wait for an answer that
    # never comes; the layers cancel each attempt at the call's deadline (timed_invoke).
    result = run_kit(
        pytester,
        """
class TestNoTimeout(AsyncUnreachableServiceContract):
    @pytest.fixture
    def unreachable_async_storage(self, unreachable_port, secret):
        return lambda: AsyncSocketStorage(
            host="127.0.0.1", port=unreachable_port, password=secret, timeout=None
        )

    @pytest.fixture
    def unreachable_timeout(self):
        return 2.0
""",
        "-k",
        "operation_timeout and silent",
    )
    result.assert_outcomes(passed=1)


def test_the_kit_reports_a_missing_async_storage_fixture(pytester: pytest.Pytester) -> None:
    result = run_kit(pytester, "\nclass TestNothing(AsyncContract):\n    pass\n", "-k", "gathered")
    assert "must define an async_storage fixture" in result.stdout.str()


def test_facade_classes_are_named_after_their_async_class() -> None:
    facade_class = BlockingFacade.of(AsyncInMemoryStorage)
    assert facade_class.__name__ == "AsyncInMemoryStorage"
    assert facade_class.capabilities() == AsyncInMemoryStorage.capabilities()
    assert BlockingFacade.of(AsyncInMemoryStorage) is facade_class


# -- no_unclosed_resources ---------------------------------------------------------------------


def _unclosed_socket_in_a_cycle() -> None:
    """Leave a socket that only the garbage collector finds (it warns when it does)."""
    sock = socket.socket()
    cycle: list[Any] = [sock]
    cycle.append(cycle)


def test_no_unclosed_resources_fails_a_block_that_leaves_a_socket() -> None:
    with (
        pytest.raises(AssertionError, match=r"unclosed resources:\n.*unclosed <socket"),
        no_unclosed_resources(),
    ):
        _unclosed_socket_in_a_cycle()


def test_no_unclosed_resources_leaves_earlier_garbage_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What a test run before left in the worker (a client closed by no one) is not the
    # block's: under -W error it used to fail whichever block collected it first.
    gc.disable()  # the socket stays garbage until the block's first collection
    try:
        _unclosed_socket_in_a_cycle()
        with no_unclosed_resources():
            pass
    finally:
        gc.enable()
    assert re.search(
        r"left before the block, not its own:\n.*unclosed <socket", capsys.readouterr().err
    )
