"""The repository explains itself: every path it names in code, comments, docs and the chart
exists in it, every relative Markdown link resolves, and nothing points at design notes that
live outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "slm_operator"

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".lua", ".j2", ".tpl", ".txt", ".toml", ".json", ""}
# Pointers at notes that are not part of the repository.
OUTSIDE = re.compile(
    r"ARCHITECTURE(\.md| §)|\.\./shared/|shared/(design|reference)/|reference/[a-z-]+\.md|course[- ]notes"
)
# A path below one of the repository's top-level folders, or below a package folder.
TOP = "docs|tests|e2e|charts|examples|scripts|bench|crds|deploy|operator|security"
PACKAGE_DIRS = "api|catalog|controller|gateway|planning|render"
PATH = re.compile(
    rf"(?<![\w./-])((?:{TOP}|{PACKAGE_DIRS})/[\w./-]*\.(?:md|py|yaml|yml|sh|lua|j2|tpl|json|toml|txt))\b"
)
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / line for line in out.splitlines()]
    return [f for f in files if f.suffix in TEXT_SUFFIXES and f.is_file() and f.stat().st_size < 1_000_000]


FILES = tracked_files()


def resolve(reference: str) -> Path | None:
    """Where a named path would be, or None when it is not the repository's to check (its folder
    does not exist here: a path in another project, e.g. vLLM's ``docs/features/...``)."""
    first = reference.split("/", 1)[0]
    base = PACKAGE if first in PACKAGE_DIRS.split("|") else ROOT
    target = base / reference
    return target if target.parent.is_dir() else None


def test_no_pointer_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in FILES
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_every_named_path_exists() -> None:
    missing = []
    for path in FILES:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for reference in PATH.findall(line):
                target = resolve(reference.rstrip("."))
                if target is not None and not target.exists():
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {reference}")
    assert missing == []


def test_every_relative_markdown_link_resolves() -> None:
    broken = []
    for path in FILES:
        if path.suffix != ".md":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            prose = re.sub(r"`[^`]*`", "", line)  # a pattern in code may look like a link
            for target in MD_LINK.findall(prose):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                file_part = target.split("#", 1)[0]
                if file_part and not (path.parent / file_part).exists():
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert broken == []


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        # Built from parts, so that this file itself names no such pointer.
        ("see " + "ARCHITECTURE" + " §3", True),
        ("facts: reference/" + "models-and-gpus" + ".md §4", True),
        ("from the course" + " notes", True),
        ("see docs/architecture.md", False),
    ],
)
def test_outside_pattern(text: str, flagged: bool) -> None:
    assert bool(OUTSIDE.search(text)) is flagged


MISSING_PAGE = "docs/" + "no-such-page.md"  # built from parts: this file names no missing path


def test_path_check_catches_a_missing_file_in_an_existing_folder() -> None:
    assert PATH.findall(f"see {MISSING_PAGE}") == [MISSING_PAGE]
    target = resolve(MISSING_PAGE)
    assert target is not None
    assert not target.exists()
    assert resolve("docs/features/quantization/gguf.md") is None  # another project's docs
