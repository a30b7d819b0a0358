"""Shared fixtures: real services skip locally when absent, and fail where CI requires them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from servers import (
    MongoServer,
    RedisClusterSetup,
    RedisSentinelSetup,
    S3Server,
    start_mongodb,
    start_redis_cluster,
    start_redis_sentinel,
    start_s3,
)

T = TypeVar("T")

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


class InProcess:
    """``connect``, ``disconnect`` and ``is_connected`` of a test adapter that has no service
    to reach (a mixin, before ``DataStorage`` in the bases): a flag."""

    _connected = False

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected


def sql_probe(url: str) -> Callable[[], None]:
    """A probe for :func:`require_service`: ``SELECT 1`` on the database at ``url`` (a
    SQLAlchemy URL), giving up after 3 s of connecting."""

    def probe() -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        finally:
            engine.dispose()

    return probe


def redis_probe() -> None:
    """A probe for :func:`require_service`: ``PING`` to the suite's Redis."""
    import redis

    with redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3) as client:
        client.ping()


def delete_redis_keys(prefix: str) -> None:
    """Delete every key of the suite's Redis that starts with ``prefix`` (taken literally
    here: the tests' prefixes hold no glob characters)."""
    import redis

    with redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5) as client:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)


def drop_tables(url: str, table: str) -> None:
    """Drop an SQL adapter's results table ``table`` and its errors table, where they exist."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in (table, table + "_errors"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _reset_default_pool() -> Any:
    from selinon_like import StoragePool

    yield
    StoragePool.reset_default()


# Private servers the suite starts itself (tests/servers), each once per session and only when
# a test asks for it. One that cannot start skips its tests locally and fails them under
# SELINON_LIKE_REQUIRE_SERVICES=1, like an absent shared service.


def start_or_skip(name: str, start: Callable[[], T]) -> T:
    """Return ``start()``; when it raises, skip the test locally or fail it under
    ``SELINON_LIKE_REQUIRE_SERVICES=1`` (see ``require_service``)."""
    started: list[T] = []
    require_service(name, lambda: started.append(start()))
    return started[0]


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[MongoServer]:
    """A private SecantusDB (MongoDB wire protocol) on a free loopback port."""
    server = start_or_skip("the MongoDB-compatible server (secantusdb)", start_mongodb)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongodb_server_url(mongodb_server: MongoServer) -> str:
    """``mongodb://`` URL of the private MongoDB-compatible server."""
    return mongodb_server.url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A private SeaweedFS S3 gateway: ``endpoint_url``, ``access_key``/``secret_key``,
    ``client_options()`` (for boto3 or ``S3Storage``) and ``new_bucket()``."""
    server = start_or_skip("the S3 server (SeaweedFS weed mini)", start_s3)
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A new empty bucket on the private S3 server, deleted with its objects afterwards."""
    bucket = s3_server.new_bucket()
    yield bucket
    s3_server.delete_bucket(bucket)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterSetup]:
    """A private 6-node Redis Cluster (3 primaries, 1 replica each); ``fail_over()`` stops a
    primary and brings it back as a replica, leaving the cluster whole for the next test."""
    cluster = start_or_skip("a private Redis Cluster", start_redis_cluster)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_nodes(redis_cluster: RedisClusterSetup) -> list[tuple[str, int]]:
    """``(host, port)`` of every node of the private Redis Cluster."""
    return redis_cluster.startup_nodes


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelSetup]:
    """A private master, replica and three sentinels following ``service_name``."""
    setup = start_or_skip("a private Redis Sentinel setup", start_redis_sentinel)
    yield setup
    setup.stop()


@pytest.fixture(scope="session")
def redis_sentinels(redis_sentinel: RedisSentinelSetup) -> list[tuple[str, int]]:
    """``(host, port)`` of the three sentinels (the service is
    ``redis_sentinel.service_name``)."""
    return redis_sentinel.sentinel_addresses
