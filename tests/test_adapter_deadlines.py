"""Each network adapter's default operation_timeout (derived from its own timeouts), and how
it keeps a driver's waits within the call's deadline. The measured bounds, on stopped servers,
are tests/faults/test_bounds.py's."""

from __future__ import annotations

from typing import Any

import pytest

from selinon_like import deadline


def test_redis_waits_are_never_longer_than_a_call() -> None:
    pytest.importorskip("redis")
    from storages.redis import Redis

    storage = Redis(host="127.0.0.1", socket_timeout=8, socket_connect_timeout=2)
    assert storage.operation_timeout == 10
    assert storage._connection_kwargs()["socket_timeout"] == 8
    storage.operation_timeout = 3
    kwargs = storage._connection_kwargs()
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (3, 2)


def test_mongodb_default_and_client_options() -> None:
    pytest.importorskip("pymongo")
    from storages.mongodb import MongoDB

    storage = MongoDB(
        url="mongodb://127.0.0.1/",
        db_name="d",
        server_selection_timeout_ms=4000,
        socket_timeout_ms=6000,
    )
    assert storage.operation_timeout == 10
    options: dict[str, Any] = storage._client_options()
    assert options["socketTimeoutMS"] == 6000 and options["journal"] is True
    assert options["retryWrites"] is options["retryReads"] is False  # ours, under the deadline
    assert "timeoutMS" not in options  # it would make server selection wait the whole budget
    storage.operation_timeout = 2.5
    options = storage._client_options()
    assert (options["serverSelectionTimeoutMS"], options["socketTimeoutMS"]) == (2500, 2500)


def test_s3_default_and_per_request_read_timeout() -> None:
    pytest.importorskip("boto3")
    from storages.s3 import S3Storage

    storage = S3Storage(bucket="b", connect_timeout=3, read_timeout=20)
    assert storage.operation_timeout == 23
    context: dict[str, Any] = {}
    storage._bound_request(context=context)
    assert "read_timeout" not in context  # outside a call: the client's own
    params: dict[str, Any] = {"headers": {"Expect": "100-continue"}}
    with deadline.bounded(1.5):
        storage._bound_request(context=context, params=params)
    assert 0 < context["read_timeout"] <= 1.5
    # botocore would wait up to 1 s for "100 Continue" before its read timeout even starts
    assert "Expect" not in params["headers"]


def test_mongodb_attempts_run_under_pymongo_timeout_and_still_fail_fast() -> None:
    pytest.importorskip("pymongo")
    import socket
    import time

    from selinon_like import StorageUnavailable
    from selinon_like.retry import NO_RETRY
    from storages.mongodb import MongoDB

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = MongoDB(
        url=f"mongodb://127.0.0.1:{port}/?directConnection=true",
        db_name="d",
        server_selection_timeout_ms=300,
    )
    storage.operation_timeout = 20
    storage.retry_policy = NO_RETRY
    began = time.monotonic()
    with pytest.raises(StorageUnavailable):
        storage.connect()  # no server known: selection waits 0.3 s, not the 20 s left
    assert time.monotonic() - began < 5
    assert storage.bound_attempt(None).__class__.__name__ == "nullcontext"
