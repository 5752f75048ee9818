"""Every rendered object the contract tests check: all examples plus the renderer's unit matrix.

The matrix lives in ``tests/unit/render_cases.py``; this module puts that folder on the import
path so both suites share one list of cases.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from slm_operator.api.parse import parse_document
from slm_operator.api.spec import KIND
from slm_operator.catalog.loader import load_config
from slm_operator.desired import desired_state
from slm_operator.documents import config_named_in
from slm_operator.render import render_children

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from render_cases import CASES, builtin_config  # noqa: E402


def example_objects() -> list[tuple[str, dict[str, Any]]]:
    """(id, object) for every child of every example model, with monitoring and KEDA objects included."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        with path.open(encoding="utf-8") as stream:
            documents = [
                d for d in yaml.safe_load_all(stream) if isinstance(d, dict) and d.get("kind") == KIND
            ]
        if not documents:
            continue
        config = load_config(config_named_in(path))
        for document in documents:
            model = parse_document(document)
            for obj in desired_state(model, config, monitoring_available=True, keda_available=True).objects:
                out.append((f"{path.stem}/{model.name}/{obj['kind']}", obj))
    return out


def case_objects() -> list[tuple[str, dict[str, Any]]]:
    """(id, object) for every child of every renderer unit case, monitoring and KEDA objects included."""
    out: list[tuple[str, dict[str, Any]]] = []
    for case in CASES:
        model, plan = case.build()
        for obj in render_children(
            model, plan, builtin_config(), monitoring_available=True, keda_available=True
        ):
            out.append((f"case:{case.id}/{obj['kind']}", obj))
    return out


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    """Examples first, then the unit matrix."""
    return example_objects() + case_objects()
