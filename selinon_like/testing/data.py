"""Hostile inputs the suites feed to every adapter: odd results, odd keys, keys a naive encoding
would merge. Public, so an adapter's own tests can reuse them."""

from __future__ import annotations

from typing import Any

__all__ = ["AWKWARD_KEYS", "AWKWARD_RESULTS", "COLLIDING_KEYS", "LONG_KEYS"]

AWKWARD_RESULTS: list[Any] = [
    {"a": 1, "b": [1, 2, {"c": None}]},
    [],
    {},
    "",
    "žluťoučký kůň 🐎 \u0000 nul",
    0,
    -1,
    2**200,
    -(2**70),
    1.5,
    1e-300,
    True,
    False,
    None,
    {"$set": {"a.b": 1}, "$where": "1", "": "empty key", "a.b.c": [{"$in": [1]}]},
    {"nested": [[[[[[[[[[["deep"]]]]]]]]]]]},
    "x" * 100_000,
]

AWKWARD_KEYS: list[tuple[str, str, str]] = [
    ("flow", "task", "id"),
    ("", "", "id"),
    ("flów 🐍", "tåsk ü", "ïd 中文"),
    ("with space", "with\ttab", "with\nnewline"),
    ("a/b", "c/d", "e/f"),
    ("..", "..", ".."),
    (".", "task", "../../etc/passwd"),
    ("a:b", "c:d", "e:f"),
    ("$ne", "$gt", "$where"),
    ("'; DROP TABLE results; --", "task", "1' OR '1'='1"),
    ("%2F", "%", "%%"),
    ("UPPER", "Upper", "upper"),
    ("f", "t", "x" * 500),
    ("\\", "\\\\", "back\\slash"),
    ("*", "?", "[a-z]"),
]

# Keys past every service's name limits (S3's 1,024-byte object keys, a file name's 255
# bytes): stored under digest-derived names, listed exactly (a test prefixes its flow).
LONG_KEYS: list[tuple[str, str, str]] = [
    ("", "t", "i" * 2000),
    ("F" * 2000, "t" * 2000, "é ../" * 400),
    ("中" * 2000, "t", "1"),
]

# Pairs of keys that a naive encoding would merge.
COLLIDING_KEYS: list[tuple[tuple[str, str, str], tuple[str, str, str]]] = [
    (("a:b", "c", "d"), ("a", "b:c", "d")),
    (("a/b", "c", "d"), ("a", "b/c", "d")),
    (("a", "b", "c/d"), ("a", "b/c", "d")),
    (("ab", "", "c"), ("a", "b", "c")),
    (("A", "b", "c"), ("a", "b", "c")),
    (("a", "b", "c"), ("a", "b", "C")),
    (("a b", "c", "d"), ("a_b", "c", "d")),
    (("a%20b", "c", "d"), ("a b", "c", "d")),
    (("_a", "b", "c"), ("a", "b", "c")),
    (("1:a", "b", "c"), ("1", "a", "b/c")),
]
