"""Chunked stores of one key at once (SPEC §9, selinon_like.chunks): whatever order their
steps run in, a reader sees one whole version, ``iter_keys`` shows the key alone, and once the
losers' chunks are older than ``orphan_age`` nothing but the current manifest's chunks is left
after ``purge_expired`` (the chunk index, read and written by every store without a lock, can
lose a concurrent store's entry: purge finds those chunks by their keys).

Step orders are tried on memory with a service-like ceiling (two to four stores, a stream
among them, driven one step at a time in 60 seeded random orders); threads store, stream and
read one key at once on SQLite, PostgreSQL, MariaDB, Redis and MongoDB (SecantusDB), half of
them on an instance of their own, and spawned processes on SQLite and Redis, their values
capped at 4 KiB so that a 60 KB result goes as ~20 chunks."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MYSQL_URL,
    POSTGRESQL_URL,
    REDIS_URL,
    drop_tables,
    redis_probe,
    require_service,
    sql_probe,
)
from test_chunks import SmallValues, big

from selinon_like import StorageError
from selinon_like.chunks import INTERNAL_PREFIX, is_manifest
from selinon_like.keys import Key
from selinon_like.records import RESULTS, RecordStorage
from selinon_like.retry import NO_RETRY
from selinon_like.steps import Steps
from selinon_like.testing.expiry import MovableClock

KEY: Key = ("f", "t", "id")
CAP = 4_096


def chunk_names(storage: RecordStorage) -> set[str]:
    return {
        k[2] for k in storage.scan(RESULTS, None) if k[2].startswith(INTERNAL_PREFIX + "chunk:")
    }


def index_count(storage: RecordStorage) -> int:
    return len(
        [k for k in storage.scan(RESULTS, None) if k[2].startswith(INTERNAL_PREFIX + "index:")]
    )


def current_chunks(storage: RecordStorage) -> set[str]:
    """The chunk names the manifest under KEY stands for (none for a record in one piece)."""
    from selinon_like.chunks import _chunk_key, _open_manifest

    data = storage.read(RESULTS, KEY)
    if data is None or not is_manifest(data):
        return set()
    manifest = _open_manifest(storage._op_codec, data)
    return {_chunk_key(KEY, manifest.token, n)[2] for n in range(manifest.chunks)}


def assert_only_current_chunks_after_purge(storage: RecordStorage, clock: MovableClock) -> None:
    clock.advance(storage.orphan_age + 600)  # writers in other processes use the real clock
    storage.purge_expired()
    assert chunk_names(storage) == current_chunks(storage)
    assert index_count(storage) <= 1
    assert list(storage.iter_keys()) == [KEY]


# -- every order of the steps, on memory ---------------------------------------------------------


def drive_interleaved(gens: list[Steps[Any]], rng: random.Random) -> None:
    """Run the step generators ``gens`` to their end, one step of a randomly chosen one at a
    time (as :func:`selinon_like.steps.run` does for one)."""
    live = {number: (gen, gen.send(None)) for number, gen in enumerate(gens)}
    while live:
        number = rng.choice(sorted(live))
        gen, step = live[number]
        try:
            try:
                reply = step[0](*step[1]) if type(step) is tuple else step.run()
            except Exception as exc:
                following = gen.throw(exc)
            else:
                following = gen.send(reply)
        except StopIteration:
            del live[number]
        else:
            live[number] = (gen, following)


@pytest.mark.parametrize("seed", range(60))
def test_stores_of_one_key_in_any_order_leave_one_version_and_no_orphan(seed: int) -> None:
    rng = random.Random(seed)
    storage = SmallValues()
    storage.connect()
    clock = MovableClock()
    storage.set_record_format(clock=clock)
    storage.retry_policy = NO_RETRY
    storage.store(*KEY, big("old"))
    values = [big(f"v{n}", rng.choice((3_000, 10_000, 20_000))) for n in range(rng.randint(2, 4))]
    gens: list[Steps[Any]] = [storage._store_steps(KEY, value) for value in values]
    if rng.random() < 0.5:  # a stream too
        pieces = [bytes([n]) * 700 for n in range(12)]
        gens.append(storage._store_stream_steps(KEY, pieces))
        values.append(b"".join(pieces))
    drive_interleaved(gens, rng)
    try:
        got = storage.retrieve(*KEY)
    except StorageError:  # the stream won: read it as one
        got = b"".join(storage.retrieve_stream(*KEY))
    assert got in values
    assert list(storage.iter_keys()) == [KEY]
    assert_only_current_chunks_after_purge(storage, clock)
    # a later store reclaims what the index lists, purge the rest: nothing of the losers left
    storage.store(*KEY, big("later"))
    storage.purge_expired()
    assert chunk_names(storage) == current_chunks(storage)
    assert storage.retrieve(*KEY) == big("later")
    storage.disconnect()


def test_a_chunked_result_replaced_by_a_small_one_leaves_nothing_after_purge() -> None:
    storage = SmallValues()
    storage.connect()
    clock = MovableClock()
    storage.set_record_format(clock=clock)
    gens: list[Steps[Any]] = [
        storage._store_steps(KEY, big("a")),
        storage._store_steps(KEY, "small"),
    ]
    drive_interleaved(gens, random.Random(3))
    clock.advance(storage.orphan_age + 1)
    storage.purge_expired()
    assert chunk_names(storage) == current_chunks(storage)
    storage.delete(*KEY)
    storage.purge_expired()
    assert list(storage.scan(RESULTS, None)) == []


# -- threads and processes on the services ------------------------------------------------------


def make_storage(backend: str, target: str) -> RecordStorage:
    """An instance on ``target`` (an SQLite file's URL, a table, a key prefix, a MongoDB URL
    and collection), its values capped at :data:`CAP` bytes."""
    instance: RecordStorage
    if backend == "sqlite":
        from storages.sql import SQLite

        instance = SQLite(connection_string=target)
    elif backend == "postgresql":
        from storages.postgresql import PostgreSQL

        instance = PostgreSQL(connection_string=POSTGRESQL_URL, table_name=target)
    elif backend == "mariadb":
        from storages.mysql import MySQL

        instance = MySQL(connection_string=MYSQL_URL, table_name=target)
    elif backend == "redis":
        from storages.redis import Redis

        instance = Redis(url=REDIS_URL, key_prefix=target)
    else:
        from storages.mongodb import MongoDB

        url, collection = target.rsplit(" ", 1)
        instance = MongoDB(url=url, db_name="selinon_like_test", collection_name=collection)
    instance.max_value_bytes = CAP
    return instance


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mariadb", marks=pytest.mark.mysql),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("mongodb", marks=pytest.mark.mongodb),
]


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    backend = request.param
    name = f"sl_conc_{uuid.uuid4().hex[:10]}"
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "sqlite":
        place = f"sqlite:///{tmp_path / 'results.db'}"
    elif backend == "postgresql":
        require_service("PostgreSQL", sql_probe(POSTGRESQL_URL))
        place, cleanup = name, lambda: drop_tables(POSTGRESQL_URL, name)
    elif backend == "mariadb":
        require_service("MariaDB", sql_probe(MYSQL_URL))
        place, cleanup = name, lambda: drop_tables(MYSQL_URL, name)
    elif backend == "redis":
        require_service("Redis", redis_probe)
        place = f"{name}:"
    else:
        place = f"{request.getfixturevalue('mongodb_server_url')} {name}"
    try:
        yield backend, place
    finally:
        cleanup()


def _empty(storage: RecordStorage) -> None:
    """Leave nothing of the test on a shared server."""
    storage.delete_many([KEY])
    storage.orphan_age = 0.0
    storage.purge_expired()
    assert list(storage.scan(RESULTS, None)) == []
    if type(storage).__name__ == "MongoDB":
        storage._results.drop()  # type: ignore[attr-defined]
        storage._errors.drop()  # type: ignore[attr-defined]


WRITERS, ROUNDS = 4, 4


def test_threads_storing_one_key_leave_one_version_and_no_orphan(
    target: tuple[str, str],
) -> None:
    backend, place = target
    shared = make_storage(backend, place)
    shared.connect()
    clock = MovableClock()
    shared.set_record_format(clock=clock)
    shared.store(*KEY, big("old", 30_000))
    values = [big("old", 30_000)]
    values += [big(f"w{w}r{r}", 20_000 + 8_000 * w) for w in range(WRITERS) for r in range(ROUNDS)]
    # streams of JSON, which retrieve reads as the text they encode
    texts = [f"stream {w} " * 2_500 for w in range(WRITERS)]
    streams = [json.dumps(text).encode() for text in texts]
    values += texts
    seen: list[Any] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def writer(number: int) -> None:
        # half the writers share the instance, half have their own (as other processes would)
        own = number % 2 == 1
        storage = make_storage(backend, place) if own else shared
        if own:
            storage.connect()
            storage.set_record_format(clock=clock)
        try:
            for rnd in range(ROUNDS):
                storage.store(*KEY, values[1 + number * ROUNDS + rnd])
                if rnd == 1:
                    storage.store_stream(*KEY, [streams[number][:10_000], streams[number][10_000:]])
        except BaseException as exc:
            failures.append(exc)
        finally:
            if own:
                storage.disconnect()

    def reader() -> None:
        try:
            read_until_done()
        except BaseException as exc:
            failures.append(exc)

    def read_until_done() -> None:
        while not done.is_set():
            try:
                seen.append(shared.retrieve(*KEY))
            except StorageError as exc:
                if "stored again" not in str(exc):  # replaced 3 times while being read: allowed
                    raise

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    reading = threading.Thread(target=reader)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    done.set()
    reading.join(60)
    assert not failures
    assert seen and all(item in values for item in seen)  # never a mix
    assert list(shared.iter_keys()) == [KEY]
    assert shared.retrieve(*KEY) in values
    assert_only_current_chunks_after_purge(shared, clock)
    _empty(shared)
    shared.disconnect()


def _store_in_child(backend: str, place: str, number: int) -> None:
    storage = make_storage(backend, place)
    storage.connect()
    for rnd in range(ROUNDS):
        storage.store(*KEY, big(f"p{number}r{rnd}", 20_000 + 8_000 * number))
    storage.disconnect()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_processes_storing_one_key_leave_one_version_and_no_orphan(
    backend: str, tmp_path: Path
) -> None:
    if backend == "redis":
        require_service("Redis", redis_probe)
    place = (
        f"sqlite:///{tmp_path / 'results.db'}"
        if backend == "sqlite"
        else f"sl_conc_{uuid.uuid4().hex[:10]}:"
    )
    storage = make_storage(backend, place)
    storage.connect()
    clock = MovableClock()
    storage.set_record_format(clock=clock)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_store_in_child, args=(backend, place, n)) for n in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(240)
    assert [child.exitcode for child in children] == [0, 0, 0]
    finals = [big(f"p{n}r{ROUNDS - 1}", 20_000 + 8_000 * n) for n in range(3)]
    assert storage.retrieve(*KEY) in finals
    assert list(storage.iter_keys()) == [KEY]
    assert_only_current_chunks_after_purge(storage, clock)
    _empty(storage)
    storage.disconnect()
