"""S3Storage (storages/s3.py) under the contract kit twice: on moto in process (the fast fake,
with AWS's rules: a name's segment may take all of its 1,024 bytes) and on the suite's private
SeaweedFS (tests/servers/s3.py: real HTTP, signatures checked, a segment refused past 255
bytes). Its own guarantees, on both where the service matters: key layout (odd keys, both
limits, keys of any length), the former layout's records (moto: only AWS holds them),
options, bucket handling, credentials and masking (SeaweedFS checks the signature), bulk
overlap, error classes."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_service
from servers import S3Server

from selinon_like import (
    ConfigError,
    ResultNotFound,
    StorageError,
    StoragePool,
)
from selinon_like.keys import Key, key_digest
from selinon_like.testing import StorageContract, UnreachableServiceContract, connected
from storages.s3 import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, S3Storage

ACCESS_KEY = "AKIASELINONLIKETEST"
SECRET_KEY = "Secret/Value+That-Must-Never-Leak"
BUCKET = "selinon-like-test"

opened = contextlib.contextmanager(connected)


@pytest.fixture(scope="module", autouse=True)
def _isolated_aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No real AWS configuration may leak in, and the credential chain never asks the network."""
    empty = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ):
            env.delenv(name, raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        yield


def _mock_aws() -> Any:
    require_service("moto", lambda: __import__("moto"))
    import moto

    return moto.mock_aws()


@pytest.fixture
def mocked_aws() -> Iterator[None]:
    """moto in-process: botocore never leaves this process."""
    with _mock_aws():
        yield


def in_process(**options: Any) -> S3Storage:
    settings: dict[str, Any] = {
        "bucket": BUCKET,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "region_name": "us-east-1",
        "create_bucket": True,
    }
    settings.update(options)
    return S3Storage(**settings)


@pytest.fixture(scope="module")
def seaweedfs_bucket(s3_server: S3Server) -> Iterator[str]:
    """One bucket on the private SeaweedFS for the module; each storage has its own prefix."""
    name = s3_server.new_bucket("blocking")
    yield name
    s3_server.delete_bucket(name)


def on_seaweedfs(server: S3Server, bucket: str, **options: Any) -> S3Storage:
    """A storage on the private SeaweedFS under a prefix of its own."""
    settings: dict[str, Any] = {
        **server.client_options(),
        "bucket": bucket,
        "addressing_style": "path",
        "prefix": f"t-{uuid.uuid4().hex[:12]}",
    }
    settings.update(options)
    return S3Storage(**settings)


@pytest.fixture(params=["moto", "seaweedfs"])
def make_s3(request: pytest.FixtureRequest) -> Callable[..., S3Storage]:
    """Builds unconnected storages (each under a new prefix) on moto in process, then on the
    private SeaweedFS."""
    if request.param == "moto":
        request.getfixturevalue("mocked_aws")
        return lambda **options: in_process(**{"prefix": uuid.uuid4().hex[:12], **options})
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("seaweedfs_bucket")
    return lambda **options: on_seaweedfs(server, bucket, **options)


@pytest.fixture
def s3(make_s3: Callable[..., S3Storage]) -> Iterator[S3Storage]:
    """A connected storage on each service in turn."""
    yield from connected(make_s3())  # type: ignore[misc]


def object_names(storage: S3Storage) -> list[str]:
    """Every object under the storage's prefix, as S3 names it."""
    listing = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    return [entry["Key"] for entry in listing.get("Contents", [])]


# One instance per contract class: every contract test works under a flow of its own.
@pytest.fixture(scope="class")
def in_process_storage(_isolated_aws_environment: None) -> Iterator[S3Storage]:
    with _mock_aws():
        yield from connected(in_process())  # type: ignore[misc]


@pytest.fixture(scope="class")
def seaweedfs_storage(s3_server: S3Server, seaweedfs_bucket: str) -> Iterator[S3Storage]:
    yield from connected(on_seaweedfs(s3_server, seaweedfs_bucket))  # type: ignore[misc]


# S3Storage makes one request per record (no batch of its own to cross but DeleteObjects',
# tested below): the kit's large batch at 250 items still overlaps on all 10 connections, and
# its threads tests at 8 x 25 operations still interleave (moto spends ~3 ms of CPU a request,
# SeaweedFS ~5 ms of wall time).
class TestS3InProcess(StorageContract):
    concurrency_per_thread = 25
    bulk_items = 250

    @pytest.fixture
    def storage(self, in_process_storage: S3Storage) -> S3Storage:
        return in_process_storage


class TestS3OnSeaweedFS(StorageContract, UnreachableServiceContract):
    concurrency_per_thread = 25
    bulk_items = 250

    @pytest.fixture
    def storage(self, seaweedfs_storage: S3Storage) -> S3Storage:
        return seaweedfs_storage

    @pytest.fixture
    def unreachable_storage(self, unreachable_port: int, secret: str) -> S3Storage:
        return S3Storage(
            bucket=BUCKET,
            endpoint_url=f"http://127.0.0.1:{unreachable_port}",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            aws_session_token=secret,  # the other secret of a configuration: hidden the same
            region_name="us-east-1",
            connect_timeout=1,
            read_timeout=1,
        )


# -- keys and layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        ("flow", "task", "../../etc/passwd"),
        ("flow", "task", "a/b"),
        ("../..", "./.", "/abs/olute"),
        ("a b", "ü 中文 🐍", "%2e%2e/x"),
    ],
)
def test_odd_keys_round_trip_under_the_prefix(s3: S3Storage, key: tuple[str, str, str]) -> None:
    record_id = s3.store(*key, {"k": list(key)})
    assert s3.retrieve(*key) == {"k": list(key)}
    names = object_names(s3)
    assert names == [record_id]
    assert record_id.startswith(s3.prefix + "results/")
    segments = record_id[len(s3.prefix) :].split("/")
    assert len(segments) == 4
    assert not {".", "..", ""} & set(segments)
    assert all(ch.isascii() and ch not in " ?#\\" for ch in record_id)
    assert list(s3.iter_keys()) == [key]


def test_prefix_gets_a_slash_and_errors_live_apart(make_s3: Callable[..., S3Storage]) -> None:
    prefix = f"apps/{uuid.uuid4().hex}"
    storage = make_s3(prefix=prefix)
    assert storage.prefix == prefix + "/"
    with opened(storage) as st:
        st.store_error({"a": 1}, "f", "t", "1", RuntimeError("boom"))
        assert object_names(storage) == [f"{prefix}/errors/_f/_t/_1"]
        with pytest.raises(ResultNotFound):
            st.retrieve("f", "t", "1")
        assert list(st.iter_keys()) == []
        st.store("f", "t", "1", 1)
        st.delete("f", "t", "1")
        assert st.retrieve_error("f", "t", "1")["message"] == "boom"


def test_store_returns_the_object_key(s3: S3Storage) -> None:
    record_id = s3.store("f", "t", "1", {"v": 1})
    head = s3.client.head_object(Bucket=s3.bucket, Key=record_id)
    assert head["ContentLength"] == len(s3.serializer.dumps({"v": 1}))


def test_short_keys_keep_the_first_release_layout(s3: S3Storage) -> None:
    data = s3.serializer.dumps({"v": 1})
    # An object the first release wrote: the plain name, the bare serialized bytes.
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}results/_f/_t/_old", Body=data)
    assert s3.retrieve("f", "t", "old") == {"v": 1}
    assert s3.store("f", "t", "new", {"v": 1}) == f"{s3.prefix}results/_f/_t/_new"
    body = s3.client.get_object(Bucket=s3.bucket, Key=f"{s3.prefix}results/_f/_t/_new")["Body"]
    with contextlib.closing(body):
        assert body.read() == data
    assert sorted(s3.iter_keys("f")) == [("f", "t", "new"), ("f", "t", "old")]


def segments(name: str) -> list[int]:
    return [len(segment.encode()) for segment in name.split("/")]


def test_a_part_at_the_segment_limit_is_plain_and_one_byte_more_is_named_by_its_digest(
    s3: S3Storage,
) -> None:
    head = f"{s3.prefix}results/_f/_t/_"
    at_limit = "x" * (MAX_SEGMENT_BYTES - 1)  # "_" and 254 bytes: the longest segment
    assert s3.store("f", "t", at_limit, 1) == head + at_limit
    past = at_limit + "x"
    assert s3.store("f", "t", past, 2) == f"{s3.prefix}results/_f/~{key_digest('f', 't', past)}"
    every_part = (at_limit, at_limit, at_limit)
    assert s3.store(*every_part, 3) == f"{s3.prefix}results/_{at_limit}/_{at_limit}/_{at_limit}"
    assert s3.retrieve_many([("f", "t", at_limit), ("f", "t", past), every_part]) == {
        ("f", "t", at_limit): 1,
        ("f", "t", past): 2,
        every_part: 3,
    }
    assert sorted(s3.iter_keys()) == sorted([("f", "t", at_limit), ("f", "t", past), every_part])
    # Non-ASCII parts take 9 bytes a character once encoded: 29 of them pass the limit.
    ids = s3.store_many([("f", "t", "中" * 28, 4), ("f", "t", "中" * 29, 5)])
    assert [max(segments(name)) for name in ids] == [253, 65]
    assert s3.retrieve_many([("f", "t", "中" * 28), ("f", "t", "中" * 29)]) == {
        ("f", "t", "中" * 28): 4,
        ("f", "t", "中" * 29): 5,
    }


# A prefix of short enough segments that leaves less than 255 bytes to a key's last part.
LONG_PREFIX = f"{'p' * 250}/{'q' * 250}/{'r' * 251}/"  # 754 bytes


def test_a_key_at_the_s3_limit_is_plain_and_one_byte_more_is_named_by_its_digest(
    make_s3: Callable[..., S3Storage],
) -> None:
    with opened(make_s3(prefix=LONG_PREFIX + uuid.uuid4().hex[:8])) as s3:
        head = f"{s3.prefix}results/_f/_t/_"
        at_limit = "x" * (MAX_KEY_BYTES - len(head))
        assert len(at_limit) < MAX_SEGMENT_BYTES
        assert s3.store("f", "t", at_limit, 1) == head + at_limit
        # One byte more in another part: every segment fits, the whole name does not.
        digest = key_digest("f", "tt", at_limit)
        assert s3.store("f", "tt", at_limit, 2) == f"{s3.prefix}results/_f/~{digest}"
        assert (s3.retrieve("f", "t", at_limit), s3.retrieve("f", "tt", at_limit)) == (1, 2)
        assert sorted(s3.iter_keys()) == sorted([("f", "t", at_limit), ("f", "tt", at_limit)])


LONG_KEYS = [
    pytest.param(("f", "t", "i" * 255), id="task-id-of-256-bytes-encoded"),
    pytest.param(("f", "t", "i" * 1000), id="task-id-of-1000-bytes"),
    pytest.param(("f", "t", "i" * 2000), id="long-task-id"),
    pytest.param(("F" * 2000, "t", "1"), id="long-flow"),
    pytest.param(("g" * 300, "t", "1"), id="flow-past-the-segment-limit"),
    pytest.param(("ü" * 2000, "a/" * 1000, "é ../" * 400), id="every-part-long-non-ascii"),
    pytest.param(("f", "t", "中" * 12_000), id="header-past-the-first-ranged-read"),
]


@pytest.mark.parametrize("key", LONG_KEYS)
def test_keys_of_any_length_are_named_within_the_object_key_limits(s3: S3Storage, key: Key) -> None:
    # (Their round trips, listing and deletes: the kit's ListingContract, on every adapter.)
    record_id = s3.store(*key, {"v": 1})
    assert len(record_id.encode()) <= MAX_KEY_BYTES
    assert max(segments(record_id)) <= MAX_SEGMENT_BYTES
    assert record_id.endswith("/~" + key_digest(*key))
    assert s3.retrieve(*key) == {"v": 1}
    assert list(s3.iter_keys(key[0])) == [key]
    s3.store_error({"n": 1}, *key, RuntimeError("long"))
    assert s3.retrieve_error(*key)["task_id"] == key[2]


def test_a_flow_too_long_for_its_own_directory_is_listed_under_both(
    make_s3: Callable[..., S3Storage],
) -> None:
    with opened(make_s3(prefix=LONG_PREFIX + uuid.uuid4().hex[:8])) as s3:
        base = f"{s3.prefix}results/"
        # Short keys of this flow still fit their plain names; an over-long one of the same
        # flow needs the flow's digest as its directory. iter_keys(flow) finds both kinds.
        flow = "a" * 200  # the name of an over-long key leaves it 187 bytes here
        short, long = (flow, "t", "1"), (flow, "t", "x" * 100)
        assert s3.store(*short, 1) == f"{base}_{flow}/_t/_1"
        assert s3.store(*long, 2).startswith(f"{base}~")
        assert sorted(s3.iter_keys(flow)) == sorted([short, long])
        assert list(s3.iter_keys(flow[:-1])) == []


def test_an_object_holding_another_key_is_not_read_as_this_one(s3: S3Storage) -> None:
    key, other = ("f", "t", "x" * 2000), ("f", "t", "y" * 2000)
    name = s3.object_key("results", *key)
    s3.store(*other, "other's")
    body = s3.client.get_object(Bucket=s3.bucket, Key=s3.object_key("results", *other))["Body"]
    with contextlib.closing(body):
        s3.client.put_object(Bucket=s3.bucket, Key=name, Body=body.read())
    with pytest.raises(ResultNotFound):
        s3.retrieve(*key)
    with pytest.raises(ResultNotFound):
        b"".join(s3.retrieve_stream(*key))
    assert s3.retrieve_many([key]) == {}
    assert list(s3.iter_keys()) == [other]  # the misplaced copy names another object


def test_over_long_names_keep_their_flow_while_it_fits() -> None:
    # names are made without any I/O
    for prefix in ("p/", LONG_PREFIX):
        storage = S3Storage(bucket="b", prefix=prefix)
        base = f"{prefix}results/"
        room = min(MAX_SEGMENT_BYTES, MAX_KEY_BYTES - len(base) - len("/~") - 64)
        for flow in ("a" * (room - 2), "a" * (room - 1), "a" * room, "é" * (room // 6 + 1)):
            name = storage.object_key("results", flow, "t", "x" * 2000)
            assert len(name.encode()) <= MAX_KEY_BYTES
            assert max(segments(name[len(prefix) :])) <= MAX_SEGMENT_BYTES
            token = f"_{flow}" if flow.isascii() else f"_{'%c3%a9' * len(flow)}"
            assert name.startswith(f"{base}{token}/~") == (len(token) <= room), len(flow)
            if not name.startswith(f"{base}{token}/"):
                assert name.startswith(f"{base}~") and name.count("/") == prefix.count("/") + 2


def test_the_longest_prefix_still_holds_long_keys(mocked_aws: None) -> None:
    prefix = "p" * 884 + "/"
    with pytest.raises(ConfigError, match="885") as info:
        in_process(prefix="p" + prefix)
    assert info.value.key == "prefix"
    with opened(in_process(prefix=prefix)) as storage:
        key = ("f" * 2000, "t" * 2000, "i" * 2000)
        assert len(storage.store(*key, 1).encode()) == MAX_KEY_BYTES
        assert storage.retrieve(*key) == 1
        assert list(storage.iter_keys(key[0])) == [key]


def test_iter_keys_pages_through_more_than_one_listing(
    s3_server: S3Server, seaweedfs_bucket: str
) -> None:
    with opened(on_seaweedfs(s3_server, seaweedfs_bucket)) as storage:
        items = [("f", "t", str(i), i) for i in range(1100)]
        storage.store_many(items)
        storage.store("other", "t", "1", 1)
        assert sorted(storage.iter_keys("f")) == sorted((f, t, i) for f, t, i, _ in items)
        assert len(list(storage.iter_keys())) == 1101


def test_iter_keys_skips_foreign_objects(s3: S3Storage) -> None:
    s3.store("f", "t", "1", 1)
    digest = key_digest("f", "t", "1")
    foreign = {
        "results/readme.txt": b"x",
        "results/_f/_t/no-underscore": b"x",
        "results/_f/x/y/z": b"x",
        "results/_f/~not-a-digest": b'["f", "t", "1"]\n1',
        f"results/_f/~{'0' * 64}": b"x" * 70_000,  # no header line in the first ranged read
        f"results/_f/~{'1' * 64}": b"",
        f"results/_f/~{'2' * 64}": b"{oops\n",
        f"results/_f/~{'3' * 64}": b'["f", "t"]\n1',
        f"results/_f/~{digest}": b'["f", "t", "1"]\n1',  # a short key never has this name
        "results/_g/~misplaced": b'["f", "t", "1"]\n1',
    }
    for name, body in foreign.items():
        s3.client.put_object(Bucket=s3.bucket, Key=s3.prefix + name, Body=body)
    assert list(s3.iter_keys()) == [("f", "t", "1")]


# -- the former layout: a segment of up to 1,024 bytes (AWS and moto hold those) --------------

# Under the layout before MAX_SEGMENT_BYTES: a task id encoded past 255 bytes in a plain name,
# and an over-long key named by its digest under a flow encoded past 255 bytes.
PLAIN_FORMER: Key = ("f", "t", "x" * 300)
DIGEST_FORMER: Key = ("g" * 400, "t", "y" * 700)


def former_name(storage: S3Storage, kind: str, key: Key) -> str:
    """The name the former layout gave ``key`` (spelled out, as that layout made it)."""
    flow, task, task_id = key
    if key == DIGEST_FORMER:
        return f"{storage.prefix}{kind}/_{flow}/~{key_digest(*key)}"
    return f"{storage.prefix}{kind}/_{flow}/_{task}/_{task_id}"


def plant(storage: S3Storage, kind: str, key: Key, data: bytes) -> str:
    """Put ``data`` at ``key``'s former name as that layout did (the exact key's line first
    in a digest-named object); its name."""
    name = former_name(storage, kind, key)
    if key == DIGEST_FORMER:
        data = json.dumps(list(key)).encode() + b"\n" + data
    storage.client.put_object(Bucket=storage.bucket, Key=name, Body=data)
    return name


@pytest.fixture
def aws(mocked_aws: None) -> Iterator[S3Storage]:
    """A connected storage on moto in process, which takes the former layout's names."""
    yield from connected(in_process(prefix=uuid.uuid4().hex[:12]))  # type: ignore[misc]


def requests_made(storage: S3Storage) -> list[str]:
    """The operations the storage's client sends from now on, in order."""
    made: list[str] = []
    storage.client.meta.events.register(
        "before-call.s3", lambda model, **_: made.append(model.name)
    )
    return made


def test_records_at_their_former_names_are_read_and_listed(aws: S3Storage) -> None:
    dumps = aws.serializer.dumps
    for key in (PLAIN_FORMER, DIGEST_FORMER):
        assert max(segments(former_name(aws, "results", key))) > MAX_SEGMENT_BYTES
        assert former_name(aws, "results", key) != aws.object_key("results", *key)
        plant(aws, "results", key, dumps({"old": key[0][:1]}))
    plant(aws, "errors", PLAIN_FORMER, dumps({"message": "old error"}))
    assert aws.retrieve(*PLAIN_FORMER) == {"old": "f"}
    assert aws.retrieve(*DIGEST_FORMER) == {"old": "g"}
    missing = ("f", "t", "z" * 300)
    assert aws.retrieve_many([PLAIN_FORMER, DIGEST_FORMER, missing]) == {
        PLAIN_FORMER: {"old": "f"},
        DIGEST_FORMER: {"old": "g"},
    }
    assert b"".join(aws.retrieve_stream(*DIGEST_FORMER)) == dumps({"old": "g"})
    with pytest.raises(ResultNotFound):
        aws.retrieve(*missing)
    assert aws.retrieve_error(*PLAIN_FORMER)["message"] == "old error"
    assert sorted(aws.iter_keys()) == sorted([PLAIN_FORMER, DIGEST_FORMER])
    assert list(aws.iter_keys(DIGEST_FORMER[0])) == [DIGEST_FORMER]
    assert list(aws.iter_error_keys()) == [PLAIN_FORMER]
    # Stored again, each record is at its current name only, and listed once.
    aws.store(*PLAIN_FORMER, "new")
    aws.store_many([(*DIGEST_FORMER, "new too")])
    assert sorted(object_names(aws)) == sorted(
        [
            aws.object_key("results", *PLAIN_FORMER),
            aws.object_key("results", *DIGEST_FORMER),
            former_name(aws, "errors", PLAIN_FORMER),
        ]
    )
    # A former object written again meanwhile (an older process) is not listed a second time,
    # nor read in place of the current one.
    for key in (PLAIN_FORMER, DIGEST_FORMER):
        plant(aws, "results", key, dumps("stale"))
    assert aws.retrieve_many([PLAIN_FORMER, DIGEST_FORMER]) == {
        PLAIN_FORMER: "new",
        DIGEST_FORMER: "new too",
    }
    assert sorted(aws.iter_keys()) == sorted([PLAIN_FORMER, DIGEST_FORMER])


def test_stores_replace_and_deletes_remove_records_at_their_former_names(aws: S3Storage) -> None:
    dumps = aws.serializer.dumps
    plant(aws, "results", PLAIN_FORMER, dumps(1))
    aws.store_stream(*PLAIN_FORMER, [b"streamed"])
    assert object_names(aws) == [aws.object_key("results", *PLAIN_FORMER)]
    # delete and delete_many remove the object at either name, or both, counting keys.
    plant(aws, "results", PLAIN_FORMER, dumps(2))
    aws.delete(*PLAIN_FORMER)
    assert object_names(aws) == []
    plant(aws, "results", PLAIN_FORMER, dumps(3))
    aws.delete(*PLAIN_FORMER)  # only the former one was there
    with pytest.raises(ResultNotFound):
        aws.delete(*PLAIN_FORMER)
    for key in (PLAIN_FORMER, DIGEST_FORMER):
        plant(aws, "results", key, dumps(4))
    aws.store(*DIGEST_FORMER, 5)
    assert aws.delete_many([PLAIN_FORMER, DIGEST_FORMER, ("f", "t", "y" * 300)]) == 2
    assert object_names(aws) == []
    assert list(aws.iter_keys()) == []


def test_only_a_missed_digest_named_key_looks_at_a_former_name(aws: S3Storage) -> None:
    made = requests_made(aws)
    aws.store("f", "t", "short", 1)
    aws.store("f", "t", "i" * 2000, 1)  # over-long either way: no former name
    assert made == ["PutObject", "PutObject"]
    del made[:]
    assert aws.retrieve("f", "t", "short") == aws.retrieve("f", "t", "i" * 2000) == 1
    assert aws.retrieve_many([("f", "t", "gone"), ("f", "t", "i" * 3000)]) == {}
    assert made == ["GetObject"] * 4
    del made[:]
    aws.store(*PLAIN_FORMER, 1)  # a key with a former name: that object is deleted
    assert aws.retrieve(*PLAIN_FORMER) == 1
    assert made == ["PutObject", "DeleteObject", "GetObject"]
    del made[:]
    assert aws.retrieve_many([PLAIN_FORMER, DIGEST_FORMER]) == {PLAIN_FORMER: 1}
    assert made == ["GetObject"] * 3  # both current names, then DIGEST_FORMER's former one


# -- bulk ------------------------------------------------------------------------------------


def test_store_many_overlaps_its_requests_within_the_pool_size(
    make_s3: Callable[..., S3Storage], monkeypatch: Any
) -> None:
    workers = 4
    with opened(make_s3(max_pool_connections=workers)) as storage:
        real_put = storage.client.put_object
        together = threading.Barrier(workers, timeout=10)
        lock = threading.Lock()
        state = {"calls": 0, "in_flight": 0, "peak": 0}

        def put_object(**kwargs: Any) -> Any:
            with lock:
                state["calls"] += 1
                first_wave = state["calls"] <= workers
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
            try:
                if first_wave:
                    together.wait()  # breaks (test fails) unless `workers` calls run at once
                return real_put(**kwargs)
            finally:
                with lock:
                    state["in_flight"] -= 1

        monkeypatch.setattr(storage.client, "put_object", put_object)
        ids = storage.store_many([("f", "t", str(i), i) for i in range(40)])
        assert state["peak"] == workers
        assert ids == [storage.object_key("results", "f", "t", str(i)) for i in range(40)]
        keys = [("f", "t", str(i)) for i in range(40)] + [("f", "t", "missing"), ("f", "t", "3")]
        assert storage.retrieve_many(keys) == {("f", "t", str(i)): i for i in range(40)}


def test_store_many_keeps_the_last_result_of_a_repeated_key(
    s3: S3Storage, monkeypatch: Any
) -> None:
    real_put = s3.client.put_object
    sent: list[str] = []

    def put_object(**kwargs: Any) -> Any:
        sent.append(kwargs["Key"])
        return real_put(**kwargs)

    monkeypatch.setattr(s3.client, "put_object", put_object)
    items = [("f", "t", "dup", i) for i in range(30)] + [("f", "t", "other", "x")]
    ids = s3.store_many(items)
    assert len(ids) == 31 and len(set(ids)) == 2
    assert s3.retrieve("f", "t", "dup") == 29
    assert sorted(sent) == sorted(set(ids))  # one PUT per key: no race between duplicates


def test_a_failed_store_many_reports_the_error(s3: S3Storage, monkeypatch: Any) -> None:
    from botocore.exceptions import ClientError

    real_put = s3.client.put_object

    def put_object(**kwargs: Any) -> Any:
        if kwargs["Key"].endswith("_13"):
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(s3.client, "put_object", put_object)
    with pytest.raises(StorageError, match="AccessDenied"):
        s3.store_many([("f", "t", str(i), i) for i in range(20)])


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        ("no", False),
        (False, False),
        ("0", False),
        ("true", True),
        (True, True),
        ("yes", True),
        (None, True),
    ],
)
def test_use_ssl_is_parsed(value: Any, expected: bool) -> None:
    assert S3Storage(bucket="b", use_ssl=value).use_ssl is expected


def test_use_ssl_defaults_to_tls() -> None:
    assert S3Storage(bucket="b").use_ssl is True


@pytest.mark.parametrize("value", ["maybe", "", 2, [True]])
def test_use_ssl_garbage_is_a_config_error(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        S3Storage(bucket="b", use_ssl=value)
    assert info.value.key == "use_ssl"


def test_tls_is_what_the_client_uses(mocked_aws: None) -> None:
    with opened(in_process()) as storage:
        assert storage.client.meta.endpoint_url.startswith("https://")
    with opened(in_process(use_ssl="false")) as storage:
        assert storage.client.meta.endpoint_url.startswith("http://")


def test_explicit_tls_with_a_plain_http_endpoint_is_refused() -> None:
    with pytest.raises(ConfigError, match="use_ssl") as info:
        S3Storage(bucket="b", endpoint_url="http://127.0.0.1:9000", use_ssl=True)
    assert info.value.key == "use_ssl"
    assert S3Storage(bucket="b", endpoint_url="http://127.0.0.1:9000").use_ssl is True


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"aws_access_key_id": "AKIA"}, "aws_secret_access_key"),
        ({"aws_secret_access_key": SECRET_KEY}, "aws_access_key_id"),
        ({"aws_session_token": "tok-123456"}, "aws_session_token"),
        ({"endpoint_url": "ftp://127.0.0.1"}, "endpoint_url"),
        ({"max_pool_connections": 0}, "max_pool_connections"),
        ({"part_size": 1024}, "part_size"),
        ({"connect_timeout": "soon"}, "connect_timeout"),
        ({"read_timeout": -1}, "read_timeout"),
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"create_bucket": "perhaps"}, "create_bucket"),
        ({"prefix": 5}, "prefix"),
        ({"region_name": 5}, "region_name"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        S3Storage(bucket="b", **options)
    assert info.value.key == key


def test_bucket_is_required_and_unknown_options_are_named() -> None:
    with pytest.raises(ConfigError, match="bucket"):
        StoragePool.from_dict({"storages": [{"name": "S", "classname": "s3"}]})
    with pytest.raises(ConfigError, match="use_tls"):
        StoragePool.from_dict(
            {
                "storages": [
                    {"name": "S", "classname": "s3", "configuration": {"bucket": "b", "use_tls": 1}}
                ]
            }
        )


def test_timeouts_pool_size_and_retries_reach_botocore(mocked_aws: None) -> None:
    storage = in_process(connect_timeout="2.5", read_timeout=7, max_pool_connections="3")
    with opened(storage) as st:
        config = st.client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (2.5, 7.0)
        assert config.max_pool_connections == 3
        assert config.retries["total_max_attempts"] == 1  # the pool's retry policy retries


# -- bucket ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "location", "expected"),
    [
        ("eu-west-1", None, "eu-west-1"),
        ("us-east-1", None, None),
        ("us-east-1", "eu-central-1", "eu-central-1"),
        ("ap-south-1", None, "ap-south-1"),
    ],
)
def test_create_bucket_sets_the_location_constraint(
    mocked_aws: None, region: str, location: str | None, expected: str | None
) -> None:
    name = f"created-{uuid.uuid4().hex[:12]}"
    with opened(in_process(bucket=name, region_name=region, location=location)) as storage:
        assert storage.client.get_bucket_location(Bucket=name).get("LocationConstraint") == expected
        storage.store("f", "t", "1", 1)
    # Connecting again finds the bucket: creating is idempotent.
    with opened(in_process(bucket=name, region_name=region, location=location)) as storage:
        assert storage.retrieve("f", "t", "1") == 1


def test_missing_bucket_is_a_clear_error_on_connect(
    s3_server: S3Server, seaweedfs_bucket: str
) -> None:
    storage = on_seaweedfs(s3_server, "no-such-bucket-here")
    with pytest.raises(StorageError) as info:
        storage.connect()
    message = str(info.value)
    assert "'no-such-bucket-here' does not exist" in message
    assert "create_bucket" in message and s3_server.endpoint_url in message
    assert storage.is_connected() is False
    assert s3_server.secret_key not in message


def test_ping_fails_when_the_bucket_goes_away(s3_server: S3Server) -> None:
    name = s3_server.new_bucket("doomed")
    with opened(on_seaweedfs(s3_server, name)) as storage:
        assert storage.ping() is True
        storage.client.delete_bucket(Bucket=name)
        with pytest.raises(StorageError):
            storage.ping()


def test_operations_before_connect_say_so() -> None:
    storage = S3Storage(bucket="b")
    with pytest.raises(StorageError, match="not connected"):
        storage.retrieve("f", "t", "1")


# -- credentials -----------------------------------------------------------------------------


def test_without_keys_the_standard_credential_chain_applies(
    s3_server: S3Server, seaweedfs_bucket: str, monkeypatch: Any
) -> None:
    storage = on_seaweedfs(
        s3_server, seaweedfs_bucket, aws_access_key_id=None, aws_secret_access_key=None
    )
    with pytest.raises(StorageError, match="credentials"):
        storage.connect()  # nothing in the chain (the environment is isolated)
    # SeaweedFS checks the signature: the chain's keys are the ones used.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StorageError, match="Forbidden"):  # HeadBucket: no error code
        storage.connect()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with opened(storage) as st:
        st.store("f", "t", "1", 1)
        assert st.retrieve("f", "t", "1") == 1


def test_profile_name_reads_the_shared_credentials_file(
    s3_server: S3Server, seaweedfs_bucket: str, monkeypatch: Any, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[ci]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    options = {"aws_access_key_id": None, "aws_secret_access_key": None}
    with opened(on_seaweedfs(s3_server, seaweedfs_bucket, profile_name="ci", **options)) as st:
        st.store("f", "t", "1", 1)
    with pytest.raises(StorageError, match="absent"):
        on_seaweedfs(s3_server, seaweedfs_bucket, profile_name="absent", **options).connect()


def test_secrets_never_appear_in_repr_config_errors_or_health(s3_server: S3Server) -> None:
    """Errors and retry log lines against an unreachable endpoint: the kit's unreachable-service
    suite checks them in TestS3OnSeaweedFS, with the secret key and the session token set."""
    token = "SessionToken-Very-Secret-1234"
    storage = in_process(aws_session_token=token)
    text = repr(storage)
    assert SECRET_KEY not in text and token not in text and ACCESS_KEY not in text
    assert "***" in text

    with pytest.raises(ConfigError) as config_info:
        S3Storage(bucket="b", aws_access_key_id="AKIA", aws_secret_access_key=98765432)
    assert "98765432" not in str(config_info.value)

    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Missing",
                    "classname": "s3",
                    "configuration": {
                        **s3_server.client_options(),
                        "bucket": "not-there-either",
                        "addressing_style": "path",
                    },
                }
            ]
        }
    )
    (health,) = pool.check()
    assert health.ok is False and "not-there-either" in (health.error or "")
    assert s3_server.secret_key not in repr(health)
    assert s3_server.access_key not in repr(health)


# -- errors and drivers ----------------------------------------------------------------------


def test_transient_errors_are_classified() -> None:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    def client_error(code: str, status: int) -> ClientError:
        response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutObject")

    storage = S3Storage(bucket="b")
    url = "http://127.0.0.1:1"
    transient = [
        EndpointConnectionError(endpoint_url=url),
        ConnectTimeoutError(endpoint_url=url),
        ReadTimeoutError(endpoint_url=url),
        ConnectionClosedError(endpoint_url=url),
        client_error("SlowDown", 503),
        client_error("InternalError", 500),
        client_error("SlowDown", 0),
        ConnectionResetError(),
    ]
    permanent = [
        client_error("NoSuchKey", 404),
        client_error("AccessDenied", 403),
        NoCredentialsError(),
        ValueError("x"),
    ]
    assert [storage.is_transient(exc) for exc in transient] == [True] * len(transient)
    assert [storage.is_transient(exc) for exc in permanent] == [False] * len(permanent)


def test_delete_leaves_errors_and_missing_delete_raises(s3: S3Storage) -> None:
    with pytest.raises(ResultNotFound):
        s3.delete("f", "t", "1")
    s3.store_error(None, "f", "t", "1", RuntimeError("kept"))
    with pytest.raises(ResultNotFound):
        s3.delete("f", "t", "1")
    assert s3.retrieve_error("f", "t", "1")["message"] == "kept"


def test_delete_many_deletes_in_one_request_per_batch(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storages import s3 as module

    assert module._DELETE_BATCH == 1000  # S3's limit on one DeleteObjects request
    monkeypatch.setattr(module, "_DELETE_BATCH", 10)  # the same batching, on fewer objects
    with opened(in_process(prefix=uuid.uuid4().hex)) as storage:
        assert isinstance(storage, S3Storage)
        keys = [("f", "t", str(i)) for i in range(21)]
        storage.store_many([(*key, 1) for key in keys])
        storage.store("f", "t", "kept", 2)
        storage.store_error(None, "f", "t", "0", RuntimeError("an error record is not a result"))
        real = storage.client.delete_objects
        batches: list[int] = []

        def delete_objects(**kwargs: Any) -> Any:
            batches.append(len(kwargs["Delete"]["Objects"]))
            return real(**kwargs)

        monkeypatch.setattr(storage.client, "delete_objects", delete_objects)
        doomed = [*keys, ("f", "t", "missing"), ("f", "t", "7")]
        assert storage.delete_many(doomed) == 21  # the missing key and the repeat not counted
        assert batches == [10, 10, 1]
        assert list(storage.iter_keys()) == [("f", "t", "kept")]
        assert list(storage.iter_error_keys()) == [("f", "t", "0")]
        assert storage.delete_many([("f", "t", "1"), ("f", "t", "2")]) == 0
        assert batches == [10, 10, 1]  # nothing there: no DeleteObjects request


def test_delete_many_reports_objects_s3_refused(s3: S3Storage, monkeypatch: Any) -> None:
    s3.store_many([("f", "t", str(i), i) for i in range(3)])

    def delete_objects(**kwargs: Any) -> Any:
        victim = kwargs["Delete"]["Objects"][1]["Key"]
        return {"Errors": [{"Key": victim, "Code": "AccessDenied", "Message": "Access Denied"}]}

    monkeypatch.setattr(s3.client, "delete_objects", delete_objects)
    with pytest.raises(StorageError, match=r"1 of 3 objects were not deleted.*AccessDenied"):
        s3.delete_many([("f", "t", str(i)) for i in range(3)])
