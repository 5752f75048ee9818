"""Golden files: the rendered children of every SmallLanguageModel in ``examples/*.yaml``.

``make golden`` runs this script to rewrite ``tests/golden/<example stem>.yaml``; review the
diff before committing. ``test_golden.py`` renders the same way and compares.

A model file may start with a comment ``# slmctl-config: <file>`` (a path relative to the model
file) naming the operator configuration it needs, as ``slmctl render`` honours it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from slm_operator.api.config import OperatorConfig
from slm_operator.api.parse import parse_document
from slm_operator.api.spec import KIND
from slm_operator.catalog.loader import load_config
from slm_operator.desired import desired_state
from slm_operator.documents import config_named_in
from slm_operator.render.yaml_out import dump_objects

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent


def model_documents(model_file: Path) -> list[dict[str, Any]]:
    """The SmallLanguageModel documents of a YAML file (other documents are ignored)."""
    with model_file.open(encoding="utf-8") as stream:
        return [d for d in yaml.safe_load_all(stream) if isinstance(d, dict) and d.get("kind") == KIND]


def example_files() -> list[Path]:
    """Example files that hold at least one SmallLanguageModel."""
    return [p for p in sorted(EXAMPLES.glob("*.yaml")) if model_documents(p)]


def render_example(model_file: Path) -> str:
    """The golden text for one example file: all its models' children, with the Prometheus
    Operator's CRDs absent (monitoring: auto renders nothing) and KEDA's present (only a model
    that asks for engine: keda renders a ScaledObject)."""
    chosen = config_named_in(model_file)
    config: OperatorConfig = load_config(chosen)
    objects: list[dict[str, Any]] = []
    for document in model_documents(model_file):
        model = parse_document(document)
        objects.extend(desired_state(model, config, monitoring_available=False, keda_available=True).objects)
    return dump_objects(objects)


def golden_path(model_file: Path) -> Path:
    """Where the golden file of an example lives."""
    return GOLDEN / f"{model_file.stem}.yaml"


def main() -> int:
    """Rewrite every golden file and delete those whose example is gone."""
    wanted = {golden_path(p): p for p in example_files()}
    for stale in sorted(set(GOLDEN.glob("*.yaml")) - set(wanted)):
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)}")
    for golden, example in sorted(wanted.items()):
        text = render_example(example)
        if not golden.exists() or golden.read_text(encoding="utf-8") != text:
            golden.write_text(text, encoding="utf-8")
            print(f"wrote {golden.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
