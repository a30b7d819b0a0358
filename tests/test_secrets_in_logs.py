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


# Redis (URL and password option), MongoDB (URL and password option) and S3 (secret key and
# session token): the kit's resilience suite in their contract classes.
FACTORIES: dict[str, Callable[[int], DataStorage]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
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
    assert any("retry" in record.getMessage() for record in caplog.records)
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text, f"{name}: {secret!r} leaked in {text[:300]!r}"


def _an_error() -> Any:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        return sys.exc_info()
