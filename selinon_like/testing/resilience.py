"""The resilience suite: forked processes and threads on one instance."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

import pytest

from selinon_like.errors import ResultNotFound
from selinon_like.keys import Key
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, offers

__all__ = ["ResilienceContract"]

FORKED_CHILDREN = 3
# A forked child that has not reported by then is killed and the test fails (a deadlock on a
# lock or socket inherited from the parent shows up here).
CHILD_DEADLINE = 120.0
# The longest a thread of the threads test may run before the test calls it hung.
THREAD_DEADLINE = 300.0


class ResilienceContract(ContractBase):
    """A forked child works through its own instance while the parent keeps working; eight
    threads share one instance, mixing the operations it offers. Needs nothing beyond the five
    methods of SPEC section 2: every adapter takes it. (An unreachable service and the secrets
    of a failing call are :class:`~selinon_like.testing.UnreachableServiceContract`'s.)

    Fixture it uses besides ``storage`` (override it in the test class):

    ``storage_factory``
        a callable returning a new, unconnected instance on the same service as ``storage``:
        what a pool builds in a forked child. Default: the class of ``storage`` called with
        the keyword configuration ``storage`` was built with, and its serializer and retry
        policy. Override it when ``storage`` was built another way (an injected client, a
        positional argument).

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


# -- helpers -----------------------------------------------------------------------------------


def _expect(got: object, wanted: object, what: str) -> None:
    if got != wanted:
        raise AssertionError(f"{what} returned {got!r:.200}, expected {wanted!r:.200}")


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
