"""Private servers for the fault-injection tests: each on a free loopback port, stopped and
restarted by its PID so that the shared servers of the machine are never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class PrivateServer:
    """A server we can stop and start again: ``start``/``stop`` run the commands we own."""

    name: str
    port: int
    url: str
    _start: Callable[[], None]
    _stop: Callable[[], None]
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self._start()
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for_port(self.port)

    def stop(self) -> None:
        self._stop()


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[PrivateServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(tmp_path),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop() -> None:
        proc = procs[-1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    server = PrivateServer("redis", port, f"redis://127.0.0.1:{port}/0", start, stop)
    server.start()
    yield server
    if procs[-1].poll() is None:
        stop()


def _as_postgres(*args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture
def postgresql_server() -> Iterator[PrivateServer]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail("initdb/pg_ctl are not on PATH")
    root = tempfile.mkdtemp(prefix="selinon-faults-pg-")
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres", "postgres")
    data, sockets = os.path.join(root, "data"), os.path.join(root, "sock")
    os.mkdir(sockets)
    shutil.chown(sockets, "postgres", "postgres")
    port = free_port()
    _as_postgres("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=on"

    def start() -> None:
        _as_postgres(
            "pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start"
        )

    def stop() -> None:
        # Immediate shutdown: the postmaster's PID (postmaster.pid, first line) gets SIGQUIT.
        with open(os.path.join(data, "postmaster.pid")) as pid_file:
            pid = int(pid_file.readline())
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not stop")

    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    server = PrivateServer("postgresql", port, url, start, stop, extra={"data": data})
    server.start()
    yield server
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def moto_server() -> Iterator[PrivateServer]:
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop() -> None:
        proc = procs[-1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    server = PrivateServer("s3", port, f"http://127.0.0.1:{port}", start, stop)
    server.start()
    yield server
    if procs[-1].poll() is None:
        stop()
