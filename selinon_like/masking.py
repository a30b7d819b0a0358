"""Keeping secrets out of every ``repr``, log line, exception message and CLI output.

A configuration value is secret when its key names a secret (``password``, ``secret``,
``token``, ``credential``, ``*_key``, ``access_key…``); credentials inside a URL (the password in
``scheme://user:password@host``) are secret in any key. :func:`scrub` removes every known secret
value from free text such as a driver's error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "mask_config", "mask_url", "scrub", "secret_values"]

MASK = "***"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|private|(^|_)key$|access_key|api_?key|auth",
    re.IGNORECASE,
)
# scheme://[user[:password]@]host — the userinfo part is what we mask. It runs to the LAST
# "@" before a space or quote, as URL parsers split it: a password may hold an unescaped "@"
# or "/" and must still be masked whole (a URL whose path holds ":…@" is over-masked: safe).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s'\"<>]*)@")


# ?password=…&token=… in a URL's query string
_URL_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:[A-Za-z0-9_.\-]*(?:pass(?:word|wd)?|secret|token|credential|api_?key|"
    r"access_key)[A-Za-z0-9_.\-]*)=)(?P<value>[^&;#\s'\"<>]+)",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def mask_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@`` in ``text``, and the value
    of secret query parameters such as ``?password=…`` in a URL."""

    def _mask(match: re.Match[str]) -> str:
        user, sep, _password = match.group("userinfo").partition(":")
        return f"{match.group('scheme')}{user}{':' + MASK if sep else ''}@"

    text = _URL_USERINFO.sub(_mask, text)
    if "://" in text:
        text = _URL_QUERY_SECRET.sub(lambda m: m.group("name") + MASK, text)
    return text


def mask_config(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an adapter configuration that is safe to print."""
    return {
        key: MASK if is_secret_key(str(key)) and value not in (None, "") else _mask_value(value)
        for key, value in configuration.items()
    }


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Mapping):
        return mask_config(value)
    if isinstance(value, (list, tuple)):
        return [_mask_value(item) for item in value]
    return value


def secret_values(configuration: Mapping[str, Any]) -> list[str]:
    """Every secret string in a configuration: secret keys' values and URL passwords."""
    found: list[str] = []
    _collect(configuration, False, found)
    # Longest first, so a secret that contains another is removed whole.
    return sorted(set(found), key=len, reverse=True)


def _collect(value: Any, secret: bool, found: list[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, secret or is_secret_key(str(key)), found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, secret, found)
    elif isinstance(value, str):
        if secret and value:
            found.append(value)
        if "://" in value:
            found.extend(m.group("value") for m in _URL_QUERY_SECRET.finditer(value))
        for match in _URL_USERINFO.finditer(value):
            _user, sep, password = match.group("userinfo").partition(":")
            if sep and password:
                found.append(password)
    elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        found.append(str(value))  # a numeric password is still a password


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with URL passwords and every given secret replaced by ``***``."""
    text = mask_url(text)
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text
