"""``selinon_like.selinon``: the Selinon 1.4 drop-in adapters and ``StoragePool.from_selinon``,
in this process (the real Selinon flows run in subprocesses: test_selinon_flows.py)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REDIS_URL, delete_redis_keys, redis_probe, require_service

import storages.filesystem
import storages.memory
import storages.mongodb
import storages.postgresql
import storages.redis
import storages.s3
import storages.sql
from selinon_like import (
    ConfigError,
    ResultNotFound,
    StoragePool,
    UnknownStorageError,
    selinon_nodes,
)
from selinon_like import selinon as drop_in
from selinon_like.config import load_with_instances
from selinon_like.selinon import SelinonStorage

ROOT = Path(__file__).resolve().parent.parent

# Selinon 1.4's storage modules (under selinon/storages/) and the classes they define.
SELINON_CLASSES = {
    "memory.py": "InMemoryStorage",
    "filesystem.py": "Filesystem",
    "redis.py": "Redis",
    "mongodb.py": "MongoDB",
    "s3.py": "S3",
    "postgresql/adapter.py": "PostgreSQL",
}


def _selinon_parameters(module_file: str, classname: str) -> list[str]:
    """The ``__init__`` parameters of one of Selinon's adapters, read from its source (importing
    them needs drivers, and some no longer import on current ones)."""
    spec = importlib.util.find_spec("selinon")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "storages" / module_file
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == classname:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return [arg.arg for arg in item.args.args[1:]]
    raise AssertionError(f"no {classname}.__init__ in {path}")


@pytest.mark.parametrize(("module_file", "classname"), sorted(SELINON_CLASSES.items()))
def test_every_selinon_adapter_has_a_drop_in_taking_its_keys(
    module_file: str, classname: str
) -> None:
    ours = getattr(drop_in, classname)
    assert issubclass(ours, SelinonStorage)
    parameters = list(inspect.signature(ours).parameters)
    selinon = _selinon_parameters(module_file, classname)
    assert selinon
    # the same keys, in the same order (Selinon's users may pass them positionally)
    assert parameters[: len(selinon)] == selinon


def test_selinon_class_names_are_exported() -> None:
    for name in ("InMemoryStorage", "Filesystem", "Redis", "PostgreSQL", "SqlStorage"):
        assert name in drop_in.__all__
    for name in ("MongoDB", "S3", "S3Storage"):
        assert name in drop_in.__all__
    assert drop_in.S3Storage is drop_in.S3  # the name Selinon's documentation uses


# -- Selinon's calling convention --------------------------------------------------------------


def _sqlite(tmp_path: Path) -> SelinonStorage:
    return drop_in.SqlStorage(f"sqlite:///{tmp_path / 'results.db'}")


ADAPTERS: dict[str, Callable[[Path], SelinonStorage]] = {
    "memory": lambda _tmp: drop_in.InMemoryStorage(echo=False),
    "filesystem": lambda tmp: drop_in.Filesystem(path=str(tmp / "files")),
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SelinonStorage]:
    storage = ADAPTERS[request.param](tmp_path)
    yield storage
    storage.disconnect()


def test_store_and_retrieve_take_selinons_arguments(adapter: SelinonStorage) -> None:
    adapter.connect()
    record_id = adapter.store({"url": "x"}, "flow", "Task", "id-1", {"n": 1})
    assert isinstance(record_id, str) and record_id
    assert adapter.retrieve("flow", "Task", "id-1") == {"n": 1}
    # a retried task stores again: replaced
    adapter.store({"url": "x"}, "flow", "Task", "id-1", {"n": 2})
    assert adapter.retrieve("flow", "Task", "id-1") == {"n": 2}
    adapter.delete("flow", "Task", "id-1")
    with pytest.raises(ResultNotFound):
        adapter.retrieve("flow", "Task", "id-1")
    with pytest.raises(ResultNotFound):
        adapter.delete("flow", "Task", "id-1")


def test_store_error_takes_node_args_first_and_never_shadows_a_result(
    adapter: SelinonStorage,
) -> None:
    adapter.connect()
    adapter.store({"n": 3}, "flow", "Task", "id-2", "kept")
    try:
        raise KeyError("missing input")
    except KeyError:
        record_id = adapter.store_error({"n": 3}, "flow", "Task", "id-2", sys.exc_info())
    assert isinstance(record_id, str) and record_id
    record = adapter.retrieve_error("flow", "Task", "id-2")
    assert record["exception_type"] == "builtins.KeyError"
    assert record["message"] == "'missing input'"
    assert record["node_args"] == {"n": 3}
    assert "raise KeyError" in record["traceback"]
    assert (record["flow_name"], record["task_name"], record["task_id"]) == (
        "flow",
        "Task",
        "id-2",
    )
    assert adapter.retrieve("flow", "Task", "id-2") == "kept"
    with pytest.raises(ResultNotFound):
        adapter.retrieve_error("flow", "Task", "other")


def test_operations_connect_on_first_use(adapter: SelinonStorage) -> None:
    assert not adapter.is_connected()
    adapter.store(None, "flow", "Task", "id", [1, (2, 3)])
    assert adapter.is_connected()
    assert adapter.retrieve("flow", "Task", "id") == [1, [2, 3]]  # exact JSON: tuples are lists
    assert adapter.storage.is_connected()  # this library's adapter underneath


def test_connect_and_disconnect_are_idempotent(adapter: SelinonStorage) -> None:
    adapter.disconnect()
    adapter.connect()
    adapter.connect()
    assert adapter.is_connected()
    adapter.disconnect()
    adapter.disconnect()
    assert not adapter.is_connected()


def test_instances_are_dict_keys_by_identity(tmp_path: Path) -> None:
    one = drop_in.Filesystem(path=str(tmp_path))
    two = drop_in.Filesystem(path=str(tmp_path))
    locks = {one: "lock one", two: "lock two"}  # Selinon's LockPool keys locks by instance
    before = hash(one)
    one.connect()
    one.store(None, "f", "t", "i", 1)
    assert hash(one) == before
    assert locks[one] == "lock one" and locks[two] == "lock two"
    assert one != two


def test_construction_does_no_io(tmp_path: Path) -> None:
    files = tmp_path / "not-yet"
    database = tmp_path / "not-yet.db"
    filesystem = drop_in.Filesystem(path=str(files))
    sqlite = drop_in.SqlStorage(connection_string=f"sqlite:///{database}")
    # nothing listens on port 1: building it must not try
    redis = drop_in.Redis(host="127.0.0.1", port=1, socket_timeout=0.5)
    assert not files.exists() and not database.exists()
    assert not (filesystem.is_connected() or sqlite.is_connected() or redis.is_connected())
    filesystem.connect()
    sqlite.connect()
    assert files.is_dir() and database.exists()
    sqlite.disconnect()


def test_alias_is_found_by_the_task_name_selinon_retrieves_with(
    adapter: SelinonStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selinon stores under ``storage_task_name`` and retrieves by the task's name."""
    from selinon.config import Config

    monkeypatch.setattr(Config, "storage_task_name", {"Scale": "Scaled", "Sum": "Sum"})
    adapter.store(None, "flow", "Scaled", "id", {"scaled": 42})  # what Selinon's set() passes
    assert adapter.retrieve("flow", "Scale", "id") == {"scaled": 42}
    assert adapter.retrieve("flow", "Scaled", "id") == {"scaled": 42}
    try:
        raise ValueError("late")
    except ValueError:
        adapter.store_error({}, "flow", "Scaled", "id", sys.exc_info())
    assert adapter.retrieve_error("flow", "Scale", "id")["message"] == "late"
    adapter.delete("flow", "Scale", "id")
    with pytest.raises(ResultNotFound):
        adapter.retrieve("flow", "Scaled", "id")
    # a task Selinon does not alias keeps its name
    adapter.store(None, "flow", "Sum", "id", 1)
    assert adapter.retrieve("flow", "Sum", "id") == 1


# -- processes ---------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_service("Redis", redis_probe)
    prefix = f"test-selinon-unit-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_redis_keys(prefix)


def _redis_drop_in(prefix: str) -> SelinonStorage:
    return drop_in.Redis(**{"url": REDIS_URL, "key_prefix": prefix})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_forked_child_connects_anew(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Selinon builds the adapter before the worker forks and asks ``is_connected()`` in each
    child: false there, so it connects, and the child never touches the parent's connection."""
    if kind == "redis":
        storage = _redis_drop_in(request.getfixturevalue("redis_prefix"))
    else:
        storage = _sqlite(tmp_path)
    storage.connect()
    parent_adapter = storage.storage
    storage.store(None, "flow", "Task", "parent-1", "from the parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            steps = [not storage.is_connected()]
            storage.connect()  # what Selinon's StoragePool does next
            steps.append(storage.is_connected())
            steps.append(storage.storage is not parent_adapter)
            steps.append(storage.retrieve("flow", "Task", "parent-1") == "from the parent")
            storage.store(None, "flow", "Task", "child-1", "from the child")
            storage.disconnect()
            os.write(write, "".join("1" if ok else "0" for ok in steps).encode())
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.read(read, 16) == b"1111"
    # the parent's connection survived the child's connect and disconnect
    assert storage.is_connected() and storage.storage is parent_adapter
    assert storage.retrieve("flow", "Task", "child-1") == "from the child"
    storage.store(None, "flow", "Task", "parent-2", 2)
    assert storage.retrieve("flow", "Task", "parent-2") == 2
    storage.disconnect()


SHUTDOWN_SCRIPT = """
import os, sys
from selinon_like import selinon

class SelinonLike:
    # What Selinon's DataStorage does: disconnect() from __del__.
    def __init__(self, storage):
        self.storage = storage
        self.cycle = self  # collected only at interpreter shutdown
    def __del__(self):
        if self.storage.is_connected():
            self.storage.disconnect()
            os.write(1, b"disconnected ")

storages = [
    selinon.Filesystem(path=sys.argv[1] + "/files"),
    selinon.SqlStorage(connection_string="sqlite:///" + sys.argv[1] + "/r.db"),
    selinon.InMemoryStorage(),
]
if len(sys.argv) > 2:
    storages.append(selinon.Redis(url=sys.argv[2], key_prefix=sys.argv[3]))
for storage in storages:
    storage.connect()
    storage.store(None, "f", "t", "i", 1)
    SelinonLike(storage)
"""


@pytest.mark.parametrize("with_redis", [False, True])
def test_disconnect_from_del_at_interpreter_shutdown_is_quiet(
    with_redis: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args = [str(tmp_path)]
    if with_redis:
        args += [REDIS_URL, request.getfixturevalue("redis_prefix")]
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0
    assert done.stderr == ""  # no "Exception ignored in ... __del__"
    assert done.stdout.split() == ["disconnected"] * (4 if with_redis else 3)


# -- configuration: Selinon's keys ------------------------------------------------------------


def test_selinons_defaults_are_left_to_ours() -> None:
    assert drop_in.Redis().configuration == {}
    assert drop_in.MongoDB(db_name="d", collection_name="c").configuration == {
        "db_name": "d",
        "collection_name": "c",
    }


def test_selinon_keys_become_the_adapters_configuration() -> None:
    redis = drop_in.Redis(
        host="cache", port=6380, db=2, password="pw", socket_timeout=3, charset="utf-8",
        errors="strict", unix_socket_path=None, key_prefix="app:",
    )  # fmt: skip
    assert redis.configuration == {
        "host": "cache",
        "port": 6380,
        "db": 2,
        "password": "pw",
        "socket_timeout": 3,
        "charset": "utf-8",
        "errors": "strict",
        "key_prefix": "app:",  # one of this library's keys, passed through
    }
    assert drop_in.S3(bucket="b", region_name="eu-west-1").configuration == {
        "create_bucket": True,  # Selinon created a missing bucket
        "bucket": "b",
        "region_name": "eu-west-1",
    }
    assert drop_in.S3(bucket="b", create_bucket=False).configuration["create_bucket"] is False
    postgres = drop_in.PostgreSQL("postgresql://u@db/x", "utf-8", False)  # positionally
    assert postgres.configuration == {
        "connection_string": "postgresql://u@db/x",
        "encoding": "utf-8",
        "echo": False,
    }


def test_environment_fields_are_expanded_as_selinon_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESULTS_ROOT", str(tmp_path))
    monkeypatch.setenv("REDIS_SERVICE_PORT", "6390")
    # {{ and }} are literal braces; the ${LITERAL} they leave is not expanded a second time
    storage = drop_in.Filesystem(path="{RESULTS_ROOT}/${{LITERAL}}")
    assert storage.configuration["path"] == f"{tmp_path}/${{LITERAL}}"
    storage.connect()
    assert (tmp_path / "${LITERAL}").is_dir()
    assert drop_in.Redis(port="{REDIS_SERVICE_PORT}").configuration == {"port": "6390"}


@pytest.mark.parametrize(
    ("build", "key", "words"),
    [
        (lambda: drop_in.Redis(host="{NO_SUCH_VARIABLE_X}"), "host", "NO_SUCH_VARIABLE_X"),
        (lambda: drop_in.Redis(host="{0}"), "host", "not an environment variable"),
        (lambda: drop_in.Redis(host="{HOME.x}"), "host", "not an environment variable"),
        (lambda: drop_in.Redis(host="{unclosed"), "host", "literal braces"),
        (lambda: drop_in.Redis(connection_pool=object()), "connection_pool", "shared"),
        (lambda: drop_in.Redis(no_such_option=1), "no_such_option", "no_such_option"),
        (lambda: drop_in.Redis(port="not-a-port"), "port", "whole number"),
        (lambda: drop_in.SqlStorage(), "connection_string", "required"),
        (lambda: drop_in.PostgreSQL(), "connection_string", "required"),
        (lambda: drop_in.MongoDB(db_name="d"), "collection_name", "required"),
        (lambda: drop_in.S3(), "bucket", "required"),
        (lambda: drop_in.S3(bucket="b", serialize_json="maybe"), "serialize_json", "true or"),
        (lambda: drop_in.InMemoryStorage(echo="stdlog"), "echo", "stderr"),
        (lambda: drop_in.InMemoryStorage(json=True), "json", "echo"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_key(
    build: Callable[[], Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.storage is not None
    assert caught.value.storage.startswith("selinon_like.selinon.")
    assert caught.value.key is not None and caught.value.key.endswith(key)
    assert words in str(caught.value)


def test_secrets_stay_out_of_repr() -> None:
    redis = drop_in.Redis(password="hunter2-secret")
    postgres = drop_in.PostgreSQL(connection_string="postgresql://app:s3cr3t-pw@db/x")
    assert "hunter2-secret" not in repr(redis) and "***" in repr(redis)
    assert "s3cr3t-pw" not in repr(postgres) and "selinon_like.selinon.PostgreSQL" in repr(postgres)


def test_filesystem_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = drop_in.Filesystem()
    monkeypatch.chdir("/")  # taken when built, as Selinon's {PWD}
    storage.store(None, "f", "t", "i", "here")
    assert any(tmp_path.iterdir())
    assert storage.retrieve("f", "t", "i") == "here"


@pytest.mark.parametrize(("echo", "stream"), [(True, "out"), ("stdout", "out"), ("stderr", "err")])
def test_in_memory_echo_prints_like_selinons(
    echo: bool | str, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = drop_in.InMemoryStorage(echo=echo, json=True)
    storage.store({"a": 1}, "f", "t", "i", {"r": 2})
    storage.retrieve("f", "t", "i")
    printed = getattr(capsys.readouterr(), stream)
    assert '"node_args": {\n    "a": 1\n  }' in printed
    assert '"task_id": "i"' in printed and '"r": 2' in printed
    quiet = drop_in.InMemoryStorage()
    quiet.store(None, "f", "t", "i", 1)
    assert capsys.readouterr() == ("", "")


# -- StoragePool.from_selinon -----------------------------------------------------------------


NODES = """\
tasks:
  - name: Fetch
    import: app.tasks
    storage: Files
    queue: '{QUEUE}'            # Selinon's own options are ignored
  - name: Scale
    import: app.tasks
    storage: Files
    storage_task_name: Scaled
  - name: Notify
    import: app.tasks            # no storage
flows:
  - main
global:
  trace:
    json: true
storages:
  - name: Files
    import: selinon.storages.filesystem
    classname: Filesystem
    cache:
      name: LRU
    configuration:
      path: '{DATA_ROOT}/files'
  - name: Memory
    import: selinon.storages.memory
    classname: InMemoryStorage
    configuration:
      echo: false
  - name: Cache
    import: selinon.storages.redis
    classname: Redis
    configuration:
      host: cache
      port: 6379
      charset: utf-8
  - name: Docs
    import: selinon.storages.mongodb
    classname: MongoDB
    configuration:
      db_name: results
      collection_name: flows
  - name: Blobs
    import: selinon.storages.s3
    classname: S3Storage
    configuration:
      bucket: blobs
      region_name: us-east-1
  - name: Blobs2
    import: selinon.storages.s3
    classname: S3
    configuration:
      bucket: blobs2
  - name: Postgres
    import: selinon.storages.postgresql
    classname: PostgreSQL
    configuration:
      connection_string: postgresql://postgres@127.0.0.1:5432/test
      encoding: utf-8
  - name: Migrated
    import: selinon_like.selinon
    classname: SqlStorage
    configuration:
      connection_string: 'sqlite:///{DATA_ROOT}/migrated.db'
"""


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    path = tmp_path / "nodes.yml"
    path.write_text(NODES)
    return path


def test_from_selinon_maps_selinons_adapters_to_ours(nodes: Path) -> None:
    pool = StoragePool.from_selinon(nodes)
    assert type(pool) is StoragePool  # storage_task_name is the pool's task_names
    assert pool.names() == [
        "Files", "Memory", "Cache", "Docs", "Blobs", "Blobs2", "Postgres", "Migrated",
    ]  # fmt: skip
    classes = {name: pool.config.storages[name].cls for name in pool.names()}
    assert classes == {
        "Files": storages.filesystem.Filesystem,
        "Memory": storages.memory.InMemoryStorage,
        "Cache": storages.redis.Redis,
        "Docs": storages.mongodb.MongoDB,
        "Blobs": storages.s3.S3Storage,
        "Blobs2": storages.s3.S3Storage,
        "Postgres": storages.postgresql.PostgreSQL,
        "Migrated": storages.sql.SqlStorage,
    }
    configuration = pool.config.storages["Cache"].configuration
    assert configuration == {"host": "cache", "port": 6379, "charset": "utf-8"}
    assert pool.storage_for_task("Fetch") == "Files"
    assert pool.storage_for_task("Scale") == pool.storage_for_task("Scaled") == "Files"
    with pytest.raises(UnknownStorageError):
        pool.storage_for_task("Notify")  # no storage in Selinon either


def test_from_selinon_pool_keys_results_by_storage_task_name(nodes: Path, tmp_path: Path) -> None:
    with StoragePool.from_selinon(nodes) as pool:
        pool.store("main", "Scale", "id-1", {"scaled": 1})
        files = pool.get_connected_storage("Files")
        assert list(files.iter_keys("main")) == [("main", "Scaled", "id-1")]
        assert pool.retrieve("main", "Scale", "id-1") == {"scaled": 1}
        assert pool.retrieve("main", "Scaled", "id-1") == {"scaled": 1}
        try:
            raise RuntimeError("down")
        except RuntimeError:
            pool.store_error({"x": 1}, "main", "Scale", "id-1", sys.exc_info())
        assert files.retrieve_error("main", "Scaled", "id-1")["message"] == "down"
        assert pool.retrieve_error("main", "Scale", "id-1")["node_args"] == {"x": 1}
        pool.delete("main", "Scale", "id-1")
        with pytest.raises(ResultNotFound):
            files.retrieve("main", "Scaled", "id-1")
        pool.store("main", "Fetch", "id-2", "plain")
        assert files.retrieve("main", "Fetch", "id-2") == "plain"
    # Selinon's {NAME} expansion applies to the nodes file too
    assert (tmp_path / "files").is_dir()


def test_from_selinon_pool_as_the_default_pool(nodes: Path) -> None:
    """Calls on the class go to the default pool with its storage_task_name routing."""
    StoragePool.configure(StoragePool.from_selinon(nodes))
    StoragePool.store("main", "Scale", "id-3", 3)
    assert StoragePool.get_connected_storage("Files").retrieve("main", "Scaled", "id-3") == 3
    assert StoragePool.retrieve("main", "Scale", "id-3") == 3
    StoragePool.delete("main", "Scale", "id-3")
    with pytest.raises(ResultNotFound):
        StoragePool.retrieve("main", "Scaled", "id-3")


def test_from_selinon_reads_what_the_drop_in_stored(nodes: Path) -> None:
    selinon_side = drop_in.SqlStorage(connection_string="sqlite:///{DATA_ROOT}/migrated.db")
    selinon_side.store({"n": 1}, "main", "Fetch", "id", {"fetched": True})
    selinon_side.disconnect()
    pool = StoragePool.from_selinon(nodes)
    with pool:
        migrated = pool.get_connected_storage("Migrated")
        assert migrated.retrieve("main", "Fetch", "id") == {"fetched": True}


def test_from_selinon_maps_a_subclass_of_a_drop_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_storages.py").write_text(
        textwrap.dedent(
            """
            from selinon_like.selinon import Filesystem

            class Archive(Filesystem):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    nodes = tmp_path / "nodes.yml"
    nodes.write_text(
        "storages:\n  - name: Archive\n    import: my_storages\n"
        f"    configuration:\n      path: {tmp_path / 'archive'}\n"
    )
    pool = StoragePool.from_selinon(nodes)
    assert pool.config.storages["Archive"].cls is storages.filesystem.Filesystem


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "storages:\n  - name: Mine\n    import: json\n    classname: JSONDecoder\n"
            "    configuration: {a: 1}\n",
            2,
            "json.JSONDecoder is neither one of Selinon's adapters",
        ),
        (
            "storages:\n  - name: R\n    import: selinon.storages.redis\n    classname: Rediss\n",
            2,
            "selinon.storages.redis.Rediss",
        ),
        (
            "storages:\n  - name: R\n    import: no_such_module_here\n    classname: X\n",
            2,
            "no_such_module_here",
        ),
        (
            "storages:\n  - name: R\n    import: selinon.storages.redis\n    classname: Redis\n"
            "    configuration:\n      host: '{NO_SUCH_VARIABLE_Y}'\n",
            2,
            "NO_SUCH_VARIABLE_Y is not set",
        ),
        (
            "storages:\n  - name: R\n    import: selinon.storages.redis\n    classname: Redis\n"
            "    configuration:\n      connection_pool: x\n",
            2,
            "connection pool",
        ),
        (
            "storages: []\ntasks:\n  - name: T\n    import: t\n  - name: U\n    import: t\n"
            "    storage: Nowhere\n",
            5,
            "unknown storage 'Nowhere'",
        ),
        ("storages: [\n", 2, "not valid YAML"),
        ("- just\n- a list\n", None, "a Selinon nodes file is a mapping"),
    ],
)
def test_from_selinon_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int | None, words: str
) -> None:
    path = tmp_path / "nodes.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        StoragePool.from_selinon(path)
    assert caught.value.file == str(path)
    assert caught.value.line == line
    assert words in str(caught.value)


def test_from_selinon_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the Selinon nodes file"):
        StoragePool.from_selinon(tmp_path / "absent.yml")


def test_from_selinon_reports_every_adapter_option_problem_at_its_entry(tmp_path: Path) -> None:
    """Options only this library's adapter checks (an unknown key, a bad port) are checked
    when the pool is built, and still named by file, line, storage and key, all at once."""
    path = tmp_path / "nodes.yml"
    path.write_text(
        "storages:\n"
        "  - name: R\n    import: selinon.storages.redis\n    classname: Redis\n"
        "    configuration:\n      no_such_option: 1\n"
        "  - name: S\n    import: selinon_like.selinon\n    classname: Redis\n"
        "    configuration:\n      port: not-a-port\n"
    )
    with pytest.raises(ConfigError) as caught:
        StoragePool.from_selinon(path)
    located = [(p.file, p.line, p.storage, p.key) for p in caught.value.problems]
    assert located == [
        (str(path), 2, "R", "configuration.no_such_option"),
        (str(path), 7, "S", "configuration.port"),
    ]
    assert "whole number" in str(caught.value) and "no_such_option" in str(caught.value)


# -- task names in any pool, and the configuration classes on their own ------------------------


def test_a_pool_keys_each_task_by_its_task_name(tmp_path: Path) -> None:
    """``task_names`` is the pool's, not only from_selinon's: routed operations key by it, and
    the alias reaches its task's storage."""
    loaded = load_with_instances(
        {
            "storages": [
                {"name": "A", "import": "storages.memory", "classname": "InMemoryStorage"},
                {"name": "B", "import": "storages.memory", "classname": "InMemoryStorage"},
            ],
            "tasks": [{"name": "Scale", "storage": "B"}, {"name": "Sum", "storage": "A"}],
        }
    )
    with StoragePool(loaded.config, loaded.instances, {"Scale": "Scaled"}) as pool:
        assert pool.storage_task_name("Scale") == "Scaled"
        assert pool.storage_task_name("Sum") == "Sum"
        assert pool.storage_for_task("Scaled") == "B"
        pool.store("f", "Scale", "1", 10)
        pool.store("f", "Sum", "1", 5)
        assert list(pool.get_connected_storage("B").iter_keys("f")) == [("f", "Scaled", "1")]
        assert pool.retrieve("f", "Scale", "1") == pool.retrieve("f", "Scaled", "1") == 10
        assert pool.retrieve("f", "Sum", "1") == 5
        try:
            raise OSError("disk")
        except OSError:
            pool.store_error(None, "f", "Scale", "2", sys.exc_info())
        assert pool.retrieve_error("f", "Scale", "2")["task_name"] == "Scaled"
        pool.delete("f", "Scale", "1")
        with pytest.raises(ResultNotFound):
            pool.retrieve("f", "Scaled", "1")
    with pytest.raises(TypeError, match="task_names"):
        StoragePool(loaded.config, None, {"Scale": 3})  # type: ignore[dict-item]


def test_configuration_classes_build_nothing() -> None:
    """selinon_nodes translates Selinon's keys without a pool: the drop-in class of the same
    name takes the same arguments and records the same configuration."""
    config = selinon_nodes.Redis("cache", 6380, password="pw", key_prefix="app:")
    assert not hasattr(config, "storage") and not hasattr(config, "store")
    assert config.configuration == {
        "host": "cache",
        "port": 6380,
        "password": "pw",
        "key_prefix": "app:",
    }
    assert config.pool_entry("R") == {
        "name": "R",
        "import": "storages.redis",
        "classname": "Redis",
        "configuration": config.configuration,
    }
    assert "pw" not in repr(config) and "selinon_like.selinon_nodes.Redis" in repr(config)
    for name in ("InMemoryStorage", "Filesystem", "Redis", "SqlStorage", "PostgreSQL"):
        drop_in_class = getattr(drop_in, name)
        assert issubclass(drop_in_class, getattr(selinon_nodes, name))
        assert inspect.signature(drop_in_class) == inspect.signature(getattr(selinon_nodes, name))
    same = drop_in.Redis("cache", 6380, password="pw", key_prefix="app:")
    assert same.configuration == config.configuration


def test_the_translation_module_imports_neither_the_pool_nor_the_drop_ins() -> None:
    """selinon_like.pool and selinon_like.selinon both build on selinon_nodes; an import back
    (even inside a function) would make the cycle this layout removes."""
    tree = ast.parse((ROOT / "selinon_like" / "selinon_nodes.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert imported and not imported & {"selinon_like.pool", "selinon_like.selinon"}


# -- the command line --------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selinon_like", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_cli_reads_a_selinon_nodes_file(tmp_path: Path) -> None:
    (tmp_path / "nodes.yml").write_text(
        "tasks:\n  - name: Scale\n    import: t\n    storage: Files\n"
        "    storage_task_name: Scaled\n"
        "storages:\n  - name: Files\n    import: selinon.storages.filesystem\n"
        "    classname: Filesystem\n    configuration:\n      path: data\n"
    )
    selinon_side = drop_in.Filesystem(path=str(tmp_path / "data"))
    selinon_side.store(None, "main", "Scaled", "id-7", {"scaled": 70})
    listed = _cli("ls", "selinon:nodes.yml", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"Scaled"' in listed.stdout and '"id-7"' in listed.stdout
    got = _cli("get", "selinon:nodes.yml", "main", "Scaled", "id-7", "--json", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == '{"scaled":70}'
    wrong = _cli("ls", "selinon:missing.yml", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "cannot read the Selinon nodes file" in wrong.stderr
