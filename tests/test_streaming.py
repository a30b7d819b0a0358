"""store_stream / retrieve_stream on the Filesystem and S3 adapters beyond the kit's streaming
suite (which both contract classes run): sizes at S3's part boundaries, keys of any length,
the multipart upload itself, and what a failed stream leaves behind (nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import S3Server
from test_s3 import (
    _isolated_aws_environment,  # noqa: F401 - fixtures used by name
    _mock_aws,
    in_process,
    on_seaweedfs,
    seaweedfs_bucket,  # noqa: F401
)

from selinon_like import DataStorage, ResultNotFound, StorageError
from selinon_like.retry import RetryPolicy
from selinon_like.testing import connected
from selinon_like.testing.streaming import blob, digest_of
from storages.filesystem import Filesystem
from storages.s3 import MIN_PART_SIZE, S3Storage

MiB = 1024 * 1024
PART = MIN_PART_SIZE  # S3 parts of 5 MiB: a 24 MB stream takes 5 of them

opened = contextlib.contextmanager(connected)


def failing(size: int, exc: BaseException) -> Iterator[bytes]:
    yield from blob(size)
    raise exc


@pytest.fixture(params=["filesystem", "s3-in-process", "s3-seaweedfs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStorage]:
    if request.param == "filesystem":
        yield from connected(Filesystem(path=str(tmp_path / "files")))
    elif request.param == "s3-in-process":
        with _mock_aws():
            yield from connected(in_process(part_size=PART))
    else:
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("seaweedfs_bucket")
        yield from connected(on_seaweedfs(server, bucket, part_size=PART))


@pytest.fixture
def s3(s3_server: S3Server, seaweedfs_bucket: str) -> Iterator[S3Storage]:  # noqa: F811
    """On the private SeaweedFS: real multipart uploads over HTTP."""
    storage = on_seaweedfs(s3_server, seaweedfs_bucket, part_size=PART)
    yield from connected(storage)  # type: ignore[misc]


def pending_uploads(storage: S3Storage) -> list[Any]:
    listing = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
    return listing.get("Uploads", [])


def leftovers(storage: DataStorage) -> list[Any]:
    """Half-written state a failed stream could leave: temp files, or pending S3 uploads."""
    if isinstance(storage, S3Storage):
        return pending_uploads(storage)
    assert isinstance(storage, Filesystem)
    return [p for p in storage.root.rglob(".tmp-*")]


# -- every streaming adapter -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, 2 * PART, 2 * PART + 1])
def test_sizes_at_part_boundaries(storage: DataStorage, size: int) -> None:
    digest = storage.store_stream("flow", "task", "edge", blob(size, chunk=MiB))
    assert digest == digest_of(blob(size, chunk=MiB))
    assert digest_of(storage.retrieve_stream("flow", "task", "edge")) == digest


def test_a_failing_stream_leaves_nothing_half_written(storage: DataStorage) -> None:
    """The previous blob kept and no new one: the kit's streaming suite. Here: no pending
    multipart upload on S3 and no temporary file on the Filesystem, whether the failed
    stream was replacing a blob or writing a new one."""
    storage.store_stream("flow", "task", "kept", [b"old ", b"content"])
    for task_id in ("kept", "fresh"):
        with pytest.raises(StorageError):
            storage.store_stream("flow", "task", task_id, failing(12 * MiB, RuntimeError("died")))
    assert leftovers(storage) == []
    assert b"".join(storage.retrieve_stream("flow", "task", "kept")) == b"old content"


LONG_KEY = ("flow-" + "f" * 2000, "task-" + "t" * 2000, "id-" + "é" * 2000)


@pytest.mark.parametrize("size", [0, 1, 2 * PART + 3])
def test_keys_of_any_length_stream(storage: DataStorage, size: int) -> None:
    digest = storage.store_stream(*LONG_KEY, blob(size))
    assert digest == digest_of(blob(size))  # the key kept with the object is not content
    assert digest_of(storage.retrieve_stream(*LONG_KEY)) == digest
    assert b"".join(storage.retrieve_stream(*LONG_KEY)) == b"".join(blob(size))
    assert list(storage.iter_keys(LONG_KEY[0])) == [LONG_KEY]
    storage.delete(*LONG_KEY)
    with pytest.raises(ResultNotFound):
        storage.retrieve_stream(*LONG_KEY)
    assert list(storage.iter_keys()) == []


# -- S3: the multipart upload itself --------------------------------------------------------


class Spy:
    """Records the calls made to some methods of a boto3 client, and can make them fail."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, list[BaseException | None]] = {}
        for name in names:
            monkeypatch.setattr(client, name, self._wrap(name, getattr(client, name)))

    def _wrap(self, name: str, real: Any) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            planned = self.fail.get(name)
            if planned:
                exc = planned.pop(0)
                if exc is not None:
                    raise exc
            return real(**kwargs)

        return call

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


MULTIPART = ("create_multipart_upload", "upload_part", "complete_multipart_upload")


def test_parts_are_full_size_but_the_last(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(s3.client, monkeypatch, *MULTIPART, "abort_multipart_upload", "put_object")
    size = 24 * 1000 * 1000
    s3.store_stream("f", "t", "parts", blob(size, chunk=3 * MiB + 1))
    sizes = [len(kwargs["Body"]) for kwargs in spy.named("upload_part")]
    assert sizes[:-1] == [PART] * (len(sizes) - 1) and 0 < sizes[-1] <= PART
    assert sum(sizes) == size and len(sizes) == 5
    assert [k["PartNumber"] for k in spy.named("upload_part")] == [1, 2, 3, 4, 5]
    assert len(spy.named("create_multipart_upload")) == 1
    assert len(spy.named("complete_multipart_upload")) == 1
    assert spy.named("put_object") == spy.named("abort_multipart_upload") == []
    head = s3.client.head_object(Bucket=s3.bucket, Key=s3.object_key("results", "f", "t", "parts"))
    assert head["ContentLength"] == size and head["ETag"].endswith('-5"')


def test_a_long_key_stream_keeps_full_parts(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(s3.client, monkeypatch, "upload_part")
    digest = s3.store_stream(*LONG_KEY, blob(2 * PART))
    sizes = [len(kwargs["Body"]) for kwargs in spy.named("upload_part")]
    # The key's header line rides in the first part, so the content takes a short third one.
    assert sizes[:2] == [PART, PART] and 0 < sizes[2] < 64 * 1024 and len(sizes) == 3
    assert bytes(spy.named("upload_part")[0]["Body"]).startswith(b'["flow-ff')
    assert digest_of(s3.retrieve_stream(*LONG_KEY)) == digest == digest_of(blob(2 * PART))


def test_an_exact_multiple_has_no_empty_last_part(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(s3.client, monkeypatch, "upload_part")
    s3.store_stream("f", "t", "exact", [b"x" * PART, b"y" * PART])
    assert [len(k["Body"]) for k in spy.named("upload_part")] == [PART, PART]


def test_a_stream_shorter_than_a_part_is_one_put(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(s3.client, monkeypatch, "put_object", "create_multipart_upload")
    digest = s3.store_stream("f", "t", "small", blob(PART - 1))
    assert [name for name, _ in spy.calls] == ["put_object"]
    assert digest_of(s3.retrieve_stream("f", "t", "small")) == digest


def test_a_failed_part_aborts_the_upload(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    s3.store_stream("f", "t", "kept", [b"previous"])
    spy = Spy(s3.client, monkeypatch, "upload_part", "abort_multipart_upload")
    denied = ClientError({"Error": {"Code": "AccessDenied"}}, "UploadPart")
    spy.fail["upload_part"] = [None, denied]
    with pytest.raises(StorageError, match="AccessDenied"):
        s3.store_stream("f", "t", "kept", blob(4 * PART))
    assert len(spy.named("upload_part")) == 2  # no more parts after the failure
    assert len(spy.named("abort_multipart_upload")) == 1
    assert pending_uploads(s3) == []
    assert b"".join(s3.retrieve_stream("f", "t", "kept")) == b"previous"


def test_a_transient_part_failure_is_retried(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ConnectionClosedError

    s3.retry_policy = RetryPolicy(attempts=3, backoff=0.001)
    spy = Spy(s3.client, monkeypatch, "upload_part")
    spy.fail["upload_part"] = [None, ConnectionClosedError(endpoint_url="http://127.0.0.1:1")]
    digest = s3.store_stream("f", "t", "flaky", blob(3 * PART))
    assert [k["PartNumber"] for k in spy.named("upload_part")] == [1, 2, 2, 3]
    assert digest_of(s3.retrieve_stream("f", "t", "flaky")) == digest
    assert pending_uploads(s3) == []


def test_more_parts_than_s3_allows_is_refused_and_aborted(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storages.s3.MAX_PARTS", 2)
    with pytest.raises(StorageError, match="part_size"):
        s3.store_stream("f", "t", "huge", blob(3 * PART))
    assert pending_uploads(s3) == []
    with pytest.raises(ResultNotFound):
        s3.retrieve_stream("f", "t", "huge")


def test_retrieve_stream_reads_in_bounded_chunks(s3: S3Storage) -> None:
    s3.store_stream("f", "t", "read", blob(3 * MiB + 5))
    chunks = list(s3.retrieve_stream("f", "t", "read"))
    assert [len(c) for c in chunks] == [MiB, MiB, MiB, 5]


# -- Filesystem ------------------------------------------------------------------------------


def test_filesystem_stream_keeps_the_header_format(tmp_path: Path) -> None:
    with opened(Filesystem(path=str(tmp_path))) as fs:
        fs.store_stream("f", "t", "1", [b"raw ", b"bytes"])
        (path,) = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
        assert path.read_bytes() == b'["f", "t", "1"]\nraw bytes'
        assert list(fs.iter_keys()) == [("f", "t", "1")]


def test_filesystem_stream_memory_stays_flat(tmp_path: Path) -> None:
    import tracemalloc

    with opened(Filesystem(path=str(tmp_path))) as fs:
        chunk = b"z" * MiB
        tracemalloc.start()
        try:
            fs.store_stream("f", "t", "flat", (chunk for _ in range(64)))
            total = sum(len(c) for c in fs.retrieve_stream("f", "t", "flat"))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == 64 * MiB
    assert peak < 24 * MiB  # one read chunk (8 MiB) and change, never the 64 MiB
