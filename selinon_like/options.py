"""Checking adapter options: each helper returns the value in its proper type or raises a
:class:`~selinon_like.errors.ConfigError` naming the key (the pool adds the storage, file and
line). Strings from environment variables (``"6379"``, ``"false"``) are accepted and parsed."""

from __future__ import annotations

from typing import Any

from selinon_like.errors import ConfigError

__all__ = ["as_bool", "as_float", "as_int", "as_str"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"must be true or false, not {value!r}", key=key)


def as_int(key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    number: int
    if isinstance(value, bool):
        raise ConfigError(f"must be a whole number, not {value!r}", key=key)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise ConfigError(f"must be a whole number, not {value!r}", key=key)
    if minimum is not None and number < minimum:
        raise ConfigError(f"must be at least {minimum}, not {number}", key=key)
    if maximum is not None and number > maximum:
        raise ConfigError(f"must be at most {maximum}, not {number}", key=key)
    return number


def as_float(key: str, value: Any, *, minimum: float | None = None) -> float:
    number: float
    if isinstance(value, bool):
        raise ConfigError(f"must be a number, not {value!r}", key=key)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise ConfigError(f"must be a number, not {value!r}", key=key) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"must be a finite number, not {value!r}", key=key)
    if minimum is not None and number < minimum:
        raise ConfigError(f"must be at least {minimum}, not {number}", key=key)
    return number


def as_str(key: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {type(value).__name__} {value!r}", key=key)
    if not empty and not value:
        raise ConfigError("must not be empty", key=key)
    return value
