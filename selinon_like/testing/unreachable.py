"""The unreachable-service suite: a call against a service that refuses connections, or
accepts them and never answers, fails as :class:`StorageUnavailable` within its timeout, and
never shows a secret of the configuration. For an adapter that talks to a service; one with
none (memory, local files) has nothing to make unreachable and leaves the suite out."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from selinon_like.errors import SelinonLikeError, StorageError, StorageUnavailable
from selinon_like.retry import RetryPolicy
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, failure, offers

__all__ = ["UnreachableServiceContract"]

# Calls on ``unreachable_storage`` run with two attempts: the retry (and its log line) happen.
UNREACHABLE_RETRY = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)


class UnreachableServiceContract(ContractBase):
    """A failing call never shows a secret of the configuration (in its error, the errors
    chained to it, ``repr``, ``str`` or the log); a call against an unreachable service fails
    as :class:`StorageUnavailable` within its timeout, its retry included. Each test runs twice:
    on a closed port of 127.0.0.1 (connection refused) and on one that accepts connections and
    never answers.

    Add it to the test class of an adapter that talks to a service, with the fixture it needs
    (the suite has no default for it: a test class that includes the suite means to run it)::

        class TestMyStorage(StorageContract, UnreachableServiceContract):
            @pytest.fixture
            def unreachable_storage(self, unreachable_port, secret):
                return MyStorage(host="127.0.0.1", port=unreachable_port, password=secret,
                                 connect_timeout=1)

    ``unreachable_storage``
        an unconnected instance pointed at the address ``unreachable_port`` on 127.0.0.1,
        with ``secret`` in its configuration (a password, a key, the credentials of a URL),
        and timeouts small enough to fail within ``unreachable_timeout``.

    Fixtures it offers (override them in the test class):

    ``unreachable_port``
        the port: closed, then silent.
    ``secret``
        the secret to hide; default: a random string.
    ``unreachable_timeout``
        the seconds one call on ``unreachable_storage`` may take, its retry included;
        default 10.
    """

    _runs_unreachable_service_tests: ClassVar[bool] = True

    @pytest.fixture(params=["refused", "silent"])
    def unreachable_port(self, request: pytest.FixtureRequest) -> Iterator[int]:
        """A port of 127.0.0.1 where no service answers: closed (connection refused), or
        listening with nobody ever reading or writing (the handshake completes; no answer)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if request.param == "silent":
                sock.listen(64)
                yield port
                return
        yield port  # closed: nothing listens there any more

    @pytest.fixture
    def unreachable_storage(self) -> DataStorage:
        """An instance pointed at ``unreachable_port``, with ``secret`` in its configuration."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define an unreachable_storage fixture: an unconnected "
            "instance on 127.0.0.1:unreachable_port with secret in its configuration (see "
            "UnreachableServiceContract)"
        )

    @pytest.fixture
    def secret(self) -> str:
        """The secret ``unreachable_storage`` carries in its configuration."""
        return f"Kit-Secret-{os.urandom(6).hex()}"

    @pytest.fixture
    def unreachable_timeout(self) -> float:
        """Seconds one call on ``unreachable_storage`` may take, its retry included."""
        return 10.0

    def test_a_failing_call_never_shows_the_secret(
        self,
        unreachable_storage: DataStorage,
        secret: str,
        unreachable_timeout: float,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        storage = unreachable_storage
        assert secret in repr(storage._configuration), (
            "unreachable_storage must carry the `secret` fixture in its configuration"
        )
        storage.retry_policy = UNREACHABLE_RETRY
        caplog.set_level(logging.DEBUG)
        texts = [repr(storage), str(storage)]
        raised: list[BaseException] = []
        calls: dict[str, Callable[[], object]] = {
            "connect()": storage.connect,
            "store()": lambda: storage.store("flow", "task", "id", {"x": 1}),
            "retrieve()": lambda: storage.retrieve("flow", "task", "id"),
            "ping()": storage.ping,
        }
        if offers(storage, "store_error"):
            calls["store_error()"] = lambda: storage.store_error(
                None, "flow", "task", "id", failure()
            )
        try:
            for name, call in calls.items():
                error = _within(call, unreachable_timeout, name)
                if error is not None:
                    raised.append(error)
        finally:
            _settle(storage.disconnect, unreachable_timeout)
        assert any(isinstance(exc, StorageError) for exc in raised), (
            f"no call failed with a StorageError against an unreachable service: {raised}"
        )
        for exc in raised:
            texts += _our_messages(exc)
        texts.append(caplog.text)
        texts += [record.getMessage() for record in caplog.records]
        if any(isinstance(exc, StorageUnavailable) for exc in raised):
            # a transient failure was retried, its (scrubbed) driver message logged, unless
            # its first attempt left too little of the operation_timeout for another
            assert "retry 1 of 1" in caplog.text or any(
                "operation_timeout" in str(exc) for exc in raised
            )
        for text in texts:
            assert secret not in text, f"the secret leaked in {text[:300]!r}"

    def test_an_unreachable_service_fails_within_its_timeout(
        self, unreachable_storage: DataStorage, unreachable_timeout: float
    ) -> None:
        storage = unreachable_storage
        storage.retry_policy = UNREACHABLE_RETRY
        try:
            error = _within(storage.connect, unreachable_timeout, "connect()")
            if error is not None:
                _unavailable(error, "connect()")
                assert not storage.is_connected()
                again = _within(storage.connect, unreachable_timeout, "a second connect()")
                _unavailable(again, "a second connect()")
                return
            calls: dict[str, Callable[[], object]] = {
                "store()": lambda: storage.store("flow", "task", "id", 1),
                "retrieve()": lambda: storage.retrieve("flow", "task", "id"),
                "ping()": storage.ping,
            }
            for name, call in calls.items():
                _unavailable(_within(call, unreachable_timeout, name), name)
        finally:
            _settle(storage.disconnect, unreachable_timeout)


# -- helpers -----------------------------------------------------------------------------------


def _our_messages(exc: BaseException) -> list[str]:
    """``str`` and ``repr`` of every error of ours in the chain of ``exc`` (a driver's own
    exception chained below a clean message of ours is the driver's text, not scanned)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SelinonLikeError):
            texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def _within(call: Callable[[], object], seconds: float, name: str) -> BaseException | None:
    """Run ``call`` in a thread; what it raised (``None`` if nothing). Fails the test when
    it is still running after ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{name} against an unreachable service still runs after {seconds} s")
    return outcome[0]


def _settle(call: Callable[[], object], seconds: float) -> None:
    """Run ``call`` (clean-up) in a thread, waiting at most ``seconds``; what it raises, or a
    hang (a call of the test still holding the instance's lock), is not the test's outcome."""

    def quietly() -> None:
        with contextlib.suppress(Exception):
            call()

    thread = threading.Thread(target=quietly, daemon=True)
    thread.start()
    thread.join(seconds)


def _unavailable(error: BaseException | None, name: str) -> None:
    if error is None:
        pytest.fail(f"{name} against an unreachable service succeeded")
    if not isinstance(error, StorageUnavailable):
        raise AssertionError(
            f"{name} against an unreachable service must raise StorageUnavailable, not "
            f"{type(error).__name__}: {error}"
        ) from error
