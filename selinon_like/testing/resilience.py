"""The resilience suite: processes, threads, secrets and an unreachable service."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NoReturn

import pytest

from selinon_like.errors import ResultNotFound, SelinonLikeError, StorageError, StorageUnavailable
from selinon_like.keys import Key
from selinon_like.retry import RetryPolicy
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, failure, offers

__all__ = ["ResilienceContract"]

FORKED_CHILDREN = 3
# A forked child that has not reported by then is killed and the test fails (a deadlock on a
# lock or socket inherited from the parent shows up here).
CHILD_DEADLINE = 120.0
# The longest a thread of the threads test may run before the test calls it hung.
THREAD_DEADLINE = 300.0
# Calls on ``unreachable_storage`` run with two attempts: the retry (and its log line) happen.
UNREACHABLE_RETRY = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)


class ResilienceContract(ContractBase):
    """A forked child works through its own instance while the parent keeps working; eight
    threads share one instance, mixing the operations it offers; a failing call never shows a
    secret of the configuration; a call against an unreachable service fails as
    :class:`StorageUnavailable` within its timeout.

    Fixtures it uses besides ``storage`` (override them in the test class):

    ``storage_factory``
        a callable returning a new, unconnected instance on the same service as ``storage``:
        what a pool builds in a forked child. Default: the class of ``storage`` called with
        the keyword configuration ``storage`` was built with, and its serializer and retry
        policy. Override it when ``storage`` was built another way (an injected client, a
        positional argument).
    ``unreachable_storage``
        an unconnected instance pointed at the address ``unreachable_port`` on 127.0.0.1,
        with ``secret`` in its configuration (a password, a key, the credentials of a URL),
        and timeouts small enough to fail within ``unreachable_timeout``. The kit runs each
        test that uses it twice: on a closed port (connection refused) and on a port that
        accepts connections and never answers. Default: those tests skip — an adapter with
        no service (memory, local files) has nothing to make unreachable.
    ``secret``
        the secret to hide; default: a random string.
    ``unreachable_timeout``
        the seconds one call on ``unreachable_storage`` may take, its retry included;
        default 10.

    Class attributes: ``concurrency_per_thread`` sizes the threads test, ``fork_stores`` what
    each of the three forked children (and the parent meanwhile) stores.

    The fork test finds out whether the storage is shared between processes: when a child's
    own instance sees what the parent stored after the fork (a server, files), the parent
    must see every result of every child; when it does not (memory), none — and each child
    deletes what it stored, when the adapter can.
    """

    fork_stores: ClassVar[int] = 50

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def storage_factory(self, storage: DataStorage) -> Callable[[], DataStorage]:
        """A new, unconnected instance on the same service as ``storage``."""
        cls = type(storage)
        configuration = dict(storage._configuration)

        def make() -> DataStorage:
            fresh = cls(**configuration)
            fresh.serializer = storage.serializer
            fresh.retry_policy = storage.retry_policy
            return fresh

        return make

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
    def unreachable_storage(self, storage: DataStorage) -> DataStorage:
        """An instance pointed at ``unreachable_port``, with ``secret`` in its configuration."""
        pytest.skip(
            f"{type(storage).__name__}: the test class defines no unreachable_storage fixture "
            "(an instance on unreachable_port with secret in its configuration: see "
            "ResilienceContract); an adapter with no service has none to define"
        )

    @pytest.fixture
    def secret(self) -> str:
        """The secret ``unreachable_storage`` carries in its configuration."""
        return f"Kit-Secret-{os.urandom(6).hex()}"

    @pytest.fixture
    def unreachable_timeout(self) -> float:
        """Seconds one call on ``unreachable_storage`` may take, its retry included."""
        return 10.0

    # -- processes --------------------------------------------------------------------------

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_children_work_through_their_own_instances(
        self, storage: DataStorage, storage_factory: Callable[[], DataStorage], flow: str
    ) -> None:
        storage.store(flow, "parent", "before-fork", 0)  # a live connection is inherited
        children = [
            _fork(storage_factory, flow, n, self.fork_stores) for n in range(FORKED_CHILDREN)
        ]
        # Stored after the fork: a child's own instance sees it only on a shared storage.
        storage.store(flow, "parent", "after-fork", 1)
        for child in children:
            child.go()
        for i in range(self.fork_stores):  # the parent keeps working while its children do
            storage.store(flow, "parent", str(i), {"p": i})
        reports = [child.report() for child in children]
        failed = [report["error"] for report in reports if not report["ok"]]
        assert not failed, "a forked child failed:\n" + "\n".join(failed)

        assert storage.is_connected()
        assert storage.retrieve(flow, "parent", "before-fork") == 0
        parents = {(flow, "parent", str(i)): {"p": i} for i in range(self.fork_stores)}
        assert storage.retrieve_many(list(parents)) == parents
        expected = {
            (flow, f"child{n}", str(i)): {"c": n, "i": i}
            for n in range(FORKED_CHILDREN)
            for i in range(self.fork_stores)
        }
        seen = storage.retrieve_many(list(expected))
        shared = {report["shared"] for report in reports}
        assert len(shared) == 1, f"the children disagree on what they see: {reports}"
        if shared == {True}:
            assert seen == expected, "a child's results are missing or wrong in the parent"
        else:
            assert seen == {}, "children that see nothing of the parent's wrote to it anyway"

    # -- threads ----------------------------------------------------------------------------

    def test_eight_threads_share_one_instance(self, storage: DataStorage, flow: str) -> None:
        per_thread = self.concurrency_per_thread
        errors = offers(storage, "store_error", "retrieve_error")
        deletes = offers(storage, "delete")
        barrier = threading.Barrier(8)
        failures: list[str] = []

        def work(worker: int) -> None:
            task = f"w{worker}"
            try:
                barrier.wait(timeout=60)
                for i in range(per_thread):
                    value = {"w": worker, "i": i}
                    storage.store(flow, task, str(i), value)
                    _expect(storage.retrieve(flow, task, str(i)), value, "retrieve")
                    if i % 10 == 9:
                        batch = [(flow, task, f"bulk{i}-{j}", j) for j in range(5)]
                        storage.store_many(batch)
                        got = storage.retrieve_many([item[:3] for item in batch])
                        _expect(got, {item[:3]: item[3] for item in batch}, "retrieve_many")
                    if deletes and i % 10 == 3:
                        storage.store(flow, task, f"gone{i}", i)
                        storage.delete(flow, task, f"gone{i}")
                    if errors and i % 10 == 5:
                        storage.store_error(None, flow, task, str(i), RuntimeError(f"{worker}.{i}"))
                        record = storage.retrieve_error(flow, task, str(i))
                        _expect(record["message"], f"{worker}.{i}", "retrieve_error")
            except BaseException:
                failures.append(f"thread {worker}: {traceback.format_exc()}")

        threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + THREAD_DEADLINE
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "a thread hangs"
        assert not failures, "\n".join(failures)

        expected: dict[Key, Any] = {}
        for w in range(8):
            expected.update({(flow, f"w{w}", str(i)): {"w": w, "i": i} for i in range(per_thread)})
            for i in range(9, per_thread, 10):
                expected.update({(flow, f"w{w}", f"bulk{i}-{j}"): j for j in range(5)})
        assert storage.retrieve_many(list(expected)) == expected
        if offers(storage, "iter_keys"):
            assert set(storage.iter_keys(flow)) == set(expected)
        if deletes:
            with pytest.raises(ResultNotFound):
                storage.retrieve(flow, "w0", "gone3")

    # -- an unreachable service -------------------------------------------------------------

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


def _expect(got: object, wanted: object, what: str) -> None:
    if got != wanted:
        raise AssertionError(f"{what} returned {got!r:.200}, expected {wanted!r:.200}")


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


class _Child:
    """A forked child that works through its own instance once told to go."""

    def __init__(self, pid: int, go_fd: int, report_fd: int) -> None:
        self.pid = pid
        self._go = go_fd
        self._report = report_fd

    def go(self) -> None:
        os.write(self._go, b"g")
        os.close(self._go)

    def report(self) -> dict[str, Any]:
        deadline = time.monotonic() + CHILD_DEADLINE
        status: int | None = None
        while status is None:
            done, raw = os.waitpid(self.pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self._report)
                return {"ok": False, "error": f"child {self.pid} hung: killed"}
            else:
                time.sleep(0.01)
        with os.fdopen(self._report, "rb") as pipe:
            data = pipe.read()
        code = os.waitstatus_to_exitcode(status)
        if not data:
            return {"ok": False, "error": f"child {self.pid} exited with {code}, no report"}
        report: dict[str, Any] = json.loads(data)
        return report


def _fork(factory: Callable[[], DataStorage], flow: str, child: int, stores: int) -> _Child:
    go_read, go_write = os.pipe()
    report_read, report_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        os.close(go_write)
        os.close(report_read)
        _child_main(factory, flow, child, stores, go_read, report_write)
    os.close(go_read)
    os.close(report_write)
    return _Child(pid, go_write, report_read)


def _child_main(
    factory: Callable[[], DataStorage],
    flow: str,
    child: int,
    stores: int,
    go_fd: int,
    report_fd: int,
) -> NoReturn:  # pragma: no cover - runs in the child
    report: dict[str, Any] = {"ok": False, "shared": False, "error": ""}
    try:
        os.read(go_fd, 1)  # the parent has stored "after-fork"
        own = factory()
        try:
            own.connect()
        except Exception as exc:
            raise RuntimeError(
                f"the instance storage_factory built, {own!r}, cannot connect; when the "
                "storage fixture builds its instance otherwise than from keyword "
                "configuration (an injected client), override storage_factory"
            ) from exc
        try:
            try:
                report["shared"] = own.retrieve(flow, "parent", "after-fork") == 1
            except ResultNotFound:
                report["shared"] = False
            task = f"child{child}"
            for i in range(stores):
                own.store(flow, task, str(i), {"c": child, "i": i})
            keys = [(flow, task, str(i)) for i in range(stores)]
            back = own.retrieve_many(keys)
            _expect(back, {key: {"c": child, "i": int(key[2])} for key in keys}, "retrieve_many")
            if not report["shared"] and offers(own, "delete_many"):
                # A storage the parent cannot see may still outlive the test (a factory that
                # reached another server than the parent's): leave nothing there.
                own.delete_many(keys)
        finally:
            own.disconnect()
        report["ok"] = True
    except BaseException:
        report["error"] = f"child {child}: {traceback.format_exc()[-3000:]}"
    finally:
        try:
            os.write(report_fd, json.dumps(report).encode())
        finally:
            os._exit(0)
