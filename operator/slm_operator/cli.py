"""`slmctl` (also the kubectl plugin `kubectl-slm`): plan, render, crd, catalog, tiers, completion,
run, gateway.

`plan` and `render` work on files with no cluster: they run the same pure core as the operator.
Exit codes: 0 success; 2 invalid input or a model that does not fit (one line per problem,
naming the file, the model and the field); 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from slm_operator import __version__
from slm_operator.api.config import OperatorConfig, dump_config
from slm_operator.api.errors import ConfigError, SpecError, SpecProblem
from slm_operator.api.fields import did_you_mean
from slm_operator.api.parse import parse_document
from slm_operator.api.plan import Plan
from slm_operator.documents import Document, config_named_in, read_documents
from slm_operator.tables import format_plans, format_table, table_width

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # `run` and `gateway` own their flags; hand them everything after the command.
    if args and args[0] == "run":
        from slm_operator.controller.run import main as run_main

        run_result: int = run_main(args[1:])
        return run_result
    if args and args[0] == "gateway":
        from slm_operator.gateway.cli import main as gateway_main

        return gateway_main(args[1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    try:
        result: int = ns.handler(ns, sys.stdout, sys.stderr)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # `slmctl render ... | head`
        return EXIT_OK
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slmctl",
        description="Plan, render and run SmallLanguageModel inference services on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"slmctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = _command(sub, "plan", "explain the runtime, variant, memory and scheduling chosen for each model")
    plan.add_argument(
        "paths", nargs="+", metavar="FILE", help="YAML files or folders of SmallLanguageModel documents"
    )
    plan.add_argument("--tier", help="plan every model for this tier instead of its spec.hardware.tier")
    _config_flag(plan)
    _output_flag(plan, ("table", "wide", "json", "yaml"))
    plan.set_defaults(handler=_cmd_plan)

    render = _command(sub, "render", "print the child objects the operator would apply (multi-document YAML)")
    render.add_argument(
        "paths", nargs="+", metavar="FILE", help="YAML files or folders of SmallLanguageModel documents"
    )
    _config_flag(render)
    render.add_argument(
        "--monitoring-available",
        action="store_true",
        help="render as if the Prometheus Operator CRDs exist "
        "(monitoring: auto then creates ServiceMonitor/PrometheusRule)",
    )
    render.add_argument(
        "--keda-available",
        action="store_true",
        help="render as if KEDA's CRDs exist (autoscaling.engine: keda then creates a ScaledObject)",
    )
    render.set_defaults(handler=_cmd_render)

    crd = _command(sub, "crd", "print the SmallLanguageModel CustomResourceDefinition")
    crd.set_defaults(handler=_cmd_crd)

    _listing_command(
        sub,
        "catalog",
        "list the model catalog (built-in merged with --config)",
        "only these models: catalog ids or shell patterns such as 'qwen3-*' (default: all)",
        _cmd_catalog,
    )
    _listing_command(
        sub,
        "tiers",
        "list the hardware tiers (built-in merged with --config)",
        "only these tiers: names or shell patterns such as 'nvidia-*' (default: all)",
        _cmd_tiers,
    )

    completion = _command(sub, "completion", "print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell: bash or zsh")
    completion.set_defaults(handler=_cmd_completion)

    # `run` and `gateway` parse their own flags (see main()); listed here for --help.
    sub.add_parser("run", help="run the operator (see `slmctl run --help`)", add_help=False)
    sub.add_parser(
        "gateway", help="run the model gateway sidecar (see `slmctl gateway --help`)", add_help=False
    )
    return parser


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary shows in `slmctl --help` and atop its own --help."""
    command: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    return command


def _listing_command(
    sub: Any,
    name: str,
    summary: str,
    names_help: str,
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int],
) -> None:
    """A listing subcommand (catalog, tiers): optional NAME patterns, --config and -o."""
    command = _command(sub, name, summary)
    command.add_argument("names", nargs="*", metavar="NAME", help=names_help)
    _config_flag(command)
    _output_flag(command, ("table", "wide", "json"))
    command.set_defaults(handler=handler)


def _output_flag(parser: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    described = {
        "table": "table (default; fitted to the terminal's width)",
        "wide": "wide (more columns, nothing shortened)",
        "json": "json",
        "yaml": "yaml",
    }
    parser.add_argument(
        "-o",
        "--output",
        choices=choices,
        default="table",
        metavar="FORMAT",
        help="output format: " + ", ".join(described[c] for c in choices),
    )


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="operator configuration (tiers, catalog, images, defaults) merged over the built-ins",
    )


def _config_for(path: Path, explicit: str | None, cache: dict[str | None, OperatorConfig]) -> OperatorConfig:
    """--config if given, else the config the model file names (see :func:`config_named_in`)."""
    from slm_operator.catalog.loader import load_config

    chosen = explicit
    if chosen is None and str(path) != "-":
        named = config_named_in(path)
        chosen = None if named is None else str(named)
    if chosen not in cache:
        cache[chosen] = load_config(chosen)
    return cache[chosen]


def _problem_lines(doc: Document, model_name: str, problems: list[SpecProblem]) -> list[str]:
    return [f"{doc.origin}: {model_name}: {p.field}: {p.message}" for p in problems]


def _model_label(body: Any) -> str:
    meta = body.get("metadata") if isinstance(body, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"


def _with_tier(body: dict[str, Any], tier: str | None) -> dict[str, Any]:
    if tier is None:
        return body
    spec = dict(body.get("spec") or {})
    spec["hardware"] = {**(spec.get("hardware") or {}), "tier": tier}
    return {**body, "spec": spec}


# --- commands -----------------------------------------------------------------------------------


def _cmd_plan(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.planning.planner import plan_model

    documents, problems = read_documents(ns.paths)
    plans: list[Plan] = []
    configs: dict[str | None, OperatorConfig] = {}
    for doc in documents:
        body = _with_tier(doc.body, ns.tier)
        try:
            model = parse_document(body)
            plans.append(plan_model(model, _config_for(doc.path, ns.config, configs)))
        except SpecError as exc:
            problems.extend(_problem_lines(doc, _model_label(body), exc.problems))
    if ns.output == "json":
        out.write(json.dumps([p.public() for p in plans], indent=2) + "\n")
    elif ns.output == "yaml":
        out.write(yaml.safe_dump([p.public() for p in plans], sort_keys=False))
    else:
        out.write(format_plans(plans, wide=ns.output == "wide", width=table_width(out)))
    for line in problems:
        print(line, file=err)
    if not documents and not problems:
        print("no SmallLanguageModel documents found", file=err)
        return EXIT_INVALID
    return EXIT_INVALID if problems else EXIT_OK


def _cmd_render(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.desired import desired_state
    from slm_operator.render.yaml_out import dump_objects

    documents, problems = read_documents(ns.paths)
    objects: list[dict[str, Any]] = []
    configs: dict[str | None, OperatorConfig] = {}
    for doc in documents:
        try:
            model = parse_document(doc.body)
            state = desired_state(
                model,
                _config_for(doc.path, ns.config, configs),
                monitoring_available=ns.monitoring_available,
                keda_available=ns.keda_available,
            )
            objects.extend(state.objects)
        except SpecError as exc:
            problems.extend(_problem_lines(doc, _model_label(doc.body), exc.problems))
    for line in problems:
        print(line, file=err)
    if problems or not documents:
        if not documents and not problems:
            print("no SmallLanguageModel documents found", file=err)
        return EXIT_INVALID
    out.write(dump_objects(objects))
    return EXIT_OK


def _cmd_crd(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.api.crd import crd_yaml

    out.write(crd_yaml())
    return EXIT_OK


def _select(names: Sequence[str], known: Sequence[str], what: str, command: str) -> list[str]:
    """The known names matching any of ``names`` (exact or shell pattern); all when none given.

    A name that matches nothing is an error naming the close ones.
    """
    if not names:
        return sorted(known)
    chosen: set[str] = set()
    for name in names:
        matched = [k for k in known if fnmatch.fnmatchcase(k, name)]
        if not matched:
            raise ConfigError(f"no {what} {name!r}{did_you_mean(name, known)} (see `slmctl {command}`)")
        chosen.update(matched)
    return sorted(chosen)


def _write_json_section(out: TextIO, config: OperatorConfig, section: str, keys: list[str]) -> int:
    """``-o json`` of a listing: the chosen entries of one section of the merged configuration."""
    everything = dump_config(config)[section]
    out.write(json.dumps({key: everything[key] for key in keys}, indent=2) + "\n")
    return EXIT_OK


def _cmd_catalog(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.catalog.loader import load_config

    config = load_config(ns.config)
    ids = _select(ns.names, list(config.catalog), "catalog model", "catalog")
    if ns.output == "json":
        return _write_json_section(out, config, "catalog", ids)
    wide = ns.output == "wide"
    header = ["ID", "PARAMS", "CONTEXT", "GATED", "RUNTIME", "VARIANT", "QUANT", "SIZE", "MIN-CC"]
    if wide:
        header += ["NAME", "FAMILY", "BITS", "LAYERS"]
    rows = [(*header, "VERIFIED")]
    for model_id in ids:
        entry = config.catalog[model_id]
        for variant in entry.variants:
            row = [
                model_id,
                f"{entry.parameters / 1e9:.2f}B",
                str(entry.max_context),
                "yes" if entry.gated else "no",
                str(variant.runtime),
                variant.ref,
                str(variant.quantization),
                f"{variant.weight_bytes / 1e9:.2f}GB",
                "-" if variant.min_compute_capability is None else f"{variant.min_compute_capability:g}",
            ]
            if wide:
                row += [entry.display_name, entry.family, str(variant.bits), str(entry.layers)]
            rows.append((*row, "yes" if variant.verified and entry.verified else "NO"))
    out.write(format_table(rows, width=None if wide else table_width(out), shrink=(5,)))
    unverified = [
        f"  {mid} {v.ref}: {v.note or config.catalog[mid].note}"
        for mid in ids
        for v in config.catalog[mid].variants
        if not (v.verified and config.catalog[mid].verified)
    ]
    if unverified:
        out.write("\nNot verified at the source (estimated or inferred):\n" + "\n".join(unverified) + "\n")
    return EXIT_OK


def _cmd_tiers(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.catalog.loader import load_config

    config = load_config(ns.config)
    names = _select(ns.names, list(config.tiers), "tier", "tiers")
    if ns.output == "json":
        return _write_json_section(out, config, "tiers", names)
    wide = ns.output == "wide"
    header = ["TIER", "RUNTIME", "GPUS", "GPU-MEM", "CC", "MEMORY"]
    if wide:
        header += ["CPU", "CPU-LIMIT", "TOLERATES"]
    rows = [(*header, "SELECTS", "VERIFIED")]
    for name in names:
        tier = config.tiers[name]
        selects = [f"{k}={v}" for k, v in tier.node_selector.items()]
        for term in tier.node_affinity:
            selects.append(
                " & ".join(
                    f"{e.key} {e.operator} {','.join(e.values)}".strip() for e in term.match_expressions
                )
            )
        row = [
            name,
            str(tier.runtime),
            str(tier.gpus),
            "-" if tier.gpu_memory_gib is None else f"{tier.gpu_memory_gib:g}GiB",
            "-" if tier.compute_capability is None else f"{tier.compute_capability:.1f}",
            f"{tier.memory_gib:g}GiB",
        ]
        if wide:
            tolerates = [f"{t.key or '*'}:{t.effect or '*'}" for t in tier.tolerations]
            row += [tier.cpu, tier.cpu_limit or "-", ",".join(tolerates) or "-"]
        rows.append((*row, " | ".join(selects) or "any node", "yes" if tier.verified else "NO"))
    out.write(format_table(rows, width=None if wide else table_width(out), shrink=(len(rows[0]) - 2,)))
    return EXIT_OK


def _cmd_completion(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from slm_operator.catalog.loader import load_config
    from slm_operator.completion import completion_script

    config = load_config(None)
    out.write(completion_script(ns.shell, build_parser(), sorted(config.catalog), sorted(config.tiers)))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
