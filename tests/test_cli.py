"""The command line, run as a subprocess as a person or a script would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from selinon_like import StoragePool
from selinon_like.errors import ResultNotFound


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


# -- helpers for the commands below -----------------------------------------------------------


def cli(
    *args: str, stdin: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selinon_like", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def write_config(path: Path, storages: str, tasks: str = "") -> Path:
    path.write_text("storages:\n" + textwrap.dedent(storages) + textwrap.dedent(tasks))
    return path


@pytest.fixture
def files_config(tmp_path: Path) -> Path:
    """Two filesystem storages; task `fetch` is routed to Files."""
    return write_config(
        tmp_path / "files.yml",
        f"""\
          - name: Files
            classname: filesystem
            configuration: {{path: {tmp_path}/files}}
          - name: Other
            classname: filesystem
            serializer: pickle
            configuration: {{path: {tmp_path}/other}}
        """,
        "tasks:\n  - {name: fetch, storage: Files}\n",
    )


def fill(config: Path, storage: str, items: list[tuple[str, str, str, Any]]) -> None:
    with StoragePool.from_yaml(config) as pool:
        pool.get_connected_storage(storage).store_many(items)


def fail_task(config: Path, storage: str, key: tuple[str, str, str], node_args: Any) -> None:
    with StoragePool.from_yaml(config) as pool:
        try:
            raise ValueError(f"boom {key[2]}")
        except ValueError:
            pool.get_connected_storage(storage).store_error(node_args, *key, sys.exc_info())


def read_all(config: Path, storage: str) -> dict[tuple[str, str, str], Any]:
    with StoragePool.from_yaml(config) as pool:
        target = pool.get_connected_storage(storage)
        return target.retrieve_many(list(target.iter_keys()))


# -- show-config ------------------------------------------------------------------------------


def test_show_config_resolves_and_masks(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "s.yml",
        """\
          - name: Cache
            classname: redis
            serializer: pickle
            cache: {max_size: 10, ttl: 5}
            retry: {attempts: 5, backoff: 0.2}
            configuration:
              url: redis://:${SECRET_PW}@127.0.0.1:6379/9
          - name: Files
            classname: filesystem
            configuration:
              path: ${DATA_DIR:-/srv}/r
        """,
        "tasks:\n  - {name: fetch, storage: Cache}\n",
    )
    env = {"SECRET_PW": "s3cr3t-pw", "DATA_DIR": ""}
    table = cli("show-config", str(config), env=env)
    assert table.returncode == 0, table.stderr
    assert (
        "storages.redis.Redis" in table.stdout and "storages.filesystem.Filesystem" in table.stdout
    )
    assert "redis://:***@127.0.0.1:6379/9" in table.stdout
    assert '"/srv/r"' in table.stdout  # resolved: the default of ${DATA_DIR:-/srv}
    assert "5 attempts, backoff 0.2 s" in table.stdout and "10 entries, ttl 5" in table.stdout
    assert "s3cr3t-pw" not in table.stdout + table.stderr

    as_json = cli("show-config", str(config), "--json", env=env)
    assert as_json.returncode == 0
    assert "s3cr3t-pw" not in as_json.stdout
    document = json.loads(as_json.stdout)
    cache, files = document["storages"]
    assert cache == {
        "name": "Cache",
        "adapter": "storages.redis.Redis",
        "serializer": "pickle",
        "cache": {"max_size": 10, "ttl": 5},
        "retry": {"attempts": 5, "backoff": 0.2, "max_backoff": 2.0, "jitter": True},
        "configuration": {"url": "redis://:***@127.0.0.1:6379/9"},
        "tasks": ["fetch"],
    }
    assert (files["cache"], files["serializer"], files["tasks"]) == (None, "json", [])
    assert document["tasks"] == {"fetch": "Cache"}


def test_show_config_of_a_wrong_file_is_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "w.yml", "  - name: M\n    classname: nosuchadapter\n")
    result = cli("show-config", str(config))
    assert result.returncode == 2
    assert "nosuchadapter" in result.stderr and "Traceback" not in result.stderr


# -- put / get / delete -----------------------------------------------------------------------


def test_put_get_delete_round_trip(files_config: Path) -> None:
    config = str(files_config)
    put = cli("put", config, "flow", "fetch", "id 1", '{"status": 200, "body": "é", "n": [1, 2]}')
    assert put.returncode == 0, put.stderr
    assert put.stdout.startswith("stored flow fetch id 1 in Files")  # routed by `tasks:`

    pretty = cli("get", config, "flow", "fetch", "id 1")
    assert pretty.returncode == 0
    assert json.loads(pretty.stdout) == {"status": 200, "body": "é", "n": [1, 2]}
    assert pretty.stdout.count("\n") > 3  # indented for people
    compact = cli("get", config, "flow", "fetch", "id 1", "--json")
    assert compact.stdout == '{"status":200,"body":"é","n":[1,2]}\n'

    # Not in the other storage: exit 3, the message names the key.
    elsewhere = cli("get", config, "flow", "fetch", "id 1", "--storage", "Other")
    assert elsewhere.returncode == 3
    assert "not found" in elsewhere.stderr and "'id 1'" in elsewhere.stderr

    deleted = cli("delete", config, "flow", "fetch", "id 1")
    assert deleted.returncode == 0 and "deleted flow fetch id 1 from Files" in deleted.stdout
    assert cli("get", config, "flow", "fetch", "id 1").returncode == 3
    again = cli("delete", config, "flow", "fetch", "id 1")
    assert again.returncode == 3 and "no result stored" in again.stderr


def test_put_reads_stdin_and_reports_json(files_config: Path) -> None:
    stdin = json.dumps({"big": list(range(1000))})
    put = cli(
        "put", str(files_config), "f", "parse", "1", "-", "-s", "Other", "--json", stdin=stdin
    )
    assert put.returncode == 0, put.stderr
    outcome = json.loads(put.stdout)
    assert outcome["storage"] == "Other" and outcome["record_id"]
    got = cli("get", str(files_config), "f", "parse", "1", "-s", "Other", "--json")
    assert json.loads(got.stdout) == {"big": list(range(1000))}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["f", "fetch", "1", "{not json"], "VALUE is not valid JSON"),
        (["f", "fetch", "1", "NaN"], "NaN is not a JSON value"),
        (["f", "parse", "1", "1"], "choose one with --storage NAME (Files, Other)"),
        (["f", "fetch", "1", "1", "--storage", "Nope"], "no storage named 'Nope'"),
        (["f", "fetch", "", "1"], "invalid key: task_id must not be empty"),
    ],
)
def test_put_usage_errors_are_exit_2(files_config: Path, args: list[str], message: str) -> None:
    result = cli("put", str(files_config), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_put_from_empty_stdin_is_exit_2(files_config: Path) -> None:
    result = cli("put", str(files_config), "f", "fetch", "1", "-", stdin="")
    assert result.returncode == 2 and "stdin is not valid JSON" in result.stderr


def test_get_error_record(files_config: Path) -> None:
    fail_task(files_config, "Files", ("flow", "fetch", "7"), {"url": "https://example.org"})
    result = cli("get", str(files_config), "flow", "fetch", "7", "--error")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["exception_type"] == "builtins.ValueError"
    assert record["message"] == "boom 7" and record["node_args"] == {"url": "https://example.org"}
    assert cli("get", str(files_config), "flow", "fetch", "7").returncode == 3  # no result
    assert cli("get", str(files_config), "flow", "fetch", "8", "--error").returncode == 3


def test_a_failing_storage_is_exit_1_without_secrets(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "broken.yml",
        """\
          - name: Guarded
            import: test_pool
            classname: BrokenStorage
            retry: {attempts: 1}
            configuration: {password: s3cr3t-value}
        """,
    )
    tests_dir = Path(__file__).parent
    for command in (
        ["get", str(config), "f", "t", "1"],
        ["put", str(config), "f", "t", "1", "{}"],
        ["delete", str(config), "f", "t", "1"],
    ):
        result = cli(*command, cwd=tests_dir)
        assert result.returncode == 1, (command, result.stderr)
        assert "authentication failed for password ***" in result.stderr
        assert "s3cr3t-value" not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


# -- ls ---------------------------------------------------------------------------------------


def test_ls_lists_sorted_keys_with_filters(files_config: Path) -> None:
    fill(files_config, "Files", [("f1", "fetch", "b", 1), ("f1", "fetch", "a", 1)])
    fill(files_config, "Files", [("f2", "fetch", "x", 1), ("f1", "parse", "p", 1)])
    fill(files_config, "Other", [("f1", "fetch", "o", 1)])
    config = str(files_config)

    everything = cli("ls", config, "--json")
    assert everything.returncode == 0, everything.stderr
    keys = [
        (row["storage"], row["flow_name"], row["task_name"], row["task_id"])
        for row in json.loads(everything.stdout)
    ]
    assert keys == [
        ("Files", "f1", "fetch", "a"),
        ("Files", "f1", "fetch", "b"),
        ("Files", "f1", "parse", "p"),
        ("Files", "f2", "fetch", "x"),
        ("Other", "f1", "fetch", "o"),
    ]
    filtered = cli("ls", config, "--json", "--storage", "Files", "--flow", "f1", "--task", "fetch")
    assert [row["task_id"] for row in json.loads(filtered.stdout)] == ["a", "b"]

    table = cli("ls", config, "--flow", "f2")
    assert table.returncode == 0
    assert "1 key" in table.stdout and "│ Files   │ f2   │ fetch │ x       │" in table.stdout
    empty = cli("ls", config, "--flow", "nothing", "--json")
    assert (empty.returncode, json.loads(empty.stdout)) == (0, [])


def test_ls_of_a_storage_that_cannot_list_is_exit_1(tmp_path: Path) -> None:
    module = tmp_path / "nolist.py"
    module.write_text(
        "from selinon_like import DataStorage\n"
        "from storages.memory import InMemoryStorage\n\n"
        "class NoList(InMemoryStorage):\n"
        "    def iter_keys(self, flow_name=None):\n"  # DataStorage's: cannot list
        "        return DataStorage.iter_keys(self, flow_name)\n"
    )
    config = write_config(
        tmp_path / "n.yml",
        "  - name: Plain\n    import: nolist\n    classname: NoList\n"
        "  - name: Memory\n    classname: memory\n",
    )
    result = cli("ls", str(config), "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == []  # what could be listed, still valid JSON
    assert "Plain" in result.stderr and "iter_keys() is not implemented" in result.stderr


# -- copy -------------------------------------------------------------------------------------


@pytest.fixture
def two_configs(tmp_path: Path) -> tuple[Path, Path]:
    src = write_config(
        tmp_path / "src.yml",
        f"  - name: Files\n    classname: filesystem\n"
        f"    configuration: {{path: {tmp_path}/src}}\n",
    )
    dst = write_config(
        tmp_path / "dst.yml",
        f"  - name: Db\n    classname: sqlite\n    configuration: {{path: {tmp_path}/dst.db}}\n",
    )
    return src, dst


def test_copy_interrupted_then_rerun_copies_everything_once(two_configs: tuple[Path, Path]) -> None:
    src, dst = two_configs
    items = [
        ("flow", f"task{i % 3}", f"id-{i}", {"i": i, "pair": [i, str(i)]}) for i in range(1234)
    ]
    fill(src, "Files", items)
    failed_keys = [("flow", f"task{i % 3}", f"id-{i}") for i in range(0, 1234, 100)]
    for key in failed_keys:  # error records beside the results
        fail_task(src, "Files", key, {"attempt": 1})
    args = ["copy", f"{src}:Files", f"{dst}:Db", "--batch-size", "500"]

    first = cli(*args, "--json", "--stop-after-batches", "1")
    assert first.returncode == 130, first.stderr
    summary = json.loads(first.stdout)  # progress went to stderr: stdout is clean JSON
    assert summary["interrupted"] is True
    assert summary["results"] == {"copied": 500, "skipped": 0, "failed": 0}
    assert len(read_all(dst, "Db")) == 500
    total = len(items) + len(failed_keys)  # the bar counts results, then error records
    assert f"500/{total}" in first.stderr  # the progress bar where it stopped

    second = cli(*args, "--json")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["interrupted"] is False
    assert summary["results"] == {"copied": 734, "skipped": 500, "failed": 0}
    assert summary["errors"]["copied"] + summary["errors"]["skipped"] == len(failed_keys)
    assert summary["errors"]["failed"] == 0 and summary["failures"] == []
    assert f"{total}/{total}" in second.stderr
    assert read_all(dst, "Db") == {item[:3]: item[3] for item in items}
    with StoragePool.from_yaml(src) as src_pool, StoragePool.from_yaml(dst) as dst_pool:
        files = src_pool.get_connected_storage("Files")
        db = dst_pool.get_connected_storage("Db")
        for key in failed_keys:
            record = db.retrieve_error(*key)
            assert record == files.retrieve_error(*key)  # exactly: time and traceback too
            assert (record["exception_type"], record["message"]) == (
                "builtins.ValueError",
                f"boom {key[2]}",
            )
            assert record["node_args"] == {"attempt": 1}
            assert "fail_task" in record["traceback"]

    third = cli(*args, "--json", "--no-progress")
    assert third.returncode == 0 and third.stderr == ""
    summary = json.loads(third.stdout)
    assert summary["results"] == {"copied": 0, "skipped": 1234, "failed": 0}
    assert summary["errors"] == {"copied": 0, "skipped": len(failed_keys), "failed": 0}


def test_copy_takes_error_records_of_tasks_that_only_failed(
    two_configs: tuple[Path, Path],
) -> None:
    src, dst = two_configs
    fill(src, "Files", [("flow", "t", "ok", {"fine": True})])
    fail_task(src, "Files", ("flow", "t", "failed"), {"n": [1, 2]})
    fail_task(src, "Files", ("other", "t", "failed"), None)
    with StoragePool.from_yaml(src) as pool:
        original = pool.get_connected_storage("Files").retrieve_error("flow", "t", "failed")
    args = ["copy", f"{src}:Files", f"{dst}:Db", "--json", "--no-progress", "--flow", "flow"]

    result = cli(*args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["results"] == {"copied": 1, "skipped": 0, "failed": 0}
    assert summary["errors"] == {"copied": 1, "skipped": 0, "failed": 0}
    with StoragePool.from_yaml(dst) as pool:
        db = pool.get_connected_storage("Db")
        copied = db.retrieve_error("flow", "t", "failed")
        assert copied == original
        assert copied["time"] == original["time"]
        assert copied["traceback"] == original["traceback"]
        with pytest.raises(ResultNotFound):
            db.retrieve("flow", "t", "failed")  # an error record only, no result made up
        assert list(db.iter_error_keys()) == [("flow", "t", "failed")]  # --flow kept "other"

    again = json.loads(cli(*args).stdout)
    assert again["errors"] == {"copied": 0, "skipped": 1, "failed": 0}
    with StoragePool.from_yaml(dst) as pool:
        db = pool.get_connected_storage("Db")
        db.store_error_record({**original, "message": "something else"})
    conflict = cli(*args)
    assert conflict.returncode == 1
    assert json.loads(conflict.stdout)["errors"] == {"copied": 0, "skipped": 0, "failed": 1}
    forced = json.loads(cli(*args, "--overwrite").stdout)
    assert forced["errors"] == {"copied": 1, "skipped": 0, "failed": 0}
    with StoragePool.from_yaml(dst) as pool:
        assert pool.get_connected_storage("Db").retrieve_error("flow", "t", "failed") == original


def test_copy_between_adapters_without_error_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custom adapter may lack iter_error_keys and store_error_record: copy falls back to
    the error records beside a result, rebuilt with store_error."""
    (tmp_path / "oldfiles.py").write_text(
        "from selinon_like import DataStorage\n"
        "from storages.filesystem import Filesystem\n\n"
        "class OldFiles(Filesystem):\n"
        "    def iter_error_keys(self, flow_name=None):\n"
        "        return DataStorage.iter_error_keys(self, flow_name)\n\n"
        "    def store_error_record(self, record):\n"
        "        return DataStorage.store_error_record(self, record)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(
        tmp_path / "old.yml",
        f"  - name: A\n    import: oldfiles\n    classname: OldFiles\n"
        f"    configuration: {{path: {tmp_path}/a}}\n"
        f"  - name: B\n    import: oldfiles\n    classname: OldFiles\n"
        f"    configuration: {{path: {tmp_path}/b}}\n",
    )
    fill(config, "A", [("f", "t", "both", 1)])
    fail_task(config, "A", ("f", "t", "both"), {"n": 1})
    fail_task(config, "A", ("f", "t", "error-only"), None)
    args = ["copy", f"{config}:A", f"{config}:B", "--json", "--no-progress"]
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["results"] == {"copied": 1, "skipped": 0, "failed": 0}
    assert summary["errors"] == {"copied": 1, "skipped": 0, "failed": 0}
    with StoragePool.from_yaml(config) as pool:
        original = pool.get_connected_storage("A").retrieve_error("f", "t", "both")
        b = pool.get_connected_storage("B")
        record = b.retrieve_error("f", "t", "both")
        with pytest.raises(ResultNotFound):
            b.retrieve_error("f", "t", "error-only")  # not listed without iter_error_keys
    assert (record["exception_type"], record["message"], record["node_args"]) == (
        "builtins.ValueError",
        "boom both",
        {"n": 1},
    )
    assert "original traceback:" in record["traceback"] and "fail_task" in record["traceback"]
    assert f"first recorded at {original['time']}" in record["traceback"]
    again = json.loads(cli(*args, cwd=tmp_path).stdout)
    assert again["errors"] == {"copied": 0, "skipped": 1, "failed": 0}


def test_copy_leaves_different_content_alone_unless_overwrite(
    files_config: Path,
) -> None:
    fill(files_config, "Files", [("f", "t", str(i), {"i": i}) for i in range(10)])
    fill(files_config, "Other", [("f", "t", "3", "changed")])
    args = ["copy", f"{files_config}:Files", f"{files_config}:Other"]

    table = cli(*args)
    assert table.returncode == 1
    assert "│ results       │ 9      │ 0       │ 1      │" in table.stdout
    assert "failed: result f t 3: the destination holds a different one" in table.stderr
    assert read_all(files_config, "Other")[("f", "t", "3")] == "changed"

    forced = cli(*args, "--overwrite", "--json")
    assert forced.returncode == 0
    assert json.loads(forced.stdout)["results"] == {"copied": 10, "skipped": 0, "failed": 0}
    assert read_all(files_config, "Other") == read_all(files_config, "Files")


def test_copy_fails_items_alone_and_filters_by_flow(files_config: Path) -> None:
    # Other keeps pickles: a set cannot go into Files (JSON). Only that item fails.
    fill(files_config, "Other", [("f", "t", str(i), {"i": i}) for i in range(5)])
    fill(files_config, "Other", [("f", "t", "set", {1, 2}), ("g", "t", "1", "other flow")])
    fill(files_config, "Other", [("f", "t", "tuple", (1, "a"))])
    args = ["copy", f"{files_config}:Other", f"{files_config}:Files", "--flow", "f", "--json"]
    result = cli(*args)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["results"] == {"copied": 6, "skipped": 0, "failed": 1}
    (failure,) = summary["failures"]
    assert (failure["what"], failure["task_id"]) == ("result", "set")
    assert "set" in failure["error"]
    copied = read_all(files_config, "Files")
    assert sorted(copied) == sorted([("f", "t", str(i)) for i in range(5)] + [("f", "t", "tuple")])
    assert copied[("f", "t", "tuple")] == [1, "a"]
    # Re-run: the tuple, stored as a JSON list, counts as equal content, not as a conflict.
    again = json.loads(cli(*args).stdout)
    assert again["results"] == {"copied": 0, "skipped": 6, "failed": 1}


def test_copy_a_corrupt_source_record_fails_alone(files_config: Path, tmp_path: Path) -> None:
    fill(files_config, "Files", [("f", "t", str(i), i) for i in range(4)])
    (victim,) = [p for p in (tmp_path / "files").rglob("*") if p.is_file() and p.name.endswith("2")]
    header = victim.read_bytes().split(b"\n", 1)[0]
    victim.write_bytes(header + b"\n{not json")
    result = cli("copy", f"{files_config}:Files", f"{files_config}:Other", "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["results"] == {"copied": 3, "skipped": 0, "failed": 1}
    assert summary["failures"][0]["task_id"] == "2"


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        ("{c}", "{c}:Other", "SRC must be CONFIG:STORAGE"),
        ("{c}:Files", "{c}:Files", "SRC and DST are the same storage"),
        ("{c}:Files", "{c}:Nope", "no storage named 'Nope'"),
        ("{c}:Files", "{c}.missing:Other", "cannot read the configuration"),
    ],
)
def test_copy_usage_errors_are_exit_2(files_config: Path, src: str, dst: str, message: str) -> None:
    result = cli("copy", src.format(c=files_config), dst.format(c=files_config))
    assert result.returncode == 2
    assert message in result.stderr


# -- demo -------------------------------------------------------------------------------------


def test_demo_runs_the_quickstart_on_the_default_config(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    result = cli("demo", cwd=root, env={"SELINON_LIKE_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (
        "configured storages.yml (embedded default): storages Memory, Files, Embedded"
        in result.stdout
    )
    assert "read back intact: 100/100" in result.stdout
    assert "error recorded: builtins.ConnectionError: upstream timed out" in result.stdout
    assert "the failed task has no result, as expected" in result.stdout
    assert result.stdout.count(" ok in ") == 3
    assert (tmp_path / "results.sqlite").exists()  # it used the data directory given


def test_demo_with_another_config_and_a_missing_one(files_config: Path, tmp_path: Path) -> None:
    ran = cli("demo", "--config", str(files_config))
    assert ran.returncode == 0, ran.stderr
    assert "stored 100 results in Files" in ran.stdout
    missing = cli("demo", "--config", "config/storages.yml", cwd=tmp_path)
    assert missing.returncode == 2
    assert "config/storages.yml" in missing.stderr
