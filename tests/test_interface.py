"""Every built-in adapter offers the whole interface and documents every option."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pytest

from selinon_like import DataStorage
from selinon_like.registry import BUILTIN, ENTRY_POINT_GROUP, import_object

REQUIRED = ("connect", "disconnect", "is_connected", "retrieve", "store")
BUILT_IN_EXTRAS = (
    "store_error",
    "retrieve_error",
    "delete",
    "iter_keys",
    "iter_error_keys",
    "store_error_record",
)
STREAMING = {"filesystem", "s3"}


def test_every_builtin_is_registered_as_an_entry_point() -> None:
    installed = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert {name: installed.get(name) for name in BUILTIN} == BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_adapter_has_the_whole_interface(name: str) -> None:
    cls = import_object(BUILTIN[name], what="class")
    assert issubclass(cls, DataStorage)
    assert not inspect.isabstract(cls)
    for method in REQUIRED + BUILT_IN_EXTRAS:
        assert getattr(cls, method) is not getattr(DataStorage, method), (
            f"{cls.__name__} does not implement {method}"
        )
    if name in STREAMING:
        for method in ("store_stream", "retrieve_stream"):
            assert getattr(cls, method) is not getattr(DataStorage, method)
    assert isinstance(cls.thread_safe, bool)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_adapter_documents_every_option(name: str) -> None:
    cls = import_object(BUILTIN[name], what="class")
    doc = inspect.getdoc(cls) or ""
    assert "Configuration" in doc and "Example" in doc and "storages:" in doc
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    for parameter in parameters:
        assert f"``{parameter}``" in doc, f"{cls.__name__} does not document {parameter!r}"
