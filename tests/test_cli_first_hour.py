"""The command line as a new user meets it (issue 20, SPEC section 13): users' text printed
literally, a custom adapter from the current directory, error records listed, messages that
say what to do, -v/-q, --json everywhere, SELINON_LIKE_CONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from test_first_hour import KVFILE  # the README's five-method adapter

from selinon_like import StoragePool

ROOT = Path(__file__).resolve().parent.parent
# The installed console script: unlike `python -m`, it has only its own directory on sys.path.
SCRIPT = Path(sys.executable).with_name("selinon-like")


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SELINON_LIKE_CONFIG"}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        cwd=cwd,
        env={**environment, **(env or {})},
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# -- users' text is never markup ----------------------------------------------------------------

ODD_MODULE = """\
    from selinon_like.importing import missing_driver
    from storages.memory import InMemoryStorage


    class NeedsDriver(InMemoryStorage):
        def connect(self):
            error = ModuleNotFoundError("No module named 'pymongo'", name="pymongo")
            raise missing_driver(error, self.storage_name)
    """


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    """A configuration whose names, values, keys and messages hold square brackets."""
    write(tmp_path / "odd_adapters.py", ODD_MODULE)
    return write(
        tmp_path / "odd[1].yml",
        f"""\
        storages:
          - name: "[bold]Files"
            classname: filesystem
            configuration: {{path: "{tmp_path}/[red]files"}}
          - name: "[i]Copy"
            classname: filesystem
            configuration: {{path: "{tmp_path}/copy"}}
          - name: Mongo
            import: odd_adapters
            classname: NeedsDriver
        """,
    )


def test_every_table_prints_brackets_literally(
    odd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    with StoragePool.from_yaml(odd) as pool:
        files = pool.get_connected_storage("[bold]Files")
        files.store("[bold]flow", "[red]task", "[link=x]id[/link]", {"[b]": "[/b]"})
        try:
            raise ValueError("failed [bold]loudly[/bold]")
        except ValueError:
            files.store_error(None, "[bold]flow", "[red]task", "[err]", sys.exc_info())
    config = str(odd)

    check = cli("check", config, cwd=tmp_path)
    assert check.returncode == 1
    assert "[bold]Files" in check.stdout and "odd[1].yml" in check.stdout
    assert "pip install 'selinon-like[mongodb]'" in check.stdout

    shown = cli("show-config", config, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "storage [bold]Files" in shown.stdout and "/[red]files" in shown.stdout

    listed = cli("ls", config, "-s", "[bold]Files", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "│ [bold]Files │ [bold]flow │ [red]task │ [link=x]id[/link] │" in listed.stdout
    errors = cli("ls", config, "-s", "[bold]Files", "--errors", cwd=tmp_path)
    assert "│ [bold]flow │ [red]task │ [err]" in errors.stdout

    got = cli(
        "get",
        config,
        "[bold]flow",
        "[red]task",
        "[err]",
        "-s",
        "[bold]Files",
        "--error",
        cwd=tmp_path,
    )
    assert json.loads(got.stdout)["message"] == "failed [bold]loudly[/bold]"

    copied = cli("copy", f"{config}:[bold]Files", f"{config}:[i]Copy", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert f"copy {config}:[bold]Files → {config}:[i]Copy" in copied.stdout
    assert "copy [bold]Files → [i]Copy" in copied.stderr  # the progress bar's label


# -- a custom adapter of five methods, from the current directory -------------------------------


def test_check_imports_a_five_method_adapter_from_the_current_directory(tmp_path: Path) -> None:
    write(tmp_path / "kvfile.py", KVFILE)
    config = write(
        tmp_path / "kv.yml",
        """\
        storages:
          - name: Kv
            import: kvfile
            classname: KvFile
            configuration: {path: kv.jsonl}
        """,
    )
    result = cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (read only: KvFile.delete() is not implemented" in result.stdout
    assert not (tmp_path / "kv.jsonl").exists()  # nothing left behind
    as_json = json.loads(cli("check", str(config), "--json", cwd=tmp_path).stdout)
    assert as_json[0]["ok"] is True and "read only" in as_json[0]["note"]

    put = cli("put", str(config), "f", "t", "1", '{"a": 1}', cwd=tmp_path)  # the only storage
    assert put.returncode == 0, put.stderr
    assert cli("get", str(config), "f", "t", "1", "--json", cwd=tmp_path).stdout == '{"a":1}\n'

    elsewhere = cli("check", str(config), cwd=ROOT)  # kvfile.py is not here
    assert elsewhere.returncode == 2
    assert "module 'kvfile' cannot be imported" in elsewhere.stderr
    assert "run from the directory holding kvfile.py" in elsewhere.stderr


# -- ls --errors and --limit ----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return write(
        tmp_path / "files.yml",
        f"""\
        storages:
          - name: Files
            classname: filesystem
            configuration: {{path: {tmp_path}/files}}
          - name: Memory
            classname: memory
        tasks:
          - {{name: fetch, storage: Files}}
        """,
    )


def fail(config: Path, *keys: tuple[str, str, str]) -> None:
    with StoragePool.from_yaml(config) as pool:
        for key in keys:
            try:
                raise TimeoutError(f"upstream timed out for {key[2]}")
            except TimeoutError:
                pool.get_connected_storage("Files").store_error({}, *key, sys.exc_info())


def test_ls_lists_error_records_and_limits(files: Path) -> None:
    with StoragePool.from_yaml(files) as pool:
        pool.get_connected_storage("Files").store_many(
            [("nightly", "fetch", f"ok-{i}", i) for i in range(5)]
        )
    fail(files, ("nightly", "fetch", "bad-2"), ("nightly", "fetch", "bad-1"), ("other", "x", "y"))

    errors = cli("ls", str(files), "--errors", "--json")
    assert errors.returncode == 0, errors.stderr
    assert [(row["flow_name"], row["task_id"]) for row in json.loads(errors.stdout)] == [
        ("nightly", "bad-1"),
        ("nightly", "bad-2"),
        ("other", "y"),
    ]
    table = cli("ls", str(files), "--errors", "--flow", "nightly")
    assert "2 error record keys" in table.stdout and "bad-1" in table.stdout

    limited = cli("ls", str(files), "--limit", "2", "--json")
    assert [row["task_id"] for row in json.loads(limited.stdout)] == ["ok-0", "ok-1"]
    titled = cli("ls", str(files), "--limit", "3")
    assert "the first 3 of 5 keys" in titled.stdout
    assert cli("ls", str(files), "--limit", "0").returncode == 2


# -- messages that say what to do -----------------------------------------------------------------


def test_put_of_an_unquoted_word_says_how_to_quote_it(files: Path) -> None:
    result = cli("put", str(files), "f", "fetch", "1", "hello")
    assert result.returncode == 2
    assert "VALUE is not valid JSON" in result.stderr
    assert """to store 'hello', write '"hello"'""" in result.stderr
    quoted = cli("put", str(files), "f", "fetch", "1", '"hello"')
    assert quoted.returncode == 0, quoted.stderr


def test_put_and_copy_warn_about_memory_storages(files: Path) -> None:
    put = cli("put", str(files), "f", "t", "1", "1", "-s", "Memory")
    assert put.returncode == 0
    assert "WARNING" in put.stderr and "Memory is a memory storage" in put.stderr
    assert "gone" in put.stderr
    quiet = cli("-q", "put", str(files), "f", "t", "1", "1", "-s", "Memory")
    assert quiet.returncode == 0 and quiet.stderr == ""

    from_memory = cli("copy", f"{files}:Memory", f"{files}:Files", "--no-progress")
    assert from_memory.returncode == 0
    assert "SRC Memory is a memory storage" in from_memory.stderr
    into_memory = cli("copy", f"{files}:Files", f"{files}:Memory", "--no-progress")
    assert "DST Memory is a memory storage" in into_memory.stderr


RETRIED = """\
    from storages.memory import InMemoryStorage


    class Refusing(InMemoryStorage):
        def retrieve(self, flow_name, task_name, task_id):
            raise ConnectionRefusedError("refused [bold]by[/bold] the server")
    """


def test_retry_warnings_go_through_logging_with_v_and_q(tmp_path: Path) -> None:
    write(tmp_path / "refusing.py", RETRIED)
    config = write(
        tmp_path / "r.yml",
        """\
        storages:
          - name: R
            import: refusing
            classname: Refusing
            retry: {attempts: 3, backoff: 0, jitter: false}
        """,
    )
    plain = cli("get", str(config), "f", "t", "1", cwd=tmp_path)
    assert plain.returncode == 1
    warnings = [line for line in plain.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, plain.stderr
    assert "R: retrieve of flow 'f', task 't', task id '1' failed" in warnings[0]
    assert "refused [bold]by[/bold] the server" in warnings[0] and "retry 1 of 2" in warnings[0]
    assert "error: R: retrieve of flow 'f', task 't', task id '1' failed" in plain.stderr

    for quiet in (["-q", "get"], ["get", "-q"]):  # before or after the command name
        args = [*quiet, str(config), "f", "t", "1"]
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 1
        assert "WARNING" not in result.stderr and "error: R:" in result.stderr


# -- --json on every command ----------------------------------------------------------------------


def test_every_command_speaks_json(files: Path, tmp_path: Path) -> None:
    config = str(files)
    outputs: dict[str, Any] = {}
    for name, args in {
        "check": ["check", config],
        "show-config": ["show-config", config],
        "put": ["put", config, "f", "fetch", "1", "[1, 2]"],
        "get": ["get", config, "f", "fetch", "1"],
        "ls": ["ls", config],
        "copy": ["copy", f"{config}:Files", f"{config}:Memory", "--no-progress"],
        "delete": ["delete", config, "f", "fetch", "1"],
        "purge": ["purge", config, "--no-progress"],
        "demo": ["demo", "--config", config],
    }.items():
        result = cli(*args, "--json", env={"SELINON_LIKE_DATA": str(tmp_path / "data")})
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = json.loads(result.stdout)
    assert outputs["get"] == [1, 2]
    assert outputs["delete"] == {
        "storage": "Files",
        "deleted": {"flow_name": "f", "task_name": "fetch", "task_id": "1"},
    }
    assert outputs["demo"]["ok"] is True and outputs["demo"]["read_back"] == 100
    assert {row["storage"] for row in outputs["demo"]["checks"]} == {"Files", "Memory"}


# -- SELINON_LIKE_CONFIG --------------------------------------------------------------------------


def test_config_comes_from_the_environment_when_left_out(files: Path, tmp_path: Path) -> None:
    env = {"SELINON_LIKE_CONFIG": str(files)}
    assert cli("put", "f", "fetch", "1", '{"x": 1}', env=env).returncode == 0
    got = cli("get", "f", "fetch", "1", "--json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"x": 1}
    listed = cli("ls", "--json", "-s", "Files", env=env)
    assert [row["task_id"] for row in json.loads(listed.stdout)] == ["1"]
    assert cli("check", env=env).returncode == 0
    copied = cli("copy", "Files", "Memory", "--no-progress", "--json", env=env)
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)["results"]["copied"] == 1

    # A file given wins; a forgotten argument after a file is not filled in from the variable.
    other = write(tmp_path / "other.yml", "storages:\n  - name: Solo\n    classname: memory\n")
    shown = cli("show-config", str(other), "--json", env=env)
    assert [entry["name"] for entry in json.loads(shown.stdout)["storages"]] == ["Solo"]
    forgot = cli("get", str(files), "f", "fetch", env=env)
    assert forgot.returncode == 2 and "Missing argument 'TASK_ID'" in forgot.stderr
    assert cli("check").returncode == 2  # neither given


def test_the_shipped_default_is_the_repository_default() -> None:
    shipped = ROOT / "selinon_like" / "data" / "storages.yml"
    assert shipped.read_bytes() == (ROOT / "config" / "storages.yml").read_bytes()
