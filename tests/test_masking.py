"""Secrets never appear in a repr, an exception message or a report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import InProcess

from selinon_like import ConfigError, DataStorage, StorageError, StoragePool
from selinon_like.masking import (
    MASK,
    is_secret_key,
    mask_config,
    mask_url,
    scrub,
    secret_values,
)
from selinon_like.options import as_bool, as_float, as_int, as_str

SECRETS = ("hunter2-pw", "AKIAsecretKEY/with+slash", "tok-3141592", "p@ss/w:rd#1")


class Vault(InProcess, DataStorage):
    """Takes secret options the way the built-in adapters do; its operations fail loudly,
    quoting its secrets, as a careless driver might."""

    def __init__(
        self,
        url: str = "",
        password: str | int = "",
        aws_secret_access_key: str = "",
        options: dict[str, Any] | None = None,
        hosts: list[str] | None = None,
        port: Any = 1,
    ) -> None:
        self.password = password
        self.url = url
        self.port = as_int("port", port)
        as_str("url", url, empty=True)
        if not isinstance(password, int):
            as_str("password", password, empty=True)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        raise RuntimeError(f"login to {self.url} failed with password {self.password}")

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        raise ConnectionError(f"could not reach {self.url} (password={self.password})")


# -- the helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:hunter2@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("postgresql://user:hunter2@db/app", "postgresql://user:***@db/app"),
        ("mysql+pymysql://root:pw@127.0.0.1/test", "mysql+pymysql://root:***@127.0.0.1/test"),
        ("mongodb://u:p@h1,h2/?authSource=admin", "mongodb://u:***@h1,h2/?authSource=admin"),
        # unescaped "@" or "/" in the password: masked whole, as URL parsers split it
        ("redis://u:p@ss@host/0", "redis://u:***@host/0"),
        ("s3://KEY:abc/def+g@bucket/x", "s3://KEY:***@bucket/x"),
        # no password: nothing to hide
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("http://host:80/path", "http://host:80/path"),
        ("no url here", "no url here"),
        # inside text, quoted, several
        (
            "failed: 'redis://a:one@h1' then postgresql://b:two@h2/db!",
            "failed: 'redis://a:***@h1' then postgresql://b:***@h2/db!",
        ),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "passwd",
        "db_pass",
        "secret",
        "client_secret",
        "aws_secret_access_key",
        "aws_access_key_id",
        "token",
        "auth_token",
        "api_key",
        "apikey",
        "private_key",
        "key",
        "sse_key",
        "credentials",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["host", "port", "db", "bucket", "keyspace", "region_name"])
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_mask_config_hides_secret_keys_and_url_passwords_everywhere() -> None:
    configuration: dict[str, Any] = {
        "host": "localhost",
        "port": 6379,
        "password": "hunter2-pw",
        "numeric_password": 123456,
        "empty_password": "",
        "no_token": None,
        "url": "redis://u:tok-3141592@h/0",
        "hosts": ["redis://u:p1-secret@h1", ("redis://u:p2-secret@h2",)],
        "options": {"aws_secret_access_key": "AKIAsecretKEY/with+slash", "region": "eu"},
        "credentials": {"user": "u", "password": "nested"},
    }
    original = repr(configuration)
    masked = mask_config(configuration)
    assert repr(configuration) == original  # not modified
    assert masked == {
        "host": "localhost",
        "port": 6379,
        "password": MASK,
        "numeric_password": MASK,
        "empty_password": "",
        "no_token": None,
        "url": "redis://u:***@h/0",
        "hosts": ["redis://u:***@h1", ["redis://u:***@h2"]],
        "options": {"aws_secret_access_key": MASK, "region": "eu"},
        "credentials": MASK,
    }


def test_secret_values_finds_every_secret_longest_first() -> None:
    found = secret_values(
        {
            "password": "pw-long-secret",
            "pin_password": 987654,
            "enabled": True,
            "url": "redis://u:url-secret@h",
            "hosts": ["mongodb://a:list-secret@h"],
            "nested": {"token": "tok"},
            "plain": "not-secret",
            "flag_token": False,
        }
    )
    assert set(found) == {"pw-long-secret", "987654", "url-secret", "list-secret", "tok"}
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)


def test_scrub_removes_secrets_and_url_passwords() -> None:
    secrets = secret_values({"password": "hunter2-pw", "token": "hunter2-pw-and-more"})
    text = "auth hunter2-pw-and-more / hunter2-pw at redis://x:other@h failed"
    assert scrub(text, secrets) == f"auth {MASK} / {MASK} at redis://x:{MASK}@h failed"
    # secrets shorter than 3 characters would blank out ordinary words: left alone
    assert scrub("a b ab", ["ab"]) == "a b ab"


@pytest.mark.parametrize(
    "check",
    [
        lambda: as_str("password", 123456),
        lambda: as_int("password", "hunter2-pw"),
        lambda: as_int("api_token", 10**30, maximum=5),
        lambda: as_float("secret", "hunter2-pw"),
        lambda: as_bool("auth", "hunter2-pw"),
    ],
)
def test_option_errors_never_quote_a_secret_value(check: Any) -> None:
    with pytest.raises(ConfigError) as info:
        check()
    message = str(info.value)
    assert "hunter2-pw" not in message and "123456" not in message and "0" * 30 not in message
    assert MASK in message


def test_option_errors_quote_plain_values() -> None:
    with pytest.raises(ConfigError, match="'many'"):
        as_int("port", "many")


# -- adapters and pools built from YAML ----------------------------------------------------------

VAULT_YAML = """\
storages:
  - name: Vault
    import: test_masking
    classname: Vault
    configuration:
      url: redis://user:p@ss/w:rd#1@cache.internal:6379/0
      password: hunter2-pw
      aws_secret_access_key: AKIAsecretKEY/with+slash
      options:
        token: tok-3141592
      hosts:
        - postgresql://app:hunter2-pw@db1/app
"""


def vault_pool(tmp_path: Path, extra: str = "") -> StoragePool:
    path = tmp_path / "storages.yml"
    path.write_text(VAULT_YAML + extra)
    return StoragePool.from_yaml(path)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {text!r}"


def test_reprs_never_show_secrets(tmp_path: Path) -> None:
    pool = vault_pool(tmp_path)
    storage = pool.get_connected_storage("Vault")
    text = repr(storage)
    assert_no_secret(text)
    assert "Vault" in text and MASK in text and "cache.internal" in text
    assert_no_secret(repr(pool))
    assert_no_secret(repr(pool.config.storages["Vault"]))
    assert_no_secret(repr(pool.config))


def test_operation_errors_never_show_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = vault_pool(tmp_path, "    retry: {attempts: 2, backoff: 0}\n").get_connected_storage(
        "Vault"
    )
    with caplog.at_level(logging.DEBUG, logger="selinon_like"):
        with pytest.raises(StorageError) as info:
            storage.retrieve("flow", "task", "1")
        assert_no_secret(str(info.value))
        with pytest.raises(StorageError) as info:
            storage.store("flow", "task", "1", {})  # transient: retried, then unavailable
        assert_no_secret(str(info.value))
    assert caplog.records, "the retry should have been logged"
    assert_no_secret(caplog.text)


def test_check_report_never_shows_secrets(tmp_path: Path) -> None:
    rows = vault_pool(tmp_path).check()
    assert rows[0].ok is False and rows[0].error
    assert_no_secret(repr(rows))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        # the unknown-option error lists option names, never values
        ("      pasword: hunter2-pw\n", "did you mean 'password'"),
        # a wrong type elsewhere in the same storage
        ("      port: hunter2-pw\n", "key 'configuration.port'"),
        # a problem outside the configuration of a storage with secrets
        ("    retry: {attempts: 0}\n", "retry.attempts"),
        ("    cache: {size: 1}\n", "cache.size"),
    ],
)
def test_config_errors_never_show_secrets(tmp_path: Path, extra: str, needle: str) -> None:
    text = VAULT_YAML + extra
    path = tmp_path / "storages.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    message = str(info.value)
    assert needle in message
    assert_no_secret(message)


def test_wrongly_typed_secret_options_are_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: Vault\n    import: test_masking\n    classname: Vault\n"
        "    configuration:\n      url: redis://h\n      password: !!int hunter2-pw\n"
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    assert "line 7" in str(info.value) and "key 'configuration.password'" in str(info.value)
    assert_no_secret(str(info.value))
    path.write_text(
        "storages:\n  - name: Vault\n    import: test_masking\n    classname: Vault\n"
        "    configuration:\n      password: [hunter2-pw]\n"
    )
    with pytest.raises(ConfigError) as info:
        StoragePool.from_yaml(path)
    assert "storage 'Vault'" in str(info.value)
    assert_no_secret(str(info.value))


def test_a_numeric_password_is_masked_too(tmp_path: Path) -> None:
    path = tmp_path / "storages.yml"
    path.write_text(
        "storages:\n  - name: Vault\n    import: test_masking\n    classname: Vault\n"
        "    configuration:\n      password: 31415926\n      url: redis://h\n"
    )
    storage = StoragePool.from_yaml(path).get_connected_storage("Vault")
    assert "31415926" not in repr(storage)
    with pytest.raises(StorageError) as info:
        storage.retrieve("flow", "task", "1")
    assert "31415926" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://host:6379/0?password=qu3ry-s3cret",
        "mongodb://host/db?authSource=admin&password=qu3ry-s3cret&tls=true",
        "https://s3.example.org/bucket?X-Amz-Security-Token=qu3ry-s3cret",
    ],
)
def test_secret_query_parameters_are_masked(url: str) -> None:
    from selinon_like.masking import mask_url, secret_values

    assert "qu3ry-s3cret" not in mask_url(url)
    assert "qu3ry-s3cret" in secret_values({"url": url})
    assert "host" in mask_url(url) or "s3.example.org" in mask_url(url)
