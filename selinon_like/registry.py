"""Finding adapter classes: short names, entry points and dotted paths, in one place.

Built-in adapters are registered as entry points of the group ``selinon_like.storages``
(see ``pyproject.toml``); third-party packages add theirs the same way. :data:`BUILTIN`
repeats the built-in names so they resolve even from a source checkout that is not installed.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any

from selinon_like.errors import ConfigError
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

# top-level driver module -> the extra that installs it
DRIVER_EXTRAS: dict[str, str] = {
    "sqlalchemy": "sql",
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "asyncpg": "postgresql",
    "pymysql": "mysql",
    "MySQLdb": "mysql",
    "mysql": "mysql",
    "redis": "redis",
    "pymongo": "mongodb",
    "bson": "mongodb",
    "boto3": "s3",
    "botocore": "s3",
}


def missing_driver(exc: ModuleNotFoundError, storage: str | None = None) -> ConfigError:
    """The error for a driver that is not installed, naming the extra that installs it."""
    top = (exc.name or "").split(".")[0]
    extra = DRIVER_EXTRAS.get(top)
    hint = (
        f"install it with: pip install 'selinon-like[{extra}]'"
        if extra
        else "install the package that provides it"
    )
    return ConfigError(f"the driver module {exc.name!r} is not installed; {hint}", storage=storage)


def registered() -> dict[str, str]:
    """Short name -> ``module:Class`` for the built-ins and every installed entry point."""
    names = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        names[entry.name] = entry.value
    return names


def import_object(path: str, *, what: str = "object") -> Any:
    """Import ``package.module:attr`` or ``package.module.attr``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _dot, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{what} {path!r} is not a dotted path like 'package.module:Name'")
    module = import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no {what} {attr!r}") from None


def import_module(module_name: str) -> Any:
    """``importlib.import_module`` with every failure as a :class:`ConfigError` (a missing
    driver names the pip extra that installs it)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in DRIVER_EXTRAS:
            raise missing_driver(exc) from exc
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"module {module_name!r} cannot be imported ({exc}); check the spelling, or "
                "install the package that provides it"
            ) from exc
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def import_class(module_name: str | None, classname: str) -> type[DataStorage]:
    """Resolve an adapter class from ``import``/``classname`` (or an entry-point name)."""
    if module_name is None:
        names = registered()
        if classname not in names:
            raise ConfigError(
                f"{classname!r} is not a registered adapter name; give 'import' with the module, "
                f"or use one of: {', '.join(sorted(names))}",
                key="classname",
            )
        obj = import_object(names[classname], what="class")
    else:
        module = import_module(module_name)
        try:
            obj = getattr(module, classname)
        except AttributeError:
            raise ConfigError(
                f"module {module_name!r} has no class {classname!r} (classname defaults to the "
                "storage name; set 'classname')",
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
