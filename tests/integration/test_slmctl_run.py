"""``slmctl run`` as a real process: kubeconfig login, metrics and liveness endpoints, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from emulator import ClusterEmulator, DeploymentController
from harness import NAMESPACE, SLM, wait_for
from scenario import SECRETS, child, model, phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_slmctl_run_serves_metrics_and_liveness_and_stops_on_sigterm(
    cluster: ClusterEmulator, deployments: DeploymentController, tmp_path: Path
) -> None:
    slmctl = Path(sys.executable).parent / "slmctl"
    metrics_port, liveness_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(slmctl),
            "run",
            "--namespace",
            NAMESPACE,
            "--metrics-port",
            str(metrics_port),
            "--liveness",
            f"http://127.0.0.1:{liveness_port}/healthz",
            "--request-timeout",
            "5",
            "--verbose",
            env=dict(os.environ),  # KUBECONFIG points at the emulator (the cluster fixture)
            stdout=log,
            stderr=log,
        )
    try:
        await cluster.server_create(SLM, NAMESPACE, model("tiny"))
        await wait_for(lambda: phase(cluster, "tiny") == "Ready", timeout=40, message="Ready via slmctl run")

        status, text = await fetch(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert 'slm_operator_reconcile_total{result="ok"}' in text
        assert 'slm_operator_models{phase="Ready"} 1.0' in text
        assert "slm_operator_build_info{version=" in text
        assert "slm_operator_reconcile_duration_seconds_bucket" in text
        live_status, _ = await fetch(f"http://127.0.0.1:{liveness_port}/healthz")
        assert live_status == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0, log_path.read_text()
    secret = child(cluster, SECRETS, "tiny-api-key")
    assert secret is not None
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    logs = log_path.read_text()
    assert "slm-operator serving ns1" in logs
    assert key not in logs  # verbose logs never carry the key
