"""The package as `pip install selinon-like` delivers it: a wheel built from this tree,
installed in a fresh virtualenv with the core dependencies only, runs `selinon-like demo` from
an empty directory.

No network: the wheel is built with the setuptools of the test environment, and the fresh
virtualenv sees the core dependencies (PyYAML, click, rich and what rich needs, read from the
wheel's own metadata) through a ``.pth`` file pointing at a directory that holds only them. No
driver is there, as after a plain install: the demo's SQLite storage is skipped.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode("utf-8")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def _closure(requirements: list[str]) -> set[str]:
    """The distributions a plain install brings: these requirements without extras, and theirs."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        todo.extend(importlib.metadata.requires(requirement.name) or [])
    return seen


def _expose(distributions: set[str], into: Path) -> None:
    """Symlink the top-level files of each installed distribution into ``into``."""
    into.mkdir()
    for name in distributions:
        distribution = importlib.metadata.distribution(name)
        tops = {file.parts[0] for file in distribution.files or () if file.parts[0] != ".."}
        for top in tops:
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and not (into / top).exists():
                (into / top).symlink_to(source)


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh virtualenv holding the wheel of this tree."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("selinon_like", "storages"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--quiet", "--wheel-dir", work / "dist", source,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("selinon_like-*.whl")

    venv = work / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps",
        "--quiet", wheel,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    core = work / "core-dependencies"
    _expose(_closure(_requirements(wheel)), core)
    (site / "core-dependencies.pth").write_text(f"{core}\n")
    return venv / "bin"


def _clean_environment(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    environment = {key: os.environ[key] for key in keep if key in os.environ}
    environment["HOME"] = str(home)
    return environment


def test_demo_runs_after_a_plain_install_from_an_empty_directory(
    fresh_install: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    environment = _clean_environment(tmp_path)
    where = _run(
        fresh_install / "python", "-c", "import selinon_like; print(selinon_like.__file__)",
        cwd=empty, env=environment,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(fresh_install.parent)), where.stdout  # not this tree
    no_driver = _run(
        fresh_install / "python", "-c", "import sqlalchemy", cwd=empty, env=environment
    )
    assert no_driver.returncode != 0  # a plain install: no driver

    demo = _run(fresh_install / "selinon-like", "demo", cwd=empty, env=environment)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "configured storages.yml (embedded default): storages Memory, Files, Embedded" in (
        demo.stdout
    )
    assert "read back intact: 100/100" in demo.stdout
    assert (
        "skipped Embedded: the driver module 'sqlalchemy' is not installed; "
        "install it with: pip install 'selinon-like[sql]'"
    ) in demo.stdout
    assert demo.stdout.count(" ok in ") == 2  # Memory and Files
    assert list(empty.iterdir()) == []  # nothing left behind in the current directory


def test_the_wheel_ships_the_default_configuration_and_the_license(fresh_install: Path) -> None:
    (wheel,) = fresh_install.parent.parent.glob("dist/selinon_like-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = archive.read("selinon_like/data/storages.yml")
    assert shipped == (ROOT / "config" / "storages.yml").read_bytes()
    assert any(
        name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE")
        for name in names
    )
    assert "selinon_like/py.typed" in names and "storages/py.typed" in names
    version = _run(fresh_install / "selinon-like", "--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout
