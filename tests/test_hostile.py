"""Hostile input: key parts carrying SQL, Mongo operators, glob patterns, path traversal, NUL
bytes, 10 kB strings and non-string types either round-trip as plain data or are refused with a
clear error, and nothing else in the store changes. Unsafe YAML tags are covered by
tests/test_config.py (not repeated here)."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import (
    MYSQL_URL,
    POSTGRESQL_URL,
    REDIS_URL,
    delete_redis_keys,
    drop_tables,
    redis_probe,
    require_service,
    sql_probe,
)

from selinon_like.errors import SelinonLikeError
from selinon_like.storage import DataStorage

HOSTILE: list[Any] = [
    "'; DROP TABLE selinon_results; --",
    "x' OR '1'='1",
    '"); DELETE FROM t; --',
    "$where",
    "$gt",
    "a.b.$c",
    "{'$ne': null}",
    "../../../../etc/passwd",
    "..",
    ".",
    "/",
    "a/../../b",
    "C:\\Windows\\system32",
    "*",
    "[a-z]?",
    "selinon:*",
    "%_%",
    "\\",
    "x" * 10_000,
    "é" * 5_000,
    "\n\r\t ",
    "a\x00b",
    "\ud800",
    "",
    1,
    1.5,
    None,
    b"bytes",
    ["a"],
    {"$gt": ""},
]


def _unique() -> str:
    return f"hostile_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def _memory() -> Iterator[DataStorage]:
    from storages.memory import InMemoryStorage

    yield InMemoryStorage()


@contextlib.contextmanager
def _filesystem() -> Iterator[DataStorage]:
    from storages.filesystem import Filesystem

    with tempfile.TemporaryDirectory() as root:
        # The store lives one level down: anything escaping it would land in ``root``.
        yield Filesystem(path=f"{root}/store")


@contextlib.contextmanager
def _sqlite() -> Iterator[DataStorage]:
    from storages.sql import SQLite

    yield SQLite(connection_string="sqlite://")


@contextlib.contextmanager
def _fakeredis() -> Iterator[DataStorage]:
    import fakeredis

    from storages.redis import Redis

    yield Redis.from_client(fakeredis.FakeRedis(), key_prefix=f"{_unique()}:")


@contextlib.contextmanager
def _mongomock() -> Iterator[DataStorage]:
    import mongomock

    from storages.mongodb import MongoDB

    yield MongoDB.from_client(mongomock.MongoClient(), db_name=_unique())


@contextlib.contextmanager
def _moto() -> Iterator[DataStorage]:
    from moto import mock_aws

    from storages.s3 import S3Storage

    with mock_aws():
        yield S3Storage(
            bucket="hostile",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            create_bucket=True,
        )


def _sql_server(name: str, url: str, cls_name: str) -> Any:
    @contextlib.contextmanager
    def factory() -> Iterator[DataStorage]:
        require_service(name, sql_probe(url))
        module = __import__(f"storages.{cls_name.lower()}", fromlist=[cls_name])
        table = _unique()
        yield getattr(module, cls_name)(connection_string=url, table_name=table)
        drop_tables(url, table)

    return factory


@contextlib.contextmanager
def _redis_server() -> Iterator[DataStorage]:
    from storages.redis import Redis

    require_service("Redis", redis_probe)
    prefix = f"{_unique()}:"
    yield Redis(url=REDIS_URL, key_prefix=prefix)
    delete_redis_keys(prefix)


ADAPTERS: dict[str, Callable[[], contextlib.AbstractContextManager[DataStorage]]] = {
    "memory": _memory,
    "filesystem": _filesystem,
    "sqlite": _sqlite,
    "fakeredis": _fakeredis,
    "mongomock": _mongomock,
    "moto": _moto,
}
SERVERS = {
    "postgresql": (_sql_server("PostgreSQL", POSTGRESQL_URL, "PostgreSQL"), pytest.mark.postgresql),
    "mysql": (_sql_server("MariaDB/MySQL", MYSQL_URL, "MySQL"), pytest.mark.mysql),
    "redis": (_redis_server, pytest.mark.redis),
}
ALL = [pytest.param(name, id=name) for name in sorted(ADAPTERS)] + [
    pytest.param(name, id=name, marks=mark) for name, (_, mark) in sorted(SERVERS.items())
]


def _factory(name: str) -> Callable[[], contextlib.AbstractContextManager[DataStorage]]:
    return ADAPTERS[name] if name in ADAPTERS else SERVERS[name][0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("adapter", ALL)
def test_hostile_key_parts_round_trip_or_are_refused(adapter: str) -> None:
    sentinel = ("sentinel", "task", "1")
    with _factory(adapter)() as storage:
        storage.connect()
        try:
            storage.store(*sentinel, {"safe": True})
            expected = {sentinel}
            refused = 0
            for hostile in HOSTILE:
                for position in range(3):
                    parts: list[Any] = ["flow", "task", "id"]
                    parts[position] = hostile
                    key = (parts[0], parts[1], parts[2])
                    value = {"hostile": position}
                    try:
                        storage.store(*key, value)
                    except (TypeError, ValueError, SelinonLikeError) as exc:
                        assert str(exc), "a refusal must say why"
                        assert (
                            isinstance(hostile, str) is False
                            or hostile == ""
                            or ("\x00" in hostile or "\ud800" in hostile or len(hostile) >= 5_000)
                        ), f"{adapter} refused a plain string key part {hostile[:40]!r}: {exc}"
                        refused += 1
                        continue
                    assert storage.retrieve(*key) == value
                    expected.add(key)
                    assert storage.retrieve(*sentinel) == {"safe": True}
            assert refused >= 1  # NUL, surrogates, "" and non-strings at least
            assert storage.retrieve(*sentinel) == {"safe": True}
            assert set(storage.iter_keys()) == expected
            assert len(list(storage.iter_keys())) == len(expected)
        finally:
            storage.disconnect()


def test_filesystem_names_never_escape_the_directory() -> None:
    with tempfile.TemporaryDirectory() as root:
        from pathlib import Path

        from storages.filesystem import Filesystem

        storage = Filesystem(path=f"{root}/store")
        storage.connect()
        for hostile in ("../../escaped", "..", "/abs", "a/../../b"):
            storage.store(hostile, hostile, hostile, 1)
        outside = [p for p in Path(root).rglob("*") if not str(p).startswith(f"{root}/store")]
        assert outside == []
        storage.disconnect()
