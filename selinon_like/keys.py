"""The result key ``(flow_name, task_name, task_id)``: validation and injective encodings.

Every adapter keys results by the exact triple. These helpers are the only place that turns a
triple into a service's key, so two different triples can never meet in any adapter:

* :func:`pack_key` — one string with length prefixes (Redis keys, log lines);
* :func:`encode_part` / :func:`decode_part` — a token made of ``[a-z0-9_%-]`` only, safe as a
  file name on any file system (case-insensitive ones too) and in an S3 key; ``.``, ``/`` and
  ``..`` can never appear, so no key escapes its directory or prefix;
* :func:`key_digest` — a fixed-size SHA-256 of the triple, for unique indexes and long names.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

__all__ = [
    "Key",
    "check_key",
    "decode_part",
    "encode_part",
    "key_digest",
    "pack_key",
    "unpack_key",
]

Key = tuple[str, str, str]
# The two kinds of record a storage keeps apart (see selinon_like.records).
Kind = Literal["results", "errors"]

_NAMES = ("flow_name", "task_name", "task_id")


def _plain_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (``_sha2``, ``_sha256`` before 3.12), else hashlib's. For a key's
    few bytes OpenSSL's costs more: a digest context set up, copied for ``hexdigest`` and
    freed (about 1.5k instructions more a digest, callgrind). Not a security use: any
    SHA-256 gives the same digest."""
    for name in ("_sha2", "_sha256"):
        try:
            sha256: Callable[[bytes], Any] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return sha256
    return hashlib.sha256


_sha256 = _plain_sha256()
# The decimal text of a key part's length, looked up rather than formatted (~1k instructions
# a digest); a part of 256 characters or more has its length formatted.
_LENGTHS = tuple(map(str, range(256)))


def check_key(flow_name: object, task_name: object, task_id: object) -> None:
    """Refuse a key before any I/O: ``TypeError`` for a non-``str`` part, ``ValueError`` for an
    empty task id, a NUL character or a lone surrogate (neither survives UTF-8 services)."""
    # The common case, checked at once: every store and retrieve comes through here.
    if type(flow_name) is str and type(task_name) is str and type(task_id) is str and task_id:
        joined = flow_name + task_name + task_id
        if joined.isascii() and "\x00" not in joined:
            return
    parts: list[str] = []
    for name, part in zip(_NAMES, (flow_name, task_name, task_id), strict=True):
        # every type first: a key with a wrong type is a TypeError, whatever else is wrong
        if not isinstance(part, str):
            raise TypeError(
                f"{name} must be a str, not {type(part).__name__}: key parts are plain strings"
            )
        parts.append(part)
    for name, part in zip(_NAMES, parts, strict=True):
        if not part.isascii():
            try:
                part.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{name} contains a lone surrogate and cannot be stored as UTF-8"
                ) from None
        if "\x00" in part:
            raise ValueError(f"{name} contains a NUL character, which no service stores")
    if not task_id:
        raise ValueError("task_id must not be empty")


def pack_key(flow_name: str, task_name: str, task_id: str) -> str:
    """``"4:flow/4:task/id"``: length prefixes make it injective whatever the parts contain."""
    return f"{len(flow_name)}:{flow_name}/{len(task_name)}:{task_name}/{task_id}"


def unpack_key(packed: str) -> Key:
    """The inverse of :func:`pack_key`; ``ValueError`` for a string it did not make."""
    parts: list[str] = []
    pos = 0
    for _ in range(2):
        colon = packed.find(":", pos)
        digits = packed[pos:colon]
        # exactly what pack_key writes: ASCII digits, no sign, no leading zero
        if colon < 0 or not _LENGTH.fullmatch(digits):
            raise ValueError(f"not a packed key: {packed!r:.200}")
        start = colon + 1
        end = start + int(digits)
        if packed[end : end + 1] != "/":
            raise ValueError(f"not a packed key: {packed!r:.200}")
        parts.append(packed[start:end])
        pos = end + 1
    return parts[0], parts[1], packed[pos:]


_LENGTH = re.compile(r"0|[1-9][0-9]*")


_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


# Each ASCII character's token in encode_part: itself when safe, else its byte as %xx.
_ASCII_TOKENS = {code: chr(code) if code in _SAFE else f"%{code:02x}" for code in range(128)}


def encode_part(part: str) -> str:
    """An injective token of ``[a-z0-9_%-]``: ``_`` then the UTF-8 bytes, percent-encoded except
    lowercase letters, digits, ``-`` and ``_`` (uppercase is encoded too, so ``A`` and ``a``
    stay apart on case-insensitive file systems). Never empty, never ``.`` or ``..``."""
    if part.isascii():  # each character is its byte: one table lookup each, in C (~4x faster)
        return "_" + part.translate(_ASCII_TOKENS)
    return "_" + "".join(
        chr(byte) if byte in _SAFE else f"%{byte:02x}" for byte in part.encode("utf-8")
    )


def decode_part(token: str) -> str:
    """The inverse of :func:`encode_part`; ``ValueError`` for a token it would not make
    (so two different tokens, e.g. file names, never decode to the same part)."""
    if not token.startswith("_"):
        raise ValueError(f"not an encoded key part: {token!r:.200}")
    out = bytearray()
    i = 1
    try:
        while i < len(token):
            if token[i] == "%":
                out.append(int(token[i + 1 : i + 3], 16))
                i += 3
            else:
                out.append(ord(token[i]))
                i += 1
        part = out.decode("utf-8")
    except ValueError:
        raise ValueError(f"not an encoded key part: {token!r:.200}") from None
    if encode_part(part) != token:
        raise ValueError(f"not an encoded key part: {token!r:.200}")
    return part


def key_digest(flow_name: str, task_name: str, task_id: str) -> str:
    """Hex SHA-256 of the packed key: fixed size, for unique indexes and over-long names."""
    # pack_key's text, written here: every SQL, MongoDB and S3 call digests its key.
    try:
        flow_length = _LENGTHS[len(flow_name)]
        task_length = _LENGTHS[len(task_name)]
    except IndexError:
        flow_length, task_length = str(len(flow_name)), str(len(task_name))
    packed = f"{flow_length}:{flow_name}/{task_length}:{task_name}/{task_id}"
    return _sha256(packed.encode("utf-8")).hexdigest()  # type: ignore[no-any-return]


def keys_matching(keys: Iterable[Key], flow_name: str | None) -> Iterable[Key]:
    """Filter helper for ``iter_keys(flow_name)`` implementations."""
    return keys if flow_name is None else (key for key in keys if key[0] == flow_name)
