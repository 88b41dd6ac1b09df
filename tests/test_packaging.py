"""Packaging metadata: what pip, the sdist and the docs rely on, checked without building."""

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import relujax

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Import name -> distribution name, for every package relujax may import at module level.
RUNTIME_IMPORTS = {
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "optax": "optax",
    "numpy": "numpy",
}
# Packages that only the tests use: relujax must never import them.
TEST_ONLY = {"chex", "hypothesis", "pytest", "equinox", "pandas"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def _public_modules() -> list[str]:
    names = ["relujax"]
    for info in pkgutil.walk_packages(relujax.__path__, "relujax."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def _imports(path: Path, *, module_level: bool) -> set[str]:
    """Top-level package names a file imports; with module_level, only what importing it runs."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_version_matches_package():
    assert PROJECT["version"] == relujax.__version__


def test_license_is_the_apache_text_and_spdx_metadata():
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert not any("License ::" in c for c in PROJECT["classifiers"]), "SPDX and classifier clash"
    setuptools_req = PYPROJECT["build-system"]["requires"]
    assert any(
        re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77
        for r in setuptools_req
    )


def test_requires_python_matches_the_oldest_jax():
    oldest = dict(
        line.split("==")
        for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    assert PROJECT["requires-python"] == ">=3.11"
    for dist in ("jax", "jaxlib", "flax", "optax"):
        declared = [r for r in PROJECT["dependencies"] if _requirement_name(r) == dist]
        assert declared == [f"{dist}>={oldest[dist]}"], "oldest.txt pins the declared minimum"
    if importlib.metadata.version("jax") == oldest["jax"]:
        assert importlib.metadata.metadata("jax")["Requires-Python"] == ">=3.11"
    versions = {c.rsplit(":: ", 1)[1] for c in PROJECT["classifiers"] if "Python :: 3." in c}
    assert min(versions, key=lambda v: tuple(map(int, v.split(".")))) == "3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"


def test_runtime_dependencies_are_exactly_the_module_level_imports():
    declared = {_requirement_name(r) for r in PROJECT["dependencies"]}
    assert declared == set(RUNTIME_IMPORTS.values())
    test_extra = {_requirement_name(r) for r in PROJECT["optional-dependencies"]["test"]}
    assert TEST_ONLY <= test_extra
    stdlib = set(__import__("sys").stdlib_module_names)
    for path in sorted((ROOT / "relujax").rglob("*.py")):
        third_party = _imports(path, module_level=True) - stdlib - {"relujax"}
        assert third_party <= set(RUNTIME_IMPORTS), (path.relative_to(ROOT), third_party)


def test_relujax_never_imports_test_only_packages():
    for path in sorted((ROOT / "relujax").rglob("*.py")):
        imported = _imports(path, module_level=False)
        assert not imported & TEST_ONLY, (path.relative_to(ROOT), imported & TEST_ONLY)


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_declares_all(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), (list, tuple)), f"{name} has no __all__"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats a name"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_sdist_carries_the_test_suite_and_what_it_imports():
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    grafted = {line.split()[1] for line in manifest if line.startswith("graft ")}
    imported = set()
    for path in (ROOT / "tests").rglob("*.py"):
        imported |= {m for m in _imports(path, module_level=False) if (ROOT / m).is_dir()}
    assert {"tests", "docs", ".ci"} | imported <= grafted | {"relujax"}  # tests read .ci/
    assert "LICENSE" in " ".join(line for line in manifest if line.startswith("include "))
    assert (ROOT / "relujax" / "py.typed").exists()
    assert PYPROJECT["tool"]["setuptools"]["package-data"]["relujax"] == ["py.typed"]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python -m venv .venv && ")]
    test_command = [c for c in commands if c.endswith("&& python -m pytest -q")]
    assert len(commands) == 2 and len(test_command) == 1, "the two set-up commands"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command[0] in ci
