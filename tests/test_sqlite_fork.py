"""A SQLite instance used directly in a forked child (not through the pool) writes: the write
queue's lock, which another thread of the parent may hold at fork(), is replaced before the
child takes it. The review's child timed out on every store ("other threads kept writing")."""

from __future__ import annotations

import os
import threading
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
