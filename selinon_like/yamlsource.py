"""Reading a YAML configuration as plain Python, remembering the line of every key.

:class:`YamlDocument` parses with PyYAML's safe loader (plain YAML tags only, at most
1 MiB of text — checked before anything is parsed — and 100,000 values, no self-referencing
alias) and records the line each path of the document was written at, so a later check can
report a problem at its line, even one inside a repeated alias (the line where the alias is
used, not the anchor's). ``${VAR}``, ``${VAR:-default}`` and the literal ``$${`` are expanded
once, here, in string values: an unquoted value is re-typed after expansion
(``port: ${PORT:-6379}`` is an int). A mistake in a reference is kept in
:attr:`YamlDocument.env_problems` to be reported with the document's other problems.

Secret-like adapter options (``password``, keys, tokens: see
:func:`~selinon_like.masking.is_secret_key`) stay strings whatever YAML would type them as:
``password: ${REDIS_PASSWORD}`` is the variable's text even when it reads ``null``, ``~``,
``yes`` or ``0123``, and an unquoted ``password: 0123`` is ``"0123"``, not the number 83. An
empty or null password is written as such (``password: null``, ``password: ""``), never the
accident of a value's look.

What the values mean (storages, tasks, options) is :mod:`selinon_like.config`'s business.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from typing import IO, Any

import yaml

from selinon_like.errors import ConfigError
from selinon_like.masking import MASK, is_secret_key

__all__ = ["MAX_BYTES", "Path", "YamlDocument", "expand_env", "key_of", "read_text"]

Path = tuple[Any, ...]
"""Where a value sits in the document: mapping keys and sequence indexes from the top."""

_SAFE_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
_MAX_NODES = 100_000
MAX_BYTES = 1024 * 1024
"""The largest configuration read (in bytes of a file, characters of a stream or a string)."""
_ENV = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Loader(yaml.SafeLoader):
    """The safe loader, remembering where each alias is used: PyYAML's nodes only keep the
    anchor's position, and an error in a repeated alias should point at the repetition."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.alias_lines: dict[tuple[int, int | None], int] = {}
        self.tagged: set[int] = set()  # scalars given a tag explicitly (`!!int 1`)
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            line: int = event.start_mark.line + 1  # type: ignore[union-attr]
            self.alias_lines[_slot(parent, index)] = line
        else:
            # Counted while composing, so a huge document stops here, not after PyYAML built
            # all of it (the count after alias expansion is YamlDocument._convert's).
            self.nodes += 1
            if self.nodes > _MAX_NODES:
                raise ConfigError(
                    f"the document has more than {_MAX_NODES} values",
                    file=self.source,
                    line=event.start_mark.line + 1,
                )
        return super().compose_node(parent, index)

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        tag = self.peek_event().tag  # type: ignore[no-untyped-call]
        node = super().compose_scalar_node(anchor)
        if tag not in (None, "!"):
            self.tagged.add(id(node))
        return node


def _slot(parent: yaml.Node | None, index: Any) -> tuple[int, int | None]:
    """Where a child sits: its parent and its index (sequence) or key node (mapping)."""
    return id(parent), (index if isinstance(index, int) or index is None else id(index))


class YamlDocument:
    """Turns a YAML node tree into plain Python, recording the line of every path.

    ``source`` names the document in errors (a file name, ``<stream>``, ``<dict>``)."""

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
        if len(text) > MAX_BYTES:
            raise _too_large(self.source, f"{len(text):,} characters")
        loader = _Loader(text, self.source)
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
        secret = not is_key and _secret_option(path)
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value and not is_key:
            expanded = self._expand(node.value, path)
            if node.style is None and not secret:  # plain: type it as if written literally
                tag: str = loader.resolve(  # type: ignore[no-untyped-call]
                    yaml.ScalarNode, expanded, (True, False)
                )
                node = yaml.ScalarNode(tag, expanded, node.start_mark, node.end_mark, None)
            else:
                return expanded
        if (
            secret
            and node.style is None
            and node.tag not in (_STR, _NULL)
            and id(node) not in loader.tagged
        ):
            return node.value  # a password that looks like a number, a date or a boolean
        try:
            return loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except Exception:  # PyYAML lets ValueError & co. out for e.g. `!!int abc`
            kind = node.tag.rpartition(":")[2]
            key = key_of(path)
            shown = MASK if key and is_secret_key(key) else repr(node.value)
            raise ConfigError(
                f"{shown} is not a valid {kind}",
                file=self.source,
                line=line,
                key=key_of(path),
            ) from None

    def _expand(self, text: str, path: Path) -> str:
        """Expand ``text``; a mistake is kept (with its place) to be reported with the other
        problems, and the text stays as written."""
        try:
            return expand_env(text)
        except ConfigError as exc:
            self.env_problems.append((path, self.error(exc.message, path, key=key_of(path))))
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


_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


def _secret_option(path: Path) -> bool:
    """Whether ``path`` is a secret-like option inside a storage's ``configuration``."""
    return (
        len(path) >= 4
        and path[0] == "storages"
        and path[2] == "configuration"
        and isinstance(path[-1], str)
        and is_secret_key(path[-1])
    )


def _too_large(source: str, size: str) -> ConfigError:
    return ConfigError(
        f"the configuration is {size}; at most {MAX_BYTES:,} are read (a storage "
        "configuration takes a few kilobytes: is this the right file?)",
        file=source,
    )


def key_of(path: Path) -> str | None:
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


def read_text(source: str | os.PathLike[str] | IO[str]) -> tuple[str, str]:
    """The name to report and the text of a YAML file (a path) or an open text stream."""
    if not isinstance(source, (str, os.PathLike)):
        name = str(getattr(source, "name", "<stream>"))
        try:
            text = source.read(MAX_BYTES + 1)  # never more than the cap in memory
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the configuration: {exc}", file=name) from None
        if len(text) > MAX_BYTES:
            raise _too_large(name, f"more than {MAX_BYTES:,} characters")
        return name, text
    name = os.fspath(source)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BYTES:  # refused before a byte is read
                raise _too_large(name, f"{size:,} bytes")
            data = handle.read(MAX_BYTES + 1)  # a pipe or /proc file reports no size
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", file=name) from None
    if len(data) > MAX_BYTES:
        raise _too_large(name, f"more than {MAX_BYTES:,} bytes")
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the configuration is not UTF-8 text", file=name) from None
