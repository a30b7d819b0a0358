"""copy_storage, called directly between memory and filesystem storages (the CLI's ``copy`` is
tested through the command line in test_cli.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selinon_like import DataStorage, ResultNotFound, StoragePool
from selinon_like.error_records import ErrorRecord
from selinon_like.keys import Key
from selinon_like.migrate import CopyFailure, CopyInterrupted, copy_storage, count_items
from storages.filesystem import Filesystem


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[StoragePool]:
    """Mem (JSON) and Pickles (pickle) in memory, Files (JSON) on disk."""
    with StoragePool.from_dict(
        {
            "storages": [
                {"name": "Mem", "classname": "memory"},
                {"name": "Pickles", "classname": "memory", "serializer": "pickle"},
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path / "files")},
                },
            ]
        }
    ) as pool:
        yield pool


def fail_task(storage: DataStorage, key: Key, node_args: Any = None) -> ErrorRecord:
    try:
        raise ValueError(f"boom {key[2]}")
    except ValueError:
        storage.store_error(node_args, *key, sys.exc_info())
    return storage.retrieve_error(*key)


def everything(storage: DataStorage) -> dict[Key, Any]:
    return storage.retrieve_many(list(storage.iter_keys()))


def test_copies_results_and_error_records_exactly(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Mem"), pool.get_connected_storage("Files")
    items = [("flow", f"t{i % 3}", str(i), {"i": i, "nested": [i, None]}) for i in range(23)]
    src.store_many(items)
    with_result = fail_task(src, ("flow", "t0", "0"), {"attempt": 2})
    error_only = fail_task(src, ("flow", "t1", "failed"))

    report = copy_storage(src, dst, batch_size=5)

    assert report.ok
    assert (report.results.copied, report.results.skipped, report.results.failed) == (23, 0, 0)
    assert (report.errors.copied, report.errors.skipped, report.errors.failed) == (2, 0, 0)
    assert report.failures == []
    assert everything(dst) == {item[:3]: item[3] for item in items}
    assert dst.retrieve_error("flow", "t0", "0") == with_result  # time and traceback too
    assert dst.retrieve_error("flow", "t1", "failed") == error_only
    with pytest.raises(ResultNotFound):
        dst.retrieve("flow", "t1", "failed")  # an error record alone makes up no result


def test_a_rerun_skips_what_is_already_there(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Pickles"), pool.get_connected_storage("Files")
    src.store_many([("f", "t", "list", [1, 2]), ("f", "t", "tuple", (1, "a"))])
    fail_task(src, ("f", "t", "list"))
    assert copy_storage(src, dst).ok

    again = copy_storage(src, dst)

    # The tuple comes back from the JSON destination as a list: still equal content.
    assert (again.results.copied, again.results.skipped, again.results.failed) == (0, 2, 0)
    assert (again.errors.copied, again.errors.skipped, again.errors.failed) == (0, 1, 0)
    assert again.ok


def test_different_content_fails_without_overwrite_and_is_replaced_with_it(
    pool: StoragePool,
) -> None:
    src, dst = pool.get_connected_storage("Mem"), pool.get_connected_storage("Files")
    src.store_many([("f", "t", str(i), i) for i in range(4)])
    dst.store("f", "t", "2", "changed")
    record = fail_task(src, ("f", "t", "err"))
    dst.store_error_record({**record, "message": "another failure"})

    report = copy_storage(src, dst)

    assert not report.ok
    assert (report.results.copied, report.results.skipped, report.results.failed) == (3, 0, 1)
    assert (report.errors.copied, report.errors.failed) == (0, 1)
    assert sorted((f.what, f.task_id) for f in report.failures) == [
        ("error record", "err"),
        ("result", "2"),
    ]
    assert all("holds a different one" in failure.error for failure in report.failures)
    assert dst.retrieve("f", "t", "2") == "changed"
    assert dst.retrieve_error("f", "t", "err")["message"] == "another failure"

    forced = copy_storage(src, dst, overwrite=True)

    assert forced.ok
    assert (forced.results.copied, forced.errors.copied) == (4, 1)
    assert dst.retrieve("f", "t", "2") == 2
    assert dst.retrieve_error("f", "t", "err") == record


def test_an_item_the_destination_refuses_fails_alone(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Pickles"), pool.get_connected_storage("Mem")
    src.store_many([("f", "t", str(i), {"i": i}) for i in range(6)])
    src.store("f", "t", "set", {1, 2})  # pickle keeps a set; the JSON destination cannot

    report = copy_storage(src, dst, batch_size=50)

    assert (report.results.copied, report.results.skipped, report.results.failed) == (6, 0, 1)
    (failure,) = report.failures
    assert (failure.what, failure.flow_name, failure.task_name, failure.task_id) == (
        "result",
        "f",
        "t",
        "set",
    )
    assert "set" in failure.error
    assert sorted(everything(dst)) == [("f", "t", str(i)) for i in range(6)]


def test_an_unreadable_source_item_fails_alone(pool: StoragePool, tmp_path: Path) -> None:
    src, dst = pool.get_connected_storage("Files"), pool.get_connected_storage("Mem")
    src.store_many([("f", "t", str(i), i) for i in range(4)])
    (victim,) = [p for p in (tmp_path / "files").rglob("*") if p.is_file() and p.name.endswith("2")]
    header = victim.read_bytes().split(b"\n", 1)[0]
    victim.write_bytes(header + b"\n{not json")
    reasons: list[BaseException] = []

    def describe(exc: BaseException) -> str:
        reasons.append(exc)
        return "unreadable"

    report = copy_storage(src, dst, describe=describe)

    assert (report.results.copied, report.results.failed) == (3, 1)
    assert report.failures == [CopyFailure("result", "f", "t", "2", "unreadable")]
    assert len(reasons) == 1
    assert everything(dst) == {("f", "t", "0"): 0, ("f", "t", "1"): 1, ("f", "t", "3"): 3}


def test_flow_errors_and_failures_listed_narrow_the_copy(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Pickles"), pool.get_connected_storage("Mem")
    src.store_many([("a", "t", str(i), {i}) for i in range(5)])  # sets: every one fails
    src.store("b", "t", "1", "other flow")
    fail_task(src, ("a", "t", "0"))

    report = copy_storage(src, dst, flow="a", errors=False, failures_listed=2)

    assert (report.results.copied, report.results.failed) == (0, 5)
    assert len(report.failures) == 2  # all five counted, two listed
    assert report.errors.copied == report.errors.failed == 0
    assert list(dst.iter_keys()) == [] and list(dst.iter_error_keys()) == []


def test_progress_reports_each_batch_and_count_items_is_their_total(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Mem"), pool.get_connected_storage("Files")
    src.store_many([("f", "t", str(i), i) for i in range(12)])
    fail_task(src, ("f", "t", "only-failed"))
    done: list[int] = []

    copy_storage(src, dst, batch_size=5, progress=done.append)

    assert done == [5, 5, 2, 1]  # results, then error records
    assert count_items(src) == sum(done) == 13
    assert count_items(src, errors=False) == 12
    assert count_items(src, flow="nope") == 0


def test_an_interruption_carries_the_report_and_a_rerun_finishes(pool: StoragePool) -> None:
    src, dst = pool.get_connected_storage("Mem"), pool.get_connected_storage("Files")
    src.store_many([("f", "t", str(i), i) for i in range(10)])

    def stop_after_first_batch(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(CopyInterrupted) as info:
        copy_storage(src, dst, batch_size=4, progress=stop_after_first_batch)

    assert isinstance(info.value, KeyboardInterrupt)  # uncaught, it stops a program as Ctrl-C
    assert info.value.report.interrupted and not info.value.report.ok
    assert info.value.report.results.copied == 4
    assert len(everything(dst)) == 4
    rerun = copy_storage(src, dst)
    assert (rerun.results.copied, rerun.results.skipped) == (6, 4)
    assert everything(dst) == everything(src)


class OldFiles(Filesystem):
    """A custom adapter without error listing or verbatim record storing."""

    def iter_error_keys(self, flow_name: str | None = None) -> Iterator[Key]:
        return DataStorage.iter_error_keys(self, flow_name)

    def store_error_record(self, record: ErrorRecord) -> str:
        return DataStorage.store_error_record(self, record)


def test_adapters_without_error_listing_copy_the_records_beside_results(tmp_path: Path) -> None:
    src, dst = OldFiles(path=str(tmp_path / "a")), OldFiles(path=str(tmp_path / "b"))
    src.connect()
    dst.connect()
    src.store("f", "t", "both", 1)
    original = fail_task(src, ("f", "t", "both"), {"n": 1})
    fail_task(src, ("f", "t", "error-only"))  # not listed: no result beside it

    report = copy_storage(src, dst)

    assert report.ok and report.errors.copied == 1
    record = dst.retrieve_error("f", "t", "both")
    assert (record["exception_type"], record["message"], record["node_args"]) == (
        "builtins.ValueError",
        "boom both",
        {"n": 1},
    )
    assert f"first recorded at {original['time']}" in record["traceback"]
    with pytest.raises(ResultNotFound):
        dst.retrieve_error("f", "t", "error-only")
    assert copy_storage(src, dst).errors.skipped == 1  # a rebuilt record counts as equal


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"failures_listed": -1}, "failures_listed cannot be negative"),
    ],
)
def test_bad_arguments_are_refused(pool: StoragePool, kwargs: Any, message: str) -> None:
    src, dst = pool.get_connected_storage("Mem"), pool.get_connected_storage("Files")
    with pytest.raises(ValueError, match=message):
        copy_storage(src, dst, **kwargs)
    with pytest.raises(ValueError, match="same storage instance"):
        copy_storage(src, src)
