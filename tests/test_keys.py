"""Key validation and the injective key encodings every adapter uses."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from selinon_like.keys import (
    check_key,
    decode_part,
    encode_part,
    key_digest,
    pack_key,
    unpack_key,
)

# Any str a caller may use as a key part (lone surrogates cannot be stored, see check_key).
parts = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
triples = st.tuples(parts, parts, parts)
TOKEN = re.compile(r"[a-z0-9_%-]+")

AWKWARD = [
    "",
    ".",
    "..",
    "/",
    "a/b",
    "../../etc/passwd",
    "a:b",
    "1:a/",
    "$",
    "%",
    "%41",
    "_",
    "__",
    " ",
    "A",
    "a",
    "Ä",
    "ä",
    "日本語",
    "🦄",
    "\n",
    "\t",
    "\\",
    "CON",
    "x" * 1000,
]


# -- pack_key / unpack_key ------------------------------------------------------------------------


@given(triples)
@example(("a:b", "c", "d"))
@example(("a", "b:c", "d"))
@example(("", "", ""))
@example(("1:x/", "/", "/"))
def test_pack_key_round_trips(triple: tuple[str, str, str]) -> None:
    assert unpack_key(pack_key(*triple)) == triple


@settings(max_examples=300)
@given(triples, triples)
@example(("a:b", "c", "d"), ("a", "b:c", "d"))
@example(("a/b", "c", "d"), ("a", "b/c", "d"))
@example(("1:a", "b", "c"), ("1", "a", "b/c"))
def test_distinct_triples_never_collide(
    first: tuple[str, str, str], second: tuple[str, str, str]
) -> None:
    assume(first != second)
    assert pack_key(*first) != pack_key(*second)
    assert [encode_part(p) for p in first] != [encode_part(p) for p in second]
    assert key_digest(*first) != key_digest(*second)


def test_the_documented_colliding_pair_stays_apart() -> None:
    # SPEC: ("a:b","c","d") and ("a","b:c","d") are two results
    assert pack_key("a:b", "c", "d") != pack_key("a", "b:c", "d")
    assert key_digest("a:b", "c", "d") != key_digest("a", "b:c", "d")


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1:a", "1:a/1:b", "x:a/1:b/c", "+1:a/1:b/c", "01:a/1:b/c", "-1:a/1:b/c",
     "1:a/ 1:b/c", "2:a/1:b/c", "1:ab1:b/c", "١:a/1:b/c", "1_0:aaaaaaaaaa/1:b/c"],
)  # fmt: skip
def test_unpack_key_refuses_strings_pack_key_never_makes(text: str) -> None:
    with pytest.raises(ValueError, match="not a packed key"):
        unpack_key(text)


@given(st.text())
def test_unpack_key_accepts_only_what_pack_key_makes(text: str) -> None:
    try:
        triple = unpack_key(text)
    except ValueError:
        return
    assert pack_key(*triple) == text


# -- encode_part / decode_part --------------------------------------------------------------------


@given(parts)
def test_encode_part_round_trips_with_a_safe_charset(part: str) -> None:
    token = encode_part(part)
    assert TOKEN.fullmatch(token)
    assert token not in ("", ".", "..")
    assert "." not in token and "/" not in token
    assert decode_part(token) == part


@given(parts)
def test_encode_part_is_its_definition_byte_by_byte(part: str) -> None:
    """The ASCII fast path (a translation table) gives the token the definition gives: ``_``
    then each UTF-8 byte, itself when a lowercase letter, digit, ``-`` or ``_``, else %xx
    (the names of stored objects and files must not change)."""
    safe = b"abcdefghijklmnopqrstuvwxyz0123456789-_"
    for text in (part, "".join(map(chr, range(128))) + part):
        expected = "".join(chr(b) if b in safe else f"%{b:02x}" for b in text.encode())
        assert encode_part(text) == "_" + expected


@pytest.mark.parametrize("part", AWKWARD)
def test_awkward_parts_encode_to_safe_tokens(part: str) -> None:
    token = encode_part(part)
    assert TOKEN.fullmatch(token), token
    assert decode_part(token) == part


def test_case_is_kept_apart_for_case_insensitive_file_systems() -> None:
    tokens = {encode_part(p) for p in ("a", "A", "ä", "Ä")}
    assert len({token.lower() for token in tokens}) == 4


@given(parts, parts)
def test_encode_part_is_injective(first: str, second: str) -> None:
    assume(first != second)
    assert encode_part(first) != encode_part(second)


@pytest.mark.parametrize(
    "token",
    ["", "a", "_%", "_%4", "_%zz", "_%4A", "_%61", "_A", "_.", "_%ff", "_é", "_%e2%82"],
)
def test_decode_part_refuses_tokens_encode_part_never_makes(token: str) -> None:
    # "_%61" would otherwise decode to "a" like "_a": two files for one key
    with pytest.raises(ValueError, match="not an encoded key part"):
        decode_part(token)


@given(st.text())
def test_decode_part_accepts_only_what_encode_part_makes(token: str) -> None:
    try:
        part = decode_part(token)
    except ValueError:
        return
    assert encode_part(part) == token


# -- key_digest -----------------------------------------------------------------------------------


@given(triples)
def test_key_digest_is_a_fixed_size_hex_string(triple: tuple[str, str, str]) -> None:
    digest = key_digest(*triple)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == key_digest(*triple)
    # the digest of pack_key's text: the primary key of every row stored so far
    assert digest == hashlib.sha256(pack_key(*triple).encode("utf-8")).hexdigest()


@pytest.mark.parametrize("length", [0, 1, 9, 10, 255, 256, 1000, 70_000])
def test_key_digest_of_parts_of_every_length_is_that_of_pack_key(length: int) -> None:
    """Lengths under 256 are looked up, longer ones formatted: the text digested is
    pack_key's either way."""
    part = "é" * length
    for triple in ((part, "t", "i"), ("f", part, "i"), (part, part, part or "i")):
        expected = hashlib.sha256(pack_key(*triple).encode("utf-8")).hexdigest()
        assert key_digest(*triple) == expected


# -- check_key ------------------------------------------------------------------------------------


@given(triples)
def test_check_key_accepts_every_storable_triple(triple: tuple[str, str, str]) -> None:
    flow, task, task_id = triple
    assume(task_id and "\x00" not in "".join(triple))
    check_key(flow, task, task_id)


def test_empty_flow_and_task_names_are_allowed() -> None:
    check_key("", "", "id")


@pytest.mark.parametrize(
    ("key", "name", "type_name"),
    [
        ((1, "t", "i"), "flow_name", "int"),
        (("f", None, "i"), "task_name", "NoneType"),
        (("f", "t", b"i"), "task_id", "bytes"),
        (("f", "t", 7), "task_id", "int"),
        ((("f",), "t", "i"), "flow_name", "tuple"),
        # a wrong type wins over any other problem of the key
        (("f\x00", "t", 1), "task_id", "int"),
        (("f", "t\ud800", None), "task_id", "NoneType"),
    ],
)
def test_non_str_parts_are_a_type_error_naming_the_part(
    key: tuple[Any, Any, Any], name: str, type_name: str
) -> None:
    with pytest.raises(TypeError, match=rf"{name} must be a str, not {type_name}"):
        check_key(*key)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (("f", "t", ""), "task_id must not be empty"),
        (("f\x00", "t", "i"), "flow_name contains a NUL"),
        (("f", "t\x00x", "i"), "task_name contains a NUL"),
        (("f", "t", "\x00"), "task_id contains a NUL"),
        (("\ud800", "t", "i"), "flow_name contains a lone surrogate"),
        (("f", "a\udfffb", "i"), "task_name contains a lone surrogate"),
        (("f", "t", "\udc80"), "task_id contains a lone surrogate"),
    ],
)
def test_unstorable_parts_are_a_value_error_naming_the_part(
    key: tuple[str, str, str], needle: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        check_key(*key)


def test_str_subclasses_are_plain_strings() -> None:
    class Name(str):
        pass

    check_key(Name("f"), Name("t"), Name("i"))
