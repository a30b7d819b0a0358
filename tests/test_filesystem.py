"""Filesystem under the contract kit, plus its own guarantees: safe paths, atomic writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selinon_like import ResultNotFound, SerializationError
from selinon_like.testing import LONG_KEYS, StorageContract, connected
from storages.filesystem import Filesystem


class TestFilesystem(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Filesystem]:
        yield from connected(Filesystem(path=str(tmp_path / "store")))  # type: ignore[misc]


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Any]:
    storage = Filesystem(path=str(tmp_path / "root"))
    storage.connect()
    yield storage
    storage.disconnect()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "key",
    [
        ("flow", "task", "../../x"),
        ("..", "..", "../../../../etc/passwd"),
        ("/abs", "/etc", "/passwd"),
        ("a", "b", "c" * 3000),
        ("~x", ".hidden", "%2e%2e"),
    ],
)
def test_no_key_escapes_the_root(fs: Any, tmp_path: Path, key: tuple[str, str, str]) -> None:
    fs.store(*key, {"v": 1})
    assert fs.retrieve(*key) == {"v": 1}
    root = (tmp_path / "root").resolve()
    files = _files(tmp_path)
    assert files, "nothing was written"
    for path in files:
        assert root in path.resolve().parents
        assert len(path.name.encode()) <= 255
    assert key in set(fs.iter_keys(key[0]))


def test_record_id_is_the_path_under_the_root(fs: Any, tmp_path: Path) -> None:
    record_id = fs.store("Flow", "task", "id", 1)
    assert (tmp_path / "root" / record_id).is_file()
    assert not os.path.isabs(record_id) and ".." not in record_id.split("/")


def test_a_failed_write_keeps_the_old_result_and_leaves_no_temp(
    fs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.store("f", "t", "1", {"old": 1})

    def broken_replace(src: str, dst: str, **dir_fds: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(Exception) as info:
        fs.store("f", "t", "1", {"new": 2})
    monkeypatch.undo()
    assert "No space left" in str(info.value)
    assert fs.retrieve("f", "t", "1") == {"old": 1}
    assert not [p for p in _files(tmp_path) if p.name.startswith(".tmp-")]


def test_unserializable_result_creates_no_file(fs: Any, tmp_path: Path) -> None:
    with pytest.raises(SerializationError):
        fs.store("f", "t", "1", {"s": {1}})
    assert _files(tmp_path) == []


def test_errors_live_apart_from_results(fs: Any, tmp_path: Path) -> None:
    fs.store_error({"a": 1}, "f", "t", "1", RuntimeError("boom"))
    with pytest.raises(ResultNotFound):
        fs.retrieve("f", "t", "1")
    assert list(fs.iter_keys()) == []
    assert all("errors" in p.parts for p in _files(tmp_path))


def test_ping_fails_when_the_root_is_gone(fs: Any, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(tmp_path / "root")
    with pytest.raises(Exception, match="not a directory"):
        fs.ping()


def test_fsync_option(tmp_path: Path) -> None:
    storage: Any = Filesystem(path=str(tmp_path), fsync="true")
    storage.connect()
    storage.store("f", "t", "1", [1])
    assert storage.fsync is True and storage.retrieve("f", "t", "1") == [1]


def test_delete_many_counts_what_was_there(fs: Any, tmp_path: Path) -> None:
    fs.store_many([("f", "t", str(i), i) for i in range(5)])
    fs.store_error(None, "f", "t", "0", RuntimeError("kept"))
    assert fs.delete_many([("f", "t", "0"), ("f", "t", "3"), ("f", "t", "missing")]) == 2
    assert sorted(fs.iter_keys()) == [("f", "t", "1"), ("f", "t", "2"), ("f", "t", "4")]
    assert fs.retrieve_error("f", "t", "0")["message"] == "kept"


def test_short_keys_keep_the_first_release_layout(fs: Any, tmp_path: Path) -> None:
    root = tmp_path / "root"
    # A file the first release wrote: the header line with the key, then the bytes.
    old = root / "results" / "_f" / "_t" / "_old"
    old.parent.mkdir(parents=True)
    old.write_bytes(b'["f", "t", "old"]\n' + fs.serializer.dumps({"v": 1}))
    assert fs.retrieve("f", "t", "old") == {"v": 1}
    assert fs.store("f", "t", "new", [1]) == "results/_f/_t/_new"
    assert (root / "results/_f/_t/_new").read_bytes() == b'["f", "t", "new"]\n[1]'
    assert sorted(fs.iter_keys("f")) == [("f", "t", "new"), ("f", "t", "old")]


@pytest.mark.parametrize("key", LONG_KEYS)
def test_keys_of_any_length_are_named_within_the_file_name_limits(
    fs: Any, key: tuple[str, str, str]
) -> None:
    # (Their round trips, listing and deletes: the kit's ListingContract, on every adapter.)
    record_id = fs.store(*key, {"v": 1})
    assert len(record_id.encode()) < 1024
    assert all(len(part.encode()) <= 255 for part in record_id.split("/"))
    assert fs.retrieve(*key) == {"v": 1}
    assert list(fs.iter_keys(key[0])) == [key]


def test_a_file_holding_another_key_is_not_read_as_this_one(fs: Any, tmp_path: Path) -> None:
    key, other = ("f", "t", "x" * 2000), ("f", "t", "y" * 2000)
    root = tmp_path / "root"
    # What a SHA-256 collision of two long parts would look like: the other key's file here.
    (root / fs.store(*other, 1)).rename(root / fs.store(*key, 2))
    with pytest.raises(ResultNotFound):
        fs.retrieve(*key)
    with pytest.raises(ResultNotFound):
        fs.retrieve_stream(*key)
