"""Every built-in adapter offers the whole interface and documents every option."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pytest

from selinon_like import DataStorage
from selinon_like.registry import BUILTIN, ENTRY_POINT_GROUP, import_object
from selinon_like.storage import OPTIONAL_OPERATIONS

# Every built-in adapter offers every optional operation, streams included (SPEC §9: the
# record layer writes them as chunks where the adapter has no native stream).
BUILT_IN_EXTRAS = frozenset(OPTIONAL_OPERATIONS)


def test_every_builtin_is_registered_as_an_entry_point() -> None:
    installed = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert {name: installed.get(name) for name in BUILTIN} == BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_adapter_has_the_whole_interface(name: str) -> None:
    cls = import_object(BUILTIN[name], what="class")
    assert issubclass(cls, DataStorage)
    assert not inspect.isabstract(cls)  # the five required methods are written
    # capabilities() is what the contract kit runs: what the class really implements (a
    # RecordStorage adapter offers delete only with remove(), listing only with scan()).
    offered = cls.capabilities()
    expected = BUILT_IN_EXTRAS
    assert offered == expected, (
        f"{cls.__name__}: missing {sorted(expected - offered)}, unexpected "
        f"{sorted(offered - expected)}"
    )
    assert isinstance(cls.thread_safe, bool)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_adapter_documents_every_option(name: str) -> None:
    cls = import_object(BUILTIN[name], what="class")
    doc = inspect.getdoc(cls) or ""
    assert "Configuration" in doc and "Example" in doc and "storages:" in doc
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    for parameter in parameters:
        assert f"``{parameter}``" in doc, f"{cls.__name__} does not document {parameter!r}"
