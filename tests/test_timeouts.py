"""Every adapter gives up on an address that accepts connections and never answers: the
call raises StorageUnavailable/StorageError within its (small, configured) timeout instead of
hanging. ``pytest.mark.timeout`` is the hang guard; no timed assertions."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import socket
from collections.abc import Callable, Iterator

import pytest

from selinon_like.errors import StorageError
from selinon_like.retry import RetryPolicy
from selinon_like.storage import DataStorage

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose kernel completes the TCP handshake (listen backlog) but where
    nobody ever reads or writes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def _postgresql(port: int) -> DataStorage:
    from storages.postgresql import PostgreSQL

    return PostgreSQL(
        connection_string=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        connect_timeout=1,
        statement_timeout=1,
    )


def _mysql(port: int) -> DataStorage:
    from storages.mysql import MySQL

    return MySQL(
        connection_string=f"mysql+pymysql://root@127.0.0.1:{port}/test",
        connect_timeout=1,
        statement_timeout=1,
    )


# Redis, MongoDB and S3: the kit's resilience suite (a refused and a silent port) in their
# contract classes.
FACTORIES: dict[str, Callable[[int], DataStorage]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_silent_server_fails_within_the_timeout(name: str, silent_port: int) -> None:
    storage = FACTORIES[name](silent_port)
    storage.retry_policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)
    try:
        with pytest.raises(StorageError):
            # connect() may be lazy (no I/O): then the first operation meets the silence.
            storage.connect()
            storage.store("flow", "task", "id", {"x": 1})
        with pytest.raises(StorageError):
            storage.retrieve("flow", "task", "id")
    finally:
        with contextlib.suppress(Exception):
            storage.disconnect()


CLASSES = {
    "redis": ("storages.redis", "Redis", ["socket_timeout", "socket_connect_timeout"]),
    "postgresql": ("storages.postgresql", "PostgreSQL", ["connect_timeout"]),
    "mysql": ("storages.mysql", "MySQL", ["connect_timeout"]),
    "s3": ("storages.s3", "S3Storage", ["connect_timeout", "read_timeout"]),
    "mongodb": (
        "storages.mongodb",
        "MongoDB",
        ["server_selection_timeout_ms", "connect_timeout_ms", "socket_timeout_ms"],
    ),
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_timeouts_have_finite_defaults(name: str) -> None:
    module_name, class_name, timeouts = CLASSES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    parameters = inspect.signature(cls.__init__).parameters
    for timeout in timeouts:
        default = parameters[timeout].default
        assert (
            isinstance(default, (int, float)) and 0 < default < 3_600_000
        )  # seconds, or ms for MongoDB, (timeout, default)
