"""The ``selinon-like`` command (also ``python -m selinon_like``).

Commands (CONFIG is a YAML file; a result is named by FLOW TASK TASK_ID)::

    check CONFIG                          connect and round-trip every storage
    show-config CONFIG                    the resolved configuration, secrets masked
    get CONFIG FLOW TASK TASK_ID          print a result (--error: its error record)
    put CONFIG FLOW TASK TASK_ID VALUE    store VALUE, JSON text or "-" for stdin
    delete CONFIG FLOW TASK TASK_ID       delete a result
    ls CONFIG                             list result keys (--flow, --task)
    copy SRC_CONFIG:STORAGE DST_CONFIG:STORAGE   migrate results and error records
    purge CONFIG                          remove records past their ttl (--dry-run counts)
    demo [--config PATH]                  the quickstart steps on a configuration

``--storage NAME`` picks the storage of get/put/delete/ls. Without it, get/put/delete use the
storage the ``tasks:`` section maps TASK to, or the only storage of the file; ls lists every
storage. ``--json`` prints JSON for scripts instead of tables for people.

CONFIG may also be ``selinon:NODES_YML``: a Selinon ``nodes.yml`` read with
``StoragePool.from_selinon`` (e.g. ``ls selinon:nodes.yml``, ``copy selinon:nodes.yml:Results
storages.yml:Results``). Keys hold each task's ``storage_task_name``, as ``ls`` shows them.

Exit codes: 0 success; 1 an operation failed (a storage error; for ``copy``, any item not
copied); 2 the configuration or the command line is wrong; 3 not found (get/delete of a key
with nothing stored); 130 ``copy`` interrupted (Ctrl-C). Every command masks secrets in what
it prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from selinon_like import quickstart
from selinon_like.errors import (
    ConfigError,
    ResultNotFound,
    SerializationError,
    UnknownStorageError,
)
from selinon_like.health import describe_error
from selinon_like.keys import check_key
from selinon_like.masking import mask_config
from selinon_like.migrate import CopyInterrupted, CopyReport, copy_storage, count_items
from selinon_like.pool import CONFIG_ENV, StoragePool
from selinon_like.serializers import MAX_JSON_DEPTH

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

# CONFIG given as selinon:NODES_YML is a Selinon nodes.yml (StoragePool.from_selinon).
SELINON_PREFIX = "selinon:"

# How many failed items `copy` lists by key (all are counted).
_FAILURES_SHOWN = 50


# -- shared helpers ---------------------------------------------------------------------------


def _load(config: str) -> StoragePool:
    try:
        if config.startswith(SELINON_PREFIX):
            return StoragePool.from_selinon(config[len(SELINON_PREFIX) :])
        return StoragePool.from_yaml(config)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _adapter(pool: StoragePool, name: str) -> str:
    cls = pool.config.storages[name].cls
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc: BaseException, *pools: StoragePool) -> str:
    """One secret-free line: every storage's secrets of every pool involved are scrubbed."""
    configurations = {
        f"{index}:{name}": spec.configuration
        for index, pool in enumerate(pools)
        for name, spec in pool.config.storages.items()
    }
    return describe_error(exc, configurations)


@contextlib.contextmanager
def _reporting(*pools: StoragePool) -> Iterator[None]:
    """Turn an error into its exit code and a masked one-line message on stderr."""
    try:
        yield
    except click.ClickException:
        raise
    except ResultNotFound as exc:
        click.echo(f"not found: {_describe(exc, *pools)}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    except (ConfigError, UnknownStorageError) as exc:
        click.echo(f"error: {_describe(exc, *pools)}", err=True)
        sys.exit(EXIT_CONFIG)
    except Exception as exc:
        click.echo(f"error: {_describe(exc, *pools)}", err=True)
        sys.exit(EXIT_FAILED)


def _pick_storage(pool: StoragePool, storage: str | None, task_name: str | None) -> str:
    names = pool.names()
    if storage is not None:
        if storage not in names:
            raise click.UsageError(
                f"no storage named {storage!r} in {pool.config.source}; "
                f"configured: {', '.join(names)}"
            )
        return storage
    if task_name is not None:
        with contextlib.suppress(UnknownStorageError):
            return pool.storage_for_task(task_name)  # the pool's routing, exactly
    elif len(names) == 1:
        return names[0]
    routed = f"the tasks section maps no storage to task {task_name!r}; " if task_name else ""
    raise click.UsageError(f"{routed}choose one with --storage NAME ({', '.join(names)})")


def _in_process(pool: StoragePool, name: str) -> bool:
    """Whether storage ``name`` keeps its results in this process only (a memory storage):
    nothing a command writes there outlives the command, and it never holds anything when a
    command starts."""
    from storages.memory import InMemoryStorage  # no driver: always importable

    return issubclass(pool.config.storages[name].cls, InMemoryStorage)


def _valid_key(flow_name: str, task_name: str, task_id: str) -> None:
    try:
        check_key(flow_name, task_name, task_id)
    except (TypeError, ValueError) as exc:
        raise click.UsageError(f"invalid key: {exc}") from None


def _to_json(value: Any, compact: bool) -> str:
    # default=repr: a pickle storage may hold values JSON cannot show.
    if compact:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return json.dumps(value, ensure_ascii=False, indent=2, default=repr)


def _table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    # Cells are Text, never markup: keys, results and messages are users' data, and a key
    # like "[bold]flow" or a hint like "pip install 'selinon-like[mongodb]'" must print as is.
    table = Table(title=Text(title) if title is not None else None)
    for column in columns:
        table.add_column(Text(column))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped: never wrap a cell (a key must stay greppable)
        unbounded = console.options.update(max_width=1_000_000)
        width = Measurement.get(console, unbounded, table).maximum
        console.width = max(console.width, width)
    console.print(table)


def _looks_like_config(text: str) -> bool:
    return (
        text.startswith(SELINON_PREFIX) or text.endswith((".yml", ".yaml")) or os.path.isfile(text)
    )


class _ConfigCommand(click.Command):
    """A command whose first argument, CONFIG, may be left out when the environment variable
    SELINON_LIKE_CONFIG names the file (as ``StoragePool.default()`` reads it)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        env = os.environ.get(CONFIG_ENV)
        if env:
            with contextlib.suppress(click.UsageError):  # the real parse below reports it
                given, _rest, _order = self.make_parser(ctx).parse_args(args=list(args))
                arguments = [p.name for p in self.params if isinstance(p, click.Argument)]
                short = any(not isinstance(given.get(name), str) for name in arguments)
                first = given.get(arguments[0]) if arguments else None
                if short and not (isinstance(first, str) and _looks_like_config(first)):
                    args = [env, *args]
        return super().parse_args(ctx, args)


_CONFIG_EPILOG = f"CONFIG may be left out when {CONFIG_ENV} names the file."

_STORAGE_HELP = "The storage to use (default: the one `tasks:` maps TASK to, or the only one)."


def _key_options(fn: Any) -> Any:
    """CONFIG FLOW TASK TASK_ID and --storage, shared by get, put and delete."""
    for decorator in reversed(
        [
            click.argument("config", type=click.Path(dir_okay=False)),
            click.argument("flow_name", metavar="FLOW"),
            click.argument("task_name", metavar="TASK"),
            click.argument("task_id", metavar="TASK_ID"),
            click.option("--storage", "-s", metavar="NAME", help=_STORAGE_HELP),
        ]
    ):
        fn = decorator(fn)
    return fn


# -- logging -----------------------------------------------------------------------------------

log = logging.getLogger("selinon_like.cli")

# -v and -q add up, on the group and on the command alike (counted in ctx.meta, which one
# invocation's contexts share): 0 shows warnings (retries, a memory storage the command cannot
# keep), 1 info, 2 debug; -1 errors only.
_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_handler: logging.Handler | None = None  # the one this module installed


def _log_to_stderr(verbosity: int) -> None:
    """Send the library's log records (the ``selinon_like`` logger) to stderr at the level
    -v/-q chose: through rich's handler on a terminal, one plain line each otherwise (rich
    would wrap a piped line at 80 columns)."""
    level = _LEVELS[max(-1, min(2, verbosity))]
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(stderr=True), show_time=False, show_path=False, markup=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    global _handler
    logger = logging.getLogger("selinon_like")
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = handler
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # shown once, here, not again by a root handler


def _count_verbosity(ctx: click.Context, param: click.Parameter, count: int) -> None:
    verbosity = ctx.meta.get("selinon_like.verbosity", 0)
    verbosity += count if param.name == "verbose" else -count
    ctx.meta["selinon_like.verbosity"] = verbosity
    _log_to_stderr(verbosity)


def _verbosity_options(fn: Any) -> Any:
    """-v/--verbose and -q/--quiet, accepted before or after the command name."""
    fn = click.option(
        "-q",
        "--quiet",
        count=True,
        expose_value=False,
        callback=_count_verbosity,
        help="Fewer messages on stderr: errors only.",
    )(fn)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_count_verbosity,
        help="More messages on stderr (-v info, -vv debug).",
    )(fn)


# -- commands ---------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selinon-like")
@_verbosity_options
def main() -> None:
    """Persist and inspect task results in the storages of a selinon_like YAML file.

    CONFIG may also be selinon:NODES_YML, a Selinon nodes.yml.

    Exit codes: 0 ok, 1 operation failed, 2 configuration or usage error, 3 not found,
    130 copy interrupted."""
    # A configuration's dotted paths resolve against the current directory, as under
    # `python -m` (an installed console script has only its own directory on sys.path).
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)


@main.command(cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_verbosity_options
def check(config: str, as_json: bool) -> None:
    """Validate CONFIG, then store, read back and delete a scratch result in every storage.

    An adapter without delete() gets a read-only probe instead: check never leaves a result
    behind. Exits 1 when any storage fails, 2 when the file itself is wrong."""
    pool = _load(config)
    with pool:
        rows = pool.check(write=True)
    if as_json:
        fields = [
            {
                "storage": row.name,
                "adapter": row.adapter,
                "ok": row.ok,
                "latency_ms": row.latency_ms,
                "error": row.error,
                "note": row.note,
            }
            for row in rows
        ]
        click.echo(json.dumps(fields, indent=2))
    else:
        _table(
            f"selinon-like check {config}",
            ["storage", "adapter", "latency", "status"],
            [
                [
                    row.name,
                    row.adapter,
                    f"{row.latency_ms:.1f} ms" if row.latency_ms is not None else "-",
                    (f"ok ({row.note})" if row.note else "ok")
                    if row.ok
                    else f"FAILED: {row.error}",
                ]
                for row in rows
            ],
        )
    if not all(row.ok for row in rows):
        sys.exit(EXIT_FAILED)


@main.command("show-config", cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_verbosity_options
def show_config(config: str, as_json: bool) -> None:
    """Print CONFIG as resolved (environment expanded, defaults filled in), secrets masked."""
    pool = _load(config)
    storages: list[dict[str, Any]] = []
    for name, spec in pool.config.storages.items():
        storages.append(
            {
                "name": name,
                "adapter": _adapter(pool, name),
                "serializer": getattr(spec.serializer, "name", type(spec.serializer).__name__),
                "cache": (
                    {"max_size": spec.cache.max_size, "ttl": spec.cache.ttl} if spec.cache else None
                ),
                "retry": asdict(spec.retry),
                "configuration": mask_config(spec.configuration),
                "tasks": [task for task, target in pool.config.tasks.items() if target == name],
            }
        )
    if as_json:
        click.echo(
            _to_json({"source": config, "storages": storages, "tasks": pool.config.tasks}, False)
        )
        return
    for entry in storages:  # one two-column table per storage: readable in 80 columns
        cache, retry = entry["cache"], entry["retry"]
        rows = [
            ["adapter", entry["adapter"]],
            ["serializer", entry["serializer"]],
            [
                "cache",
                f"{cache['max_size']} entries, ttl {cache['ttl'] or '-'}" if cache else "off",
            ],
            [
                "retry",
                f"{retry['attempts']} attempts, backoff {retry['backoff']} s, "
                f"max {retry['max_backoff']} s{', jitter' if retry['jitter'] else ''}",
            ],
            ["tasks", ", ".join(entry["tasks"]) or "-"],
        ]
        rows.extend(
            [f"configuration.{key}", _to_json(value, True)]
            for key, value in entry["configuration"].items()
        )
        _table(f"storage {entry['name']}", ["setting", "value"], rows)


@main.command(cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@_key_options
@click.option("--error", "error_record", is_flag=True, help="Print the task's error record.")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on one line.")
@_verbosity_options
def get(
    config: str,
    flow_name: str,
    task_name: str,
    task_id: str,
    storage: str | None,
    error_record: bool,
    as_json: bool,
) -> None:
    """Print the result stored for FLOW TASK TASK_ID as JSON (exit 3 when there is none)."""
    _valid_key(flow_name, task_name, task_id)
    pool = _load(config)
    with pool, _reporting(pool):
        target = pool.get_connected_storage(_pick_storage(pool, storage, task_name))
        if error_record:
            value = target.retrieve_error(flow_name, task_name, task_id)
        else:
            value = target.retrieve(flow_name, task_name, task_id)
    click.echo(_to_json(value, as_json))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _quote_hint(text: str) -> str:
    """For text that is not JSON but reads like a plain word or sentence: how to store it as
    a string (the shell removed any quotes the user typed)."""
    word = text.strip()
    if not word or word[0] in '{["' or "\n" in word:
        return ""
    quoted = json.dumps(word, ensure_ascii=False)
    return f" (a string must be quoted as JSON: to store {word!r}, write '{quoted}')"


@main.command(cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@_key_options
@click.argument("value", metavar="VALUE")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_verbosity_options
def put(
    config: str,
    flow_name: str,
    task_name: str,
    task_id: str,
    value: str,
    storage: str | None,
    as_json: bool,
) -> None:
    """Store VALUE (JSON text; "-" reads it from stdin) as the result of FLOW TASK TASK_ID,
    replacing any result stored before."""
    _valid_key(flow_name, task_name, task_id)
    text = sys.stdin.read() if value == "-" else value
    where = "stdin" if value == "-" else "VALUE"
    try:
        result = json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise click.UsageError(f"{where} is not valid JSON: {exc}{_quote_hint(text)}") from None
    except RecursionError:
        raise click.UsageError(
            f"{where} is nested too deeply to be a result (at most {MAX_JSON_DEPTH} levels of "
            "lists and objects)"
        ) from None
    pool = _load(config)
    with pool, _reporting(pool):
        name = _pick_storage(pool, storage, task_name)
        try:
            record_id = pool.get_connected_storage(name).store(
                flow_name, task_name, task_id, result
            )
        except SerializationError as exc:  # the value given, not the storage, is wrong
            raise click.UsageError(f"{where} cannot be stored: {exc}") from None
    if _in_process(pool, name):
        log.warning(
            "%s is a memory storage: the result lives in this process only and is gone now "
            "that the command ends; put it in a storage that outlives the process",
            name,
        )
    if as_json:
        click.echo(_to_json({"storage": name, "record_id": record_id}, True))
    else:
        click.echo(f"stored {flow_name} {task_name} {task_id} in {name} (record id {record_id})")


@main.command(cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@_key_options
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@_verbosity_options
def delete(
    config: str, flow_name: str, task_name: str, task_id: str, storage: str | None, as_json: bool
) -> None:
    """Delete the result of FLOW TASK TASK_ID (exit 3 when there is none)."""
    _valid_key(flow_name, task_name, task_id)
    pool = _load(config)
    with pool, _reporting(pool):
        name = _pick_storage(pool, storage, task_name)
        pool.get_connected_storage(name).delete(flow_name, task_name, task_id)
    if as_json:
        deleted = {"flow_name": flow_name, "task_name": task_name, "task_id": task_id}
        click.echo(_to_json({"storage": name, "deleted": deleted}, True))
    else:
        click.echo(f"deleted {flow_name} {task_name} {task_id} from {name}")


@main.command("ls", cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--storage", "-s", metavar="NAME", help="Only this storage (default: all).")
@click.option("--flow", "flow_name", metavar="FLOW", help="Only keys of this flow.")
@click.option("--task", "task_name", metavar="TASK", help="Only keys of this task.")
@click.option(
    "--errors",
    "error_records",
    is_flag=True,
    help="List the keys of error records (failed tasks) instead of results.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="Print the first N keys only."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@_verbosity_options
def list_keys(
    config: str,
    storage: str | None,
    flow_name: str | None,
    task_name: str | None,
    error_records: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """List the keys of stored results (with --errors: of error records), sorted by storage
    then key (exit 1 when a storage could not be listed)."""
    pool = _load(config)
    names = [_pick_storage(pool, storage, None)] if storage is not None else pool.names()
    found: list[dict[str, str]] = []
    failed = False
    with pool:
        for name in names:
            try:
                target = pool.get_connected_storage(name)
                listed = target.iter_error_keys if error_records else target.iter_keys
                keys = sorted(listed(flow_name))
            except Exception as exc:
                click.echo(f"error: {name}: {_describe(exc, pool)}", err=True)
                failed = True
                continue
            found.extend(
                {"storage": name, "flow_name": flow, "task_name": task, "task_id": task_id}
                for flow, task, task_id in keys
                if task_name is None or task == task_name
            )
    total = len(found)
    if limit is not None:
        found = found[:limit]
    if as_json:
        click.echo(_to_json(found, True))
    else:
        what = "error record key" if error_records else "key"
        counted = f"{total} {what}{'' if total == 1 else 's'}"
        _table(
            counted if len(found) == total else f"the first {len(found)} of {counted}",
            ["storage", "flow", "task", "task id"],
            [[row["storage"], row["flow_name"], row["task_name"], row["task_id"]] for row in found],
        )
    if failed:
        sys.exit(EXIT_FAILED)


# -- purge ------------------------------------------------------------------------------------


@main.command(cls=_ConfigCommand, epilog=_CONFIG_EPILOG)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--storage", "-s", metavar="NAME", help="Only this storage (default: every one that can)."
)
@click.option("--dry-run", is_flag=True, help="Count the expired records; remove nothing.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_verbosity_options
def purge(
    config: str, storage: str | None, dry_run: bool, no_progress: bool, as_json: bool
) -> None:
    """Remove the results and error records past their ttl, storage by storage, in bounded
    batches; safe while workers store and read (an unexpired record is never removed).

    A storage whose adapter has no purge_expired() is listed as such (an error when named
    with --storage). Exits 1 when a storage failed."""
    pool = _load(config)
    names = [_pick_storage(pool, storage, None)] if storage is not None else pool.names()
    rows: list[dict[str, Any]] = []
    with pool, contextlib.ExitStack() as stack:
        bar = None if no_progress else stack.enter_context(_progress(None, "purge"))
        for name in names:
            row: dict[str, Any] = {"storage": name, "adapter": _adapter(pool, name)}
            rows.append(row)
            if "purge_expired" not in pool.config.storages[name].cls.capabilities():
                row.update(removed=None, seconds=None, ok=storage is None)
                row["error"] = "the adapter has no purge_expired()"
                continue
            if bar is not None:
                bar.update(bar.task_ids[0], description=f"purge {name}")

            def advance(count: int) -> None:
                if bar is not None:
                    bar.advance(bar.task_ids[0], count)

            started = time.perf_counter()
            try:
                target = pool.get_connected_storage(name)
                removed = target.purge_expired(dry_run=dry_run, progress=advance)
            except Exception as exc:
                row.update(removed=None, ok=False, error=_describe(exc, pool))
            else:
                row.update(removed=removed, ok=True, error=None)
            row["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        click.echo(_to_json({"dry_run": dry_run, "storages": rows}, False))
    else:
        what = "expired" if dry_run else "removed"
        _table(
            f"selinon-like purge {config}{' (dry run: nothing removed)' if dry_run else ''}",
            ["storage", "adapter", what, "time", "status"],
            [
                [
                    row["storage"],
                    row["adapter"],
                    "-" if row["removed"] is None else f"{row['removed']:,}",
                    "-" if row["seconds"] is None else f"{row['seconds']:.2f} s",
                    "ok"
                    if row["ok"] and not row["error"]
                    else (f"skipped: {row['error']}" if row["ok"] else f"FAILED: {row['error']}"),
                ]
                for row in rows
            ],
        )
    if not all(row["ok"] for row in rows):
        sys.exit(EXIT_FAILED)


# -- copy -------------------------------------------------------------------------------------


def _endpoint(text: str, role: str) -> tuple[str, str]:
    config, sep, storage = text.rpartition(":")
    env = os.environ.get(CONFIG_ENV)
    if not sep and env and text:  # a bare storage name: of the file SELINON_LIKE_CONFIG names
        return env, text
    if not sep or not config or not storage:
        raise click.UsageError(
            f"{role} must be CONFIG:STORAGE (e.g. storages.yml:Files, or STORAGE alone when "
            f"{CONFIG_ENV} names the file), not {text!r}"
        )
    return config, storage


def _progress(total: int | None, label: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}", markup=False),  # storage names are users' text
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    progress.add_task(label, total=total)
    return progress


@main.command()
@click.argument("source", metavar="SRC_CONFIG:STORAGE")
@click.argument("destination", metavar="DST_CONFIG:STORAGE")
@click.option(
    "--flow", "flow_name", metavar="FLOW", help="Only results and error records of this flow."
)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--overwrite", is_flag=True, help="Replace what the destination already holds.")
@click.option("--no-errors", is_flag=True, help="Copy results only, not error records.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--stop-after-batches", type=click.IntRange(min=1), hidden=True)
@_verbosity_options
def copy(
    source: str,
    destination: str,
    flow_name: str | None,
    batch_size: int,
    overwrite: bool,
    no_errors: bool,
    no_progress: bool,
    as_json: bool,
    stop_after_batches: int | None,
) -> None:
    """Copy every result and every error record from one storage to another.

    Keys come from the source's iter_keys(); each batch is read with retrieve_many and written
    with store_many. Then the keys of iter_error_keys() (tasks that only failed included): each
    record is read with retrieve_error and stored as it is (time and traceback included) with
    store_error_record. What the destination already holds with equal content is skipped, so after
    an interruption run the same command again. A key holding different content in the
    destination is left alone and counted as failed, unless --overwrite. Exits 1 when any item
    failed, 130 when interrupted."""
    src_config, src_name = _endpoint(source, "SRC")
    dst_config, dst_name = _endpoint(destination, "DST")
    src_pool = _load(src_config)
    same_file = os.path.realpath(src_config) == os.path.realpath(dst_config)
    dst_pool = src_pool if same_file else _load(dst_config)
    if same_file and src_name == dst_name:
        raise click.UsageError("SRC and DST are the same storage")
    pools = (src_pool,) if same_file else (src_pool, dst_pool)
    _pick_storage(src_pool, src_name, None)
    _pick_storage(dst_pool, dst_name, None)
    if _in_process(src_pool, src_name):
        log.warning(
            "SRC %s is a memory storage: it holds nothing outside the process that stored "
            "it, so there is nothing to copy from it here",
            src_name,
        )
    if _in_process(dst_pool, dst_name):
        log.warning(
            "DST %s is a memory storage: what is copied into it is gone when this command "
            "ends; copy into a storage that outlives the process",
            dst_name,
        )
    report = CopyReport()
    try:
        with contextlib.ExitStack() as stack:
            for pool in pools:
                stack.enter_context(pool)
            stack.enter_context(_reporting(*pools))
            src = src_pool.get_connected_storage(src_name)
            dst = dst_pool.get_connected_storage(dst_name)
            bar = None
            if not no_progress:
                total = count_items(src, flow=flow_name, errors=not no_errors)
                bar = stack.enter_context(_progress(total, f"copy {src_name} → {dst_name}"))
            batches = 0

            def advance(done: int) -> None:
                nonlocal batches
                batches += 1
                if bar is not None:
                    bar.advance(bar.task_ids[0], done)
                if stop_after_batches is not None and batches >= stop_after_batches:
                    raise KeyboardInterrupt  # a Ctrl-C at a chosen place (tests)

            report = copy_storage(
                src,
                dst,
                flow=flow_name,
                batch_size=batch_size,
                overwrite=overwrite,
                errors=not no_errors,
                progress=advance,
                describe=lambda exc: _describe(exc, *pools),
                failures_listed=_FAILURES_SHOWN,
            )
    except CopyInterrupted as exc:
        report = exc.report
    except KeyboardInterrupt:  # before copying began (connecting, counting keys)
        report.interrupted = True
    _print_summary(source, destination, report, as_json)
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _print_summary(source: str, destination: str, summary: CopyReport, as_json: bool) -> None:
    if as_json:
        click.echo(
            _to_json({"source": source, "destination": destination, **asdict(summary)}, False)
        )
        return
    _table(
        f"copy {source} → {destination}"
        + (" (interrupted: run it again to finish)" if summary.interrupted else ""),
        ["", "copied", "skipped", "failed"],
        [
            [what, str(counts.copied), str(counts.skipped), str(counts.failed)]
            for what, counts in (("results", summary.results), ("error records", summary.errors))
        ],
    )
    for failure in summary.failures:
        click.echo(
            f"failed: {failure.what} {failure.flow_name} {failure.task_name} "
            f"{failure.task_id}: {failure.error}",
            err=True,
        )
    hidden = summary.results.failed + summary.errors.failed - len(summary.failures)
    if hidden > 0:
        click.echo(f"... and {hidden} more failures (--json lists the first ones too)", err=True)


# -- demo -------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="The configuration to run on (default: the embedded one, shipped in the package: "
    "memory, files and SQLite, no server).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what the demo did as JSON.")
@_verbosity_options
def demo(config: str | None, as_json: bool) -> None:
    """Run the quickstart: store results from four threads, read them back, record a task
    failure, then check every storage. Files go to $SELINON_LIKE_DATA (a temporary directory,
    removed afterwards, when it is not set). A storage whose driver is not installed is
    skipped, with the command that installs it."""
    scratch = None
    if not os.environ.get("SELINON_LIKE_DATA"):
        scratch = tempfile.mkdtemp(prefix="selinon-like-demo-")
        os.environ["SELINON_LIKE_DATA"] = scratch
    try:
        with contextlib.ExitStack() as stack:
            if config is None:
                path = stack.enter_context(quickstart.default_config())
                label = f"{path.name} (embedded default)"
            else:
                path, label = Path(config), Path(config).name
            pool = stack.enter_context(_load(str(path)))
            stack.enter_context(_reporting(pool))
            done = quickstart.report(pool, label, None if as_json else click.echo)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if as_json:
        click.echo(_to_json(done.as_json(), False))
    if not done.ok:
        sys.exit(EXIT_FAILED)


def run(argv: list[str] | None = None) -> Any:
    return main.main(args=argv, prog_name="selinon-like")
