"""Shared fixtures: real services skip locally when absent, and fail where CI requires them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

REQUIRE_SERVICES = os.environ.get("SELINON_LIKE_REQUIRE_SERVICES") == "1"

POSTGRESQL_URL = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SELINON_LIKE_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SELINON_LIKE_REDIS_URL", "redis://127.0.0.1:6379/0")
MONGODB_URL = os.environ.get("SELINON_LIKE_MONGODB_URL")


def require_service(name: str, probe: Callable[[], Any]) -> None:
    """Do a real round trip with ``probe``; when it fails, skip the test locally, or fail it
    when ``SELINON_LIKE_REQUIRE_SERVICES=1`` (as CI sets): absence is then an error."""
    try:
        probe()
    except Exception as exc:
        message = f"{name} is not reachable: {type(exc).__name__}: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (SELINON_LIKE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _reset_default_pool() -> Any:
    from selinon_like import StoragePool

    yield
    StoragePool.reset_default()
