"""Child server processes: free loopback ports, a private work directory, a readiness wait that
reports the server's log tail, and a stop by PID.

Nothing here imports pytest, so the benchmarks start the very same servers as the tests.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

HOST = "127.0.0.1"

T = TypeVar("T")


class ServerStartError(RuntimeError):
    """A server did not come up; the message names the command and carries its log tail."""


def free_ports(count: int, *, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` distinct loopback TCP ports that nothing listens on right now.

    The sockets stay bound until all are chosen, so the ports differ from each other; the
    kernel may still hand one to someone else before the server binds it (a start then fails
    with the server's "address in use" in the error).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    taken = set(avoid)
    held: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                taken.add(port)
                chosen.append(port)
        return chosen
    finally:
        for sock in held:
            sock.close()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the loopback ``port`` now: nothing is bound to it but
    closed connections in TIME_WAIT (which servers bind past with SO_REUSEADDR, as here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def accepts_connections(port: int) -> bool:
    """Whether something accepts a TCP connection on the loopback ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str
) -> T:
    """Call ``condition`` until it returns a true value or ``timeout`` seconds pass; exceptions
    count as "not yet". Raises ``TimeoutError`` naming ``what`` and the last exception."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            cause = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise TimeoutError(f"{what}: not true after {timeout:.1f}s{cause}")
        time.sleep(interval)


def find_executable(name: str) -> str:
    """The path of a server executable: first the running interpreter's scripts directory
    (where pip puts ``weed`` and ``secantusd-py`` even when the virtualenv is not on PATH),
    then PATH. Raises ``ServerStartError`` saying how to get it."""
    scripts = sysconfig.get_path("scripts")
    candidate = Path(scripts) / name if scripts else None
    if candidate is not None and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServerStartError(
            f"{name!r} is neither in {scripts} nor on PATH "
            "(install the project's test extra: pip install -e '.[test]')"
        )
    return found


def make_workdir(name: str) -> Path:
    """A new private directory for one server's data and log (short: Unix socket paths are
    limited to 107 bytes). Its owner deletes it; one left at interpreter exit is deleted
    then."""
    path = Path(tempfile.mkdtemp(prefix=f"selinon-like-{name}-"))
    _LIVE.add_workdir(path)
    return path


S = TypeVar("S", bound="Started")


class Started:
    """A server, or a set of servers, the suite started: leaving ``with`` stops it."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServerProcess:
    """One server process that writes its output to ``log_path``; it can be stopped and
    started again with the same command (a restarted Redis node keeps its identity)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.log_path = workdir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid={self.pid} running={self.running}>"

    @property
    def pid(self) -> int | None:
        """The PID of the current (or last) run; ``None`` before the first start."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        """Start the command; a second start while it runs is an error."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
            )
        _LIVE.add(self)

    def wait_ready(self, probe: Callable[[], object], *, timeout: float) -> None:
        """Call ``probe`` until it returns without raising. Raises ``ServerStartError`` with the
        log tail when the process exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if self._popen is None:
                raise RuntimeError(f"{self.name} was never started")
            code = self._popen.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before it was ready\n"
                    f"command: {' '.join(self.argv)}\n{self.log_tail()}"
                )
            try:
                probe()
            except Exception as exc:
                last = exc
            else:
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} (pid {self._popen.pid}) was not ready after {timeout:.1f}s; "
                    f"last probe error: {type(last).__name__}: {last}\n"
                    f"command: {' '.join(self.argv)}\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send ``signum`` to the process by its PID (what a failover test does to a master);
        a process that already exited is left alone. SIGSTOP returns once the process is
        stopped: the signal is delivered asynchronously, and a request sent right after it
        could otherwise still be answered. Any other signal is sent without waiting."""
        if self._popen is not None and self._popen.poll() is None:
            os.kill(self._popen.pid, signum)
            if signum == signal.SIGSTOP:
                _wait_stopped(self._popen.pid)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end and return its exit code; SIGKILL it past ``timeout``."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            code = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self._popen.pid, signal.SIGKILL)
            code = self._popen.wait(timeout=10)
        _LIVE.discard(self)
        return code

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self._popen is None:
            return
        self.signal(signal.SIGTERM)
        self.wait_exit(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, framed for an error message."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last lines of {self.log_path} ---\n{tail}\n--- end of log ---"


def stop_all(processes: Iterable[ServerProcess], timeout: float = 15.0) -> None:
    """SIGTERM every running process first, then wait for each: they shut down in parallel."""
    processes = list(processes)
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        if process.pid is not None:
            process.wait_exit(timeout)


class _LiveProcesses:
    """Every server this process started and has not stopped, stopped at interpreter exit (and
    the work directories deleted) as a safety net for a script interrupted before its own
    cleanup runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: set[ServerProcess] = set()
        self._workdirs: list[Path] = []
        self._owner = os.getpid()

    def add_workdir(self, path: Path) -> None:
        with self._lock:
            self._workdirs.append(path)

    def add(self, process: ServerProcess) -> None:
        with self._lock:
            self._processes.add(process)

    def discard(self, process: ServerProcess) -> None:
        with self._lock:
            self._processes.discard(process)

    def stop_leftovers(self) -> None:
        # A forked child (the adapters' fork-safety tests fork) inherits this registry: only
        # the process that started the servers may stop them.
        if os.getpid() != self._owner:
            return
        with self._lock:
            leftovers = list(self._processes)
            workdirs = list(self._workdirs)
        with contextlib.suppress(Exception):
            stop_all(leftovers, timeout=5.0)
        for path in workdirs:
            shutil.rmtree(path, ignore_errors=True)


_LIVE = _LiveProcesses()
atexit.register(_LIVE.stop_leftovers)


def _wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Wait until ``pid`` shows as stopped (state ``T``) in /proc/<pid>/stat."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # the state follows the command name, which is in parentheses
                state = stat.read().rpartition(")")[2].split()[0]
        except (FileNotFoundError, IndexError):
            return  # gone, or /proc not readable: nothing to wait for
        if state in ("T", "t"):
            return
        time.sleep(0.001)
    raise RuntimeError(f"process {pid} did not stop within {timeout} s of SIGSTOP")
