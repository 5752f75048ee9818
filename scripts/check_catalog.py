"""Recount every catalog entry from its architecture and compare with what the catalog states.

For each model: the parameter count recomputed from config.json fields (hidden size, MLP width,
vocabulary, heads, experts, vision tower) against ``parameters``, and the KV bytes per token
per layer type. For each variant: the checkpoint size recomputed from its format's tensor
layout (``slm_operator.catalog.sizes``) against ``weightBytes``. A size more than 3 % off that
is not marked as an estimate (``verified: false``), or a parameter count more than 0.01 % off,
fails the check.

    python scripts/check_catalog.py [--config FILE] [--quiet]
"""

from __future__ import annotations

import argparse
import sys

from slm_operator.catalog.loader import load_config
from slm_operator.catalog.sizes import GAP_LIMIT, check_sizes
from slm_operator.planning.memory import kv_bytes_per_token

PARAMETER_TOLERANCE = 1e-4  # Gemma 3 4B+: 64 vocabulary rows more in the checkpoint than Keras counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a user configuration merged over the built-in catalog")
    parser.add_argument("--quiet", action="store_true", help="print only problems and the summary")
    args = parser.parse_args(argv)
    catalog = dict(load_config(args.config).catalog)
    problems: list[str] = []

    if not args.quiet:
        print(f"{'model':16} {'parameters':>15} {'recount':>15} {'gap':>8}  KV B/token global + windowed")
    for model_id, model in catalog.items():
        arch = model.architecture
        if arch is None:
            print(f"{model_id:16} skipped: no architecture fields to recount from")
            continue
        recount = arch.vision_parameters + arch.text_parameters(
            layers=model.layers,
            attention_heads=model.attention_heads,
            kv_heads=model.kv_heads,
            head_dim=model.head_dim,
        )
        gap = model.parameters / recount - 1
        per_layer = kv_bytes_per_token(model, kv_bytes_per_element=2) // model.layers
        kv = f"{per_layer * model.global_layers:,}"
        if model.sliding_window is not None:
            kv += f" + {per_layer * model.local_layers:,} (window {model.sliding_window.window})"
        if not args.quiet:
            print(f"{model_id:16} {model.parameters:>15,} {recount:>15,} {gap:>+8.4%}  {kv}")
        if abs(gap) > PARAMETER_TOLERANCE:
            problems.append(
                f"{model_id}: parameters {model.parameters:,} but the architecture gives {recount:,}"
            )

    if not args.quiet:
        print()
        print(f"{'model':16} {'variant':50} {'quant':7} {'stated GB':>10} {'recount':>9} {'gap':>7}")
    checks = check_sizes(catalog)
    for check in checks:
        mark = "FLAG" if check.flagged else ("est." if check.estimate else "")
        if not args.quiet or check.flagged:
            print(
                f"{check.model_id:16} {check.variant.ref:50} {check.variant.quantization:7} "
                f"{check.stated / 1e9:>10.3f} {check.computed / 1e9:>9.3f} {check.gap:>+7.1%} {mark}"
            )
        if check.flagged:
            problems.append(
                f"{check.model_id} {check.variant.ref} ({check.variant.quantization}): states "
                f"{check.stated / 1e9:.3f} GB, the tensor layout gives {check.computed / 1e9:.3f} GB "
                f"({check.gap:+.1%}); fix the size or mark it verified: false with a note"
            )

    estimates = sum(check.estimate for check in checks)
    print(
        f"\n{len(catalog)} models, {len(checks)} variants ({estimates} sizes marked as estimates); "
        f"limit {GAP_LIMIT:.0%} for stated sizes: {len(problems)} problem(s)"
    )
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
