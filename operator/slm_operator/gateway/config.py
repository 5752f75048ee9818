"""The gateway's settings, validated once at start-up."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from slm_operator.contract.runtime import Engine

# The --runtime flag's choices, as plain strings (argparse shows them in its messages).
RUNTIMES: tuple[str, ...] = tuple(engine.value for engine in Engine)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Long enough for a CPU runtime to produce a long non-streamed answer (Ollama on a few cores can
# take minutes), short enough that a wedged runtime does not hold client connections forever.
DEFAULT_UPSTREAM_TIMEOUT = 600.0
# Client-side limits (see frontend.py). A request head is a few hundred bytes: 10 s is ample
# even on a bad link. A request body of up to --max-body-bytes gets 30 s. Idle keep-alive
# connections are closed after 60 s (nginx's keepalive_timeout default is 75 s). The cap keeps
# the connections, plus one to the runtime for each, inside the pod's file-descriptor limit.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 1000


class GatewayConfigError(ValueError):
    """A setting that cannot work; the message names the flag."""


@dataclass(frozen=True, slots=True)
class Address:
    """A listen address: host (IPv4, IPv6 or name) and TCP port (0 picks a free one)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, *, flag: str) -> Address:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; the message names ``flag`` when it is wrong."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise GatewayConfigError(f"{flag}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise GatewayConfigError(f"{flag}: {host!r} is not an IPv6 address") from exc
    elif ":" in host:
        raise GatewayConfigError(f"{flag}: write IPv6 addresses in brackets, e.g. [::]:8000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise GatewayConfigError(f"{flag}: port must be a number from 0 to 65535, got {port_text!r}")
    return Address(host=host, port=int(port_text))


def parse_upstream(text: str) -> str:
    """Check the runtime's base URL (http, with a host) and drop a trailing slash."""
    parts = urlsplit(text.strip())
    # Plain http only: the runtime listens on the pod's loopback interface.
    if parts.scheme != "http" or not parts.hostname:
        raise GatewayConfigError(f"--upstream: expected http://HOST:PORT, got {text!r}")
    if parts.query or parts.fragment:
        raise GatewayConfigError("--upstream: must not have a query or fragment")
    return text.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs to run; built by the CLI or directly by tests and benchmarks."""

    upstream: str
    runtime: Engine  # a plain "vllm" or "ollama" is accepted and stored as the Engine
    model: str
    listen: Address
    metrics_listen: Address
    api_key_file: Path | None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    # Model names a request body may ask for (--allow-model); empty: any name is passed on.
    allowed_models: tuple[str, ...] = ()
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Not flags: the defaults suit the kubelet (probes every few seconds) and are lowered by tests.
    readiness_cache_seconds: float = 2.0
    key_recheck_seconds: float = 1.0
    shutdown_grace_seconds: float = 20.0

    def __post_init__(self) -> None:
        # Frozen, so the normalized URL (no trailing slash) is stored the dataclass way.
        object.__setattr__(self, "upstream", parse_upstream(self.upstream))
        if self.runtime not in RUNTIMES:
            raise GatewayConfigError(
                f"--runtime: expected one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        object.__setattr__(self, "runtime", Engine(self.runtime))
        if not self.model.strip():
            raise GatewayConfigError("--model: must not be empty")
        if any(not name.strip() for name in self.allowed_models):
            raise GatewayConfigError("--allow-model: must not be empty")
        if self.max_body_bytes < 1:
            raise GatewayConfigError("--max-body-bytes: must be at least 1")
        if not self.upstream_timeout > 0:
            raise GatewayConfigError("--upstream-timeout: must be more than 0 seconds")
        for flag, value in (
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--idle-timeout", self.idle_timeout),
        ):
            if not value > 0:
                raise GatewayConfigError(f"{flag}: must be more than 0 seconds")
        if self.max_connections < 1:
            raise GatewayConfigError("--max-connections: must be at least 1")

    @property
    def auth_enabled(self) -> bool:
        """True unless the gateway was started with ``--no-auth``."""
        return self.api_key_file is not None
