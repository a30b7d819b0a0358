"""The first hour of a new user (issue 20): what a person meets writing a five-method adapter,
loading it, and reading the messages of the library."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import InProcess

from selinon_like import ConfigError, DataStorage, StorageError, StoragePool
from selinon_like.keys import pack_key

# The README's five required methods and nothing else: no delete, no listing, no error records.
KVFILE = '''\
import json
import os

from selinon_like import DataStorage
from selinon_like.keys import pack_key


class KvFile(DataStorage):
    """Results as JSON lines of one file."""

    def __init__(self, path):
        self.path = path
        self._data = None

    def connect(self):
        self._data = {}
        if os.path.exists(self.path):
            with open(self.path) as file:
                for line in file:
                    key, value = json.loads(line)
                    self._data[key] = value

    def disconnect(self):
        self._data = None

    def is_connected(self):
        return self._data is not None

    def retrieve(self, flow_name, task_name, task_id):
        key = pack_key(flow_name, task_name, task_id)
        if key not in self._data:
            raise self.not_found(flow_name, task_name, task_id)
        return self.serializer.loads(self._data[key].encode("latin-1"))

    def store(self, flow_name, task_name, task_id, result):
        key = pack_key(flow_name, task_name, task_id)
        self._data[key] = self.serializer.dumps(result).decode("latin-1")
        with open(self.path, "a") as file:
            file.write(json.dumps([key, self._data[key]]) + "\\n")
        return key
'''


@pytest.fixture(autouse=True)
def _forget_kvfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test imports its own ``kvfile`` module (or fails to)."""
    monkeypatch.delitem(sys.modules, "kvfile", raising=False)


@pytest.fixture
def kvfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``kvfile.py`` in ``tmp_path`` (importable), and ``tmp_path`` the current directory."""
    (tmp_path / "kvfile.py").write_text(KVFILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "kvfile.py"


def kv_pool(tmp_path: Path) -> StoragePool:
    return StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Kv",
                    "import": "kvfile",
                    "classname": "KvFile",
                    "configuration": {"path": str(tmp_path / "kv.jsonl")},
                }
            ]
        }
    )


def test_check_of_a_five_method_adapter_passes_read_only_and_writes_nothing(
    kvfile: Path, tmp_path: Path
) -> None:
    with kv_pool(tmp_path) as pool:
        (row,) = pool.check(write=True)
    assert row.ok, row.error
    assert row.note is not None and "KvFile.delete() is not implemented" in row.note
    assert not (tmp_path / "kv.jsonl").exists()  # no scratch result left behind


class _Flaky(InProcess, DataStorage):
    """Stores, then reads back something else: the check fails, and still cleans up."""

    stored: dict[tuple[str, str, str], Any]

    def __init__(self) -> None:
        self.stored = {}

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        raise RuntimeError("the service returned garbage")

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        self.stored[(flow_name, task_name, task_id)] = result
        return task_id

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        del self.stored[(flow_name, task_name, task_id)]


def test_a_failed_check_removes_its_scratch_result() -> None:
    pool = StoragePool.from_dict(
        {"storages": [{"name": "F", "import": __name__, "classname": "_Flaky"}]}
    )
    with pool:
        (row,) = pool.check(write=True)
        instance = pool.get_connected_storage("F")
        assert isinstance(instance, _Flaky)
        assert instance.stored == {}
    assert not row.ok and row.error is not None
    assert "the service returned garbage" in row.error
    # The key is named as the caller gave it, not as the packed string of the layers.
    assert "retrieve of flow 'selinon-like-check', task 'check', task id '" in row.error
    assert pack_key("selinon-like-check", "check", "x")[:6] not in row.error


def test_messages_name_the_key_triple_not_the_packed_key() -> None:
    pool = StoragePool.from_dict(
        {"storages": [{"name": "F", "import": __name__, "classname": "_Flaky"}]}
    )
    with pool, pytest.raises(StorageError) as info:
        pool.get_connected_storage("F").retrieve("nightly", "fetch", "task-1")
    message = str(info.value)
    assert message.startswith(
        "F: retrieve of flow 'nightly', task 'fetch', task id 'task-1' failed: RuntimeError"
    )
    assert pack_key("nightly", "fetch", "task-1") not in message


def test_a_module_outside_sys_path_gets_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kvfile.py").write_text(KVFILE)
    # Here, but not on sys.path: `python -m pytest` put the current directory there as "".
    here = os.getcwd()
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", here)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        kv_pool(tmp_path)
    message = str(info.value)
    assert "module 'kvfile' cannot be imported" in message
    assert "kvfile.py is in the current directory" in message and "PYTHONPATH" in message


def test_a_missing_module_names_where_python_looks(tmp_path: Path) -> None:
    config = {"storages": [{"name": "X", "import": "no_such_module_here", "classname": "X"}]}
    with pytest.raises(ConfigError) as info:
        StoragePool.from_dict(config)
    message = str(info.value)
    assert "module 'no_such_module_here' cannot be imported" in message
    assert "sys.path" in message and "no_such_module_here.py" in message


def test_a_module_importing_a_missing_package_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_more.py").write_text("import not_installed_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"storages": [{"name": "X", "import": "needs_more", "classname": "X"}]}
    with pytest.raises(ConfigError) as info:
        StoragePool.from_dict(config)
    assert "it imports 'not_installed_package_xyz', which is not installed" in str(info.value)


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ({"classname": "FileSystem"}, "(did you mean 'filesystem'?)"),
        ({"classname": "redsi"}, "(did you mean 'redis'?)"),
        (
            {"import": "storages.filesystem", "classname": "FileSystem"},
            "has no class 'FileSystem' (did you mean 'Filesystem'?)",
        ),
    ],
)
def test_classname_gets_a_did_you_mean(entry: dict[str, str], hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        StoragePool.from_dict({"storages": [{"name": "S", **entry}]})
    assert hint in str(info.value)


def test_one_storage_and_no_tasks_section_routes_every_task_there(tmp_path: Path) -> None:
    with StoragePool.from_dict({"storages": [{"name": "Only", "classname": "memory"}]}) as pool:
        pool.store("flow", "AnyTask", "1", {"ok": True})
        assert pool.retrieve("flow", "AnyTask", "1") == {"ok": True}
        assert pool.storage_for_task("AnyTask") == "Only"


def test_a_tasks_section_still_routes_strictly(tmp_path: Path) -> None:
    config = {
        "storages": [{"name": "Only", "classname": "memory"}],
        "tasks": [{"name": "Mapped", "storage": "Only"}],
    }
    with StoragePool.from_dict(config) as pool:
        assert pool.storage_for_task("Mapped") == "Only"
        with pytest.raises(Exception, match="task 'Other' has no storage"):
            pool.storage_for_task("Other")


def test_every_problem_of_one_storage_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        textwrap.dedent(
            """\
            storages:
              - name: Messy
                classname: memory
                cache: {max_size: 0}
                retry: {attempts: 0}
                serializer: no.such.serializer
                configuration:
                  nope: 1
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    error = info.value
    keys = [problem.key for problem in error.problems]
    assert len(error.problems) == 4, str(error)
    assert keys == ["cache.max_size", "retry.attempts", "serializer", "configuration.nope"]
    assert all(problem.storage == "Messy" for problem in error.problems)
    assert json.dumps(keys)  # keys are plain strings
