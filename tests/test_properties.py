"""Property tests: on every adapter that runs locally, any triple of non-empty text key parts
and any JSON value round-trips exactly, and distinct triples never collide. NUL and lone
surrogates in key parts are refused by design (tested at the end)."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selinon_like.storage import DataStorage

PART = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)
TRIPLE = st.tuples(PART, PART, PART)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
ITEMS = st.lists(st.tuples(TRIPLE, JSON), min_size=1, max_size=5, unique_by=lambda item: item[0])


@contextlib.contextmanager
def _memory() -> Iterator[DataStorage]:
    from storages.memory import InMemoryStorage

    yield InMemoryStorage()


@contextlib.contextmanager
def _filesystem() -> Iterator[DataStorage]:
    from storages.filesystem import Filesystem

    with tempfile.TemporaryDirectory() as path:
        yield Filesystem(path=path)


@contextlib.contextmanager
def _sqlite() -> Iterator[DataStorage]:
    from storages.sql import SQLite

    yield SQLite(connection_string="sqlite://")


@contextlib.contextmanager
def _fakeredis() -> Iterator[DataStorage]:
    import fakeredis

    from storages.redis import Redis

    yield Redis.from_client(fakeredis.FakeRedis(), key_prefix=f"prop-{uuid.uuid4().hex}:")


@contextlib.contextmanager
def _mongomock() -> Iterator[DataStorage]:
    import mongomock

    from storages.mongodb import MongoDB

    yield MongoDB.from_client(mongomock.MongoClient(), db_name=f"db{uuid.uuid4().hex}")


@contextlib.contextmanager
def _moto() -> Iterator[DataStorage]:
    # Inside the test's one mock_aws() (see _around): a prefix of its own per example, as
    # starting moto and a bucket anew costs ~0.5 s an example.
    from storages.s3 import S3Storage

    yield S3Storage(
        bucket="properties",
        prefix=f"p{uuid.uuid4().hex}/",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        create_bucket=True,
    )


ADAPTERS: dict[str, Callable[[], contextlib.AbstractContextManager[DataStorage]]] = {
    "memory": _memory,
    "filesystem": _filesystem,
    "sqlite": _sqlite,
    "fakeredis": _fakeredis,
    "mongomock": _mongomock,
    "moto": _moto,
}


def _around(adapter: str) -> contextlib.AbstractContextManager[object]:
    """What a whole test on ``adapter`` runs within: moto's mock for S3."""
    if adapter == "moto":
        from moto import mock_aws

        return mock_aws()
    return contextlib.nullcontext()


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_any_keys_and_json_round_trip_without_collisions(adapter: str) -> None:
    @settings(max_examples=50, deadline=None)
    @given(items=ITEMS)
    def check(items: list[tuple[tuple[str, str, str], Any]]) -> None:
        with ADAPTERS[adapter]() as storage:
            storage.connect()
            try:
                for (flow, task, task_id), value in items:
                    storage.store(flow, task, task_id, value)
                for (flow, task, task_id), value in items:
                    assert storage.retrieve(flow, task, task_id) == value
                assert sorted(storage.iter_keys()) == sorted(key for key, _ in items)
            finally:
                storage.disconnect()

    with _around(adapter):
        check()


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x\udfffy"])
def test_nul_and_surrogates_are_refused_before_io(adapter: str, bad: str) -> None:
    with _around(adapter), ADAPTERS[adapter]() as storage:
        storage.connect()
        try:
            for position in range(3):
                parts = ["flow", "task", "id"]
                parts[position] = bad
                with pytest.raises(ValueError):
                    storage.store(parts[0], parts[1], parts[2], 1)
            assert list(storage.iter_keys()) == []
        finally:
            storage.disconnect()
