"""The command line, run as a subprocess as a person or a script would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selinon_like", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    path = tmp_path / "good.yml"
    path.write_text(
        "storages:\n"
        "  - name: Memory\n    classname: memory\n"
        "  - name: Files\n    classname: filesystem\n"
        f"    configuration:\n      path: {tmp_path}/f\n"
    )
    return path


def test_check_passes_and_prints_a_row_per_storage(good_config: Path) -> None:
    result = run("check", str(good_config))
    assert result.returncode == 0, result.stderr
    assert "Memory" in result.stdout and "Files" in result.stdout
    assert result.stdout.count(" ok ") == 2


def test_check_json_for_scripts(good_config: Path) -> None:
    result = run("check", str(good_config), "--json")
    rows = json.loads(result.stdout)
    assert [row["storage"] for row in rows] == ["Memory", "Files"]
    assert all(row["ok"] and row["latency_ms"] >= 0 for row in rows)


def test_check_fails_with_exit_1_and_masks_secrets(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    path = tmp_path / "bad.yml"
    path.write_text(
        "storages:\n"
        "  - name: Memory\n    classname: memory\n"
        "  - name: Broken\n    classname: filesystem\n    retry: {attempts: 1}\n"
        f"    configuration:\n      path: {blocked}/sub\n"
        "  - name: Guarded\n    import: test_pool\n    classname: BrokenStorage\n"
        "    retry: {attempts: 1}\n    configuration:\n      password: s3cr3t-value\n"
    )
    result = run("check", str(path), cwd=Path(__file__).parent)
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "ok" in result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr


def test_check_reports_a_config_error_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "typo.yml"
    path.write_text("storages:\n  - name: M\n    classname: memory\n    port: 1\n")
    result = run("check", str(path))
    assert result.returncode == 2
    assert "line 4" in result.stderr and "put `port` under `configuration`" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.yml"))
    assert result.returncode == 2
    assert "nope.yml" in result.stderr
