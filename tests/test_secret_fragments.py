"""Secrets are masked by value: a secret holding URL delimiters (``@ : / % ? #``) never leaks,
whole or in the pieces a driver reports after cutting the URL at those delimiters, and a
credential in a URL's query is masked whatever its parameter is called.

Every adapter connects to a dead port with such secrets, in its URL and in its options; its
repr, the pool's config, ``show-config`` (text and JSON), the errors raised, the retry
warnings, the trace events, ``check`` and the CLI's own error lines must hold none of them."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from selinon_like import StoragePool
from selinon_like.cli import main
from selinon_like.errors import SelinonLikeError
from selinon_like.masking import MASK, mask_config, mask_url, scrub, secret_values

# A password holding every delimiter a URL parser or a driver may cut it at.
PIECES = ("Alpha1x", "Bravo2x", "Charlie3x", "Delta4x", "Echo5x", "Foxtrot6x", "Golf7x")
SECRET = "Alpha1x@Bravo2x:Charlie3x/Delta4x%Echo5x?Foxtrot6x#Golf7x"
# A second one for the keys and tokens given as options, so each leak is told apart.
TOKEN_PIECES = ("Hotel8x", "India9x", "Juliet0x")
TOKEN = "Hotel8x:India9x@Juliet0x"

EVENTS: list[dict[str, Any]] = []


def collect(event: dict[str, Any]) -> None:
    """The trace callable of the pools below."""
    EVENTS.append(event)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(name: str, port: int) -> dict[str, Any]:
    at = f"127.0.0.1:{port}"
    configurations: dict[str, tuple[str, dict[str, Any]]] = {
        "redis-url": (
            "storages.redis:Redis",
            {"url": f"redis://user:{SECRET}@{at}/0", "socket_timeout": 1},
        ),
        "redis-option": (
            "storages.redis:Redis",
            {"host": "127.0.0.1", "port": port, "password": SECRET, "socket_timeout": 1},
        ),
        "postgresql": (
            "storages.postgresql:PostgreSQL",
            {"connection_string": f"postgresql://app:{SECRET}@{at}/app", "connect_timeout": 1},
        ),
        "mysql": (
            "storages.mysql:MySQL",
            {"connection_string": f"mysql://app:{SECRET}@{at}/app", "connect_timeout": 1},
        ),
        "mongodb": (
            "storages.mongodb:MongoDB",
            {
                "url": f"mongodb://app:{SECRET}@{at}/?authMechanism=SCRAM-SHA-256"
                f"&directConnection=true&appData={TOKEN}",
                "server_selection_timeout_ms": 300,
                "connect_timeout_ms": 300,
            },
        ),
        "mongodb-aws": (
            "storages.mongodb:MongoDB",
            {
                "url": f"mongodb://{at}/app?authMechanism=MONGODB-AWS"
                f"&authMechanismProperties=AWS_SESSION_TOKEN:{SECRET}&directConnection=true",
                "server_selection_timeout_ms": 300,
                "connect_timeout_ms": 300,
            },
        ),
        "s3": (
            "storages.s3:S3Storage",
            {
                "bucket": "secrets",
                "endpoint_url": f"http://{at}",
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": SECRET,
                "aws_session_token": TOKEN,
                "region_name": "us-east-1",
                "connect_timeout": 0.5,
                "read_timeout": 0.5,
            },
        ),
    }
    dotted, configuration = configurations[name]
    module, classname = dotted.split(":")
    return {
        "name": "Leaky",
        "import": module,
        "classname": classname,
        "configuration": configuration,
        "retry": {"attempts": 2, "backoff": 0.01, "max_backoff": 0.01},
        "trace": "test_secret_fragments.collect",
    }


ADAPTERS = ("redis-url", "redis-option", "postgresql", "mysql", "mongodb", "mongodb-aws", "s3")


def _assert_clean(where: str, text: str) -> None:
    for piece in (SECRET, TOKEN, *PIECES, *TOKEN_PIECES):
        assert piece not in text, f"{where}: {piece!r} leaked in {text[:400]!r}"


def _ours(exc: BaseException) -> Iterator[str]:
    """The messages of our own errors in the chain (a driver's exception chained below a clean
    message of ours is the driver's business, and is never printed by us)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SelinonLikeError):
            yield str(current)
            yield repr(current)
        current = current.__cause__ or current.__context__


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Any]:
    def write(entry: dict[str, Any]) -> Path:
        path = tmp_path / "storages.yml"
        path.write_text(yaml.safe_dump({"storages": [entry]}))
        return path

    EVENTS.clear()
    yield write
    EVENTS.clear()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ADAPTERS)
def test_connect_failures_never_show_a_piece_of_a_secret(
    name: str, config_file: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip({"s3": "boto3", "mysql": "pymysql"}.get(name, "sqlalchemy"))
    caplog.set_level(logging.DEBUG)
    path = config_file(_entry(name, _dead_port()))
    pool = StoragePool.from_yaml(path)
    texts = {
        "repr(pool.config)": repr(pool.config),
        "repr(spec)": repr(pool.config.storages["Leaky"]),
        "mask_config": repr(mask_config(pool.config.storages["Leaky"].configuration)),
    }
    raised: list[BaseException] = []
    with pool:
        for call in (
            lambda: pool.get_connected_storage("Leaky"),
            lambda: pool.store("flow", "task", "id", {"x": 1}),
            lambda: pool.retrieve("flow", "task", "id"),
        ):
            try:
                call()
            except Exception as exc:
                raised.append(exc)
        texts["check"] = repr(pool.check())
        instance = pool._instances.get("Leaky")
        if instance is not None:
            texts["repr(storage)"] = repr(instance)
    assert raised, "a dead port must fail the calls"
    for index, error in enumerate(raised):
        for depth, text in enumerate(_ours(error)):
            texts[f"error {index}.{depth}"] = text
    texts["log"] = caplog.text
    texts["events"] = json.dumps(EVENTS)
    assert EVENTS, "the tracer saw no event"
    runner = CliRunner()
    for args in (["show-config", str(path)], ["show-config", str(path), "--json"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        texts[" ".join(args[:1] + args[2:])] = result.output
    for args in (["check", str(path)], ["get", str(path), "flow", "task", "id"]):
        result = runner.invoke(main, args)
        assert result.exit_code in (1, 2), (args, result.output)  # 2: a URL SQLAlchemy refuses
        texts[args[0]] = result.output
    for where, text in texts.items():
        _assert_clean(f"{name}: {where}", text)


def test_a_session_token_in_a_mongodb_url_is_masked(config_file: Any) -> None:
    # The reported leak: the token appeared whole in every repr and in show-config.
    url = (
        "mongodb://h/db?authMechanism=MONGODB-AWS"
        "&authMechanismProperties=AWS_SESSION_TOKEN:S3cr3t-XYZ"
    )
    assert mask_url(url) == (
        f"mongodb://h/db?authMechanism=MONGODB-AWS&authMechanismProperties={MASK}"
    )
    path = config_file(
        {"name": "M", "import": "storages.mongodb", "classname": "MongoDB",
         "configuration": {"url": url}}
    )  # fmt: skip
    pool = StoragePool.from_yaml(path)
    storage = pool._instances["M"]
    for text in (repr(storage), repr(pool.config), repr(pool.config.storages["M"])):
        assert "S3cr3t" not in text and "MONGODB-AWS" in text
    for args in (["show-config", str(path)], ["show-config", str(path), "--json"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "S3cr3t" not in result.output, result.output


def test_the_host_a_driver_cuts_from_an_unescaped_password_is_scrubbed() -> None:
    # The reported leak: psycopg said "failed to resolve host 'XYZ@db'".
    secrets = secret_values({"connection_string": "postgresql://app:S3cr3t@XYZ@db:5432/app"})
    assert (
        scrub("failed to resolve host 'XYZ@db'", secrets) == f"failed to resolve host '{MASK}@db'"
    )
    assert scrub("password S3cr3t rejected", secrets) == f"password {MASK} rejected"


@pytest.mark.parametrize(
    ("url", "kept", "hidden"),
    [
        # unknown parameters are masked, known harmless ones kept
        ("redis://h:6379/0?client_name=w1&x_custom=v4lue", "client_name=w1", "v4lue"),
        ("https://s3.example/b/k?X-Amz-Date=20260101&X-Amz-Signature=51gn", "X-Amz-Date", "51gn"),
        ("postgresql://u@h/db?sslmode=require&sslpassword=k3yp4ss", "sslmode=require", "k3yp4ss"),
        ("mongodb://h/?w=majority&tlsCertificateKeyFilePassword=f1l3pw", "w=majority", "f1l3pw"),
        ("mongodb://h/?connectTimeoutMS=300&authSource=admin#tok3n-frag", "authSource", "tok3n"),
        ("redis://h/0?sek", "redis://h/0", "sek"),
    ],
)
def test_query_values_are_masked_unless_known_harmless(url: str, kept: str, hidden: str) -> None:
    masked = mask_url(url)
    assert kept in masked and hidden not in masked, masked
    assert any(hidden in secret for secret in secret_values({"url": url}))


def test_percent_encoded_and_decoded_forms_are_scrubbed() -> None:
    secrets = secret_values({"url": "postgresql://app:p%40ss%2Fw0rd@db/app"})
    assert scrub("auth failed for p@ss/w0rd", secrets) == f"auth failed for {MASK}"
    secrets = secret_values({"password": "p@ss/w0rd"})
    assert scrub("login p%40ss%2Fw0rd refused", secrets) == f"login {MASK} refused"
