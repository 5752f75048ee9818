"""Starting and stopping the gateway: the API port, the metrics port and the runtime client.

The API port is the gateway's own lean HTTP/1.1 server (``frontend.py``); the metrics port,
which serves a scrape every few seconds, stays on aiohttp's web server, and so do the side
requests to the runtime (readiness checks, ``/metrics/runtime``) on aiohttp's client.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slm_operator.contract.runtime import Engine
from slm_operator.gateway.config import Address, GatewayConfig
from slm_operator.gateway.frontend import ApiServer
from slm_operator.gateway.keys import ApiKeys
from slm_operator.gateway.metrics import GatewayMetrics
from slm_operator.gateway.readiness import ReadinessChecker
from slm_operator.gateway.upstream import UpstreamPool

log = logging.getLogger(__name__)

# Bound on a scrape of the runtime's own /metrics (readiness checks have their own, shorter one).
SIDE_REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A started gateway: where it listens and how to stop it."""

    api: Address
    metrics_address: Address
    metrics: GatewayMetrics
    api_server: ApiServer
    _api_listener: asyncio.Server
    _grace: float
    _metrics_runner: web.BaseRunner
    _session: aiohttp.ClientSession
    _upstream: UpstreamPool

    @property
    def api_url(self) -> str:
        """Base URL of the API port (``http://host:port``)."""
        return f"http://{self.api}"

    @property
    def metrics_url(self) -> str:
        """Base URL of the metrics port."""
        return f"http://{self.metrics_address}"

    async def stop(self) -> None:
        """Stop listening, let running requests finish (up to the grace period), close the client."""
        self._api_listener.close()
        await self.api_server.shutdown(self._grace)
        await self._metrics_runner.cleanup()
        self._upstream.close()
        await self._session.close()


def metrics_app(
    config: GatewayConfig, metrics: GatewayMetrics, session: aiohttp.ClientSession
) -> web.Application:
    """The metrics port: ``/metrics``, ``/metrics/runtime`` and ``/healthz``."""

    async def own_metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def runtime_metrics(_: web.Request) -> web.Response:
        if config.runtime == Engine.OLLAMA:
            # Ollama has no Prometheus endpoint (ollama/ollama#3144); the gateway's own are at /metrics.
            return web.Response(
                status=404,
                text="ollama exposes no Prometheus metrics; the gateway's metrics for it are at /metrics\n",
            )
        try:
            async with session.get(f"{config.upstream}/metrics") as upstream:
                body = await upstream.read()
                content_type = upstream.headers.get("Content-Type", CONTENT_TYPE_LATEST)
                return web.Response(status=upstream.status, body=body, headers={"Content-Type": content_type})
        except (TimeoutError, aiohttp.ClientError) as exc:
            return web.Response(
                status=502, text=f"the runtime's /metrics did not answer ({type(exc).__name__})\n"
            )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", own_metrics)
    app.router.add_get("/metrics/runtime", runtime_metrics)
    app.router.add_get("/healthz", healthz)
    return app


# File descriptors kept free of client connections and their runtime connections: listening
# sockets, the key file, readiness checks, metrics scrapes, logs.
RESERVED_FDS = 64


def fit_connection_cap(wanted: int) -> int:
    """The connection cap, lowered if the file-descriptor limit cannot hold it.

    Each client connection may need a second descriptor for its runtime connection. The soft
    limit is raised towards the hard one when that makes room; a cap that still does not fit is
    lowered (with a warning), so the gateway never runs out of descriptors and stops accepting.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * wanted + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    fitted = max(1, (soft - RESERVED_FDS) // 2)
    log.warning(
        "--max-connections %d needs %d file descriptors, the limit is %d: capping at %d",
        wanted,
        needed,
        soft,
        fitted,
    )
    return fitted


def _bound_address(runner: web.BaseRunner, wanted: Address) -> Address:
    # With port 0 the system picks the port; report the real one (tests use ephemeral ports).
    for sockname in runner.addresses:
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            return Address(host=wanted.host, port=int(sockname[1]))
    return wanted


async def start_gateway(config: GatewayConfig, *, metrics: GatewayMetrics | None = None) -> RunningGateway:
    """Bind both ports and start serving; call ``stop()`` on the result to shut down."""
    metrics = metrics if metrics is not None else GatewayMetrics(config.model)
    # aiohttp serves the side paths only (readiness checks, /metrics/runtime); requests go
    # through the lean UpstreamPool.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SIDE_REQUEST_TIMEOUT_SECONDS))
    keys = (
        ApiKeys(config.api_key_file, recheck_seconds=config.key_recheck_seconds)
        if config.api_key_file is not None
        else None
    )
    if keys is None:
        log.warning("authentication is OFF: anyone who can reach %s may use the model", config.listen)

    def record_upstream(up: bool) -> None:
        metrics.upstream_up.set(1 if up else 0)

    readiness = ReadinessChecker(
        session,
        base_url=config.upstream,
        runtime=config.runtime,
        model=config.model,
        cache_seconds=config.readiness_cache_seconds,
        on_result=record_upstream,
    )
    upstream = UpstreamPool(config.upstream, timeout=config.upstream_timeout)
    api = ApiServer(
        config,
        upstream=upstream,
        keys=keys,
        metrics=metrics,
        readiness=readiness,
        max_connections=fit_connection_cap(config.max_connections),
    )
    metrics_runner = web.AppRunner(metrics_app(config, metrics, session), access_log=None)
    loop = asyncio.get_running_loop()
    listener: asyncio.Server | None = None
    try:
        listener = await loop.create_server(
            api.protocol, config.listen.host, config.listen.port, backlog=1024, reuse_address=True
        )
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, config.metrics_listen.host, config.metrics_listen.port).start()
    except BaseException:
        if listener is not None:
            listener.close()
        await metrics_runner.cleanup()
        await session.close()
        raise
    running = RunningGateway(
        api=Address(config.listen.host, int(listener.sockets[0].getsockname()[1])),
        metrics_address=_bound_address(metrics_runner, config.metrics_listen),
        metrics=metrics,
        api_server=api,
        _api_listener=listener,
        _grace=config.shutdown_grace_seconds,
        _metrics_runner=metrics_runner,
        _session=session,
        _upstream=upstream,
    )
    log.info(
        "gateway for %s model %r on %s (metrics on %s), runtime at %s",
        config.runtime,
        config.model,
        running.api,
        running.metrics_address,
        config.upstream,
    )
    return running


async def serve(config: GatewayConfig) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_gateway(config)
    try:
        await stop.wait()
        log.info("stopping: finishing requests in flight (up to %.0f s)", config.shutdown_grace_seconds)
    finally:
        await running.stop()
