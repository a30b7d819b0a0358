"""``selinon-like put`` of a value too deeply nested to be a result: exit 2 with a message,
never a RecursionError traceback (the review got exit 1 and a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selinon_like.serializers import MAX_JSON_DEPTH


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "storages.yml"
    path.write_text(
        f"storages:\n  - name: Files\n    classname: filesystem\n"
        f"    configuration:\n      path: {tmp_path / 'files'}\n"
    )
    return path


def put(config: Path, value: str, *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selinon_like", "put", str(config), "f", "t", "1", value],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_nested_beyond_any_stack_is_a_usage_error(config: Path) -> None:
    result = put(config, "-", stdin="[" * 100_000 + "]" * 100_000)
    assert result.returncode == 2, result.stderr
    assert "stdin is nested too deeply" in result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr


def test_json_nested_beyond_the_storable_depth_is_a_usage_error(config: Path) -> None:
    depth = MAX_JSON_DEPTH + 100
    result = put(config, "[" * depth + "]" * depth)
    assert result.returncode == 2, result.stderr
    assert "VALUE cannot be stored" in result.stderr and "levels deep" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_deepest_storable_value_is_stored(config: Path) -> None:
    depth = MAX_JSON_DEPTH
    result = put(config, "[" * depth + "]" * depth)
    assert result.returncode == 0, result.stderr
    got = subprocess.run(
        [sys.executable, "-m", "selinon_like", "get", str(config), "f", "t", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[" * depth + "]" * depth
