"""Importing by dotted path, with every failure as a :class:`~selinon_like.errors.ConfigError`.

A leaf module: it needs only :mod:`selinon_like.errors` and the standard library, so adapters,
serializers and the registry can all use it without importing one another.
:func:`missing_driver` is the error an adapter raises when its database driver is not installed;
it names the pip extra that installs the driver (:data:`DRIVER_EXTRAS`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from selinon_like.errors import ConfigError

__all__ = ["DRIVER_EXTRAS", "import_module", "import_object", "missing_driver"]

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
    "aiobotocore": "s3-async",
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


def import_object(path: str, *, what: str = "object") -> Any:
    """Import ``package.module:attr`` or ``package.module.attr``; ``what`` names the object in
    the error message (``"class"``, ``"serializer"``, ...)."""
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
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            raise ConfigError(
                f"module {module_name!r} cannot be imported ({exc}); {_not_found_hint(exc.name)}"
            ) from exc
        raise ConfigError(
            f"importing {module_name!r} failed: {exc} (the module was found, but it imports "
            f"{exc.name!r}, which is not installed here)"
        ) from exc
    except Exception as exc:
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def _not_found_hint(missing: str) -> str:
    """Why Python may not find module ``missing``, and what to do."""
    top = missing.split(".")[0]
    here = Path.cwd()
    local = [path for path in (here / f"{top}.py", here / top) if path.exists()]
    if local and not _on_sys_path(here):
        return (
            f"{local[0].name} is in the current directory, but that directory is not on "
            "sys.path in this program: add it to PYTHONPATH, or run the program from there "
            "with python -m"
        )
    return (
        "Python looks for it on sys.path: check the spelling, run from the directory holding "
        f"{top}.py (the selinon-like command looks in the current directory, as python -m "
        "does), add that directory to PYTHONPATH, or install the package that provides it"
    )


def _on_sys_path(directory: Path) -> bool:
    for entry in sys.path:
        try:
            if Path(entry or ".").resolve() == directory.resolve():
                return True
        except OSError:  # an entry that cannot be resolved is not this directory
            continue
    return False
