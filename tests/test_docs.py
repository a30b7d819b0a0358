"""The documentation stays true to the code: the YAML reference lists every key the loader
accepts and no other, and the docstring converter of the docs site (docs/griffe_rst.py) turns
the library's reStructuredText into the Markdown the site needs. (`make docs` builds the site
with --strict: broken links and missing snippets fail there.)"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from selinon_like import config

ROOT = Path(__file__).resolve().parent.parent


def _yaml_reference() -> list[str]:
    """The keys in the first column of the README's YAML reference table (the section the
    docs site's Configuration page includes)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("[start:configuration]", 1)[1].split("[end:configuration]", 1)[0]
    keys: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys.extend(re.findall(r"`([^`]+)`", first))
    return keys


def _sub_keys() -> dict[str, tuple[str, ...]]:
    """The keys of each mapping-valued storage key, as the loader knows them."""
    known: dict[str, tuple[str, ...]] = {"cache": config.CACHE_KEYS, "retry": config.RETRY_KEYS}
    for module, name, key in (
        ("selinon_like.compression", "COMPRESSION_KEYS", "compression"),
        ("selinon_like.envelope", "TTL_KEYS", "ttl"),
    ):
        if importlib.util.find_spec(module) is not None:
            values = getattr(importlib.import_module(module), name, None)
            if values is not None:
                known[key] = tuple(values)
    return known


def test_the_yaml_reference_lists_no_key_the_loader_refuses() -> None:
    documented = _yaml_reference()
    assert len(documented) == len(set(documented)), "a key is listed twice"
    sub_keys = _sub_keys()
    for key in documented:
        if key.startswith("tasks[]."):
            assert key.removeprefix("tasks[].") in ("name", "storage"), key
            continue
        top, _dot, sub = key.partition(".")
        assert top in config.STORAGE_KEYS, f"the README documents {key!r}, which is gone"
        if sub:
            assert sub in sub_keys.get(top, ()), f"the README documents {key!r}, which is gone"


def test_the_yaml_reference_documents_every_key_the_loader_takes() -> None:
    documented = _yaml_reference()
    tops = {key.partition(".")[0] for key in documented}
    missing = [key for key in config.STORAGE_KEYS if key not in tops]
    assert not missing, f"the README's YAML reference does not document {missing}"
    for top, keys in _sub_keys().items():
        if top in ("cache", "retry"):  # documented one row per sub-key
            for sub in keys:
                assert f"{top}.{sub}" in documented, f"{top}.{sub} is not documented"


# -- the docstring converter ------------------------------------------------------------------


@pytest.fixture(scope="module")
def griffe_rst() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "docs" / "griffe_rst.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["griffe_rst"] = module
    spec.loader.exec_module(module)
    return module


def test_roles_become_code(griffe_rst: ModuleType) -> None:
    convert = griffe_rst.rst_to_markdown
    assert convert("see :func:`selinon_like.keys.pack_key`") == "see `selinon_like.keys.pack_key`"
    assert convert("a :class:`~selinon_like.StorageUnavailable`") == "a `StorageUnavailable`"
    assert convert(":meth:`the pool <StoragePool.check>`") == "`the pool`"
    assert convert(":py:attr:`x`") == "`x`"


def test_option_lists_become_definition_lists(griffe_rst: ModuleType) -> None:
    text = (
        "Configuration:\n"
        "\n"
        "``path`` (str, required)\n"
        "    the root directory; created on ``connect()``\n"
        "    if missing.\n"
        "``fsync`` (bool, default\n"
        "false)\n"
        "    flush every file.\n"
        "\n"
        "A paragraph\n"
        "of two lines.\n"
        "* a bullet\n"
        "  continued\n"
    )
    assert griffe_rst.rst_to_markdown(text) == (
        "Configuration:\n"
        "\n"
        "``path`` (str, required)\n"
        ":   the root directory; created on ``connect()``\n"
        "    if missing.\n"
        "\n"
        "``fsync`` (bool, default false)\n"
        ":   flush every file.\n"
        "\n"
        "\n"
        "A paragraph\n"
        "of two lines.\n"
        "* a bullet\n"
        "  continued\n"
    )


def test_literal_blocks_become_fenced_code(griffe_rst: ModuleType) -> None:
    text = "Example::\n\n    storages:\n      - name: Files\n\nAfter.\n\nCode::\n\n    x = 1\n"
    assert griffe_rst.rst_to_markdown(text) == (
        "Example:\n\n```yaml\nstorages:\n  - name: Files\n```\n\nAfter.\n\n"
        "Code:\n\n```python\nx = 1\n```\n"
    )


def test_every_builtin_adapter_renders_its_options_as_a_definition_list(
    griffe_rst: ModuleType,
) -> None:
    import inspect

    from selinon_like.registry import BUILTIN, import_object

    for path in sorted(set(BUILTIN.values())):
        cls = import_object(path, what="class")
        markdown = griffe_rst.rst_to_markdown(inspect.getdoc(cls) or "")
        options = list(inspect.signature(cls.__init__).parameters)[1:]
        definitions = [line for line in markdown.splitlines() if line.startswith(":   ")]
        assert definitions, f"{cls.__name__}: no option rendered as a definition"
        for option in options:
            assert f"``{option}``" in markdown, (cls.__name__, option)
        assert "```yaml\nstorages:" in markdown, cls.__name__
        assert ":func:" not in markdown and ":class:" not in markdown, cls.__name__
