"""With DEBUG logging on, store/retrieve/error/retry against a dead port never logs, reprs or
raises a configured password, key or token. Our own exceptions (every SelinonLikeError in the
chain, str and repr) must be clean; a driver's raw exception chained underneath is tolerated
only below a clean message of ours, and is not scanned."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from selinon_like.errors import SelinonLikeError
from selinon_like.retry import RetryPolicy
from selinon_like.storage import DataStorage

SECRETS = {
    "password": "Pw-s3cr3t-7d1e",
    "aws_secret": "AwsSecret-93fa0c",
    "token": "Tok3n-5b2e77",
}


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_url(port: int) -> DataStorage:
    from storages.redis import Redis

    return Redis(
        url=f"redis://user:{SECRETS['password']}@127.0.0.1:{port}/0",
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )


def _redis_option(port: int) -> DataStorage:
    from storages.redis import Redis

    return Redis(
        host="127.0.0.1",
        port=port,
        password=SECRETS["password"],
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )


def _postgresql(port: int) -> DataStorage:
    from storages.postgresql import PostgreSQL

    return PostgreSQL(
        connection_string=f"postgresql+psycopg://u:{SECRETS['password']}@127.0.0.1:{port}/db",
        connect_timeout=1,
    )


def _mysql(port: int) -> DataStorage:
    from storages.mysql import MySQL

    return MySQL(
        connection_string=f"mysql+pymysql://u:{SECRETS['password']}@127.0.0.1:{port}/db",
        connect_timeout=1,
    )


def _s3(port: int) -> DataStorage:
    from storages.s3 import S3Storage

    return S3Storage(
        bucket="secrets",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRETS["aws_secret"],
        aws_session_token=SECRETS["token"],
        region_name="us-east-1",
        connect_timeout=0.5,
        read_timeout=0.5,
    )


def _mongodb(port: int) -> DataStorage:
    from storages.mongodb import MongoDB

    return MongoDB(
        url=f"mongodb://u:{SECRETS['password']}@127.0.0.1:{port}/db?directConnection=true",
        server_selection_timeout_ms=300,
        connect_timeout_ms=300,
    )


FACTORIES: dict[str, Callable[[int], DataStorage]] = {
    "redis-url": _redis_url,
    "redis-password": _redis_option,
    "postgresql": _postgresql,
    "mysql": _mysql,
    "s3": _s3,
    "mongodb": _mongodb,
}


def _our_messages(exc: BaseException) -> list[str]:
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SelinonLikeError):
            texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_no_secret_in_logs_reprs_or_errors(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    storage = FACTORIES[name](_dead_port())
    storage.retry_policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)
    texts = [repr(storage), str(storage)]
    raised: list[BaseException] = []
    calls: list[Callable[[], Any]] = [
        storage.connect,
        lambda: storage.store("flow", "task", "id", {"x": 1}),
        lambda: storage.retrieve("flow", "task", "id"),
        lambda: storage.store_error(None, "flow", "task", "id", _an_error()),
        lambda: storage.ping(),
    ]
    for call in calls:
        try:
            call()
        except Exception as exc:
            raised.append(exc)
    try:
        storage.disconnect()
    except Exception as exc:
        raised.append(exc)
    assert raised, "a dead port must make the calls fail"
    assert any(isinstance(exc, SelinonLikeError) for exc in raised)
    for exc in raised:
        texts += _our_messages(exc)
    texts.append(caplog.text)
    texts += [record.getMessage() for record in caplog.records]
    assert any("retry" in record.getMessage() for record in caplog.records) or name in ("mongodb",)
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text, f"{name}: {secret!r} leaked in {text[:300]!r}"


def _an_error() -> Any:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        return sys.exc_info()
