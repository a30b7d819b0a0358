"""Validating the configuration and building what it describes (SPEC section 4).

The YAML is read by :mod:`selinon_like.yamlsource`, which keeps the line of every key and
expands ``${VAR}`` references; here each problem becomes a :class:`ConfigError` naming the file,
the line, the storage and the key.

Validation happens in two passes: first the shape of the whole document (every problem is
collected and reported together), then each adapter class is imported and constructed with its
``configuration`` (constructors do no I/O), so a wrong option is reported at load time too.
:func:`load_with_instances` keeps those instances for the pool that loads the file.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from selinon_like import options
from selinon_like.cache import CacheSpec
from selinon_like.compression import NO_COMPRESSION, Compression
from selinon_like.envelope import NO_EXPIRY, Expiry
from selinon_like.errors import ConfigError
from selinon_like.masking import mask_config, scrub, secret_values
from selinon_like.registry import import_class, import_object
from selinon_like.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from selinon_like.serializers import Serializer, get_serializer
from selinon_like.storage import DataStorage, StorageBase
from selinon_like.tracing import Observer, Tracer
from selinon_like.yamlsource import Path, YamlDocument, read_text

__all__ = [
    "LoadedConfig",
    "PoolConfig",
    "StorageSpec",
    "load_config",
    "load_mapping",
    "load_with_instances",
]

STORAGE_KEYS = (
    "name",
    "import",
    "classname",
    "configuration",
    "serializer",
    "ttl",
    "compression",
    "max_result_bytes",
    "cache",
    "retry",
    "trace",
    "operation_timeout",
)
CACHE_KEYS = ("max_size", "ttl")
RETRY_KEYS = ("attempts", "backoff", "max_backoff", "jitter")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass
class StorageSpec:
    """One validated ``storages`` entry: everything needed to build a fresh instance."""

    name: str
    cls: type[DataStorage]
    configuration: dict[str, Any]
    serializer: Serializer
    retry: RetryPolicy
    cache: CacheSpec | None
    line: int | None = None
    tracers: list[Tracer] = field(default_factory=list)
    operation_timeout: float | None = None  # None: the adapter's default_operation_timeout()
    ttl: Expiry = NO_EXPIRY
    compression: Compression = NO_COMPRESSION
    max_result_bytes: int | None = None  # None: no ceiling on one serialized result

    def __repr__(self) -> str:
        return (
            f"StorageSpec(name={self.name!r}, cls={self.cls.__qualname__}, "
            f"configuration={mask_config(self.configuration)!r}, serializer={self.serializer!r})"
        )

    def build(self) -> DataStorage:
        """A new, unconnected instance configured for the pool."""
        instance = self.cls(**copy.deepcopy(self.configuration))
        self.configure(instance)
        return instance

    def configure(self, instance: StorageBase) -> None:
        """Give ``instance`` (of :attr:`cls`, or its async form) this storage's name and
        settings: serializer, record format, retries, timeout, cache, observer."""
        instance.storage_name = self.name
        instance.serializer = self.serializer
        instance.set_record_format(
            ttl=self.ttl, compression=self.compression, max_result_bytes=self.max_result_bytes
        )
        instance.retry_policy = self.retry
        instance.operation_timeout = self.operation_timeout
        instance.cache = self.cache.build() if self.cache is not None else None
        instance.observer = Observer(self.name, self.tracers, secret_values(self.configuration))


@dataclass
class PoolConfig:
    """A validated configuration: ``source`` names the file, ``storages`` maps each storage
    name (in file order) to its spec, ``tasks`` maps task names to storage names."""

    source: str
    storages: dict[str, StorageSpec] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)


# -- public entry points ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and the adapter instances built to validate it: one per
    storage, configured and not connected, ready for a pool to start with."""

    config: PoolConfig
    instances: dict[str, DataStorage]


def load_config(source: str | os.PathLike[str] | IO[str]) -> PoolConfig:
    """Parse and validate a YAML file (a path or an open text stream)."""
    return load_with_instances(source).config


def load_mapping(mapping: Mapping[str, Any], source: str = "<dict>") -> PoolConfig:
    """Validate an already-parsed mapping (never modified; strings are env-expanded).
    ``source`` names it in errors."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"the configuration must be a mapping, not {type(mapping).__name__}", file=source
        )
    return load_with_instances(mapping, source=source).config


def load_with_instances(
    config: str | os.PathLike[str] | IO[str] | Mapping[str, Any], *, source: str = "<dict>"
) -> LoadedConfig:
    """Validate a YAML file (a path), an open text stream or an already-parsed mapping
    (``source`` names a mapping in errors), keeping the instances built while validating."""
    if isinstance(config, Mapping):
        document = YamlDocument(source)
        return _validate(document.plain(config), document)
    if not (isinstance(config, (str, os.PathLike)) or callable(getattr(config, "read", None))):
        raise ConfigError(
            f"the configuration must be a mapping (or a YAML file), not {type(config).__name__}",
            file=source,
        )
    name, text = read_text(config)
    document = YamlDocument(name)
    return _validate(document.parse(text), document)


# -- validation ------------------------------------------------------------------------------


def _validate(data: Any, doc: YamlDocument) -> LoadedConfig:
    # Environment mistakes are reported with the rest; the entries they sit in are not
    # checked further (their values are still the unexpanded text).
    problems: list[ConfigError] = []
    broken: set[Path] = set()
    for where, error in doc.env_problems:
        entry = _entry_at(data, where)
        if entry is not None:
            broken.add(where[:2])
            name = entry.get("name")
            if where[0] == "storages" and isinstance(name, str):
                error.storage = name
        problems.append(error)

    if not isinstance(data, dict):
        problems.append(
            doc.error(
                "the configuration must be a mapping with a 'storages' list, not "
                + ("an empty document" if data is None else type(data).__name__)
            )
        )
        raise _combined(problems)
    if "storages" not in data:
        problems.append(
            doc.error(
                "no 'storages' section; found "
                + (", ".join(map(repr, data)) or "nothing")
                + " (write 'storages:' followed by a list of storages)"
            )
        )
        raise _combined(problems)
    entries = data["storages"]
    if not isinstance(entries, list) or not entries:
        if not any(where[:1] == ("storages",) for where, _error in doc.env_problems):
            problems.append(
                doc.error(
                    "'storages' must be a non-empty list of storages (each item starts with "
                    "'- name:')",
                    ("storages",),
                    key="storages",
                )
            )
        raise _combined(problems)
    shapes: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int | None] = {}
    for index, entry in enumerate(entries):
        path: Path = ("storages", index)
        found = _check_storage_shape(entry, path, doc, problems)
        if found is None:
            continue
        name = found["name"]
        if name in seen:
            first = f" (first at line {seen[name]})" if seen[name] is not None else ""
            problems.append(
                doc.error(
                    f"the storage name {name!r} is used twice{first}",
                    (*path, "name"),
                    storage=name,
                    key="name",
                )
            )
            continue
        seen[name] = doc.line((*path, "name"))
        if path not in broken:
            shapes.append((index, found))
    tasks = _check_tasks(data.get("tasks"), set(seen), doc, problems, broken)

    # Entries whose shape is right are built even when others are wrong, so one run reports
    # every problem of the file (constructors do no I/O).
    global_tracers: list[Tracer] = []
    if data.get("trace") is not None:
        try:
            global_tracers.append(_tracer(data["trace"]))
        except ConfigError as exc:
            problems.append(exc.with_context(file=doc.source, line=doc.line(("trace",))))
    config = PoolConfig(source=doc.source, tasks=tasks)
    instances: dict[str, DataStorage] = {}
    for index, entry in shapes:
        try:
            spec, instance = _build(entry, ("storages", index), doc, global_tracers)
        except ConfigError as exc:
            problems.extend(exc.problems)  # every problem of that storage
            continue
        config.storages[spec.name] = spec
        instances[spec.name] = instance
    if problems:
        raise _combined(problems)
    return LoadedConfig(config, instances)


def _entry_at(data: Any, path: Path) -> dict[str, Any] | None:
    """The ``storages``/``tasks`` entry that ``path`` lies in, if any."""
    if len(path) < 2 or path[0] not in ("storages", "tasks") or not isinstance(data, dict):
        return None
    entries = data.get(path[0])
    index = path[1]
    if isinstance(entries, list) and isinstance(index, int) and index < len(entries):
        entry = entries[index]
        return entry if isinstance(entry, dict) else None
    return None


def _combined(problems: list[ConfigError]) -> ConfigError:
    """One error for all the problems, in document order, located at the first."""
    problems.sort(key=lambda problem: problem.line or 0)
    first = problems[0]
    return ConfigError(
        first.message,
        file=first.file,
        line=first.line,
        storage=first.storage,
        key=first.key,
        problems=problems,
    )


def _check_storage_shape(
    entry: Any, path: Path, doc: YamlDocument, problems: list[ConfigError]
) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        problems.append(
            doc.error(
                f"each storage must be a mapping with at least 'name', not {type(entry).__name__}",
                path,
            )
        )
        return None
    name = entry.get("name")
    label = name if isinstance(name, str) else None
    before = len(problems)

    def problem(message: str, key: str | None, sub: Path = ()) -> None:
        where = (*path, key, *sub) if key else path
        shown = ".".join([key, *map(str, sub)]) if key else None
        problems.append(doc.error(message, where, storage=label, key=shown))

    if "name" not in entry:
        problem("the storage has no 'name'", None)
    elif not isinstance(name, str) or not name.strip():
        problem(f"'name' must be a non-empty string, not {name!r}", "name")
    for key in entry:
        if key not in STORAGE_KEYS:
            problem(_unknown_storage_key(str(key)), str(key))
    module = entry.get("import")
    if module is not None and (not isinstance(module, str) or not _MODULE_PATH.match(module)):
        problem(
            f"'import' must be a dotted module path like 'storages.redis', not {module!r}", "import"
        )
    if "import" in entry and module is None:
        problem("'import' is empty; give a module path or leave the key out", "import")
    classname = entry.get("classname")
    if "classname" in entry and (not isinstance(classname, str) or not classname):
        problem(f"'classname' must be a non-empty string, not {classname!r}", "classname")
    configuration = entry.get("configuration")
    if configuration is not None:
        if not isinstance(configuration, dict):
            problem(
                "'configuration' must be a mapping of adapter options, not "
                f"{type(configuration).__name__}",
                "configuration",
            )
        else:
            for option in configuration:
                if not isinstance(option, str):
                    problem(f"option names must be strings, not {option!r}", "configuration")
    serializer = entry.get("serializer")
    if "serializer" in entry and (not isinstance(serializer, str) or not serializer):
        problem("'serializer' must be 'json', 'pickle' or a dotted path", "serializer")
    _check_sub_mapping(entry, "cache", CACHE_KEYS, problem)
    _check_sub_mapping(entry, "retry", RETRY_KEYS, problem)
    trace = entry.get("trace")
    if "trace" in entry and (not isinstance(trace, str) or not trace):
        problem("'trace' must be the dotted path of a callable, like 'mypkg.tracing:log'", "trace")
    return entry if len(problems) == before else None


def _check_sub_mapping(
    entry: dict[str, Any], key: str, allowed: tuple[str, ...], problem: Any
) -> None:
    value = entry.get(key)
    if value is None or isinstance(value, bool):  # off, or on with the defaults
        return
    if not isinstance(value, dict):
        problem(f"'{key}' must be a mapping with keys {', '.join(allowed)}, not {value!r}", key)
        return
    for sub in value:
        if sub not in allowed:
            close = difflib.get_close_matches(str(sub), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problem(
                f"unknown key {sub!r} under '{key}'; {hint}allowed: {', '.join(allowed)}",
                key,
                (sub,),
            )


def _unknown_storage_key(key: str) -> str:
    close = difflib.get_close_matches(key, STORAGE_KEYS, n=1, cutoff=0.85)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    return (
        f"unknown key {key!r} for a storage; adapter options go under 'configuration' "
        f"(put `{key}` under `configuration`). Storage keys are: {', '.join(STORAGE_KEYS)}"
    )


def _check_tasks(
    tasks: Any,
    storages: set[str],
    doc: YamlDocument,
    problems: list[ConfigError],
    broken: set[Path],
) -> dict[str, str]:
    mapping: dict[str, str] = {}
    if tasks is None:
        return mapping
    if not isinstance(tasks, list):
        problems.append(
            doc.error("'tasks' must be a list of {name, storage}", ("tasks",), key="tasks")
        )
        return mapping
    for index, entry in enumerate(tasks):
        path: Path = ("tasks", index)
        if path in broken:
            continue
        if not isinstance(entry, dict):
            problems.append(
                doc.error(
                    "each task must be a mapping with 'name' and 'storage'", path, key="tasks"
                )
            )
            continue
        name, storage = entry.get("name"), entry.get("storage")
        if not isinstance(name, str) or not name:
            problems.append(
                doc.error(f"a task needs a string 'name', not {name!r}", path, key="name")
            )
            continue
        if storage is None:
            continue  # a task whose results are not stored (Selinon allows it)
        if not isinstance(storage, str):
            problems.append(
                doc.error(
                    f"task {name!r}: 'storage' must be a storage name",
                    (*path, "storage"),
                    key="storage",
                )
            )
        elif storage not in storages:
            problems.append(
                doc.error(
                    f"task {name!r} names the storage {storage!r}, which is not defined; "
                    f"defined storages: {', '.join(sorted(storages)) or 'none'}",
                    (*path, "storage"),
                    storage=storage,
                    key="storage",
                )
            )
        elif name in mapping and mapping[name] != storage:
            problems.append(
                doc.error(f"task {name!r} is mapped to two storages", (*path, "name"), key="name")
            )
        else:
            mapping[name] = storage
    return mapping


def _tracer(path: Any) -> Tracer:
    """Resolve a ``trace`` dotted path to a callable."""
    if not isinstance(path, str) or not path:
        raise ConfigError("'trace' must be the dotted path of a callable", key="trace")
    try:
        obj = import_object(path, what="trace callable")
    except ConfigError as exc:
        exc.key = "trace"
        raise
    if not callable(obj):
        raise ConfigError(f"trace {path!r} is not callable", key="trace")
    tracer: Tracer = obj
    return tracer


def _build(
    entry: dict[str, Any], path: Path, doc: YamlDocument, global_tracers: list[Tracer]
) -> tuple[StorageSpec, DataStorage]:
    name: str = entry["name"]

    secrets = secret_values(entry.get("configuration") or {})

    def located(exc: ConfigError, key: str | None) -> ConfigError:
        line = doc.line((*path, *key.split("."))) if key else doc.line(path)
        exc.key = key
        # An adapter's own message may quote an option's value: never a secret one.
        exc.message = scrub(exc.message, secrets)
        exc.args = (exc.message,)
        return exc.with_context(file=doc.source, line=line, storage=name)

    # Each part is checked even when another failed, so one run reports all of this storage's
    # problems (they are independent: the adapter class, serializer, retry, cache, trace).
    problems: list[ConfigError] = []
    module = entry.get("import")
    classname = entry.get("classname") or name
    cls: type[DataStorage] | None = None
    try:
        cls = import_class(module, classname)
    except ConfigError as exc:
        problems.append(located(exc, exc.key or ("import" if module else "classname")))
    serializer: Serializer | None = None
    try:
        serializer = get_serializer(entry.get("serializer") or "json")
    except ConfigError as exc:
        problems.append(located(exc, "serializer"))
    retry: RetryPolicy | None = None
    try:
        retry = _retry_policy(entry.get("retry"))
    except ConfigError as exc:
        problems.append(located(exc, exc.key))
    cache: CacheSpec | None = None
    try:
        cache = CacheSpec.from_config(entry.get("cache"))
    except ConfigError as exc:
        problems.append(located(exc, exc.key))
    ttl, compression = NO_EXPIRY, NO_COMPRESSION
    try:
        ttl = Expiry.from_config(entry.get("ttl"))
    except ConfigError as exc:
        problems.append(located(exc, exc.key))
    try:
        compression = Compression.from_config(entry.get("compression"))
    except ConfigError as exc:
        problems.append(located(exc, exc.key))
    max_result_bytes: int | None = None
    if entry.get("max_result_bytes") is not None:
        try:
            max_result_bytes = options.as_int(
                "max_result_bytes", entry["max_result_bytes"], minimum=1
            )
        except ConfigError as exc:
            problems.append(located(exc, "max_result_bytes"))
    operation_timeout: float | None = None
    try:
        operation_timeout = _operation_timeout(entry.get("operation_timeout"))
    except ConfigError as exc:
        problems.append(located(exc, "operation_timeout"))

    tracers = list(global_tracers)
    if entry.get("trace"):
        try:
            tracers.append(_tracer(entry["trace"]))
        except ConfigError as exc:
            problems.append(located(exc, "trace"))

    configuration = dict(entry.get("configuration") or {})
    if cls is not None:
        try:
            _bind_arguments(cls, configuration, located)
        except ConfigError as exc:
            problems.append(exc)
    if problems or cls is None or serializer is None or retry is None:
        raise _combined(problems)  # each of those is None only after a problem was recorded
    spec = StorageSpec(name, cls, configuration, serializer, retry, cache, doc.line(path), tracers)
    spec.operation_timeout = operation_timeout
    spec.ttl, spec.compression = ttl, compression
    spec.max_result_bytes = max_result_bytes
    try:
        instance = spec.build()
    except ConfigError as exc:
        key = f"configuration.{exc.key}" if exc.key and exc.key in configuration else exc.key
        raise located(exc, key) from exc.__cause__
    except (TypeError, ValueError) as exc:
        raise located(
            ConfigError(f"{cls.__name__} rejected its configuration: {exc}"), "configuration"
        ) from exc
    except Exception as exc:  # a buggy constructor still gets a located, secret-free error
        raise located(
            ConfigError(
                f"{cls.__name__} could not be built from its configuration: "
                f"{type(exc).__name__}: {exc}"
            ),
            "configuration",
        ) from exc
    return spec, instance


def _operation_timeout(value: Any) -> float | None:
    """``operation_timeout``: seconds (> 0), or None (left out) for the adapter's default."""
    if value is None:
        return None
    seconds = options.as_float("operation_timeout", value, minimum=0.0)
    if seconds <= 0:
        raise ConfigError("must be a number of seconds above 0", key="operation_timeout")
    return seconds


def _retry_policy(value: Any) -> RetryPolicy:
    if value is False:
        return NO_RETRY
    if value is None or value is True or value == {}:
        return DEFAULT_RETRY
    return RetryPolicy(**value)


def _bind_arguments(cls: type[DataStorage], configuration: dict[str, Any], located: Any) -> None:
    """Report unknown and missing constructor arguments by name, not as a bare TypeError."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return
    parameters = list(signature.parameters.values())[1:]  # drop self
    if any(p.kind is p.VAR_KEYWORD for p in parameters) and cls.__init__ is not (
        DataStorage.__init__
    ):
        return
    accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for option in configuration:
        if option not in accepted:
            close = difflib.get_close_matches(option, accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise located(
                ConfigError(
                    f"{cls.__name__} has no option {option!r}{hint} It accepts: "
                    + (", ".join(accepted) or "no options")
                ),
                f"configuration.{option}",
            )
    for parameter in parameters:
        if (
            parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            and parameter.default is parameter.empty
            and parameter.name not in configuration
        ):
            raise located(
                ConfigError(
                    f"{cls.__name__} needs the option {parameter.name!r} under 'configuration'"
                ),
                "configuration",
            )
