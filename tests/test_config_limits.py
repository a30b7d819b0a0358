"""Hostile or accidental configuration files: a size cap checked before parsing, a value cap
checked while composing, and secret-like options that stay strings whatever YAML would type
them as."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from selinon_like import ConfigError, DataStorage, StoragePool, yamlsource
from selinon_like.yamlsource import MAX_BYTES


class Recorder(DataStorage):
    """Keeps the options it was built with."""

    def __init__(
        self, password: Any = None, api_token: Any = None, port: Any = None, label: Any = None
    ) -> None:
        self.options = {"password": password, "api_token": api_token, "port": port, "label": label}

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def is_connected(self) -> bool:
        return True

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        raise self.not_found(flow_name, task_name, task_id)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        return task_id


def _options(tmp_path: Path, lines: str) -> dict[str, Any]:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: R\n    import: test_config_limits\n    classname: Recorder\n"
        "    configuration:\n" + lines
    )
    storage = StoragePool.from_yaml(path).get_connected_storage("R")
    assert isinstance(storage, Recorder)
    return storage.options


# -- size ---------------------------------------------------------------------------------------


def test_a_huge_file_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The review's 50 MB list took 293 s and 5 GB before the value cap refused it.
    path = tmp_path / "huge.yml"
    with open(path, "w") as handle:
        handle.write("storages:\n")
        handle.writelines("  - 1\n" for _ in range(50 * 1024 * 1024 // 6))

    def no_parsing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(yaml.SafeLoader, "__init__", no_parsing)
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    text = str(info.value)
    assert str(path) in text and "52,428," in text and f"at most {MAX_BYTES:,}" in text


class CountingStream(io.StringIO):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1) -> str:
        self.asked.append(size)
        return super().read(size)


def test_a_stream_is_read_up_to_the_cap_only() -> None:
    stream = CountingStream("# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match="more than 1,048,576 characters"):
        StoragePool.from_yaml(stream)
    assert stream.asked == [MAX_BYTES + 1]


def test_a_file_that_reports_no_size_is_still_capped(tmp_path: Path) -> None:
    # /proc files and pipes say 0 bytes: the read itself stops after the cap.
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)

    def feed() -> None:
        # The reader stops after the cap and closes: the rest of the write meets a broken pipe.
        with contextlib.suppress(BrokenPipeError), open(fifo, "w") as handle:
            handle.write("# " + "x" * (MAX_BYTES + 10) + "\n")

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with pytest.raises(ConfigError, match="more than 1,048,576 bytes"):
            StoragePool.from_yaml(fifo)
    finally:
        writer.join(timeout=10)


def test_a_text_given_directly_is_capped() -> None:
    with pytest.raises(ConfigError, match="characters; at most"):
        yamlsource.YamlDocument("<text>").parse("a: " + "b" * MAX_BYTES)


def test_values_are_counted_while_composing(monkeypatch: pytest.MonkeyPatch) -> None:
    composed = [0]
    original = yaml.composer.Composer.compose_node

    def counting(self: Any, parent: Any, index: Any) -> Any:
        composed[0] += 1
        return original(self, parent, index)

    monkeypatch.setattr(yaml.composer.Composer, "compose_node", counting)
    text = "storages:\n" + "- 1\n" * 150_000  # under the size cap, over the value cap
    assert len(text) < MAX_BYTES
    with pytest.raises(ConfigError, match="more than 100000 values"):
        StoragePool.from_yaml(io.StringIO(text))
    assert composed[0] <= 100_001  # stopped there, not after composing all 150,002


def test_a_configuration_under_the_caps_still_loads(tmp_path: Path) -> None:
    padding = "# " + "x" * 1000 + "\n"
    path = tmp_path / "padded.yml"
    path.write_text(padding * 900 + "storages:\n  - name: M\n    classname: memory\n")
    assert StoragePool.from_yaml(path).names() == ["M"]


# -- secret-like options stay strings --------------------------------------------------------------


@pytest.mark.parametrize("value", ["null", "~", "yes", "0123", "1e3", "2026-01-01", "12345"])
def test_a_password_from_the_environment_is_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PW", value)
    monkeypatch.setenv("TOKEN", value)
    monkeypatch.setenv("PORT", "6379")
    options = _options(
        tmp_path, "      password: ${PW}\n      api_token: ${TOKEN}\n      port: ${PORT}\n"
    )
    assert options["password"] == value and options["api_token"] == value
    assert options["port"] == 6379  # other options are still typed after expansion


def test_an_empty_variable_is_an_empty_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW", "")
    assert _options(tmp_path, "      password: ${PW}\n")["password"] == ""
    assert _options(tmp_path, "      password: ${UNSET_PW_21:-}\n")["password"] == ""


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("0123", "0123"),  # YAML 1.1 would read the octal number 83
        ("12345", "12345"),
        ("yes", "yes"),
        ("off", "off"),
        ("1_000", "1_000"),
        ("2026-01-01", "2026-01-01"),
        ('"quoted"', "quoted"),
        ("null", None),  # written as null: an explicit choice
        ("~", None),
        ("", None),
    ],
)
def test_a_literal_password_is_its_text_unless_written_null(
    tmp_path: Path, written: str, read: Any
) -> None:
    options = _options(tmp_path, f"      password: {written}\n      label: 0123\n")
    assert options["password"] == read
    assert options["label"] == 83  # not a secret-like option: typed as YAML says


def test_the_review_case_a_redis_password_of_null_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("REDIS_PASSWORD", "null")
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: R\n    import: storages.redis\n    classname: Redis\n"
        "    configuration:\n      password: ${REDIS_PASSWORD}\n"
    )
    pool = StoragePool.from_yaml(path)
    assert pool.config.storages["R"].configuration["password"] == "null"


def test_the_production_example_never_puts_a_password_into_a_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The review: it expanded ${PGPASSWORD} into the URL unencoded, so a password holding "@"
    # moved the host, and pieces of the password reached error messages.
    monkeypatch.setenv("PGPASSWORD", "S3cr3t@XYZ")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/w0rd")
    monkeypatch.setenv("ARTIFACT_BUCKET", "artifacts")
    example = Path(__file__).resolve().parents[1] / "config" / "production.example.yml"
    assert "${PGPASSWORD}" not in example.read_text()
    config = StoragePool.from_yaml(example).config
    url = config.storages["Archive"].configuration["connection_string"]
    assert "XYZ" not in url and url.endswith("@localhost/app")
    assert config.storages["Results"].configuration["password"] == "p@ss/w0rd"
