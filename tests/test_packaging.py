"""Pins in one place and one version source, checked rather than trusted.

`requirements.txt` is what is deployed, pinned exactly; pyproject's dependencies and
`requirements-dev.txt` must agree with it, and the environment the tests run in must be the one
the pins describe (otherwise a green run proves nothing about what is deployed).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

import sp_sync

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[0-9][A-Za-z0-9.+!-]*)$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def _pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"not an exact pin (name==version): {line!r}"
        name = _normal(match["name"])
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = match["version"]
    return pins


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


RUNTIME = _pins(_requirement_lines(ROOT / "requirements.txt"))
_DEV_LINES = _requirement_lines(ROOT / "requirements-dev.txt")
DEV = _pins([line for line in _DEV_LINES if not line.startswith("-r ")])


def test_deployed_requirements_are_exact_pins() -> None:
    assert RUNTIME  # parsed above: every line name==version, no package twice
    assert "azure-functions" in RUNTIME and "office365-rest-python-client" in RUNTIME


def test_pyproject_dependencies_equal_the_deployed_pins() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    declared = _pins(list(project["dependencies"]))
    extras = project["optional-dependencies"]
    functions = _pins(list(extras["functions"]))
    assert set(declared).isdisjoint(functions)
    assert {**declared, **functions} == RUNTIME


def test_dev_requirements_include_the_runtime_pins_and_repeat_none() -> None:
    assert [line for line in _DEV_LINES if line.startswith("-r ")] == ["-r requirements.txt"]
    assert set(DEV).isdisjoint(RUNTIME), "a runtime package is pinned again in requirements-dev"
    assert {"pytest", "ruff", "mypy"} <= set(DEV)


@pytest.mark.parametrize(("name", "version"), sorted({**RUNTIME, **DEV}.items()))
def test_installed_versions_are_the_pinned_ones(name: str, version: str) -> None:
    assert importlib.metadata.version(name) == version, "run `make install` after a pin change"


def test_one_version_source() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    assert "version" not in project and "version" in project["dynamic"]
    tool = pyproject["tool"]
    assert isinstance(tool, dict)
    assert tool["setuptools"]["dynamic"]["version"] == {"attr": "sp_sync.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", sp_sync.__version__)
    # The editable install's metadata was built from the same attribute (Makefile reinstalls
    # when sp_sync/__init__.py changes).
    assert importlib.metadata.version("sp-sync") == sp_sync.__version__


def test_no_other_file_states_the_version() -> None:
    literal = f'"{sp_sync.__version__}"'
    for path in [ROOT / "pyproject.toml", *sorted((ROOT / "sp_sync").rglob("*.py"))]:
        if path.name == "__init__.py" and path.parent.name == "sp_sync":
            continue
        assert literal not in path.read_text(encoding="utf-8"), path


def test_make_test_runs_lint_typecheck_and_pytest() -> None:
    import shutil
    import subprocess

    make = shutil.which("make")
    assert make, "make is part of the documented setup"
    dry = subprocess.run(
        [make, "-n", "-C", str(ROOT), "test"], capture_output=True, text=True, check=True
    ).stdout
    commands = [line.strip() for line in dry.splitlines()]
    wanted = ["ruff check .", "ruff format --check .", "mypy", "-m pytest"]
    positions = [next(i for i, c in enumerate(commands) if w in c) for w in wanted]
    assert positions == sorted(positions), commands  # lint and types start first (beside the tests)
