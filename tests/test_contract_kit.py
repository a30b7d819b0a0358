"""The contract kit chooses its tests by what an adapter really implements.

A README-compliant five-method adapter and a ``RecordStorage`` adapter with only ``read`` and
``write`` pass :class:`StorageContract` with no failure (the tests of what they do not offer
skip, naming the method), and the five-method adapter passes the suites of what it offers with
no skip; an adapter that implements a capability and breaks it fails that capability's suite;
the unreachable-service suite is one an adapter with a service adds, and a test class that
defines its fixtures without it is refused. Each case runs the kit in a pytest session of its
own (``pytester``), so that the outcomes themselves can be checked.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from conftest import InProcess

from selinon_like import DataStorage, Digest
from selinon_like.keys import Key, pack_key
from selinon_like.records import Kind, RecordStorage
from selinon_like.storage import OPTIONAL_OPERATIONS
from selinon_like.streams import DigestingReader
from selinon_like.testing import StorageContract, require

pytest_plugins = ["pytester"]

log = logging.getLogger("tests.contract_kit")


# -- adapters under test -------------------------------------------------------------------------


class FiveMethodStorage(DataStorage):
    """Exactly what the README asks of a custom adapter: five methods, the serializer before
    any I/O, ``self.not_found`` when there is nothing."""

    def __init__(self) -> None:
        self._results: dict[Key, bytes] = {}
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        try:
            data = self._results[(flow_name, task_name, task_id)]
        except KeyError:
            raise self.not_found(flow_name, task_name, task_id) from None
        return self.serializer.loads(data)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self._results[(flow_name, task_name, task_id)] = self.serializer.dumps(result)
        return pack_key(flow_name, task_name, task_id)


class ReadWriteRecords(InProcess, RecordStorage):
    """A ``RecordStorage`` with the two required primitives only."""

    def __init__(self) -> None:
        self._records: dict[tuple[Kind, Key], bytes] = {}

    def read(self, kind: Kind, key: Key) -> bytes | None:
        return self._records.get((kind, key))

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        self._records[(kind, key)] = data
        return pack_key(*key)


class DeleteThatKeeps(FiveMethodStorage):
    """Claims ``delete`` (it implements it) and keeps the result."""

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        self.retrieve(flow_name, task_name, task_id)  # "not found" right, the removal wrong


class ScanThatMisses(ReadWriteRecords):
    """Claims key listing (it implements ``scan``) and lists nothing."""

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        return iter(())


class StreamThatDropsTheTail(FiveMethodStorage):
    """Claims streaming and loses the last chunk of every stream."""

    def __init__(self) -> None:
        super().__init__()
        self._blobs: dict[Key, list[bytes]] = {}

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        reader = DigestingReader(chunks)
        self._blobs[(flow_name, task_name, task_id)] = list(reader)[:-1]
        return reader.digest()

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        key = (flow_name, task_name, task_id)
        if key not in self._blobs:
            raise self.not_found(flow_name, task_name, task_id)
        return iter(self._blobs[key])


class SocketStorage(FiveMethodStorage):
    """Speaks to a service at ``host:port`` with a password, sockets with ``timeout``: enough
    to meet an unreachable service (the kit never gives it a live one)."""

    def __init__(self, host: str, port: int, password: str, timeout: float | None = 0.5) -> None:
        super().__init__()
        self.address = (host, port)
        self.password = password
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        if self._sock is None:
            self._sock = socket.create_connection(self.address, timeout=self.timeout)

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def is_connected(self) -> bool:
        return self._sock is not None

    def recover(self, exc: BaseException) -> None:
        self.disconnect()  # the retry opens a new connection

    def _ask(self, line: str) -> bytes:
        self.connect()
        sock = self._sock
        if sock is None:  # disconnected by another thread meanwhile
            raise ConnectionError("not connected")
        sock.sendall(f"AUTH {self.password}\n{line}\n".encode())
        reply = sock.recv(65536)
        if not reply:
            raise ConnectionResetError("the service closed the connection")
        return reply

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        return self.serializer.loads(self._ask("GET " + pack_key(flow_name, task_name, task_id)))

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        data = self.serializer.dumps(result).hex()
        self._ask(f"SET {pack_key(flow_name, task_name, task_id)} {data}")
        return pack_key(flow_name, task_name, task_id)


class LeakySocketStorage(SocketStorage):
    """Logs its password when it connects."""

    def connect(self) -> None:
        log.debug("connecting to %s:%s with password %s", *self.address, self.password)
        super().connect()


# -- the kit in sessions of its own ----------------------------------------------------------------

HEADER = """
import pytest
from test_contract_kit import (
    DeleteThatKeeps, FiveMethodStorage, LeakySocketStorage, ReadWriteRecords, ScanThatMisses,
    SocketStorage, StreamThatDropsTheTail,
)
from selinon_like.testing import *


def connected_storage(cls):
    @pytest.fixture
    def storage(self):
        instance = cls()
        instance.connect()
        yield instance
        instance.disconnect()

    return storage
"""


def run_kit(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    """Run the test classes of ``body`` (after :data:`HEADER`) in a pytest session of their own,
    warnings as errors, failures and skip reasons reported."""
    pytester.makepyfile(test_kit=HEADER + body)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", "-rfs", *args)


def skip_reasons(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("SKIPPED")]


def test_a_five_method_adapter_passes_the_whole_kit(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        """
class TestFiveMethods(StorageContract):
    storage = connected_storage(FiveMethodStorage)
""",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and "errors" not in outcomes, result.outlines[-30:]
    assert outcomes["passed"] >= 80  # results, bulk, fork, threads, ttl: they need nothing more
    reasons = skip_reasons(result)
    assert reasons and outcomes["skipped"] == sum(
        int(line.split("[", 1)[1].split("]", 1)[0]) for line in reasons
    )
    for line in reasons:  # each skip names the optional operations missing, nothing else
        assert [op for op in OPTIONAL_OPERATIONS if f"{op}()" in line], line
        assert "FiveMethodStorage" in line, line
    # An adapter with no service has no unreachable-service test to run, nor to skip.
    assert "unreachable" not in result.stdout.str()


def test_the_suites_of_what_a_five_method_adapter_offers_skip_nothing(
    pytester: pytest.Pytester,
) -> None:
    whole = run_kit(
        pytester,
        """
class TestFiveMethods(StorageContract):
    storage = connected_storage(FiveMethodStorage)
""",
    ).parseoutcomes()
    composed = run_kit(
        pytester,
        """
class TestFiveMethods(ResultsContract, BulkContract, ResilienceContract, ExpiryContract):
    storage = connected_storage(FiveMethodStorage)
""",
    ).parseoutcomes()
    assert composed == {"passed": whole["passed"]}  # every test StorageContract ran, no skip


def test_a_record_storage_with_read_and_write_only_passes(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        """
class TestReadWrite(StorageContract):
    storage = connected_storage(ReadWriteRecords)
""",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and "errors" not in outcomes, result.outlines[-30:]
    reasons = "\n".join(skip_reasons(result))
    # error records are built on read/write: they run; deleting and listing keys do not
    for offered in ("store_error()", "retrieve_error()", "store_error_record()"):
        assert offered not in reasons
    for missing in ("delete()", "iter_keys()", "iter_error_keys()", "store_stream()"):
        assert f"ReadWriteRecords does not offer {missing}" in reasons


@pytest.mark.parametrize(
    ("suite", "cls", "failing"),
    [
        ("DeleteContract", "DeleteThatKeeps", "test_delete_removes_the_result"),
        ("ListingContract", "ScanThatMisses", "test_iter_keys_lists_results_by_flow"),
        ("StreamingContract", "StreamThatDropsTheTail", "test_small_and_empty_streams_round_trip"),
    ],
)
def test_a_capability_claimed_and_broken_fails_its_suite(
    pytester: pytest.Pytester, suite: str, cls: str, failing: str
) -> None:
    result = run_kit(
        pytester,
        f"""
class TestBroken({suite}):
    storage = connected_storage({cls})
""",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.outlines[-30:]
    assert any(failing in line for line in result.outlines if line.startswith("FAILED"))
    # what the adapter offers is tested, never skipped for want of a method
    assert not [line for line in skip_reasons(result) if "does not offer" in line]


UNREACHABLE = """
class TestSocket(UnreachableServiceContract):
    @pytest.fixture
    def unreachable_storage(self, unreachable_port, secret):
        return {cls}(host="127.0.0.1", port=unreachable_port, password=secret, timeout={timeout})

    @pytest.fixture
    def unreachable_timeout(self):
        return 3.0
"""


def test_an_adapter_with_timeouts_that_masks_its_secret_passes(pytester: pytest.Pytester) -> None:
    body = UNREACHABLE.format(cls="SocketStorage", timeout=0.3)
    result = run_kit(pytester, body, "-k", "secret or unreachable")
    result.assert_outcomes(passed=4)  # two tests, on a refused and on a silent port


def test_a_logged_secret_fails_the_resilience_suite(pytester: pytest.Pytester) -> None:
    body = UNREACHABLE.format(cls="LeakySocketStorage", timeout=0.3)
    result = run_kit(pytester, body, "-k", "secret")
    result.assert_outcomes(failed=2)
    assert "the secret leaked" in result.stdout.str()


def test_a_call_without_a_timeout_fails_the_resilience_suite(pytester: pytest.Pytester) -> None:
    # No timeout: on the silent port the call waits for an answer that never comes (until the
    # fixture closes the port after the test).
    body = UNREACHABLE.format(cls="SocketStorage", timeout=None)
    result = run_kit(pytester, body, "-k", "unreachable_service and silent")
    result.assert_outcomes(failed=1)
    assert "still runs after 3.0 s" in result.stdout.str()


def test_the_unreachable_service_suite_needs_its_fixture(pytester: pytest.Pytester) -> None:
    # A class that includes the suite means to run it: no fixture is an error, never a skip.
    result = run_kit(pytester, "\nclass TestNoFixture(UnreachableServiceContract):\n    pass\n")
    result.assert_outcomes(errors=2)  # its two tests (on no port: there is no instance)
    assert "TestNoFixture must define an unreachable_storage fixture" in result.stdout.str()


@pytest.mark.parametrize(
    "fixture", ["unreachable_storage", "unreachable_async_storage", "unreachable_timeout"]
)
def test_a_class_with_an_unreachable_fixture_and_not_its_suite_is_refused(fixture: str) -> None:
    # Its tests would never run: the class is refused when it is defined, not silently short.
    body = {fixture: pytest.fixture(lambda self: None, name=fixture)}
    with pytest.raises(TypeError, match=f"TestForgot defines {fixture} but .* add "):
        type("TestForgot", (StorageContract,), body)


# -- require() -------------------------------------------------------------------------------------


def test_require_skips_naming_the_missing_methods() -> None:
    storage = FiveMethodStorage()
    with pytest.raises(pytest.skip.Exception, match=r"does not offer delete\(\), iter_keys\(\)"):
        require(storage, "delete", "iter_keys")
    require(ReadWriteRecords(), "store_error", "retrieve_error")  # offered: no skip


def test_require_refuses_what_is_not_an_optional_operation() -> None:
    with pytest.raises(ValueError, match="'store'"):
        require(FiveMethodStorage(), "store")
