"""Checking adapter options: each helper returns the value in its proper type or raises a
:class:`~selinon_like.errors.ConfigError` naming the key (the pool adds the storage, file and
line). Strings from environment variables (``"6379"``, ``"false"``) are accepted and parsed."""

from __future__ import annotations

import math
import re
from typing import Any

from selinon_like.errors import ConfigError
from selinon_like.masking import MASK, is_secret_key

__all__ = ["as_bool", "as_float", "as_int", "as_str"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INT = re.compile(r"[+-]?[0-9]+")


def _shown(key: str, value: Any) -> str:
    """How a wrong value appears in the message: never the value of a secret option."""
    if is_secret_key(key):
        return f"a value of type {type(value).__name__} ({MASK})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"must be true or false, not {_shown(key, value)}", key=key)


def as_int(key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    number: int
    if isinstance(value, bool):
        raise ConfigError(f"must be a whole number, not {_shown(key, value)}", key=key)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ConfigError(f"must be a whole number, not {_shown(key, value)}", key=key)
    if minimum is not None and number < minimum:
        raise ConfigError(f"must be at least {minimum}, not {_shown(key, value)}", key=key)
    if maximum is not None and number > maximum:
        raise ConfigError(f"must be at most {maximum}, not {_shown(key, value)}", key=key)
    return number


def as_float(key: str, value: Any, *, minimum: float | None = None) -> float:
    number: float
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"must be a number, not {_shown(key, value)}", key=key)
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"must be a number, not {_shown(key, value)}", key=key) from None
    except OverflowError:  # an int too large for a float
        number = float("inf")
    if not math.isfinite(number):
        raise ConfigError(f"must be a finite number, not {_shown(key, value)}", key=key)
    if minimum is not None and number < minimum:
        raise ConfigError(f"must be at least {minimum}, not {_shown(key, value)}", key=key)
    return number


def as_str(key: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {_shown(key, value)}", key=key)
    if not empty and not value:
        raise ConfigError("must not be empty", key=key)
    return value
