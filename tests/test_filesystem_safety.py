"""The filesystem adapter never follows a symbolic link inside its root (a planted link sent
writes and deletes outside it), and reclaims the temporary files of writers that died."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selinon_like import StorageError
from selinon_like.envelope import Expiry
from storages.filesystem import STALE_TEMP_AGE, TEMP_DIR, Filesystem

KEY = ("flow", "task", "id")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "precious").write_text("keep me")
    return path


@pytest.fixture
def fs(root: Path) -> Iterator[Filesystem]:
    storage = Filesystem(path=str(root))
    storage.connect()
    yield storage
    storage.disconnect()


def _outside_unchanged(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "keep me"


@pytest.mark.parametrize("level", ["kind", "flow", "task"])
def test_a_directory_link_inside_the_root_is_refused(
    fs: Filesystem, root: Path, outside: Path, level: str
) -> None:
    fs.store(*KEY, "inside")
    fs.delete(*KEY)
    planted = {"kind": root / "results", "flow": root / "results" / "_flow"}.get(
        level, root / "results" / "_flow" / "_task"
    )
    for path in sorted(planted.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    planted.rmdir()
    planted.symlink_to(outside, target_is_directory=True)
    for call in (
        lambda: fs.store(*KEY, "escaped"),
        lambda: fs.retrieve(*KEY),
        lambda: fs.delete(*KEY),
        lambda: fs.store_stream(*KEY, [b"escaped"]),
    ):
        with pytest.raises(StorageError, match="symbolic link"):
            call()
    _outside_unchanged(outside)


def test_a_file_link_is_neither_read_nor_deleted_through_and_a_store_replaces_it(
    fs: Filesystem, root: Path, outside: Path
) -> None:
    fs.store(*KEY, "inside")
    path = fs._path("results", KEY)
    path.unlink()
    path.symlink_to(outside / "precious")
    with pytest.raises(StorageError, match="symbolic link"):
        fs.retrieve(*KEY)
    with pytest.raises(StorageError, match="symbolic link"):
        fs.delete(*KEY)
    with pytest.raises(StorageError, match="symbolic link"):
        list(fs.retrieve_stream(*KEY))
    fs.store(*KEY, "new")  # the link itself is replaced, its target untouched
    assert not path.is_symlink() and fs.retrieve(*KEY) == "new"
    _outside_unchanged(outside)


def test_a_linked_temporary_directory_is_refused(fs: Filesystem, root: Path, outside: Path) -> None:
    (root / TEMP_DIR).rmdir()
    (root / TEMP_DIR).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link"):
        fs.store(*KEY, 1)
    _outside_unchanged(outside)


def test_listing_and_purging_skip_links(
    root: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Filesystem(path=str(root))
    storage.set_record_format(ttl=Expiry(results=1))
    storage.connect()
    storage.store("flow", "task", "mine", 1)
    # An expired record's file outside, reachable only through the link.
    victim = Filesystem(path=str(outside / "victim"))
    victim.set_record_format(ttl=Expiry(results=1), clock=lambda: time.time() - 10)
    victim.connect()
    victim.store("flow", "task", "theirs", 2)
    (root / "results" / "_evil").symlink_to(outside / "victim" / "results" / "_flow")
    with caplog.at_level(logging.WARNING, logger="selinon_like"):
        assert list(storage.iter_keys()) == [("flow", "task", "mine")]
        storage.set_record_format(clock=lambda: time.time() + 10)
        assert storage.purge_expired() == 1  # its own expired record, not the linked one
    assert "symbolic link: skipped" in caplog.text
    assert (outside / "victim" / "results" / "_flow" / "_task" / "_theirs").is_file()


def test_the_root_itself_may_be_a_link(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "alias").symlink_to(outside, target_is_directory=True)
    storage = Filesystem(path=str(tmp_path / "alias"))
    storage.connect()
    storage.store(*KEY, {"a": 1})
    assert storage.retrieve(*KEY) == {"a": 1}
    assert (outside / "results" / "_flow" / "_task" / "_id").is_file()


# -- temporary files ------------------------------------------------------------------------


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*") if p.is_file()]


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make the adapter's clock run ``seconds`` ahead (ctimes cannot be set back)."""
    import storages.filesystem as module

    monkeypatch.setattr(module, "_now", lambda: time.time() + seconds)


@pytest.mark.timeout(60)
def test_a_killed_writer_leaves_a_temporary_file_that_connect_reclaims(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Filesystem(path=str(root))
    storage.connect()
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: streams a first chunk, then waits to be killed mid-store
        os.close(reading)

        def chunks() -> Iterator[bytes]:
            yield b"x" * 1_000_000
            os.write(writing, b"1")
            time.sleep(60)
            yield b"never"

        try:
            storage.store_stream("flow", "task", "big", chunks())
        finally:
            os._exit(1)
    os.close(writing)
    assert os.read(reading, 1) == b"1"
    os.close(reading)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert len(_temp_files(root)) == 1  # what the review found: 86 MB of these in one run

    Filesystem(path=str(root)).connect()  # a live writer's file is too recent to touch
    assert len(_temp_files(root)) == 1
    _later(monkeypatch, STALE_TEMP_AGE + 60)
    Filesystem(path=str(root)).connect()
    assert _temp_files(root) == []


def test_purge_reclaims_stale_temporary_files_of_both_layouts(
    fs: Filesystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.store(*KEY, 1)
    (root / TEMP_DIR / ".tmp-dead").write_bytes(b"partial")
    legacy = root / "results" / "_flow" / "_task" / ".tmp-old"  # the first release's place
    legacy.write_bytes(b"partial")
    assert fs.purge_expired(dry_run=True) == 0 and len(_temp_files(root)) == 2
    assert fs.purge_expired() == 0 and len(_temp_files(root)) == 2  # not stale yet
    _later(monkeypatch, STALE_TEMP_AGE + 60)
    assert fs.purge_expired() == 0  # temporary files are not records: not counted
    assert _temp_files(root) == []
    assert fs.retrieve(*KEY) == 1


def test_reclaim_can_be_called_with_an_age(fs: Filesystem, root: Path) -> None:
    (root / TEMP_DIR / ".tmp-dead").write_bytes(b"partial")
    (root / TEMP_DIR / "not-ours").write_bytes(b"left alone")
    assert fs.reclaim_temp_files(older_than=3600) == 0
    time.sleep(0.05)
    assert fs.reclaim_temp_files(older_than=0.01) == 1
    assert [p.name for p in (root / TEMP_DIR).iterdir()] == ["not-ours"]


def test_writes_leave_no_temporary_file_behind(fs: Filesystem, root: Path) -> None:
    for index in range(20):
        fs.store("flow", "task", str(index), index)
    fs.store_stream("flow", "task", "s", [b"a", b"b"])
    assert _temp_files(root) == []
    assert sorted(fs.iter_keys())[:2] == [("flow", "task", "0"), ("flow", "task", "1")]


def test_ping_refuses_a_linked_results_directory(fs: Filesystem, root: Path, outside: Path) -> None:
    assert fs.ping()
    (root / "results").rename(root / "moved")
    (root / "results").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link"):
        fs.ping()


def test_every_operation_is_offered_still(fs: Any) -> None:
    assert {"delete", "iter_keys", "store_stream", "purge_expired"} <= fs.capabilities()
