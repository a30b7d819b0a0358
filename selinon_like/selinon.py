"""Selinon 1.4 drop-in (SPEC §12): this library's adapters under Selinon's calling convention.

A Selinon project moves to this library by changing the ``import:`` lines of its ``nodes.yml``
from ``selinon.storages.<module>`` to ``selinon_like.selinon``; class names and configuration
keys stay as they are::

    storages:
      - name: Results
        import: selinon_like.selinon      # was: selinon.storages.redis
        classname: Redis
        configuration:
          host: '{REDIS_HOST}'
          port: 6379

Selinon's dispatcher calls ``store(node_args, flow_name, task_name, task_id, result)`` and
``store_error(node_args, ...)`` — ``node_args`` first — builds each adapter once when its
generated configuration is imported (before a prefork worker forks), connects it lazily under a
``multiprocessing.Lock`` and keeps it as a dict key. Each class here fits that: it holds a
one-storage :class:`~selinon_like.StoragePool` of the corresponding adapter of ``storages/``
and forwards every call to the instance that pool keeps for the calling process. So the
constructor does no I/O and opens no socket, a forked child connects anew (``is_connected()``
is false in a process that did not connect), ``disconnect()`` is harmless at any time, and
instances hash by identity.

With ``storage_task_name`` set on a task, Selinon stores its result under that alias but
retrieves it by the task's own name; :meth:`SelinonStorage.retrieve` (and ``delete``,
``retrieve_error``) look the name up in Selinon's ``Config.storage_task_name`` when Selinon is
loaded, so the result is found.

:func:`pool_from_selinon` (``StoragePool.from_selinon``) reads a Selinon ``nodes.yml`` into a
pool of this library's adapters, so what a Selinon flow stored can be read, listed and copied
here and with the ``selinon-like`` command (``selinon:NODES_YML`` as CONFIG).
"""

from __future__ import annotations

import json
import os
import string
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from selinon_like import options
from selinon_like.error_records import ErrorRecord
from selinon_like.errors import ConfigError
from selinon_like.masking import mask_config
from selinon_like.pool import StoragePool
from selinon_like.storage import DataStorage, ExcInfo

__all__ = [
    "S3",
    "Filesystem",
    "InMemoryStorage",
    "MongoDB",
    "PostgreSQL",
    "Redis",
    "S3Storage",
    "SelinonStorage",
    "SelinonStoragePool",
    "SqlStorage",
    "expand_selinon_env",
    "pool_from_selinon",
]

_FORMATTER = string.Formatter()


def expand_selinon_env(value: str, key: str | None = None) -> str:
    """``value`` with every ``{NAME}`` replaced by the environment variable ``NAME``, as
    Selinon's own adapters did with ``str.format(**os.environ)``; ``{{`` and ``}}`` are literal
    braces. A field that is not a plain name, or names an unset variable, is a
    :class:`ConfigError` naming ``key``."""
    parts: list[str] = []
    try:
        fields = list(_FORMATTER.parse(value))
    except ValueError as exc:
        raise ConfigError(
            f"{exc} (Selinon expands {{NAME}} from the environment: write {{{{ and }}}} for "
            "literal braces)",
            key=key,
        ) from None
    for literal, name, spec, conversion in fields:
        parts.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ConfigError(
                f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                "is not an environment variable reference: write {NAME}, or {{ and }} for "
                "literal braces",
                key=key,
            )
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(f"the environment variable {name} is not set", key=key)
        parts.append(found)
    return "".join(parts)


def _escaped(value: Any) -> Any:
    """A value as the pool's loader must receive it to keep it literal: the loader expands
    ``${VAR}`` in strings, and Selinon's values are final once ``{NAME}`` is expanded."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(v) for v in value]
    return value


def _given(**values: Any) -> dict[str, Any]:
    """The options given a value: Selinon's ``None`` means "the default", and ours are the
    same defaults (or finite ones where Selinon had none)."""
    return {key: value for key, value in values.items() if value is not None}


def _selinon_task_name(task_name: str) -> str:
    """The name Selinon stores ``task_name``'s results under: its ``storage_task_name``,
    read from Selinon's configuration when Selinon is loaded in this process."""
    module = sys.modules.get("selinon.config")
    names = getattr(getattr(module, "Config", None), "storage_task_name", None)
    if isinstance(names, Mapping):
        alias = names.get(task_name, task_name)
        if isinstance(alias, str):
            return alias
    return task_name


class SelinonStorage:
    """Base of the drop-in adapters: Selinon's interface over one adapter of ``storages/``.

    A subclass's constructor takes the keys of the Selinon adapter of the same name and turns
    them into the ``configuration`` of this library's adapter named by ``adapter`` (module,
    class); any other keyword is passed through to that adapter, which rejects what it does not
    know with a :class:`ConfigError`. As in Selinon, ``{NAME}`` in a string value is read from
    the environment (:func:`expand_selinon_env`).

    ``configuration`` holds that configuration (environment fields expanded); ``storage`` is the
    adapter itself, connected in the calling process.

    ``store``/``store_error`` take the task name to store under (Selinon passes the task's
    ``storage_task_name``); ``retrieve``, ``delete`` and ``retrieve_error`` take the task's own
    name, as Selinon passes it, and use its ``storage_task_name`` when Selinon is loaded. Errors
    are this library's (:class:`~selinon_like.ResultNotFound` when nothing is stored).
    """

    adapter: ClassVar[tuple[str, str]]

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        name = type(self).__name__
        expanded: dict[str, Any] = {}
        for key, value in configuration.items():
            try:
                expanded[key] = expand_selinon_env(value, key) if isinstance(value, str) else value
            except ConfigError as exc:
                raise ConfigError(exc.message, storage=self._label(), key=key) from None
        self.configuration = expanded
        module, classname = self.adapter
        try:
            self._pool = StoragePool.from_dict(
                {
                    "storages": [
                        {
                            "name": name,
                            "import": module,
                            "classname": classname,
                            "configuration": _escaped(expanded),
                        }
                    ]
                }
            )
        except ConfigError as exc:
            raise ConfigError(
                "; ".join(problem.message for problem in exc.problems),
                storage=self._label(),
                key=exc.key,
            ) from None
        self._name = name
        self._connected_pid: int | None = None

    @classmethod
    def _label(cls) -> str:
        return f"{__name__}.{cls.__name__}"

    @classmethod
    def _bool(cls, key: str, value: Any) -> bool:
        try:
            return options.as_bool(key, value)
        except ConfigError as exc:
            raise ConfigError(exc.message, storage=cls._label(), key=key) from None

    def __repr__(self) -> str:
        configuration = getattr(self, "configuration", {})  # unset if __init__ failed
        shown = ", ".join(f"{k}={v!r}" for k, v in mask_config(configuration).items())
        return f"<{self._label()}{' ' + shown if shown else ''}>"

    # -- connection, as Selinon's StoragePool drives it ---------------------------------------

    def connect(self) -> None:
        """Connect this process's adapter instance (a forked child gets its own)."""
        self._adapter()

    def is_connected(self) -> bool:
        """True in the process that connected, until ``disconnect()``; false in a forked child,
        so Selinon connects the child anew."""
        return self._connected_pid == os.getpid()

    def disconnect(self) -> None:
        """Close this process's connection (never the parent's after a fork). Idempotent, and
        safe at any time, interpreter shutdown included."""
        self._connected_pid = None
        self._pool.disconnect_all()

    @property
    def storage(self) -> DataStorage:
        """This library's adapter underneath, connected (for ``iter_keys``, ``store_many``,
        ``retrieve_stream`` and the rest of its interface)."""
        return self._adapter()

    def _adapter(self) -> DataStorage:
        adapter = self._pool.get_connected_storage(self._name)
        self._connected_pid = os.getpid()
        return adapter

    # -- Selinon's operations -------------------------------------------------------------

    def store(
        self, node_args: Any, flow_name: str, task_name: str, task_id: str, result: Any
    ) -> str:
        """Store ``result`` under ``(flow_name, task_name, task_id)``, replacing any result
        stored there; the record id. ``node_args`` is not stored with a result."""
        return self._adapter().store(flow_name, task_name, task_id, result)

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        """Record a task failure (type, message, traceback, ``node_args``, time); the record
        id. Read it back with :meth:`retrieve_error`."""
        return self._adapter().store_error(node_args, flow_name, task_name, task_id, exc_info)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        """The result of task ``task_name`` (stored under its ``storage_task_name``)."""
        return self._adapter().retrieve(flow_name, _selinon_task_name(task_name), task_id)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        """Delete the result of task ``task_name``; ``ResultNotFound`` when there is none."""
        self._adapter().delete(flow_name, _selinon_task_name(task_name), task_id)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        """The error record of task ``task_name``; ``ResultNotFound`` when none."""
        return self._adapter().retrieve_error(flow_name, _selinon_task_name(task_name), task_id)


class InMemoryStorage(SelinonStorage):
    """Selinon's ``InMemoryStorage`` over :class:`storages.memory.InMemoryStorage`.

    ``echo`` (``false``, ``true``/``"stdout"`` or ``"stderr"``; default ``false``)
        print every stored record and every retrieved result on that stream, as Selinon's did.
    ``json`` (bool, default ``false``)
        print them as indented JSON (needs ``echo``).

    Results live in the memory of the process that stored them: a forked child (a prefork
    worker's) starts empty.
    """

    adapter = ("storages.memory", "InMemoryStorage")

    def __init__(
        self, echo: bool | str | None = False, json: bool | str = False, **more: Any
    ) -> None:
        if echo in (None, False) or (isinstance(echo, str) and echo.lower() in ("", "false")):
            stream = None
        elif echo is True or echo in ("stdout", "true"):
            stream = "stdout"
        elif echo == "stderr":
            stream = "stderr"
        else:
            raise ConfigError(
                f"must be false, true, 'stdout' or 'stderr', not {echo!r}",
                storage=self._label(),
                key="echo",
            )
        as_json = self._bool("json", json)
        if as_json and stream is None:
            raise ConfigError(
                "json needs echo ('stdout' or 'stderr')", storage=self._label(), key="json"
            )
        self._echo_stream = stream
        self._echo_json = as_json
        super().__init__(more)

    def _echo(self, value: Any) -> None:
        if self._echo_stream is None:
            return
        stream = getattr(sys, self._echo_stream)
        if self._echo_json:
            json.dump(value, stream, sort_keys=True, indent=2, default=repr)
            stream.write("\n")
        else:
            print(value, file=stream)

    def store(
        self, node_args: Any, flow_name: str, task_name: str, task_id: str, result: Any
    ) -> str:
        record_id = super().store(node_args, flow_name, task_name, task_id, result)
        self._echo(
            {
                "node_args": node_args,
                "flow_name": flow_name,
                "task_name": task_name,
                "task_id": task_id,
                "result": result,
            }
        )
        return record_id

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        result = super().retrieve(flow_name, task_name, task_id)
        self._echo(result)
        return result


class Filesystem(SelinonStorage):
    """Selinon's ``Filesystem`` over :class:`storages.filesystem.Filesystem`.

    ``path`` (str, default: the current directory, as Selinon's ``{PWD}``)
        the root directory, created on first connect. Files are laid out as this library's
        adapter lays them out, not as ``<flow>/<task>/<task_id>.json``.
    """

    adapter = ("storages.filesystem", "Filesystem")

    def __init__(self, path: str | None = None, **more: Any) -> None:
        super().__init__({"path": os.getcwd() if path is None else path, **more})


class Redis(SelinonStorage):
    """Selinon's ``Redis`` over :class:`storages.redis.Redis`.

    Selinon's keys: ``host`` (default ``localhost``), ``port`` (``6379``), ``db`` (``0``),
    ``password``, ``socket_timeout`` (default 10 s; Selinon waited forever), ``charset``
    (``utf-8``), ``errors`` (``strict``), ``unix_socket_path``. ``connection_pool`` is refused:
    a pool object built before the fork would be shared by every worker process; give
    ``host``/``port``/``db`` (or ``url``). Keys are laid out as this library's adapter lays
    them out (``key_prefix``, default ``selinon:``), not under the bare task id.
    """

    adapter = ("storages.redis", "Redis")

    def __init__(
        self,
        host: str | None = None,
        port: int | str | None = None,
        db: int | str | None = None,
        password: str | None = None,
        socket_timeout: float | None = None,
        connection_pool: Any = None,
        charset: str | None = None,
        errors: str | None = None,
        unix_socket_path: str | None = None,
        **more: Any,
    ) -> None:
        if connection_pool is not None:
            raise ConfigError(
                "a connection pool object is not accepted: built before the worker forks, it "
                "would be shared by every process; give host, port and db (or url)",
                storage=self._label(),
                key="connection_pool",
            )
        super().__init__(
            _given(
                host=host,
                port=port,
                db=db,
                password=password,
                socket_timeout=socket_timeout,
                charset=charset,
                errors=errors,
                unix_socket_path=unix_socket_path,
            )
            | more
        )


class SqlStorage(SelinonStorage):
    """Selinon's SQLAlchemy adapter over :class:`storages.sql.SqlStorage`.

    ``connection_string`` (required; any SQLAlchemy URL), ``encoding`` (the client encoding),
    ``echo`` (log every statement). Tables are created on first connect; the database itself
    must exist (Selinon's PostgreSQL adapter created it, which needs a privilege a worker
    should not hold).
    """

    adapter = ("storages.sql", "SqlStorage")

    def __init__(
        self,
        connection_string: str | None = None,
        encoding: str | None = None,
        echo: bool | str | None = None,
        **more: Any,
    ) -> None:
        if connection_string is None:
            raise ConfigError(
                "connection_string is required", storage=self._label(), key="connection_string"
            )
        super().__init__(
            _given(connection_string=connection_string, encoding=encoding, echo=echo) | more
        )


class PostgreSQL(SqlStorage):
    """Selinon's ``PostgreSQL`` over :class:`storages.postgresql.PostgreSQL`; the keys of
    :class:`SqlStorage` (``connection_string``, ``encoding``, ``echo``)."""

    adapter = ("storages.postgresql", "PostgreSQL")


class MongoDB(SelinonStorage):
    """Selinon's ``MongoDB`` over :class:`storages.mongodb.MongoDB`.

    ``db_name`` and ``collection_name`` (required), ``host`` (default ``localhost``), ``port``
    (default ``27017``).
    """

    adapter = ("storages.mongodb", "MongoDB")

    def __init__(
        self,
        db_name: str | None = None,
        collection_name: str | None = None,
        host: str | None = None,
        port: int | str | None = None,
        **more: Any,
    ) -> None:
        for key, value in (("db_name", db_name), ("collection_name", collection_name)):
            if value is None:
                raise ConfigError(f"{key} is required", storage=self._label(), key=key)
        super().__init__(
            _given(db_name=db_name, collection_name=collection_name, host=host, port=port) | more
        )


class S3(SelinonStorage):
    """Selinon's ``S3`` over :class:`storages.s3.S3Storage`.

    ``bucket`` (required), ``location``, ``endpoint_url``, ``use_ssl`` (default TLS on;
    Selinon's default was off), ``aws_access_key_id``, ``aws_secret_access_key``,
    ``region_name``. A missing bucket is created on connect, as Selinon did (with a valid
    ``LocationConstraint``). ``serialize_json`` is accepted and has no effect: every result is
    stored through the serializer (JSON), so a task returning ``bytes`` fails at ``store``;
    use the adapter's ``store_stream`` (through :attr:`storage`) for blobs.
    """

    adapter = ("storages.s3", "S3Storage")

    def __init__(
        self,
        bucket: str | None = None,
        location: str | None = None,
        endpoint_url: str | None = None,
        use_ssl: bool | str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        region_name: str | None = None,
        serialize_json: bool | str = False,
        **more: Any,
    ) -> None:
        if bucket is None:
            raise ConfigError("bucket is required", storage=self._label(), key="bucket")
        self._bool("serialize_json", serialize_json)
        super().__init__(
            {"create_bucket": True}
            | _given(
                bucket=bucket,
                location=location,
                endpoint_url=endpoint_url,
                use_ssl=use_ssl,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                region_name=region_name,
            )
            | more
        )


# Selinon's documentation names the S3 class S3Storage; Selinon 1.4's module names it S3.
S3Storage = S3

# Class names in Selinon's storage modules -> the drop-in class of the same name.
_DROP_INS: dict[str, type[SelinonStorage]] = {
    cls.__name__: cls
    for cls in (InMemoryStorage, Filesystem, Redis, SqlStorage, PostgreSQL, MongoDB, S3)
}
_DROP_INS["S3Storage"] = S3
_SELINON_MODULES = ("selinon.storages", "selinonlib.storages")


# -- reading a Selinon nodes.yml ------------------------------------------------------------


class SelinonStoragePool(StoragePool):
    """A :class:`~selinon_like.StoragePool` read from a Selinon ``nodes.yml``
    (:func:`pool_from_selinon`).

    Its routed operations (``retrieve``, ``store``, ``store_error``, ``retrieve_error``,
    ``delete``) take a task's own name, go to the storage Selinon gave the task, and use the
    task's ``storage_task_name`` in the key, as Selinon did when it stored. The ``tasks``
    mapping also routes each alias to its task's storage, so the keys ``iter_keys`` lists (which
    hold the aliases) can be read back through the pool too.
    """

    selinon_task_names: dict[str, str]

    def storage_task_name(self, task_name: str) -> str:
        """The task name ``task_name``'s results are stored under."""
        names: dict[str, str] = getattr(self, "selinon_task_names", {})
        return names.get(task_name, task_name)

    def retrieve(self, flow_name: str, task_name: str, task_id: str) -> Any:
        storage = self.get_connected_storage(self.storage_for_task(task_name))
        return storage.retrieve(flow_name, self.storage_task_name(task_name), task_id)

    def store(self, flow_name: str, task_name: str, task_id: str, result: Any) -> str:
        storage = self.get_connected_storage(self.storage_for_task(task_name))
        return storage.store(flow_name, self.storage_task_name(task_name), task_id, result)

    def store_error(
        self,
        node_args: Any,
        flow_name: str,
        task_name: str,
        task_id: str,
        exc_info: ExcInfo | BaseException,
    ) -> str:
        storage = self.get_connected_storage(self.storage_for_task(task_name))
        alias = self.storage_task_name(task_name)
        return storage.store_error(node_args, flow_name, alias, task_id, exc_info)

    def retrieve_error(self, flow_name: str, task_name: str, task_id: str) -> ErrorRecord:
        storage = self.get_connected_storage(self.storage_for_task(task_name))
        return storage.retrieve_error(flow_name, self.storage_task_name(task_name), task_id)

    def delete(self, flow_name: str, task_name: str, task_id: str) -> None:
        storage = self.get_connected_storage(self.storage_for_task(task_name))
        storage.delete(flow_name, self.storage_task_name(task_name), task_id)


def _entry_lines(root: yaml.Node | None, section: str) -> list[int | None]:
    """The line of each entry of a top-level section, from the composed YAML nodes."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == section and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def _drop_in_class(import_path: str, classname: str) -> type[SelinonStorage] | None:
    """The drop-in class a Selinon storage entry means, or None when it names another class.

    Selinon's own modules (and this one) are mapped by class name, without importing them;
    any other path is imported, as Selinon would, and accepted when it holds a subclass of
    :class:`SelinonStorage`."""
    if import_path == __name__ or any(
        import_path == module or import_path.startswith(module + ".") for module in _SELINON_MODULES
    ):
        return _DROP_INS.get(classname)
    from selinon_like.importing import import_object

    found = import_object(f"{import_path}:{classname}", what="class")
    if isinstance(found, type) and issubclass(found, SelinonStorage):
        return found
    return None


def pool_from_selinon(nodes_yml: str | os.PathLike[str]) -> SelinonStoragePool:
    """A pool of this library's adapters from a Selinon ``nodes.yml``.

    Reads its ``storages`` section and each task's ``storage`` and ``storage_task_name``;
    everything else is ignored. An entry importing one of Selinon's own adapters
    (``selinon.storages.*``) or a class of this module is mapped to this library's adapter,
    its configuration translated as the drop-in class translates it (``{NAME}`` read from the
    environment). Any other adapter is a :class:`ConfigError`: this library cannot call an
    adapter written for Selinon. Every problem names the file, the line and the storage."""
    source = os.fspath(nodes_yml)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the Selinon nodes file: {exc}", file=source) from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {exc}",
            file=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "a Selinon nodes file is a mapping with 'storages', 'tasks' and 'flows'", file=source
        )

    storages: list[dict[str, Any]] = []
    for line, entry in _entries(data, root, "storages", source):

        def fail(message: str, line: int | None = line, **where: Any) -> ConfigError:
            return ConfigError(message, file=source, line=line, **where)

        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise fail("each storage needs a 'name'", key="name")
        import_path = entry.get("import")
        classname = entry.get("classname", name)
        if not isinstance(import_path, str) or not isinstance(classname, str):
            raise fail("'import' and 'classname' must be strings", storage=name, key="import")
        try:
            drop_in = _drop_in_class(import_path, classname)
        except ConfigError as exc:
            raise fail(exc.message, storage=name, key="import") from None
        if drop_in is None:
            raise fail(
                f"{import_path}.{classname} is neither one of Selinon's adapters nor a class of "
                f"{__name__}; only those can be read with this library",
                storage=name,
                key="import",
            )
        configuration = entry.get("configuration") or {}
        if not isinstance(configuration, dict) or not all(map(str.isidentifier, configuration)):
            raise fail(
                "'configuration' must be a mapping of option names",
                storage=name,
                key="configuration",
            )
        try:
            translated = drop_in(**configuration)
        except ConfigError as exc:
            raise fail(exc.message, storage=name, key=exc.key) from None
        module, ours = drop_in.adapter
        storages.append(
            {
                "name": name,
                "import": module,
                "classname": ours,
                "configuration": _escaped(translated.configuration),
            }
        )

    known = {entry["name"] for entry in storages}
    tasks: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line, entry in _entries(data, root, "tasks", source):
        task, storage = entry.get("name"), entry.get("storage")
        if storage is None:
            continue
        alias = entry.get("storage_task_name", task)
        if not (isinstance(task, str) and isinstance(storage, str) and isinstance(alias, str)):
            raise ConfigError(
                "a task's 'name', 'storage' and 'storage_task_name' must be strings",
                file=source,
                line=line,
                key="tasks",
            )
        if storage not in known:
            raise ConfigError(
                f"task {task!r} names an unknown storage {storage!r} "
                f"(storages: {', '.join(sorted(known)) or 'none'})",
                file=source,
                line=line,
                key="storage",
            )
        tasks[task] = storage
        aliases[task] = alias
    for task, alias in aliases.items():
        # An alias that is no task's name routes to its task's storage, so the keys iter_keys
        # lists (which hold aliases) can be read through the pool too.
        tasks.setdefault(alias, tasks[task])
    try:
        built = SelinonStoragePool.from_dict(
            {
                "storages": storages,
                "tasks": [{"name": task, "storage": storage} for task, storage in tasks.items()],
            }
        )
    except ConfigError as exc:
        raise ConfigError(
            "; ".join(problem.located() for problem in exc.problems), file=source
        ) from None
    if not isinstance(built, SelinonStoragePool):  # from_dict builds cls(...)
        raise TypeError(f"StoragePool.from_dict built a {type(built).__name__}")
    pool = built
    pool.selinon_task_names = {task: alias for task, alias in aliases.items() if task != alias}
    return pool


def _entries(
    data: dict[str, Any], root: yaml.Node | None, section: str, source: str
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """The entries of a top-level list, each with its line."""
    entries = data.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"'{section}' must be a list", file=source, key=section)
    lines = _entry_lines(root, section)
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else None
        if not isinstance(entry, dict):
            raise ConfigError(
                f"each entry of '{section}' must be a mapping", file=source, line=line, key=section
            )
        yield line, entry
