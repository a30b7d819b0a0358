"""Type checkers see the pool's methods with their real signatures, on an instance and on the
class (``_PoolMethod`` must not erase them): strict mypy runs on a small program using the pool
and must flag exactly the wrong calls."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

pytestmark = pytest.mark.slow

PROGRAM = """\
from selinon_like import StoragePool

pool = StoragePool.from_dict({"storages": [{"name": "M", "classname": "memory"}]})
reveal_type(pool.store)
reveal_type(StoragePool.store)
record_id: str = pool.store("flow", "task", "id", {"any": "result"})
StoragePool.store("flow", "task", "id", [1, 2])
message: str = pool.retrieve_error("flow", "task", "id")["message"]
healthy: bool = all(row.ok for row in StoragePool.check(write=True))
pool.store(1, 2)  # wrong: ints, and two arguments missing
StoragePool.store(1, 2)  # wrong: the same call on the default pool
count: int = pool.names()  # wrong: a list of names
"""
WRONG = {10, 11, 12}


def test_strict_mypy_flags_wrong_calls_on_the_pool_and_its_class(tmp_path: Path) -> None:
    program = tmp_path / "uses_pool.py"
    program.write_text(PROGRAM)
    # Our own settings only: not the project's (its `packages` would be checked as well).
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    stdout, stderr, _status = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--show-column-numbers",
            str(program),
        ]
    )
    assert stderr == ""
    # Only lines about the program: a library module's own findings are not this test's.
    found: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(rf"{re.escape(str(program))}:(\d+):\d+: (\w+): (.*)", line)
        if match:
            found.setdefault(int(match[1]), []).append(f"{match[2]}: {match[3]}")

    signature = '"def (flow_name: str, task_name: str, task_id: str, result: Any) -> str"'
    assert found.pop(4) == [f"note: Revealed type is {signature}"]
    assert found.pop(5) == [f"note: Revealed type is {signature}"]
    arg_type = 'error: Argument 1 has incompatible type "int"; expected "str"  [arg-type]'
    for wrong in (10, 11):
        assert arg_type in found[wrong], textwrap.indent(stdout, "  ")
        assert "error: Too few arguments  [call-arg]" in found[wrong]
    assert any("list[str]" in message for message in found[12])
    assert set(found) == WRONG, textwrap.indent(stdout, "  ")
