"""Keeping secrets out of every ``repr``, log line, exception message and CLI output.

Secrets are found by name and by place, then removed by value:

* a configuration value is secret when its key names a secret (``password``, ``secret``,
  ``token``, ``credential``, ``*_key``, ``access_key…``);
* in a URL (in any key, or in free text), the password of ``scheme://user:password@host`` is
  secret, and so is the value of every query (or fragment) parameter that is not a known
  harmless option: ``?authSource=admin`` stays readable, while
  ``?authMechanismProperties=AWS_SESSION_TOKEN:…`` or a parameter we do not know is masked.

:func:`secret_values` lists every secret of a configuration together with the pieces a driver
may echo instead of the whole: the secret split on URL delimiters (a password holding an
unescaped ``@`` leaves ``XYZ@db`` in a "cannot resolve host" message), and its percent-decoded
and percent-encoded forms. :func:`scrub` removes all of them from free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["MASK", "is_secret_key", "mask_config", "mask_url", "scrub", "secret_values"]

MASK = "***"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|private|(^|_)key$|access_key|api_?key|auth",
    re.IGNORECASE,
)
# A URL inside any text: the scheme and everything up to a space, a quote or an angle bracket.
# Its userinfo runs to the LAST "@" of that span, as URL parsers split it: a password may hold
# an unescaped "@", "/", "?" or "#" and must still be masked whole (see _userinfo_ends).
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")
# The authority after a userinfo: host names or addresses with optional ports, comma-separated
# (MongoDB lists several), or nothing (a Unix socket).
_HOST = r"(?:[\w.~%\-]+|\[[\w.:%]+\])(?::\d*)?"
_HOSTS = re.compile(rf"(?:{_HOST}(?:,{_HOST})*)?")
# One parameter of a query or fragment: its leading delimiter, its name and its value.
_PARAM = re.compile(r"(?P<lead>[?#&;])(?P<name>[^=?#&;]*)(?:=(?P<value>[^#&;]*))?")
# Where a driver may cut a secret: RFC 3986's delimiters, "%" and white space.
_DELIMITERS = re.compile(r"[:/?#\[\]@!$&'()*+,;=%\s]+")
# Shorter pieces would blank out ordinary words of a message; the whole secret is still
# removed whatever its length (see scrub).
_MIN_PIECE = 3

# URL options whose values are never secret (compared lower-cased, without "_", "-" and "."):
# those of libpq, PyMySQL, SQLAlchemy's SQLite URLs, redis-py, pymongo and S3 presigned URLs.
# fmt: off
_HARMLESS_OPTIONS = frozenset(
    {
        # where and who
        "host", "hostaddr", "port", "db", "dbname", "database", "user", "username", "service",
        "unixsocket", "path", "region", "regionname", "prefix", "delimiter", "versionid",
        "partnumber", "uploadid", "listtype", "maxkeys",
        # TLS (files are paths; their passwords are not in this list)
        "ssl", "tls", "usessl", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir",
        "sslca", "sslcapath", "sslcipher", "sslcerts", "sslcacerts", "sslcertfile", "sslkeyfile",
        "sslcertreqs", "sslcheckhostname", "sslverifycert", "sslverifyidentity", "ssldisabled",
        "sslcompression", "sslsni", "sslnegotiation", "tlscafile", "tlscertificatekeyfile",
        "tlsallowinvalidcertificates", "tlsallowinvalidhostnames", "tlsinsecure",
        "tlsdisableocspendpointcheck", "tlsdisablecertificaterevocationcheck",
        # behaviour
        "applicationname", "appname", "clientname", "clientencoding", "charset", "encoding",
        "options", "targetsessionattrs", "loadbalancehosts", "channelbinding", "requirepeer",
        "krbsrvname", "gsslib", "keepalives", "localinfile", "binaryprefix", "autocommit",
        "programname", "cache", "uri", "checksamethread", "immutable", "nolock", "vfs",
        "protocol", "decoderesponses", "socketkeepalive", "retryontimeout", "maxconnections",
        "authsource", "authmechanism", "replicaset", "directconnection", "readpreference",
        "readpreferencetags", "w", "journal", "retrywrites", "retryreads", "compressors",
        "loadbalanced", "srvmaxhosts", "srvservicename", "uuidrepresentation", "maxstaleness",
        "xamzalgorithm", "xamzdate", "xamzexpires", "xamzsignedheaders",
    }
)
# fmt: on
# ...and those named like a duration, a size, a count or a mode (unless named like a secret).
_HARMLESS_SUFFIX = re.compile(
    r"(timeout|timeoutms|ms|seconds|secs|interval|idle|size|limit|count|retries|attempts|"
    r"level|mode)\Z"
)


def is_secret_key(key: str) -> bool:
    """Whether a configuration key names a secret (its value is then masked whole)."""
    return bool(_SECRET_KEY.search(key))


def _harmless_option(name: str) -> bool:
    plain = re.sub(r"[_.\-]", "", name).lower()
    if plain in _HARMLESS_OPTIONS:
        return True
    return bool(plain) and not is_secret_key(name) and bool(_HARMLESS_SUFFIX.search(plain))


def _userinfo_ends(rest: str) -> set[int]:
    """Where the userinfo of a URL (``rest`` follows its ``scheme://``) may end: the index of
    its ``@``, or -1 for none. A password may hold an unescaped ``@`` and a query value may
    too, so two readings are kept when they differ: up to the last ``@`` (what URL parsers
    do), and up to the first ``@`` (or none) after which come hosts, then only a path and a
    query in which any further ``@`` lies."""
    last = rest.rfind("@")
    if last < 0:
        return {-1}
    candidate = -1
    while True:
        end = len(rest)
        for stop in "/?#":
            found = rest.find(stop, candidate + 1)
            if 0 <= found < end:
                end = found
        query, after = rest.find("?", candidate + 1), rest.find("@", end)
        if _HOSTS.fullmatch(rest, candidate + 1, end) and (after < 0 or 0 <= query < after):
            return {last, candidate}
        if candidate == last:
            return {last}
        candidate = rest.find("@", candidate + 1)


def _secret_spans(rest: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``rest`` (a URL after its ``scheme://``) that are secret
    under any reading of it: the password of its userinfo, the values of its query and
    fragment parameters that are not harmless options (a bare ``?word`` whole)."""
    spans: list[tuple[int, int]] = []
    for at in _userinfo_ends(rest):
        start = 0
        if at >= 0:
            colon = rest.find(":", 0, at)
            if 0 <= colon < at - 1:
                spans.append((colon + 1, at))
            start = at + 1
        cuts = [index for index in (rest.find("?", start), rest.find("#", start)) if index >= 0]
        if not cuts:
            continue
        for param in _PARAM.finditer(rest, min(cuts)):
            name, value = param.group("name"), param.group("value")
            if value is None:
                if name and not _harmless_option(name):
                    spans.append(param.span("name"))
            elif value and not _harmless_option(name):
                spans.append(param.span("value"))
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _mask_one(match: re.Match[str]) -> str:
    rest = match.group("rest")
    if "@" not in rest and "?" not in rest and "#" not in rest:
        return match.group(0)
    shown: list[str] = [match.group("scheme")]
    position = 0
    for start, end in _merged(_secret_spans(rest)):
        shown += [rest[position:start], MASK]
        position = end
    shown.append(rest[position:])
    return "".join(shown)


def mask_url(text: str) -> str:
    """``text`` with every URL's password (``scheme://user:***@host``) and the value of every
    query or fragment parameter that is not a known harmless option masked."""
    if "://" not in text:
        return text
    return _URL.sub(_mask_one, text)


def _url_secrets(text: str) -> Iterable[str]:
    """The values :func:`mask_url` hides in ``text``."""
    for match in _URL.finditer(text):
        rest = match.group("rest")
        for start, end in _secret_spans(rest):
            yield rest[start:end]


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
    """Every secret string in a configuration (secret keys' values, URL passwords, URL
    parameters that are not harmless options), with the pieces and encodings of each that a
    driver may echo; longest first, so that a secret holding another is removed whole."""
    found: set[str] = set()
    _collect(configuration, False, found)
    spread: set[str] = set()
    for secret in found:
        spread.update(_forms(secret))
    return sorted(spread, key=len, reverse=True)


def _forms(secret: str) -> set[str]:
    """``secret``, its percent-decoded and -encoded forms, and their pieces between URL
    delimiters (those of at least three characters)."""
    plain = {secret, unquote(secret)}
    pieces = {piece for form in plain for piece in _DELIMITERS.split(form)}
    return plain | {quote(secret, safe="")} | {p for p in pieces if len(p) >= _MIN_PIECE}


def _collect(value: Any, secret: bool, found: set[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, secret or is_secret_key(str(key)), found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, secret, found)
    elif isinstance(value, str):
        if secret and value:
            found.add(value)
        if "://" in value:
            found.update(_url_secrets(value))
    elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(str(value))  # a numeric password is still a password


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with URL secrets masked (:func:`mask_url`) and every given secret replaced by
    ``***``. ``secrets`` come from :func:`secret_values` (longest first); one shorter than
    three characters is left alone, as it would blank out ordinary words."""
    text = mask_url(text)
    for secret in secrets:
        if len(secret) >= _MIN_PIECE and secret in text:
            text = text.replace(secret, MASK)
    return text
