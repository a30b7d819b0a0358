"""The YAML loader: every mistake is one located ConfigError; env expansion; from_dict."""

from __future__ import annotations

import copy
import io
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import InProcess

from selinon_like import ConfigError, DataStorage, StoragePool, UnknownStorageError
from selinon_like.config import load_config, load_mapping, load_with_instances
from selinon_like.retry import DEFAULT_RETRY, NO_RETRY
from selinon_like.yamlsource import YamlDocument, key_of

# -- adapters used by these tests (import path `test_config`: tests/ is on sys.path) --------------


class Recorder(InProcess, DataStorage):
    """Accepts any option and keeps it, to observe what the loader passed."""

    def __init__(self, **configuration: Any) -> None:
        self.configuration = configuration

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        raise self.not_found(flow_name, task_name, task_id)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return task_id


class Picky(Recorder):
    """A constructor that refuses some values in each of the ways adapters do."""

    def __init__(self, size: Any = 1, password: str = "") -> None:
        if size == "type":
            raise TypeError("size must be an int")
        if size == -1:
            raise ValueError(f"size must be positive (password was {password})")
        if size == 13:
            raise ConfigError("13 is unlucky", key="size")
        if size == 99:
            raise RuntimeError(f"constructor bug near {password}")
        super().__init__(size=size)


def test_this_module_is_importable_as_test_config() -> None:
    # The YAML below says `import: test_config`: it must name this very module.
    import test_config

    assert __name__ == "test_config"
    assert test_config.Recorder is Recorder


# -- the table of malformed documents -------------------------------------------------------------

MEM = """\
storages:
  - name: Mem
    import: storages.memory
    classname: InMemoryStorage
"""  # lines 1-4; what follows starts at line 5

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
storages: *i
"""


def bad(case_id: str, text: str, line: int, *needles: str) -> Any:
    return pytest.param(text, line, needles, id=case_id)


MALFORMED = [
    # storage-level keys
    bad(
        "unknown-key-port",
        MEM + "    port: 6379\n",
        5,
        "storage 'Mem'",
        "key 'port'",
        "put `port` under `configuration`",
    ),
    bad(
        "typo-clasname",
        "storages:\n  - name: Mem\n    import: storages.memory\n    clasname: InMemoryStorage\n",
        4,
        "key 'clasname'",
        "did you mean 'classname'",
    ),
    bad("missing-name", "storages:\n  - import: storages.memory\n    classname: X\n", 2, "'name'"),
    bad(
        "name-not-a-string", "storages:\n  - name: [1, 2]\n    classname: memory\n", 2, "key 'name'"
    ),
    bad("name-a-number", "storages:\n  - name: 42\n    classname: memory\n", 2, "key 'name'"),
    bad("name-empty", 'storages:\n  - name: ""\n    classname: memory\n', 2, "key 'name'"),
    bad(
        "duplicate-storage-names",
        "storages:\n  - name: Mem\n    classname: memory\n  - name: Mem\n    classname: memory\n",
        4,
        "storage 'Mem'",
        "key 'name'",
        "used twice (first at line 2)",
    ),
    bad(
        "duplicate-name-through-an-alias",
        "storages:\n  - &m {name: M, classname: memory}\n  - *m\n",
        3,
        "used twice",
    ),
    bad(
        "storage-entry-is-a-string",
        "storages:\n  - Mem\n",
        2,
        "each storage must be a mapping",
    ),
    bad(
        "classname-empty",
        'storages:\n  - name: Mem\n    import: storages.memory\n    classname: ""\n',
        4,
        "key 'classname'",
    ),
    # import / classname
    bad(
        "import-not-dotted",
        "storages:\n  - name: Mem\n    import: storages/memory\n    classname: InMemoryStorage\n",
        3,
        "key 'import'",
        "dotted module path",
    ),
    bad(
        "import-not-a-string",
        "storages:\n  - name: Mem\n    import: [storages.memory]\n",
        3,
        "key 'import'",
    ),
    bad("import-empty", "storages:\n  - name: Mem\n    import:\n", 3, "key 'import'", "empty"),
    bad(
        "module-does-not-exist",
        "storages:\n  - name: Mem\n    import: storages.no_such_adapter\n    classname: X\n",
        3,
        "storage 'Mem'",
        "key 'import'",
        "'storages.no_such_adapter'",
    ),
    bad(
        "class-missing-in-module",
        "storages:\n  - name: Mem\n    import: storages.memory\n    classname: NoSuchClass\n",
        4,
        "key 'classname'",
        "'NoSuchClass'",
    ),
    bad(
        "class-not-a-datastorage",
        "storages:\n  - name: Dict\n    import: collections\n    classname: OrderedDict\n",
        4,
        "key 'classname'",
        "not a selinon_like.DataStorage subclass",
    ),
    bad(
        "attribute-not-a-class",
        "storages:\n  - name: Sys\n    import: os\n    classname: system\n",
        4,
        "key 'classname'",
        "not a selinon_like.DataStorage subclass",
    ),
    bad(
        "abstract-class",
        "storages:\n  - name: Base\n    import: selinon_like.storage\n    classname: DataStorage\n",
        4,
        "key 'classname'",
        "abstract",
    ),
    bad(
        "unregistered-classname-without-import",
        "storages:\n  - name: Mem\n    classname: nosuchadapter\n",
        3,
        "key 'classname'",
        "'nosuchadapter' is not a registered adapter name",
        "memory",
    ),
    bad(
        "name-as-classname-unregistered",
        "storages:\n  - name: NoSuchAdapter\n",
        2,
        "storage 'NoSuchAdapter'",
        "key 'classname'",
    ),
    # configuration
    bad(
        "configuration-not-a-mapping",
        MEM + "    configuration: [echo]\n",
        5,
        "key 'configuration'",
        "mapping",
    ),
    bad(
        "option-name-not-a-string",
        MEM + "    configuration:\n      1: true\n",
        5,
        "key 'configuration'",
    ),
    bad(
        "unknown-option-did-you-mean",
        MEM + "    configuration:\n      ech: true\n",
        6,
        "storage 'Mem'",
        "key 'configuration.ech'",
        "did you mean 'echo'",
    ),
    bad(
        "unknown-option-through-an-alias",
        "x: &c {ech: 1}\n" + MEM + "    configuration:\n      *c\n",
        7,
        "key 'configuration.ech'",
    ),
    bad(
        "missing-required-option",
        "storages:\n  - name: Files\n    import: storages.filesystem\n    classname: Filesystem\n"
        "    configuration:\n      fsync: true\n",
        5,
        "storage 'Files'",
        "key 'configuration'",
        "'path'",
    ),
    bad(
        "wrong-option-type",
        MEM + "    configuration:\n      echo: maybe\n",
        6,
        "key 'configuration.echo'",
        "true or false",
    ),
    # environment variables
    bad(
        "unset-variable-without-default",
        MEM + "    configuration:\n      echo: ${SELINON_LIKE_TEST_UNSET}\n",
        6,
        "key 'configuration.echo'",
        "SELINON_LIKE_TEST_UNSET is not set",
    ),
    bad(
        "invalid-variable-reference",
        MEM + "    configuration:\n      echo: ${1BAD}\n",
        6,
        "key 'configuration.echo'",
        "${1BAD} is not a valid variable reference",
    ),
    bad(
        "unterminated-variable-reference",
        MEM + "    configuration:\n      echo: ${SELINON_LIKE_TEST_UNSET\n",
        6,
        "key 'configuration.echo'",
        "no closing",
    ),
    bad(
        "nested-reference-in-default",
        MEM + "    configuration:\n      echo: ${A_VAR:-${B_VAR}}\n",
        6,
        "key 'configuration.echo'",
        "cannot contain another",
    ),
    # serializer
    bad(
        "unknown-serializer-path",
        MEM + "    serializer: no_such_package.codec\n",
        5,
        "key 'serializer'",
        "no_such_package",
    ),
    bad("serializer-not-a-string", MEM + "    serializer: 5\n", 5, "key 'serializer'"),
    bad(
        "serializer-without-dumps-and-loads",
        MEM + "    serializer: collections.OrderedDict\n",
        5,
        "key 'serializer'",
        "dumps",
    ),
    bad(
        "serializer-attribute-missing",
        MEM + "    serializer: json.no_such_codec\n",
        5,
        "key 'serializer'",
        "no_such_codec",
    ),
    # cache / retry
    bad("cache-not-a-mapping", MEM + "    cache: 5\n", 5, "key 'cache'", "mapping"),
    bad(
        "cache-unknown-key",
        MEM + "    cache:\n      size: 3\n",
        6,
        "key 'cache.size'",
        "did you mean 'max_size'",
    ),
    bad("cache-max-size-zero", MEM + "    cache:\n      max_size: 0\n", 6, "key 'cache.max_size'"),
    bad("cache-ttl-negative", MEM + "    cache:\n      ttl: -1\n", 6, "key 'cache.ttl'"),
    bad("retry-not-a-mapping", MEM + "    retry: [3]\n", 5, "key 'retry'"),
    bad("retry-attempts-zero", MEM + "    retry:\n      attempts: 0\n", 6, "key 'retry.attempts'"),
    bad(
        "retry-unknown-key",
        MEM + "    retry:\n      attempt: 3\n",
        6,
        "key 'retry.attempt'",
        "did you mean 'attempts'",
    ),
    bad(
        "retry-backoff-negative",
        MEM + "    retry:\n      backoff: -0.5\n",
        6,
        "key 'retry.backoff'",
    ),
    bad(
        "retry-jitter-not-bool",
        MEM + "    retry:\n      jitter: sometimes\n",
        6,
        "key 'retry.jitter'",
    ),
    # tasks
    bad(
        "task-names-unknown-storage",
        MEM + "tasks:\n  - name: Task1\n    storage: Nope\n",
        7,
        "key 'storage'",
        "'Nope'",
        "Mem",
    ),
    bad("tasks-not-a-list", MEM + "tasks: {Task1: Mem}\n", 5, "key 'tasks'"),
    bad("task-entry-a-string", MEM + "tasks:\n  - Task1\n", 6, "key 'tasks'"),
    bad("task-without-name", MEM + "tasks:\n  - storage: Mem\n", 6, "key 'name'"),
    bad(
        "task-storage-not-a-string",
        MEM + "tasks:\n  - name: Task1\n    storage: [Mem]\n",
        7,
        "key 'storage'",
    ),
    # the document
    bad("storages-not-a-list", "storages:\n  name: Mem\n", 1, "key 'storages'"),
    bad("storages-empty", "storages: []\n", 1, "key 'storages'"),
    bad("storages-null", "storages:\n", 1, "key 'storages'"),
    bad("no-storages-section", "# Selinon flows\nflows: [flow1]\n", 2, "no 'storages' section"),
    bad("document-is-a-list", "- name: Mem\n", 1, "must be a mapping"),
    bad("document-is-a-scalar", "storages\n", 1, "must be a mapping"),
    bad("empty-document", "", 1, "empty document"),
    bad("only-comments", "# nothing here\n", 1, "empty document"),
    # YAML itself
    bad(
        "unsafe-tag-apply",
        MEM + '    configuration:\n      echo: !!python/object/apply:os.system ["echo hi"]\n',
        6,
        "python/object/apply:os.system",
        "not allowed",
    ),
    bad(
        "unsafe-tag-name",
        MEM + "    configuration:\n      echo: !!python/name:os.system\n",
        6,
        "not allowed",
    ),
    bad("custom-tag", MEM + "    configuration:\n      echo: !Ref other\n", 6, "not allowed"),
    bad("explicit-int-tag", MEM + "    configuration:\n      echo: !!int maybe\n", 6, "int"),
    bad("explicit-bool-tag", MEM + "    configuration:\n      echo: !!bool maybe\n", 6, "bool"),
    bad("explicit-float-tag", MEM + "    retry:\n      backoff: !!float soon\n", 6, "float"),
    bad("explicit-timestamp-tag", MEM + "    name2: !!timestamp later\n", 5, "timestamp"),
    bad("bad-indentation", "storages:\n  - name: Mem\n   classname: memory\n", 3, "not valid YAML"),
    bad("unclosed-flow", "storages: [\n  {name: Mem\n", 3, "not valid YAML"),
    bad("tab-indentation", "storages:\n\t- name: Mem\n", 2, "not valid YAML"),
    bad("undefined-alias", "storages: *nope\n", 1, "not valid YAML", "nope"),
    bad("two-documents", "storages: []\n---\nstorages: []\n", 2, "single document"),
    bad(
        "merge-of-a-scalar",
        "storages:\n  - <<: 5\n    name: Mem\n",
        2,
        "not valid YAML",
    ),
    bad(
        "duplicate-key-in-a-mapping",
        "storages:\n  - name: Mem\n    classname: memory\n    name: Other\n",
        4,
        "key 'name'",
        "appears twice",
    ),
    bad("non-scalar-key", "? [a, b]\n: 1\nstorages: []\n", 1, "mapping keys must be plain"),
    bad("billion-laughs", BILLION_LAUGHS, 6, "alias bomb"),
    bad("self-referencing-alias", "storages: &s\n  - *s\n", 2, "refers to itself"),
    bad("deep-nesting", "storages: " + "[" * 3000 + "]" * 3000 + "\n", 1, "nested too deeply"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("text", "line", "needles"), MALFORMED)
def test_malformed_config_is_one_located_config_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    text: str,
    line: int,
    needles: tuple[str, ...],
) -> None:
    monkeypatch.delenv("SELINON_LIKE_TEST_UNSET", raising=False)
    path = tmp_path / "bad-storages.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Exception) as info:  # the exact type is asserted just below
        StoragePool.from_yaml(path)
    error = info.value
    assert isinstance(error, ConfigError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert str(path) in message
    assert re.search(rf"\bline {line}\b", message), message
    assert error.line == line and error.file == str(path)
    for needle in needles:
        assert needle in message
    assert "Traceback" not in message
    # nothing in the document ever runs (the unsafe-tag cases would print "hi")
    assert "hi" not in capfd.readouterr().out


def test_the_table_covers_at_least_thirty_documents() -> None:
    assert len(MALFORMED) >= 30
    assert len({case.id for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system [{command}]",
        "!!python/object/apply:subprocess.check_call [[sh, -c, {command}]]",
        "!!python/object/new:os.system [{command}]",
    ],
)
def test_unsafe_tags_never_execute(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    command = f'"touch {marker}"'
    path = tmp_path / "storages.yml"
    path.write_text(MEM + f"    configuration:\n      echo: {payload.format(command=command)}\n")
    with pytest.raises(ConfigError, match="not allowed"):
        StoragePool.from_yaml(path)
    assert not marker.exists()


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError, match="cannot read") as info:
        StoragePool.from_yaml(missing)
    assert "missing.yml" in str(info.value)
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(MEM.encode() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as info:
        StoragePool.from_yaml(latin1)
    assert "latin1.yml" in str(info.value)


def test_a_stream_is_named_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "streamed.yml"
    path.write_text(MEM + "    port: 1\n")
    with open(path, encoding="utf-8") as stream, pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(stream)
    assert "streamed.yml, line 5" in str(info.value)
    with pytest.raises(ConfigError, match=r"<stream>, line 5"):
        StoragePool.from_yaml(io.StringIO(MEM + "    port: 1\n"))


# -- missing drivers ------------------------------------------------------------------------------


def test_a_module_importing_a_missing_driver_names_the_pip_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "needs_boto_for_config_test.py"
    module.write_text(
        textwrap.dedent(
            """\
            import boto3

            from selinon_like import DataStorage


            class Bucket(DataStorage):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: Bucket\n    import: needs_boto_for_config_test\n"
        "    classname: Bucket\n"
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    message = str(info.value)
    assert "pip install 'selinon-like[s3]'" in message
    assert "'boto3'" in message
    assert "line 3" in message and "key 'import'" in message and "storage 'Bucket'" in message
    assert "needs_boto_for_config_test" not in sys.modules


# -- several problems at once ---------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        textwrap.dedent(
            """\
            storages:
              - name: Mem
                classname: memory
                port: 6379
              - name: Gone
                import: storages.no_such_adapter
              - name: Typo
                classname: memory
                configuration:
                  ech: true
              - classname: memory
            tasks:
              - name: Task1
                storage: Nowhere
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    error = info.value
    assert [problem.line for problem in error.problems] == [4, 6, 10, 11, 14]
    assert [problem.key for problem in error.problems] == [
        "port",
        "import",
        "configuration.ech",
        None,
        "storage",
    ]
    message = str(error)
    assert message.startswith("5 problems in the configuration:")
    for line in (4, 6, 10, 11, 14):
        assert f"storages.yml, line {line}:" in message
    # the error itself carries the first problem's location
    assert (error.line, error.key, error.storage) == (4, "port", "Mem")


# -- environment variables ------------------------------------------------------------------------

RECORDER = """\
storages:
  - name: R
    import: test_config
    classname: Recorder
    configuration:
"""


def recorded(tmp_path: Path, options: str) -> dict[str, Any]:
    path = tmp_path / "storages.yml"
    path.write_text(RECORDER + textwrap.indent(textwrap.dedent(options), " " * 6))
    storage = StoragePool.from_yaml(path).get_connected_storage("R")
    assert isinstance(storage, Recorder)
    return storage.configuration


def test_environment_variables_are_expanded_once_and_typed_like_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SL_HOST", "db.internal")
    monkeypatch.setenv("SL_EMPTY", "")
    monkeypatch.setenv("SL_INDIRECT", "${SL_HOST}")
    monkeypatch.setenv("SL_TEXT", "007")
    monkeypatch.delenv("SL_UNSET", raising=False)
    monkeypatch.delenv("SL_PORT", raising=False)
    configuration = recorded(
        tmp_path,
        """\
        host: ${SL_HOST}
        fallback: ${SL_UNSET:-localhost}
        empty_uses_default: ${SL_EMPTY:-dflt}
        empty_plain: x${SL_EMPTY}y
        literal: $${SL_HOST}
        literal_quoted: "$${SL_UNSET}"
        once: ${SL_INDIRECT}
        port: ${SL_PORT:-6379}
        quoted_port: "${SL_PORT:-6379}"
        single_quoted_port: '${SL_PORT:-6379}'
        text_digits: "${SL_TEXT}"
        plain_digits: ${SL_TEXT}
        enabled: ${SL_UNSET:-true}
        url: redis://${SL_HOST}:${SL_PORT:-6379}/0
        price: costs $5 or $${x}
        nested:
          - ${SL_HOST}
          - {inner: "${SL_UNSET:-deep}"}
        """,
    )
    assert configuration == {
        "host": "db.internal",
        "fallback": "localhost",
        "empty_uses_default": "dflt",
        "empty_plain": "xy",
        "literal": "${SL_HOST}",
        "literal_quoted": "${SL_UNSET}",
        "once": "${SL_HOST}",
        "port": 6379,
        "quoted_port": "6379",
        "single_quoted_port": "6379",
        "text_digits": "007",
        "plain_digits": 7,
        "enabled": True,
        "url": "redis://db.internal:6379/0",
        "price": "costs $5 or ${x}",
        "nested": ["db.internal", {"inner": "deep"}],
    }
    assert type(configuration["port"]) is int


def test_a_set_variable_overrides_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SL_PORT", "6380")
    assert recorded(tmp_path, "port: ${SL_PORT:-6379}\n") == {"port": 6380}


def test_keys_are_not_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_KEY", "other")
    assert recorded(tmp_path, '"${SL_KEY}": 1\n') == {"${SL_KEY}": 1}


# -- from_dict ------------------------------------------------------------------------------------


def test_from_dict_never_modifies_the_callers_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_HOST", "db.internal")
    mapping: dict[str, Any] = {
        "storages": [
            {
                "name": "R",
                "import": "test_config",
                "classname": "Recorder",
                "configuration": {
                    "host": "${SL_HOST}",
                    "hosts": ["${SL_HOST}", ("a", "b")],
                    "options": {"deep": {"list": [1, {"x": "${SL_HOST:-no}"}]}},
                },
                "cache": {"max_size": 2},
                "retry": {"attempts": 2},
            }
        ],
        "tasks": [{"name": "T", "storage": "R", "queue": "q"}],
    }
    before = copy.deepcopy(mapping)
    pool = StoragePool.from_dict(mapping)
    assert mapping == before
    storage = pool.get_connected_storage("R")
    assert isinstance(storage, Recorder)
    assert storage.configuration == {
        "host": "db.internal",
        "hosts": ["db.internal", ["a", "b"]],
        "options": {"deep": {"list": [1, {"x": "db.internal"}]}},
    }
    # what the adapter got is its own copy
    storage.configuration["options"]["deep"]["list"].append("mutated")
    assert mapping == before
    assert pool.storage_for_task("T") == "R"


@pytest.mark.parametrize(
    ("entry", "needles"),
    [
        ({"name": "Mem", "classname": "memory", "port": 1}, ["put `port` under `configuration`"]),
        ({"name": "Mem", "clasname": "memory"}, ["did you mean 'classname'"]),
        ({"name": "Mem", "import": "storages.no_such_adapter"}, ["key 'import'"]),
        (
            {"name": "Mem", "classname": "memory", "configuration": {"ech": 1}},
            ["key 'configuration.ech'", "did you mean 'echo'"],
        ),
        ({"name": "Mem", "import": "collections", "classname": "OrderedDict"}, ["DataStorage"]),
        (
            {"name": "Mem", "classname": "memory", "configuration": {"echo": "${SL_UNSET}"}},
            ["SL_UNSET is not set"],
        ),
        ({"name": "Mem", "classname": "memory", "retry": {"attempts": 0}}, ["retry.attempts"]),
    ],
)
def test_from_dict_reports_the_same_errors_without_lines(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, Any], needles: list[str]
) -> None:
    monkeypatch.delenv("SL_UNSET", raising=False)
    with pytest.raises(ConfigError) as info:
        StoragePool.from_dict({"storages": [entry]})
    message = str(info.value)
    for needle in [*needles, "storage 'Mem'"]:
        assert needle in message
    assert info.value.line is None and ", line " not in message
    assert message.startswith("<dict>: ")


def test_from_dict_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        StoragePool.from_dict([{"name": "Mem"}])  # type: ignore[arg-type]


# -- constructors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "needle", "key"),
    [
        ("type", "size must be an int", "key 'configuration'"),
        ("-1", "size must be positive", "key 'configuration'"),
        ("13", "13 is unlucky", "key 'configuration.size'"),
        ("99", "RuntimeError", "key 'configuration'"),
    ],
)
def test_constructor_errors_come_out_as_config_errors_naming_the_storage(
    tmp_path: Path, size: str, needle: str, key: str
) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: Fussy\n    import: test_config\n    classname: Picky\n"
        f"    configuration:\n      size: {size}\n      password: hunter2-secret\n"
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    message = str(info.value)
    assert "storage 'Fussy'" in message and needle in message and key in message
    assert "storages.yml, line" in message
    assert "hunter2-secret" not in message


# -- tasks and the optional sections --------------------------------------------------------------


def test_tasks_may_carry_selinon_keys_and_need_no_storage(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        MEM
        + textwrap.dedent(
            """\
            tasks:
              - name: Task1
                import: myapp.tasks
                queue: task1_queue
                max_retry: 3
                storage: Mem
              - name: Task2
                import: myapp.tasks
            flows: [flow1]
            """
        )
    )
    pool = StoragePool.from_yaml(path)
    assert pool.storage_for_task("Task1") == "Mem"
    pool.store("flow1", "Task1", "id-1", {"ok": True})
    assert pool.retrieve("flow1", "Task1", "id-1") == {"ok": True}
    with pytest.raises(UnknownStorageError, match="Task2"):
        pool.storage_for_task("Task2")


def test_retry_and_cache_switches(tmp_path: Path) -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {"name": "Off", "classname": "memory", "retry": False, "cache": False},
                {"name": "On", "classname": "memory", "retry": True, "cache": True},
                {"name": "Tuned", "classname": "memory", "retry": {"attempts": 5}},
            ]
        }
    )
    off, on = pool.get_connected_storage("Off"), pool.get_connected_storage("On")
    assert off.retry_policy == NO_RETRY and off.cache is None
    assert on.retry_policy == DEFAULT_RETRY and on.cache is not None
    assert pool.get_connected_storage("Tuned").retry_policy.attempts == 5


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        MEM
        + "    configuration:\n      echo: false\n    serializer: json\n"
        + "    cache: {max_size: 10, ttl: 30}\n    retry: {attempts: 2, backoff: 0}\n"
        + "  - name: files\n    classname: filesystem\n"
        + f"    configuration:\n      path: {tmp_path / 'results'}\n"
    )
    with StoragePool.from_yaml(path) as pool:
        assert pool.names() == ["Mem", "files"]
        for name in pool.names():
            storage = pool.get_connected_storage(name)
            storage.store("f", "t", "1", [1, "two"])
            assert storage.retrieve("f", "t", "1") == [1, "two"]


def test_environment_mistakes_are_reported_together_naming_each_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SL_NOPE_A", "SL_NOPE_B", "SL_NOPE_C"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "storages.yml"
    path.write_text(
        textwrap.dedent(
            """\
            storages:
              - name: A
                classname: memory
                configuration:
                  echo: ${SL_NOPE_A}
              - name: B
                classname: memory
                configuration:
                  echo: ${SL_NOPE_B}
            tasks:
              - name: T
                storage: ${SL_NOPE_C}
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    found = [(p.line, p.storage, p.key) for p in info.value.problems]
    # one problem per mistake: the unexpanded text causes no second error
    assert found == [
        (5, "A", "configuration.echo"),
        (9, "B", "configuration.echo"),
        (12, None, "storage"),
    ]
    assert "SL_NOPE_C is not set" in str(info.value)


# -- the reader alone, and the loading entry points -----------------------------------------------


def test_the_yaml_reader_records_the_line_of_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_PORT", "6380")
    document = YamlDocument("inline.yml")
    data = document.parse(
        textwrap.dedent(
            """\
            defaults: &defaults
              port: ${SL_PORT}
            storages:
              - name: A
                configuration: *defaults
              - name: B
                configuration: {host: "${SL_PORT}"}
            """
        )
    )
    assert data["storages"][0]["configuration"] == {"port": 6380}  # unquoted: re-typed as int
    assert data["storages"][1]["configuration"] == {"host": "6380"}  # quoted: stays a string
    assert document.line(("storages", 0, "name")) == 4
    assert document.line(("storages", 0, "configuration", "port")) == 5  # where the alias is used
    assert document.line(("storages", 1, "configuration", "host", "deeper")) == 7  # nearest
    assert document.error("bad", ("storages", 1)).line == 6
    assert key_of(("storages", 1, "configuration", "host")) == "configuration.host"
    assert document.env_problems == []


def test_load_with_instances_keeps_one_unconnected_instance_per_storage(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text(
        "storages:\n  - name: A\n    classname: memory\n  - name: B\n    classname: memory\n"
    )
    for source in (path, str(path), io.StringIO(path.read_text())):
        loaded = load_with_instances(source)
        assert list(loaded.config.storages) == list(loaded.instances) == ["A", "B"]
        assert [i.storage_name for i in loaded.instances.values()] == ["A", "B"]
        assert not any(i.is_connected() for i in loaded.instances.values())
    assert load_config(path) == load_with_instances(path).config
    mapping = {"storages": [{"name": "M", "classname": "memory"}]}
    assert list(load_with_instances(mapping, source="mine").instances) == ["M"]
    assert load_mapping(mapping).storages.keys() == {"M"}


@pytest.mark.parametrize("value", [42, None, [{"name": "M"}]])
def test_loading_something_else_than_a_file_or_mapping_is_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match=f"must be a mapping.*not {type(value).__name__}"):
        load_with_instances(value)
    with pytest.raises(ConfigError, match=f"must be a mapping, not {type(value).__name__}"):
        load_mapping(value)
