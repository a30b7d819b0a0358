"""Finding adapter classes: short names, entry points and dotted paths, in one place.

Built-in adapters are registered as entry points of the group ``selinon_like.storages``
(see ``pyproject.toml``); third-party packages add theirs the same way. :data:`BUILTIN`
repeats the built-in names so they resolve even from a source checkout that is not installed.
Importing by dotted path lives in the leaf module :mod:`selinon_like.importing`; this module
adds what needs :class:`~selinon_like.storage.DataStorage`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from importlib.metadata import entry_points

from selinon_like.errors import ConfigError

# Re-exported: adapters and tests import these from here until they move to selinon_like.importing.
from selinon_like.importing import DRIVER_EXTRAS, import_module, import_object, missing_driver
from selinon_like.storage import DataStorage

__all__ = [
    "BUILTIN",
    "DRIVER_EXTRAS",
    "import_class",
    "import_module",
    "import_object",
    "missing_driver",
]

ENTRY_POINT_GROUP = "selinon_like.storages"

BUILTIN: dict[str, str] = {
    "memory": "storages.memory:InMemoryStorage",
    "filesystem": "storages.filesystem:Filesystem",
    "sql": "storages.sql:SqlStorage",
    "sqlite": "storages.sql:SQLite",
    "postgresql": "storages.postgresql:PostgreSQL",
    "mysql": "storages.mysql:MySQL",
    "redis": "storages.redis:Redis",
    "mongodb": "storages.mongodb:MongoDB",
    "s3": "storages.s3:S3Storage",
}


def registered() -> dict[str, str]:
    """Short name -> ``module:Class`` for the built-ins and every installed entry point."""
    names = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        names[entry.name] = entry.value
    return names


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the candidate closest to ``name`` (one differing only in
    case first), or nothing."""
    candidates = [candidate for candidate in candidates if not candidate.startswith("_")]
    same = [candidate for candidate in candidates if candidate.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def import_class(module_name: str | None, classname: str) -> type[DataStorage]:
    """Resolve an adapter class from ``import``/``classname`` (or an entry-point name)."""
    if module_name is None:
        names = registered()
        if classname not in names:
            raise ConfigError(
                f"{classname!r} is not a registered adapter name{_did_you_mean(classname, names)}; "
                f"give 'import' with the module, or use one of: {', '.join(sorted(names))}",
                key="classname",
            )
        obj = import_object(names[classname], what="class")
    else:
        module = import_module(module_name)
        try:
            obj = getattr(module, classname)
        except AttributeError:
            adapters = [
                name
                for name, value in vars(module).items()
                if isinstance(value, type)
                and issubclass(value, DataStorage)
                and not inspect.isabstract(value)
            ]
            found = f" (it has: {', '.join(sorted(adapters))})" if adapters else ""
            raise ConfigError(
                f"module {module_name!r} has no class {classname!r}"
                f"{_did_you_mean(classname, adapters or list(vars(module)))}; classname defaults "
                f"to the storage name: set 'classname'{found}",
                key="classname",
            ) from None
    if not (isinstance(obj, type) and issubclass(obj, DataStorage)):
        raise ConfigError(
            f"{classname!r} is not a selinon_like.DataStorage subclass", key="classname"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise ConfigError(
            f"{classname!r} is abstract: it does not implement {missing}", key="classname"
        )
    return obj
