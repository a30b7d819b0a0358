"""With no database driver installed, everything imports and loads; a storage fails on first
use, naming the pip extra. Each check runs in a fresh interpreter whose imports of the drivers
are blocked (the drivers are installed in this virtualenv, so blocking is the only way)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import selinon_like
import storages

ROOT = Path(storages.__file__).resolve().parent.parent
DRIVERS = (
    "sqlalchemy",
    "redis",
    "pymongo",
    "boto3",
    "botocore",
    "psycopg",
    "pymysql",
    "bson",
    "mongomock",
    "fakeredis",
    "moto",
    "aiobotocore",
)

PRELUDE = """\
import importlib.abc
import json
import sys

BLOCKED = set(sys.argv[1].split(","))
ATTEMPTED = []  # the blocked imports tried, in order


class BlockDrivers(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            ATTEMPTED.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, BlockDrivers())
for blocked in BLOCKED:
    try:
        __import__(blocked)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"the block does not work for {blocked}")
ATTEMPTED.clear()
report = {}
"""

EPILOGUE = """\
report["loaded_drivers"] = sorted(
    name for name in sys.modules if name.partition(".")[0] in BLOCKED
)
print("REPORT " + json.dumps(report))
"""


def adapter_modules() -> list[str]:
    """Every adapter module that exists now (other adapters are being written)."""
    return sorted(
        f"storages.{path.stem}"
        for path in (ROOT / "storages").glob("*.py")
        if path.stem != "__init__"
    )


def core_modules() -> list[str]:
    return sorted(
        f"selinon_like.{path.stem}"
        for path in Path(selinon_like.__file__).parent.glob("*.py")
        if path.stem not in ("__init__", "__main__")
    )


def run_blocked(body: str, tmp_path: Path, blocked: Sequence[str] = DRIVERS) -> dict[str, Any]:
    """``body`` run in a fresh interpreter in which importing ``blocked`` fails (it fills the
    dict ``report``, and sees ``ATTEMPTED``, the blocked imports tried); its report, once
    checked that no blocked driver was loaded."""
    script = tmp_path / "no_drivers.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SELINON_LIKE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(script), ",".join(blocked)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, done.stdout
    report: dict[str, Any] = json.loads(lines[0].removeprefix("REPORT "))
    assert report.pop("loaded_drivers") == [], "a driver was imported"
    return report


def test_the_drivers_are_installed_here_so_blocking_them_proves_something() -> None:
    installed = [name for name in DRIVERS if importlib.util.find_spec(name) is not None]
    assert "redis" in installed and "sqlalchemy" in installed, installed


def test_everything_imports_and_the_memory_adapter_works_without_drivers(
    tmp_path: Path,
) -> None:
    modules = ["selinon_like", "storages", *core_modules(), *adapter_modules()]
    report = run_blocked(
        f"""\
        import importlib

        report["imported"] = []
        for name in {modules!r}:
            importlib.import_module(name)
            report["imported"].append(name)

        from selinon_like import StoragePool

        pool = StoragePool.from_dict(
            {{"storages": [{{"name": "Mem", "import": "storages.memory",
                            "classname": "InMemoryStorage"}}]}}
        )
        storage = pool.get_connected_storage("Mem")
        storage.store("flow", "task", "id", {{"answer": 42}})
        report["retrieved"] = storage.retrieve("flow", "task", "id")
        """,
        tmp_path,
    )
    assert report["imported"] == modules
    assert report["retrieved"] == {"answer": 42}
    # every adapter module present was imported (those not written yet are simply absent)
    assert {"storages.memory", "storages.filesystem"} <= set(report["imported"])


@pytest.mark.skipif(
    not (ROOT / "storages" / "redis.py").exists(), reason="storages/redis.py not written yet"
)
def test_a_redis_storage_loads_and_fails_on_first_use_naming_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "storages.yml"
    config.write_text(
        textwrap.dedent(
            """\
            storages:
              - name: Cache
                import: storages.redis
                classname: Redis
                configuration:
                  host: localhost
                  port: 6379
                  password: s3cr3t-redis-pw
              - name: ByEntryPoint
                classname: redis
            tasks:
              - name: Task1
                storage: Cache
            """
        )
    )
    report = run_blocked(
        f"""\
        from selinon_like import ConfigError, StoragePool

        pool = StoragePool.from_yaml({str(config)!r})
        report["names"] = pool.names()
        report["errors"] = []
        for name in pool.names():
            try:
                pool.get_connected_storage(name)
            except ConfigError as exc:
                report["errors"].append(str(exc))
            else:
                report["errors"].append(None)
        try:
            pool.store("flow", "Task1", "id", 1)
        except ConfigError as exc:
            report["routed"] = str(exc)
        report["check"] = [[row.name, row.ok, row.error] for row in pool.check()]
        """,
        tmp_path,
    )
    assert report["names"] == ["Cache", "ByEntryPoint"]
    for error in [*report["errors"], report["routed"]]:
        assert error is not None and "pip install 'selinon-like[redis]'" in error
        assert "s3cr3t-redis-pw" not in error
    assert "Cache" in report["errors"][0]
    for name, ok, error in report["check"]:
        assert ok is False and "pip install 'selinon-like[redis]'" in error, name


# Every built-in adapter with a driver: (module, class, configuration, the drivers of its
# extra, that extra).
WITH_DRIVERS = [
    ("storages.redis", "Redis", {"password": "pw"}, ("redis",), "redis"),
    ("storages.aio.redis", "AsyncRedis", {}, ("redis",), "redis"),
    (
        "storages.postgresql",
        "PostgreSQL",
        {"connection_string": "postgresql://u:pw@db/x"},
        ("psycopg",),
        "postgresql",
    ),
    (
        "storages.aio.postgresql",
        "AsyncPostgreSQL",
        {"connection_string": "postgresql://u:pw@db/x"},
        ("psycopg",),
        "postgresql",
    ),
    ("storages.mysql", "MySQL", {"connection_string": "mysql://u:pw@db/x"}, ("pymysql",), "mysql"),
    ("storages.sql", "SQLite", {"path": ":memory:"}, ("sqlalchemy",), "sql"),
    (
        "storages.mongodb",
        "MongoDB",
        {"db_name": "d", "username": "u", "password": "pw"},
        ("pymongo", "bson"),
        "mongodb",
    ),
    ("storages.aio.mongodb", "AsyncMongoDB", {"db_name": "d"}, ("pymongo", "bson"), "mongodb"),
    (
        "storages.s3",
        "S3Storage",
        {"bucket": "b", "use_ssl": "false", "part_size": "6000000"},
        ("boto3", "botocore"),
        "s3",
    ),
    ("storages.aio.s3", "AsyncS3Storage", {"bucket": "b"}, ("aiobotocore",), "s3-async"),
]


@pytest.mark.parametrize(
    ("module", "classname", "configuration", "drivers", "extra"),
    WITH_DRIVERS,
    ids=[f"{module}.{classname}" for module, classname, *_ in WITH_DRIVERS],
)
def test_an_adapter_is_built_and_classifies_errors_without_its_driver_and_connect_names_it(
    tmp_path: Path,
    module: str,
    classname: str,
    configuration: dict[str, Any],
    drivers: tuple[str, ...],
    extra: str,
) -> None:
    """Importing the adapter, building it, ``repr`` and ``is_transient`` import no driver
    (none is even tried, though the others are installed); ``connect()`` without the extra's
    drivers is a ``ConfigError`` naming it, and the adapter stays unconnected."""
    report = run_blocked(
        f"""\
        import asyncio
        import inspect

        from selinon_like import ConfigError
        from {module} import {classname}

        storage = {classname}(**{configuration!r})
        repr(storage)
        report["transient"] = [
            storage.is_transient(TimeoutError()),
            storage.is_transient(ConnectionResetError()),
            storage.is_transient(ValueError("x")),
        ]
        report["drivers_before_connect"] = sorted(
            name for name in sys.modules if name.partition(".")[0] in {list(DRIVERS)!r}
        )
        report["tried_before_connect"] = list(ATTEMPTED)
        try:
            outcome = storage.connect()
            if inspect.isawaitable(outcome):
                asyncio.run(outcome)
        except ConfigError as exc:
            report["error"] = str(exc)
        report["connected"] = storage.is_connected()
        """,
        tmp_path,
        drivers,
    )
    assert report["transient"] == [True, True, False]
    assert report["drivers_before_connect"] == []
    assert report["tried_before_connect"] == []
    assert f"pip install 'selinon-like[{extra}]'" in report["error"]
    assert "pw" not in report["error"]
    assert report["connected"] is False
