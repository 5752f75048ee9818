"""The rendered children of every example equal the reviewed golden files."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from regenerate import GOLDEN, ROOT, example_files, golden_path, render_example

EXAMPLES = example_files()


def test_there_are_examples_and_no_stale_goldens() -> None:
    assert EXAMPLES, "no SmallLanguageModel examples found"
    goldens = set(GOLDEN.glob("*.yaml"))
    assert goldens == {golden_path(p) for p in EXAMPLES}, (
        "golden files out of step with examples: run make golden"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_example_matches_golden(example: Path) -> None:
    golden = golden_path(example)
    assert golden.exists(), f"{golden.relative_to(ROOT)} is missing: run make golden"
    expected = golden.read_text(encoding="utf-8")
    actual = render_example(example)
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden.relative_to(ROOT)),
                tofile=f"render({example.relative_to(ROOT)})",
            )
        )
        pytest.fail(f"rendered objects differ from the golden file (run make golden and review):\n{diff}")
