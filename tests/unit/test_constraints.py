"""constraints.txt pins every dependency, within pyproject.toml's ranges, and is what gets installed.

`make lock` writes it; `make install` (so `make test` and CI) and the image build install
with it, so two installs of the same commit get the same packages.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line.strip())
        assert match, f"constraints.txt:{number}: not a `name==version` pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in found, f"constraints.txt:{number}: {name} pinned twice"
        found[name] = match.group(2)
    return found


def direct_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    texts = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    texts += PYPROJECT["build-system"]["requires"]
    return [Requirement(text) for text in texts]


def test_every_direct_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    problems = []
    for requirement in direct_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not needed on this platform, so not resolved here
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not pinned: run make lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(
                f"{requirement.name}=={version} is outside {requirement.specifier}: run make lock"
            )
    assert problems == []


def test_this_environment_was_installed_from_the_pins() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    pinned = pins()
    differ = {
        name: (version, installed[name])
        for name, version in pinned.items()
        # setuptools: the venv keeps its own; the pin is for the isolated build environment.
        if name in installed and installed[name] != version and name != "setuptools"
    }
    assert differ == {}, "installed versions differ from constraints.txt: run make install"
    # Everything the project needs at run and test time is installed and pinned.
    for requirement in direct_requirements()[: -len(PYPROJECT["build-system"]["requires"])]:
        if requirement.marker is None or requirement.marker.evaluate():
            assert canonicalize_name(requirement.name) in installed


def test_install_and_image_build_use_the_pins() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install_rule = makefile.split("$(BIN)/slmctl:", 1)[1].split("\n\n", 1)[0]
    assert "constraints.txt" in install_rule.splitlines()[0]  # a changed lock reinstalls
    assert "-c constraints.txt -e '.[test]'" in install_rule
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in dockerfile
    assert "pip install --constraint /src/constraints.txt" in dockerfile
    assert "PIP_CONSTRAINT=/src/constraints.txt python -m pip wheel" in dockerfile
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines()
    assert "\nlock:\n" in makefile


def test_checkov_environment_is_pinned_too() -> None:
    lines = [
        line
        for line in (ROOT / "constraints-checkov.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", line) for line in lines)
    pinned = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in lines}
    makefile = (ROOT / "Makefile").read_text()
    requirement = Requirement(re.search(r"^CHECKOV_REQUIREMENT := (.+)$", makefile, re.M).group(1))  # type: ignore[union-attr]
    assert requirement.specifier.contains(pinned["checkov"])
    assert "-c constraints-checkov.txt '$(CHECKOV_REQUIREMENT)'" in makefile
