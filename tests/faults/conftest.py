"""Private servers for the fault-injection tests: each on a free loopback port, stopped and
restarted by its PID so that the shared servers of the machine are never touched.

Each fixture yields a :class:`PrivateServer`: ``stop()`` kills it (SIGKILL, or PostgreSQL's
immediate shutdown: no clean exit), ``start()`` brings it back on the same port and data, and
``pids()`` lists its processes, for the tests that SIGSTOP a server to make it hang."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import ServerProcess, start_mongodb, start_s3


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
    _pids: Callable[[], list[int]] | None = None

    def start(self) -> None:
        self._start()
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for_port(self.port)

    def stop(self) -> None:
        self._stop()

    def pids(self) -> list[int]:
        """Every process of the server (a process tree, PostgreSQL's backends included)."""
        if self._pids is None:
            raise NotImplementedError(f"{self.name}: no process list")
        return self._pids()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found = [pid]
    for child in _children(pid):
        found += process_tree(child)
    return found


def _children(pid: int) -> list[int]:
    listed = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [int(child) for child in listed]


def _popen_pids(procs: list[subprocess.Popen[bytes]]) -> Callable[[], list[int]]:
    return lambda: process_tree(procs[-1].pid)


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

    server = PrivateServer(
        "redis", port, f"redis://127.0.0.1:{port}/0", start, stop, _pids=_popen_pids(procs)
    )
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

    def pids() -> list[int]:
        with open(os.path.join(data, "postmaster.pid")) as pid_file:
            return process_tree(int(pid_file.readline()))

    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    server = PrivateServer("postgresql", port, url, start, stop, extra={"data": data}, _pids=pids)
    server.start()
    yield server
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mariadb_server() -> Iterator[PrivateServer]:
    """A private MariaDB (InnoDB, durable commits) in its own data directory; ``--no-defaults``
    so that nothing of the machine's own server's configuration applies."""
    server_binary, install = shutil.which("mariadbd"), shutil.which("mariadb-install-db")
    if server_binary is None or install is None:
        pytest.fail("mariadbd/mariadb-install-db are not on PATH")
    root = Path(tempfile.mkdtemp(prefix="selinon-faults-mariadb-"))
    data = root / "data"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    server_binary,
                    "--no-defaults",
                    f"--datadir={data}",
                    f"--port={port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={root / 'sock'}",
                    f"--pid-file={root / 'pid'}",
                    f"--log-error={root / 'error.log'}",
                    "--user=root",
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=32M",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop() -> None:
        proc = procs[-1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    url = f"mysql+pymysql://root@127.0.0.1:{port}/test"
    server = PrivateServer("mariadb", port, url, start, stop, _pids=_popen_pids(procs))
    try:
        server.start()
        _create_mariadb_database(port)
        yield server
    finally:
        if procs and procs[-1].poll() is None:
            stop()
        shutil.rmtree(root, ignore_errors=True)


def _create_mariadb_database(port: int) -> None:
    import pymysql

    deadline = time.monotonic() + 60
    while True:
        try:
            connection = pymysql.connect(host="127.0.0.1", port=port, user="root")
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS test")
    finally:
        connection.close()


def _restartable(
    name: str, process: ServerProcess, port: int, url: str, ready: Callable[[], object]
) -> PrivateServer:
    """A server of tests/servers as a PrivateServer: killed by PID, started again with the same
    command (same port, same data directory)."""

    def stop() -> None:
        process.signal(signal.SIGKILL)
        process.wait_exit(10)

    def start() -> None:
        process.start()
        process.wait_ready(ready, timeout=60)

    return PrivateServer(name, port, url, start, stop, _pids=lambda: process_tree(_pid(process)))


def _pid(process: ServerProcess) -> int:
    if process.pid is None:
        raise RuntimeError(f"{process.name} was never started")
    return process.pid


@pytest.fixture
def mongodb_private() -> Iterator[PrivateServer]:
    """A private SecantusDB (the MongoDB wire protocol on WiredTiger) of its own, not the
    session's shared one: these tests kill it."""
    import pymongo

    mongo = start_mongodb()

    def ping() -> None:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            mongo.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()

    try:
        yield _restartable("mongodb", mongo.process, mongo.port, mongo.url, ping)
    finally:
        mongo.stop()


@pytest.fixture
def seaweedfs_s3() -> Iterator[PrivateServer]:
    """A private SeaweedFS ``weed mini`` S3 gateway of its own with a bucket ``faults``;
    ``extra["options"]`` holds the S3Storage options reaching it."""
    s3 = start_s3()

    def ready() -> None:
        client = s3.client()
        try:
            client.head_bucket(Bucket="faults")
        finally:
            client.close()

    try:
        client = s3.client()
        try:
            client.create_bucket(Bucket="faults")
        finally:
            client.close()
        server = _restartable("s3", s3.process, s3.port, s3.endpoint_url, ready)
        server.extra["options"] = {**s3.client_options(), "bucket": "faults"}
        yield server
    finally:
        s3.stop()
