"""The ``selinon-like`` command (also ``python -m selinon_like``).

Exit codes: 0 success, 1 a storage failed, 2 the configuration or the command line is wrong.
Every command masks secrets in what it prints.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import click

from selinon_like.errors import ConfigError
from selinon_like.pool import StoragePool, describe_error

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_CONFIG = 2


@dataclass
class CheckRow:
    storage: str
    adapter: str
    ok: bool
    latency_ms: float | None
    error: str | None


def _load(config: str) -> StoragePool:
    try:
        return StoragePool.from_yaml(config)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _round_trip(pool: StoragePool, name: str) -> CheckRow:
    spec = pool.config.storages[name]
    adapter = f"{spec.cls.__module__}.{spec.cls.__name__}"
    key = ("selinon-like-check", "check", uuid.uuid4().hex)
    payload = {"check": key[2]}
    started = time.perf_counter()
    try:
        storage = pool.get_connected_storage(name)
        storage.store(*key, payload)
        if storage.retrieve(*key) != payload:
            raise RuntimeError("the result read back differs from the one stored")
        storage.delete(*key)
    except Exception as exc:
        return CheckRow(name, adapter, False, None, describe_error(exc, spec.configuration))
    return CheckRow(name, adapter, True, (time.perf_counter() - started) * 1000, None)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selinon-like")
def main() -> None:
    """Persist and inspect task results in the storages of a selinon_like YAML file."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def check(config: str, as_json: bool) -> None:
    """Validate CONFIG, then store, read back and delete a scratch result in every storage.

    Exits 1 when any storage fails, 2 when the file itself is wrong."""
    pool = _load(config)
    with pool:
        rows = [_round_trip(pool, name) for name in pool.names()]
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        _table(
            f"selinon-like check {config}",
            ["storage", "adapter", "latency", "status"],
            [
                [
                    row.storage,
                    row.adapter,
                    f"{row.latency_ms:.1f} ms" if row.latency_ms is not None else "-",
                    "ok" if row.ok else f"FAILED: {row.error}",
                ]
                for row in rows
            ],
        )
    if not all(row.ok for row in rows):
        sys.exit(EXIT_FAILED)


def run(argv: list[str] | None = None) -> Any:
    return main.main(args=argv, prog_name="selinon-like")
