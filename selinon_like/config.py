"""Loading and validating the YAML configuration (SPEC section 4).

The document is read with PyYAML's safe loader, keeping the line of every key, so each
problem is reported as a :class:`ConfigError` naming the file, the line, the storage and the
key. ``${VAR}``, ``${VAR:-default}`` and the literal ``$${`` are expanded once, here, in string
values (an unquoted value is re-typed after expansion: ``port: ${PORT:-6379}`` is an int).

Validation happens in two passes: first the shape of the whole document (every problem is
collected and reported together), then each adapter class is imported and constructed with its
``configuration`` (constructors do no I/O), so a wrong option is reported at load time too.
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

import yaml

from selinon_like.cache import CacheSpec
from selinon_like.errors import ConfigError
from selinon_like.masking import MASK, is_secret_key, mask_config, scrub, secret_values
from selinon_like.registry import import_class, import_object
from selinon_like.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from selinon_like.serializers import Serializer, get_serializer
from selinon_like.storage import DataStorage
from selinon_like.tracing import Observer, Tracer

__all__ = ["PoolConfig", "StorageSpec", "load_config", "load_mapping"]

Path = tuple[Any, ...]

STORAGE_KEYS = (
    "name",
    "import",
    "classname",
    "configuration",
    "serializer",
    "cache",
    "retry",
    "trace",
)
CACHE_KEYS = ("max_size", "ttl")
RETRY_KEYS = ("attempts", "backoff", "max_backoff", "jitter")
_SAFE_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
_MAX_NODES = 100_000
_ENV = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
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

    def __repr__(self) -> str:
        return (
            f"StorageSpec(name={self.name!r}, cls={self.cls.__qualname__}, "
            f"configuration={mask_config(self.configuration)!r}, serializer={self.serializer!r})"
        )

    def build(self) -> DataStorage:
        """A new, unconnected instance configured for the pool."""
        instance = self.cls(**copy.deepcopy(self.configuration))
        instance.storage_name = self.name
        instance.serializer = self.serializer
        instance.retry_policy = self.retry
        instance.cache = self.cache.build() if self.cache is not None else None
        instance.observer = Observer(self.name, self.tracers, secret_values(self.configuration))
        return instance


@dataclass
class PoolConfig:
    source: str
    storages: dict[str, StorageSpec] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    # The instances built while validating: the pool's first ones, in the loading process.
    instances: dict[str, DataStorage] = field(default_factory=dict)


class _Loader(yaml.SafeLoader):
    """The safe loader, remembering where each alias is used: PyYAML's nodes only keep the
    anchor's position, and an error in a repeated alias should point at the repetition."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_lines: dict[tuple[int, int | None], int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            line: int = event.start_mark.line + 1
            self.alias_lines[_slot(parent, index)] = line
        return super().compose_node(parent, index)


def _slot(parent: yaml.Node | None, index: Any) -> tuple[int, int | None]:
    """Where a child sits: its parent and its index (sequence) or key node (mapping)."""
    return id(parent), (index if isinstance(index, int) or index is None else id(index))


class _Document:
    """Turns a YAML node tree into plain Python, recording the line of every path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path, int] = {}
        self._nodes = 0
        self._seen: set[int] = set()
        self.env_problems: list[tuple[Path, ConfigError]] = []

    def line(self, path: Path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, message: str, path: Path = (), **context: Any) -> ConfigError:
        return ConfigError(message, file=self.source, line=self.line(path), **context)

    def parse(self, text: str) -> Any:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                self.lines[()] = 1
                return None
            return self._convert(loader, node, (), frozenset(), 1)
        except RecursionError:
            raise ConfigError(
                "the document is nested too deeply to be a storage configuration",
                file=self.source,
                line=loader.line + 1,
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            if exc.context and exc.problem and exc.problem.startswith("but "):
                problem = f"{exc.context}, {exc.problem}"
            raise ConfigError(
                f"not valid YAML: {problem}",
                file=self.source,
                line=mark.line + 1 if mark else None,
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", file=self.source) from None
        finally:
            loader.dispose()

    def _convert(
        self,
        loader: _Loader,
        node: yaml.Node,
        path: Path,
        ancestors: frozenset[int],
        site: int,
    ) -> Any:
        """``node`` as plain Python. ``site`` is the line the enclosing value was written at:
        a node reached again through an alias reports it, not the anchor's line, so an
        error inside a repeated alias points where it was used."""
        self._nodes += 1
        reused = id(node) in self._seen
        self._seen.add(id(node))
        line = site if reused else node.start_mark.line + 1
        if self._nodes > _MAX_NODES:
            raise ConfigError(
                f"the document expands to more than {_MAX_NODES} values (alias bomb?)",
                file=self.source,
                line=line,
            )
        if id(node) in ancestors:
            raise ConfigError("a YAML alias refers to itself", file=self.source, line=line)
        if node.tag not in _SAFE_TAGS:
            raise ConfigError(
                f"the YAML tag {node.tag!r} is not allowed: only plain YAML values are read "
                "(no !!python/… or custom tags)",
                file=self.source,
                line=line,
            )
        self.lines.setdefault(path, line)
        inside = ancestors | {id(node)}

        def line_of(child: yaml.Node, index: Any) -> int:
            if reused:
                return line
            return loader.alias_lines.get(_slot(node, index), child.start_mark.line + 1)

        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_line = line_of(key_node, None)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(
                        "mapping keys must be plain values", file=self.source, line=key_line
                    )
                key = self._convert(loader, key_node, (*path, "<key>"), inside, key_line)
                if key in result:
                    raise ConfigError(
                        f"the key {key!r} appears twice in the same mapping",
                        file=self.source,
                        line=key_line,
                        key=str(key),
                    )
                child: Path = (*path, key)
                self.lines[child] = key_line
                value_line = line_of(value_node, key_node)
                result[key] = self._convert(loader, value_node, child, inside, value_line)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                at: Path = (*path, index)
                self.lines[at] = line_of(item, index)
                items.append(self._convert(loader, item, at, inside, self.lines[at]))
            return items
        if not isinstance(node, yaml.ScalarNode):  # the three node kinds are exhaustive
            raise ConfigError("unexpected YAML node", file=self.source, line=line)
        is_key = bool(path) and path[-1] == "<key>"
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value and not is_key:
            expanded = self._expand(node.value, path)
            if node.style is None:  # plain scalar: type it as if written literally
                tag: str = loader.resolve(  # type: ignore[no-untyped-call]
                    yaml.ScalarNode, expanded, (True, False)
                )
                node = yaml.ScalarNode(tag, expanded, node.start_mark, node.end_mark, None)
            else:
                return expanded
        try:
            return loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except Exception:  # PyYAML lets ValueError & co. out for e.g. `!!int abc`
            kind = node.tag.rpartition(":")[2]
            key = _key_of(path)
            shown = MASK if key and is_secret_key(key) else repr(node.value)
            raise ConfigError(
                f"{shown} is not a valid {kind}",
                file=self.source,
                line=line,
                key=_key_of(path),
            ) from None

    def _expand(self, text: str, path: Path) -> str:
        """Expand ``text``; a mistake is kept (with its place) to be reported with the other
        problems, and the text stays as written."""
        try:
            return expand_env(text)
        except ConfigError as exc:
            self.env_problems.append((path, self.error(exc.message, path, key=_key_of(path))))
            return text

    def plain(self, value: Any, path: Path = ()) -> Any:
        """An expanded deep copy of an already-parsed structure (``from_dict``)."""
        if isinstance(value, str):
            return self._expand(value, path) if "$" in value else value
        if isinstance(value, Mapping):
            return {key: self.plain(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.plain(item, (*path, index)) for index, item in enumerate(value)]
        return copy.deepcopy(value)


def _key_of(path: Path) -> str | None:
    """The dotted key a path names, inside its storage or task entry when it is in one
    (``("storages", 0, "configuration", "port")`` -> ``configuration.port``)."""
    if len(path) >= 2 and path[0] in ("storages", "tasks") and isinstance(path[1], int):
        path = path[2:]
    names = [str(part) for part in path if isinstance(part, str) and part != "<key>"]
    return ".".join(names) if names else None


def expand_env(text: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``; ``$${`` is a literal ``${``."""

    def fail(message: str) -> ConfigError:
        return ConfigError(message)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        inner = match.group(1)
        if inner is None:
            raise fail("'${' has no closing '}' (write $${ for a literal ${)")
        name, sep, default = inner.partition(":-")
        if "${" in default:
            raise fail(f"${{{inner}}}: a default cannot contain another ${{...}} reference")
        if not _ENV_NAME.match(name):
            raise fail(
                f"${{{inner}}} is not a valid variable reference (use ${{NAME}} or "
                "${NAME:-default}; write $${ for a literal ${)"
            )
        value = os.environ.get(name)
        if value is None or (sep and value == ""):
            if sep:
                return default
            raise fail(
                f"the environment variable {name} is not set (give a default with "
                f"${{{name}:-value}})"
            )
        return value

    return _ENV.sub(replace, text)


# -- public entry points ---------------------------------------------------------------------


def load_config(source: str | os.PathLike[str] | IO[str]) -> PoolConfig:
    """Parse and validate a YAML file (a path or an open text stream)."""
    if not isinstance(source, (str, os.PathLike)):
        name = str(getattr(source, "name", "<stream>"))
        try:
            text = source.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the configuration: {exc}", file=name) from None
    else:
        name = os.fspath(source)
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration: {exc.strerror}", file=name) from None
        except UnicodeDecodeError:
            raise ConfigError("the configuration is not UTF-8 text", file=name) from None
    document = _Document(name)
    data = document.parse(text)
    return _validate(data, document)


def load_mapping(mapping: Mapping[str, Any], source: str = "<dict>") -> PoolConfig:
    """Validate an already-parsed mapping (never modified; strings are env-expanded)."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"the configuration must be a mapping, not {type(mapping).__name__}", file=source
        )
    document = _Document(source)
    return _validate(document.plain(mapping), document)


# -- validation ------------------------------------------------------------------------------


def _validate(data: Any, doc: _Document) -> PoolConfig:
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
    for index, entry in shapes:
        try:
            spec, instance = _build(entry, ("storages", index), doc, global_tracers)
        except ConfigError as exc:
            problems.append(exc)
            continue
        config.storages[spec.name] = spec
        config.instances[spec.name] = instance
    if problems:
        raise _combined(problems)
    return config


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
    entry: Any, path: Path, doc: _Document, problems: list[ConfigError]
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
    doc: _Document,
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
    entry: dict[str, Any], path: Path, doc: _Document, global_tracers: list[Tracer]
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

    module = entry.get("import")
    classname = entry.get("classname") or name
    try:
        cls = import_class(module, classname)
    except ConfigError as exc:
        raise located(exc, exc.key or ("import" if module else "classname")) from exc.__cause__
    try:
        serializer = get_serializer(entry.get("serializer") or "json")
    except ConfigError as exc:
        raise located(exc, "serializer") from exc.__cause__
    try:
        retry = _retry_policy(entry.get("retry"))
    except ConfigError as exc:
        raise located(exc, exc.key) from None
    try:
        cache = CacheSpec.from_config(entry.get("cache"))
    except ConfigError as exc:
        raise located(exc, exc.key) from None

    tracers = list(global_tracers)
    if entry.get("trace"):
        try:
            tracers.append(_tracer(entry["trace"]))
        except ConfigError as exc:
            raise located(exc, "trace") from exc.__cause__

    configuration = dict(entry.get("configuration") or {})
    _bind_arguments(cls, configuration, located)
    spec = StorageSpec(name, cls, configuration, serializer, retry, cache, doc.line(path), tracers)
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
