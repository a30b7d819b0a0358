"""A PostgreSQL server that stops answering mid-call (SIGSTOP: its kernel still accepts and
acknowledges, the processes never reply). libpq has no read timeout; the SQL adapter's watchdog
must fail the call within statement_timeout + connect_timeout, and the same instance must work
again once the server resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from selinon_like import StoragePool
from selinon_like.errors import StorageUnavailable

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

STATEMENT_TIMEOUT, CONNECT_TIMEOUT = 1.0, 2.0
BOUND = STATEMENT_TIMEOUT + CONNECT_TIMEOUT


def _cluster_pids(data_dir: str) -> list[int]:
    with open(os.path.join(data_dir, "postmaster.pid")) as pid_file:
        postmaster = int(pid_file.readline())
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *map(int, children)]


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest.fixture
def storage_on_private_server(postgresql_server: Any) -> Iterator[tuple[Any, Any]]:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "hung",
                    "import": "storages.postgresql",
                    "classname": "PostgreSQL",
                    "retry": False,  # one attempt: the test times one bound
                    "configuration": {
                        "connection_string": postgresql_server.url,
                        "statement_timeout": STATEMENT_TIMEOUT,
                        "connect_timeout": CONNECT_TIMEOUT,
                    },
                }
            ]
        }
    )
    try:
        yield pool.get_connected_storage("hung"), postgresql_server
    finally:
        pool.disconnect_all()


def test_calls_to_a_stopped_server_time_out_and_the_instance_recovers(
    storage_on_private_server: tuple[Any, Any],
) -> None:
    storage, server = storage_on_private_server
    storage.store("F", "t", "before", {"n": 1})
    pids = _cluster_pids(server.extra["data"])
    outcomes: list[tuple[str, float, BaseException | None]] = []
    lock = threading.Lock()

    def call(name: str, fn: Any) -> None:
        began = time.monotonic()
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:
            error = exc
        with lock:
            outcomes.append((name, time.monotonic() - began, error))

    _signal(pids, signal.SIGSTOP)
    try:
        threads = [
            threading.Thread(target=call, args=("store", lambda: storage.store("F", "t", "x", 1))),
            threading.Thread(
                target=call, args=("retrieve", lambda: storage.retrieve("F", "t", "before"))
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=BOUND + 10)
        assert not any(thread.is_alive() for thread in threads), "a call hangs"
    finally:
        _signal(pids, signal.SIGCONT)

    assert len(outcomes) == 2
    for name, elapsed, error in outcomes:
        assert isinstance(error, StorageUnavailable), (name, error)
        # The watchdog looks at least every 0.25 s; the call may have started a little late.
        assert elapsed <= BOUND + 1.0, (name, elapsed)
    # The call on the open connection was cut by the watchdog (the other one, which needed a
    # new connection, may instead have hit connect_timeout).
    cut = [
        (t, e) for _, t, e in outcomes if e is not None and isinstance(e.__cause__, TimeoutError)
    ]
    assert cut, outcomes
    elapsed, error = cut[0]
    assert "no answer from the database within 3 s" in str(error), error
    assert elapsed >= BOUND - 0.1

    # Resumed: the same instance works again, on new connections, and nothing was lost.
    assert storage.retrieve("F", "t", "before") == {"n": 1}
    storage.store("F", "t", "after", {"n": 2})
    assert storage.retrieve("F", "t", "after") == {"n": 2}
