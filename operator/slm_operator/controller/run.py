"""``slmctl run``: start the operator (kopf) for all namespaces or a fixed list of them."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from slm_operator.catalog.loader import load_config
from slm_operator.contract.eventloop import event_loop_factory
from slm_operator.controller import settings as operator_settings
from slm_operator.controller.connection import ConnectionConfigError
from slm_operator.controller.handlers import ControllerContext
from slm_operator.controller.kubeapi import KubeApi, authorization_header
from slm_operator.controller.metrics import OperatorMetrics

log = logging.getLogger(__name__)

CONFIG_ENV = "SLM_OPERATOR_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}


@dataclass(frozen=True)
class RunOptions:
    """The parsed command line of ``slmctl run``."""

    namespaces: tuple[str, ...]
    config_path: str | None
    liveness: str | None
    metrics_port: int
    request_timeout: float
    watch_timeout: int
    resync_seconds: float
    workers: int
    verbose: bool
    log_level: str = "info"
    log_format: str = "full"

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slmctl run",
        description="Run the slm-operator: reconcile SmallLanguageModels into inference services.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="Serve every namespace (the default)."
    )
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="Serve only this namespace (repeatable) for a namespaced install.",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"Operator configuration YAML (tiers, catalog, images); default built-ins (env {CONFIG_ENV}).",
    )
    parser.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz.",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus metrics port (0 disables); default 9090."
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="Accepted for older manifests: the operator always runs as one replica (a Recreate "
        "strategy keeps two from overlapping).",
    )
    parser.add_argument("--peering", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--request-timeout", type=float, default=60.0, help="Seconds before one API request gives up."
    )
    parser.add_argument(
        "--watch-timeout",
        type=int,
        default=300,
        help="Whole seconds before a watch is re-opened server-side.",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        help="Reconcile every model at least this often, even with no event (the safety net; "
        "it makes no request when nothing drifted). Default 300.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="Models reconciled at the same time (each in its own thread). Default 4.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log more (same as --log-level debug).")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="Least severe messages logged; default info."
    )
    parser.add_argument(
        "--log-format",
        choices=tuple(LOG_FORMATS),
        default="full",
        help="plain: the message only; full: time, logger, level and message (the default); "
        "json: one JSON object per line.",
    )
    return parser


def parse_options(argv: Sequence[str]) -> RunOptions:
    """Parse ``slmctl run`` arguments."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.peering:
        parser.error(
            "--peering is no longer supported: the operator's watches are its own, outside kopf, "
            "so kopf peering cannot pause them. Run one replica with a Recreate strategy (the "
            "chart does), and drop the flag."
        )
    return RunOptions(
        namespaces=tuple(args.namespaces or ()),
        config_path=args.config or None,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        request_timeout=args.request_timeout,
        watch_timeout=args.watch_timeout,
        resync_seconds=args.resync_seconds,
        workers=max(1, args.workers),
        verbose=args.verbose,
        log_level="debug" if args.verbose else args.log_level,
        log_format=args.log_format,
    )


def configure_logging(options: RunOptions) -> None:
    """kopf's log handler in the chosen format, and the root logger at the chosen level."""
    kopf.configure(verbose=options.log_level == "debug", log_format=LOG_FORMATS[options.log_format])
    logging.getLogger().setLevel(options.log_level.upper())
    if options.log_level != "debug":
        # kopf logs "Handler ... succeeded." at INFO for every watch event of every object;
        # with thousands of children that is most of the operator's output and a good part of
        # its CPU. Its warnings and errors still show; the workers log what they change.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def build_operator(
    options: RunOptions,
) -> tuple[kopf.OperatorRegistry, kopf.OperatorSettings, ControllerContext]:
    """The registry, settings and shared context for one run (no I/O beyond reading config)."""
    config = load_config(options.config_path)
    settings = kopf.OperatorSettings()
    operator_settings.configure(
        settings, timeouts=operator_settings.Timeouts(request=options.request_timeout)
    )
    ctx = ControllerContext(
        api=KubeApi.from_environment(request_timeout=options.request_timeout),
        config=config,
        metrics=OperatorMetrics(),
        resync_seconds=options.resync_seconds,
        workers=options.workers,
        watch_timeout=options.watch_timeout,
    )
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf talks to the same server with the same credentials as the children's client.
        return connection_info(ctx.api.configuration)

    return registry, settings, ctx


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the operator's connection (a :class:`Connection`, or a
    ``kubernetes.client.Configuration`` for the paths that need the client)."""
    scheme, _, token = (authorization_header(configuration) or "").partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme if token else None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


async def run_operator(
    options: RunOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    context: list[ControllerContext] | None = None,
) -> None:
    """Run the operator until stopped (a signal, or ``stop_flag``)."""
    registry, settings, ctx = build_operator(options)
    ctx.start(watch_namespaces=options.namespaces)
    if context is not None:
        context.append(ctx)
    if options.metrics_port:
        ctx.metrics.serve(options.metrics_port)
    scope = "all namespaces" if options.clusterwide else ", ".join(options.namespaces)
    log.info("slm-operator serving %s", scope)
    try:
        await kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=options.clusterwide,
            namespaces=list(options.namespaces),
            liveness_endpoint=options.liveness,
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await ctx.stop()


EXIT_NO_CONNECTION = 2  # as the CLI's other refusals of bad input

# The cyclic garbage collector's young-generation threshold (CPython's default: 700). What the
# operator allocates per watch event is parsed JSON -- plain dicts, lists and strings, freed by
# reference counting -- so collecting every 700 allocations mostly scans objects that are not
# garbage (docs/benchmarks.md, "Operator").
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect less often, and never scan what start-up loaded (modules, the catalog): moved to
    a permanent generation the collector skips (``gc.freeze``)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def main(argv: list[str]) -> int:
    """Entry point of ``slmctl run``."""
    options = parse_options(argv)
    configure_logging(options)
    tune_gc()
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run_operator(options))
    except ConnectionConfigError as exc:  # no usable kubeconfig or in-cluster environment
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_CONNECTION
    return 0
