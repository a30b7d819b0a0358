"""A SQLite instance used directly in a forked child (not through the pool) writes: the write
queue's lock, which another thread of the parent may hold at fork(), is replaced before the
child takes it. The review's child timed out on every store ("other threads kept writing")."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from storages.sql import SQLite

pytest.importorskip("sqlalchemy")  # SQLite needs it from connect() on


@pytest.mark.timeout(60)
def test_a_child_writes_while_a_parent_thread_held_the_write_queue_at_fork(
    tmp_path: Path,
) -> None:
    storage = SQLite(path=str(tmp_path / "results.sqlite"), connect_timeout=1)
    storage.connect()
    try:
        storage.store("f", "t", "parent", 1)
        writer = storage._calls.writer
        assert writer is not None
        held, release = threading.Event(), threading.Event()

        def hold() -> None:  # a parent thread in the middle of its write at fork()
            with writer:
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: report by exit code only
            code = 2
            try:
                storage.store("f", "t", "child", 2)
                code = 0 if storage.retrieve("f", "t", "child") == 2 else 3
            finally:
                os._exit(code)
        release.set()
        holder.join(10)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child could not write"
        assert storage.retrieve("f", "t", "child") == 2
        storage.store("f", "t", "parent-after", 3)  # the parent's own queue still works
    finally:
        storage.disconnect()


def _in_child(work: Callable[[], int]) -> int:
    """The exit code of ``work`` run in a forked child (2 if it raised)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = work()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.timeout(60)
def test_an_in_memory_instance_starts_empty_in_a_child_and_in_its_child() -> None:
    """Every fork is seen (a counter bumped by os.register_at_fork, read on every call): a
    child's, and its own child's after the child used the instance, each get a database
    of their own, and the parent's stays as it was."""
    storage = SQLite(path=":memory:")
    storage.connect()
    try:
        storage.store("f", "t", "parent", 1)

        def grandchild() -> int:
            if storage.retrieve_many([("f", "t", "parent"), ("f", "t", "child")]):
                return 3  # the child's database, or the parent's
            storage.store("f", "t", "grandchild", 3)
            return 0 if storage.retrieve("f", "t", "grandchild") == 3 else 4

        def child() -> int:
            if storage.retrieve_many([("f", "t", "parent")]):
                return 5
            storage.store("f", "t", "child", 2)
            if _in_child(grandchild) != 0:
                return 6
            return (
                0 if storage.retrieve_many([("f", "t", "child")]) == {("f", "t", "child"): 2} else 7
            )

        assert _in_child(child) == 0
        assert storage.retrieve_many([("f", "t", "parent"), ("f", "t", "child")]) == {
            ("f", "t", "parent"): 1
        }
    finally:
        storage.disconnect()
