"""`slmctl render` cost per model: PyYAML's pure emitter against libyaml's C emitter, side by side.

The workload is every SmallLanguageModel of ``examples/`` (each with the operator configuration
it names), repeated to ``--models`` models, as a GitOps pipeline renders a folder of models.
Each round times, one after the other on the same models:

- ``core``: parse + plan + build the desired objects (no YAML output);
- ``pure``: core + YAML text through PyYAML's pure-Python emitter;
- ``c``: core + YAML text through libyaml's C emitter (what ``slmctl render`` uses).

The order of ``pure`` and ``c`` alternates every round, so drift of the machine affects both
alike. Reported per model: CPU time of this process (``time.process_time``; other load on a
shared machine disturbs it far less than wall-clock time) as the median over rounds and the
spread (min-max), the median wall-clock time beside it, and the ratio pure/C of the CPU
medians. Input files are read and parsed once, outside the timing.

Run: ``make bench-render`` (= ``python -m bench.render``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from slm_operator.api.config import OperatorConfig
from slm_operator.api.parse import parse_document
from slm_operator.api.spec import KIND
from slm_operator.catalog.loader import load_config
from slm_operator.cli import config_named_in
from slm_operator.desired import desired_state
from slm_operator.render import yaml_out

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def workload(count: int) -> list[tuple[dict[str, Any], OperatorConfig]]:
    """``count`` (document, config) pairs cycling through the examples' models."""
    models: list[tuple[dict[str, Any], OperatorConfig]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
        docs = [d for d in docs if d.get("kind") == KIND]
        if docs:
            config = load_config(config_named_in(path))
            models.extend((d, config) for d in docs)
    if not models:
        sys.exit("no SmallLanguageModel in examples/")
    return [models[i % len(models)] for i in range(count)]


def core(models: list[tuple[dict[str, Any], OperatorConfig]]) -> list[list[dict[str, Any]]]:
    return [
        desired_state(parse_document(doc), config, monitoring_available=False, keda_available=True).objects
        for doc, config in models
    ]


def end_to_end(dumper: Any) -> Callable[[list[tuple[dict[str, Any], OperatorConfig]]], str]:
    def run(models: list[tuple[dict[str, Any], OperatorConfig]]) -> str:
        objects = [obj for objs in core(models) for obj in objs]
        return yaml_out.dump_objects(objects, dumper)

    return run


def timed(fn: Callable[[Any], Any], models: list[Any]) -> tuple[float, float]:
    """(CPU seconds, wall-clock seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn(models)
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100, help="models rendered per round (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args(argv)
    if not yaml_out.HAVE_LIBYAML:
        sys.exit("this PyYAML has no libyaml: nothing to compare")
    models = workload(args.models)
    pure, c = end_to_end(yaml_out.PureDumper), end_to_end(yaml_out.CDumper)
    # Also the warm-up (imports, resolver memo).
    if pure(models) != c(models):
        sys.exit("pure and C emitters disagree")
    samples: dict[str, list[tuple[float, float]]] = {"core": [], "pure": [], "c": []}
    for round_ in range(args.rounds):
        samples["core"].append(timed(core, models))
        order = [("pure", pure), ("c", c)] if round_ % 2 == 0 else [("c", c), ("pure", pure)]
        for name, fn in order:
            samples[name].append(timed(fn, models))

    def per_model_ms(values: list[tuple[float, float]]) -> tuple[float, float, float, float]:
        cpu = [v[0] / args.models * 1e3 for v in values]
        wall = [v[1] / args.models * 1e3 for v in values]
        return statistics.median(cpu), min(cpu), max(cpu), statistics.median(wall)

    print(
        f"python {platform.python_version()}, PyYAML {yaml.__version__} (libyaml), "
        f"{args.models} models x {args.rounds} rounds; ms per model"
    )
    print(f"{'what':<44} {'CPU median':>10} {'min':>8} {'max':>8} {'wall median':>12}")
    labels = {
        "core": "parse + plan + objects (no YAML)",
        "pure": "end to end, pure-Python emitter",
        "c": "end to end, libyaml C emitter",
    }
    medians = {}
    for name, label in labels.items():
        median, low, high, wall = per_model_ms(samples[name])
        medians[name] = median
        print(f"{label:<44} {median:10.3f} {low:8.3f} {high:8.3f} {wall:12.3f}")
    print(
        f"YAML output alone (CPU): pure {medians['pure'] - medians['core']:.3f} ms, "
        f"C {medians['c'] - medians['core']:.3f} ms"
    )
    print(f"ratio end to end pure/C (CPU): {medians['pure'] / medians['c']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
