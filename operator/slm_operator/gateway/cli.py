"""``slmctl gateway``: command line and environment for the gateway sidecar.

Every flag can also be set by an environment variable named ``SLM_GATEWAY_`` plus the flag in
upper case with dashes as underscores (``--api-key-file`` -> ``SLM_GATEWAY_API_KEY_FILE``);
a flag on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from slm_operator.contract.eventloop import event_loop_factory
from slm_operator.contract.names import API_KEY_FILE_KEY, API_KEY_MOUNT_DIR, GATEWAY_PORT, METRICS_PORT
from slm_operator.gateway.config import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_UPSTREAM_TIMEOUT,
    RUNTIMES,
    GatewayConfig,
    GatewayConfigError,
    parse_address,
)

ENV_PREFIX = "SLM_GATEWAY_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
LOG_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger(__name__)


def env_name(flag: str) -> str:
    """The environment variable that sets ``flag`` (``--no-auth`` -> ``SLM_GATEWAY_NO_AUTH``)."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _env_bool(environ: Mapping[str, str], flag: str) -> bool:
    raw = environ.get(env_name(flag), "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise GatewayConfigError(f"{env_name(flag)}: expected true or false, got {raw!r}")


def _env_list(environ: Mapping[str, str], flag: str) -> list[str]:
    raw = environ.get(env_name(flag), "")
    return [item.strip() for item in raw.split(",")] if raw.strip() else []


def build_arg_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``slmctl gateway``; defaults come from ``environ`` (``os.environ`` if None)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="slmctl gateway",
        description="Authenticating, metering, streaming proxy in front of a vLLM or Ollama runtime.",
        epilog=f"Every flag can also be set by {ENV_PREFIX}<FLAG> (e.g. {env_name('--upstream')}).",
    )

    def add(
        flag: str,
        help_text: str,
        *,
        default: str | None = None,
        required: bool = False,
        metavar: str | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        value = env.get(env_name(flag), default)
        parser.add_argument(
            flag,
            default=value,
            required=required and value is None,
            metavar=metavar,
            choices=choices,
            help=f"{help_text} [env {env_name(flag)}]",
        )

    add("--upstream", "the runtime's base URL, e.g. http://127.0.0.1:8001", required=True, metavar="URL")
    add("--runtime", "which runtime is behind the gateway", required=True, choices=RUNTIMES)
    add("--model", "the served model name the runtime must list", required=True, metavar="NAME")
    add(
        "--listen",
        "address of the OpenAI-compatible API (default %(default)s)",
        default=f"0.0.0.0:{GATEWAY_PORT}",  # the pod's only door must be reachable
        metavar="HOST:PORT",
    )
    add(
        "--metrics-listen",
        "address of /metrics (default %(default)s)",
        default=f"0.0.0.0:{METRICS_PORT}",  # scraped from outside the pod
        metavar="HOST:PORT",
    )
    add(
        "--api-key-file",
        f"file with one API key per line (the Secret mounted at {API_KEY_MOUNT_DIR}/{API_KEY_FILE_KEY})",
        metavar="PATH",
    )
    parser.add_argument(
        "--allow-model",
        action="append",
        default=None,
        metavar="NAME",
        help="a model name requests may ask for (repeat for each; the operator renders the served "
        "name and each LoRA adapter's); other names get 404 model_not_found. Without it every name "
        f"is passed on [env {env_name('--allow-model')}, comma-separated]",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help=f"serve /v1/* to anyone, without an API key [env {env_name('--no-auth')}=true]",
    )
    add(
        "--max-body-bytes",
        "largest request body accepted; larger gets 413 (default %(default)s)",
        default=str(DEFAULT_MAX_BODY_BYTES),
        metavar="N",
    )
    add(
        "--upstream-timeout",
        "limit on connecting, on waiting for response headers and on each silence in a stream "
        "(default %(default)s)",
        default=str(DEFAULT_UPSTREAM_TIMEOUT),
        metavar="SECONDS",
    )
    add(
        "--header-timeout",
        "a client's request head must arrive within this many seconds of its first byte "
        "(default %(default)s)",
        default=str(DEFAULT_HEADER_TIMEOUT),
        metavar="SECONDS",
    )
    add(
        "--body-timeout",
        "a request body must arrive within this many seconds; else 408 (default %(default)s)",
        default=str(DEFAULT_BODY_TIMEOUT),
        metavar="SECONDS",
    )
    add(
        "--idle-timeout",
        "close a client connection with no request in progress after this many seconds (default %(default)s)",
        default=str(DEFAULT_IDLE_TIMEOUT),
        metavar="SECONDS",
    )
    add(
        "--max-connections",
        "most client connections at once; at the cap a new one pushes out the longest-idle "
        "(default %(default)s)",
        default=str(DEFAULT_MAX_CONNECTIONS),
        metavar="N",
    )
    add(
        "--log-level",
        "log level; the access log is written at info (default %(default)s)",
        default="info",
        choices=LOG_LEVELS,
    )
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Turn parsed arguments into a checked :class:`GatewayConfig`; raises GatewayConfigError."""
    env = os.environ if environ is None else environ
    no_auth = bool(args.no_auth) or _env_bool(env, "--no-auth")
    key_file: str | None = args.api_key_file or None
    if no_auth and key_file:
        raise GatewayConfigError("give either --api-key-file or --no-auth, not both")
    if not no_auth and not key_file:
        raise GatewayConfigError(
            "refusing to start without an API key: give --api-key-file PATH, "
            "or --no-auth to serve /v1/* to anyone who can reach the port"
        )
    try:
        max_body = int(args.max_body_bytes)
    except ValueError as exc:
        raise GatewayConfigError(
            f"--max-body-bytes: expected a whole number, got {args.max_body_bytes!r}"
        ) from exc
    timeout = _seconds(args.upstream_timeout, "--upstream-timeout")
    try:
        max_connections = int(args.max_connections)
    except ValueError as exc:
        raise GatewayConfigError(
            f"--max-connections: expected a whole number, got {args.max_connections!r}"
        ) from exc
    return GatewayConfig(
        upstream=args.upstream,
        runtime=args.runtime,
        model=args.model,
        listen=parse_address(args.listen, flag="--listen"),
        metrics_listen=parse_address(args.metrics_listen, flag="--metrics-listen"),
        api_key_file=Path(key_file) if key_file else None,
        max_body_bytes=max_body,
        upstream_timeout=timeout,
        allowed_models=tuple(args.allow_model or _env_list(env, "--allow-model")),
        header_timeout=_seconds(args.header_timeout, "--header-timeout"),
        body_timeout=_seconds(args.body_timeout, "--body-timeout"),
        idle_timeout=_seconds(args.idle_timeout, "--idle-timeout"),
        max_connections=max_connections,
    )


def _seconds(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise GatewayConfigError(f"{flag}: expected seconds, got {text!r}") from exc


def configure_logging(level: str) -> None:
    """Plain log lines on stderr; the access log is already JSON, so it is written as is."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The log format uses none of these record fields; not filling them in saves a getpid()
    # system call and two lookups on every record (the access log writes one per request).
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    access = logging.getLogger("slm_operator.gateway.access")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False
    # The access log is one line per request: the API port writes it to stdout itself, one
    # write per line as the handler above would, without building a log record for each
    # (the handler stays for anything else logged there). The level still decides (info).
    from slm_operator.gateway import frontend

    sys.stdout.flush()
    frontend.DIRECT_ACCESS_FD = sys.stdout.fileno()


def main(argv: list[str]) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit code."""
    parser = build_arg_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse already printed the usage error
        return int(exc.code or 0)
    try:
        config = config_from_args(args)
        if args.log_level not in LOG_LEVELS:  # a value from the environment skips argparse's check
            raise GatewayConfigError(f"--log-level: expected one of {', '.join(LOG_LEVELS)}")
    except GatewayConfigError as exc:
        parser.print_usage(sys.stderr)
        print(f"slmctl gateway: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    # Imported here so that parsing flags (and --help) stays fast and free of aiohttp.
    from slm_operator.gateway.server import serve

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(config))
    except OSError as exc:  # e.g. the port is taken
        log.error("gateway stopped: %s", exc)
        return 1
    return 0
