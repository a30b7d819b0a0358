"""Selinon's configuration read for this library: its adapters' keys and its ``nodes.yml``.

Two things a Selinon project hands over when it moves here (SPEC §12), translated without
building anything:

- the configuration of each of Selinon's storage adapters. :class:`SelinonConfig` and its
  subclasses take the constructor arguments of the Selinon adapter of the same name
  (``Redis(host, port, db, ...)``), expand ``{NAME}`` from the environment as Selinon did
  (:func:`expand_selinon_env`) and record the ``configuration`` of this library's adapter that
  ``adapter`` (module, class) names. The drop-in classes of :mod:`selinon_like.selinon` are
  these classes with a connection underneath.
- a Selinon ``nodes.yml``: :func:`read_selinon_nodes` turns its ``storages`` section and each
  task's ``storage`` and ``storage_task_name`` into the mapping a
  :class:`~selinon_like.StoragePool` is built from, plus the name each task's results are
  stored under (``StoragePool.from_selinon`` does both).

This module builds no pool and connects nothing: it imports neither :mod:`selinon_like.pool`
nor :mod:`selinon_like.selinon`, which both build on it.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import yaml

from selinon_like import options
from selinon_like.errors import ConfigError
from selinon_like.importing import import_object
from selinon_like.masking import mask_config

__all__ = [
    "DROP_IN_MODULE",
    "S3",
    "Filesystem",
    "InMemoryStorage",
    "MongoDB",
    "PostgreSQL",
    "Redis",
    "S3Storage",
    "SelinonConfig",
    "SelinonNodes",
    "SqlStorage",
    "expand_selinon_env",
    "read_selinon_nodes",
]

DROP_IN_MODULE = "selinon_like.selinon"
"""The module a migrated ``nodes.yml`` imports its storages from."""

# Selinon's own storage modules: an entry importing one of them is mapped by class name.
_SELINON_MODULES = ("selinon.storages", "selinonlib.storages")

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


class SelinonConfig:
    """The configuration of one of Selinon's adapters, as this library's adapter takes it.

    A subclass's constructor takes the keys of the Selinon adapter of the same name and passes
    the ``configuration`` of this library's adapter named by ``adapter`` (module, class) to
    this constructor; any other keyword is passed through to that adapter, which rejects what
    it does not know with a :class:`ConfigError` when it is built. As in Selinon, ``{NAME}`` in
    a string value is read from the environment (:func:`expand_selinon_env`).

    ``configuration`` holds that configuration, environment fields expanded.
    """

    adapter: ClassVar[tuple[str, str]]
    configuration: dict[str, Any]

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        expanded: dict[str, Any] = {}
        for key, value in configuration.items():
            try:
                expanded[key] = expand_selinon_env(value, key) if isinstance(value, str) else value
            except ConfigError as exc:
                raise ConfigError(exc.message, storage=self._label(), key=key) from None
        self.configuration = expanded

    def pool_entry(self, name: str) -> dict[str, Any]:
        """The ``storages`` entry of a pool configuration for this adapter, named ``name``
        (values escaped so that the pool's loader keeps them as they are)."""
        module, classname = self.adapter
        return {
            "name": name,
            "import": module,
            "classname": classname,
            "configuration": _escaped(self.configuration),
        }

    @classmethod
    def _label(cls) -> str:
        """The class as errors and ``repr`` name it (``selinon_like.selinon.Redis``)."""
        return f"{cls.__module__}.{cls.__qualname__}"

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


class InMemoryStorage(SelinonConfig):
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


class Filesystem(SelinonConfig):
    """Selinon's ``Filesystem`` over :class:`storages.filesystem.Filesystem`.

    ``path`` (str, default: the current directory, as Selinon's ``{PWD}``)
        the root directory, created on first connect. Files are laid out as this library's
        adapter lays them out, not as ``<flow>/<task>/<task_id>.json``.
    """

    adapter = ("storages.filesystem", "Filesystem")

    def __init__(self, path: str | None = None, **more: Any) -> None:
        super().__init__({"path": os.getcwd() if path is None else path, **more})


class Redis(SelinonConfig):
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


class SqlStorage(SelinonConfig):
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


class MongoDB(SelinonConfig):
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


class S3(SelinonConfig):
    """Selinon's ``S3`` over :class:`storages.s3.S3Storage`.

    ``bucket`` (required), ``location``, ``endpoint_url``, ``use_ssl`` (default TLS on;
    Selinon's default was off), ``aws_access_key_id``, ``aws_secret_access_key``,
    ``region_name``. A missing bucket is created on connect, as Selinon did (with a valid
    ``LocationConstraint``). ``serialize_json`` is accepted and has no effect: every result is
    stored through the serializer (JSON), so a task returning ``bytes`` fails at ``store``;
    use the adapter's ``store_stream`` for blobs.
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

# Class names in Selinon's storage modules (and in the drop-in module) -> the configuration
# class of the same name.
_BY_NAME: dict[str, type[SelinonConfig]] = {
    cls.__name__: cls
    for cls in (InMemoryStorage, Filesystem, Redis, SqlStorage, PostgreSQL, MongoDB, S3)
}
_BY_NAME["S3Storage"] = S3


# -- reading a Selinon nodes.yml ------------------------------------------------------------


class SelinonNodes(NamedTuple):
    """What :func:`read_selinon_nodes` read from a Selinon ``nodes.yml``."""

    config: dict[str, Any]
    """The pool configuration (``storages`` and ``tasks``), for ``StoragePool.from_dict``.
    ``tasks`` routes each task to its storage, and each ``storage_task_name`` alias to its
    task's storage too, so the keys ``iter_keys`` lists (which hold the aliases) can be read."""
    task_names: dict[str, str]
    """Each task whose results are stored under another name -> that name
    (``storage_task_name``); the ``task_names`` of a :class:`~selinon_like.StoragePool`."""
    source: str
    """The file read, as errors name it."""
    lines: dict[str, int | None]
    """The line of each storage's entry, by storage name."""

    def locate(self, error: ConfigError) -> ConfigError:
        """``error``, raised while building a pool from :attr:`config`, with the file and the
        line of the storage entry each of its problems is about (returns ``error``)."""
        for problem in error.problems:
            problem.with_context(file=self.source, line=self.lines.get(problem.storage or ""))
        return error.with_context(file=self.source)


def _entry_lines(root: yaml.Node | None, section: str) -> list[int | None]:
    """The line of each entry of a top-level section, from the composed YAML nodes."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == section and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


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


def _config_class(import_path: str, classname: str) -> type[SelinonConfig] | None:
    """The configuration class a Selinon storage entry means, or None when it names another
    class.

    Selinon's own modules (and the drop-in module) are mapped by class name, without importing
    them; any other path is imported, as Selinon would, and accepted when it holds a subclass
    of one of this module's classes (a project's subclass of a drop-in class, say)."""
    if import_path == DROP_IN_MODULE or any(
        import_path == module or import_path.startswith(module + ".") for module in _SELINON_MODULES
    ):
        return _BY_NAME.get(classname)
    found = import_object(f"{import_path}:{classname}", what="class")
    if isinstance(found, type) and issubclass(found, SelinonConfig) and hasattr(found, "adapter"):
        return found
    return None


def read_selinon_nodes(nodes_yml: str | os.PathLike[str]) -> SelinonNodes:
    """Read a Selinon ``nodes.yml`` into a pool configuration of this library's adapters.

    Reads its ``storages`` section and each task's ``storage`` and ``storage_task_name``;
    everything else is ignored. An entry importing one of Selinon's own adapters
    (``selinon.storages.*``) or a class of :mod:`selinon_like.selinon` is mapped to this
    library's adapter, its configuration translated as the drop-in class translates it
    (``{NAME}`` read from the environment). Any other adapter is a :class:`ConfigError`: this
    library cannot call an adapter written for Selinon. Every problem names the file, the line
    and the storage. The adapters' own options are checked when the pool is built
    (:meth:`SelinonNodes.locate` places those errors in the file)."""
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
    lines: dict[str, int | None] = {}
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
            config_class = _config_class(import_path, classname)
        except ConfigError as exc:
            raise fail(exc.message, storage=name, key="import") from None
        if config_class is None:
            raise fail(
                f"{import_path}.{classname} is neither one of Selinon's adapters nor a class of "
                f"{DROP_IN_MODULE}; only those can be read with this library",
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
            translated = config_class(**configuration)
        except ConfigError as exc:
            raise fail(exc.message, storage=name, key=exc.key) from None
        storages.append(translated.pool_entry(name))
        lines[name] = line

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
        if storage not in lines:
            raise ConfigError(
                f"task {task!r} names an unknown storage {storage!r} "
                f"(storages: {', '.join(sorted(lines)) or 'none'})",
                file=source,
                line=line,
                key="storage",
            )
        tasks[task] = storage
        aliases[task] = alias
    for task, alias in aliases.items():
        # Listed in the tasks section (not only in the pool's routing) because the command
        # line picks a storage from it for a key, and keys hold the aliases.
        tasks.setdefault(alias, tasks[task])
    return SelinonNodes(
        config={
            "storages": storages,
            "tasks": [{"name": task, "storage": storage} for task, storage in tasks.items()],
        },
        task_names={task: alias for task, alias in aliases.items() if task != alias},
        source=source,
        lines=lines,
    )
