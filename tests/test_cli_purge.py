"""``selinon-like purge CONFIG [--storage NAME] [--dry-run]``, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selinon_like import StoragePool

HERE = Path(__file__).resolve().parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selinon_like", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,  # so "import: test_expiry" finds the five-method adapter there
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Two storages holding expired and unexpired records, and one that cannot purge."""
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n"
        "  - name: Files\n    classname: filesystem\n    ttl: 60\n"
        f"    configuration:\n      path: {tmp_path}/files\n"
        "  - name: Embedded\n    classname: sqlite\n    ttl: {results: 60, errors: 60}\n"
        f"    configuration:\n      path: {tmp_path}/db.sqlite\n"
        "  - name: Dict\n    import: test_expiry\n    classname: Dictionary\n"
    )
    with StoragePool.from_yaml(path) as pool:
        for name, expired in (("Files", 3), ("Embedded", 1200)):
            storage = pool.get_connected_storage(name)
            storage.set_record_format(clock=lambda: time.time() - 120)  # stored 2 minutes ago
            storage.store_many([("f", "t", f"old-{n}", n) for n in range(expired)])
            if name == "Embedded":
                storage.store_error(None, "f", "t", "old-0", ValueError("boom"))
            storage.set_record_format(clock=time.time)
            storage.store("f", "t", "fresh", "kept")
    return path


def test_a_dry_run_counts_and_removes_nothing(config: Path) -> None:
    result = run("purge", str(config), "--dry-run", "--json", "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True
    removed = {row["storage"]: row["removed"] for row in summary["storages"]}
    assert removed == {"Files": 3, "Embedded": 1201, "Dict": None}
    again = json.loads(run("purge", str(config), "--dry-run", "--json").stdout)
    assert {row["storage"]: row["removed"] for row in again["storages"]} == removed


def test_purge_removes_the_expired_records_and_prints_a_summary(config: Path) -> None:
    result = run("purge", str(config), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert any("Files" in line and " 3 " in line and "ok" in line for line in lines)
    assert any("Embedded" in line and "1,201" in line for line in lines)
    assert any(
        "Dict" in line and "skipped: the adapter has no purge_expired()" in line for line in lines
    )
    with StoragePool.from_yaml(config) as pool:
        for name in ("Files", "Embedded"):
            storage = pool.get_connected_storage(name)
            assert list(storage.iter_keys()) == [("f", "t", "fresh")]
            assert storage.retrieve("f", "t", "fresh") == "kept"
    second = json.loads(run("purge", str(config), "--json", "-s", "Embedded").stdout)
    assert second["storages"][0]["removed"] == 0


def test_purge_of_one_storage_and_its_errors(config: Path) -> None:
    one = run("purge", str(config), "--storage", "Files", "--json")
    assert one.returncode == 0, one.stderr
    rows = json.loads(one.stdout)["storages"]
    assert [(row["storage"], row["removed"]) for row in rows] == [("Files", 3)]
    named = run("purge", str(config), "--storage", "Dict")
    assert named.returncode == 1 and "FAILED: the adapter has no purge_expired()" in named.stdout
    unknown = run("purge", str(config), "--storage", "Nope")
    assert unknown.returncode == 2 and "no storage named 'Nope'" in unknown.stderr


def test_a_failing_storage_fails_the_run_and_the_others_still_purge(
    config: Path, tmp_path: Path
) -> None:
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()  # a directory where the database file was
    result = run("purge", str(config), "--json", "--no-progress")
    assert result.returncode == 1
    rows = {row["storage"]: row for row in json.loads(result.stdout)["storages"]}
    assert rows["Files"]["removed"] == 3 and rows["Files"]["ok"]
    assert not rows["Embedded"]["ok"] and rows["Embedded"]["error"]
