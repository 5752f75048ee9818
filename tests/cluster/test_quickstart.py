"""docs/quickstart.md, executed on the simulated cluster (e2e/sim/cluster.sh).

The page's ``sh`` blocks run as written, in order, with the cluster's kubectl and helm on PATH:
blocks marked ``<!-- sim: skip -->`` (creating a kind cluster, building and loading the image)
are left out and the run stops at ``<!-- sim: stop -->`` (calling the model, which needs a
container that really serves). The chart's operator pod is simulated too, so once the page has
installed the chart, this test runs the operator from the checkout with the chart's
ServiceAccount and configuration, as the pod would; the later blocks then see the model become
Ready and read its API key.

The page gets a cluster of its own, stopped afterwards.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from simcluster import SimCluster  # noqa: E402

from docs_blocks import Block, simulated_run  # noqa: E402

QUICKSTART = ROOT / "docs" / "quickstart.md"
RELEASE_NAMESPACE = "slm-system"
RELEASE = "slm-operator"


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a shell on a simulated cluster of its own: KUBECONFIG, and PATH with
    the cluster's kubectl and helm. (Not the tier's shared cluster: the page installs the chart,
    CRD and cluster roles included, under its own release name.)"""
    cluster = SimCluster.start(tmp_path_factory.mktemp("quickstart-sim"))
    try:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(cluster.kubeconfig)
        env["PATH"] = f"{cluster.bin_dir()}{os.pathsep}{env['PATH']}"
        yield env
    finally:
        cluster.stop()


def _shell(blocks: list[Block], env: dict[str, str], timeout: float) -> str:
    """Run blocks in order in one bash, stopping at the first failing command."""
    script = "set -euo pipefail\n" + "".join(b.text for b in blocks)
    result = _run(["bash", "-c", script], env, timeout=timeout)
    where = ", ".join(f"line {b.line}" for b in blocks)
    assert result.returncode == 0, (
        f"docs/quickstart.md blocks at {where} failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _kubectl(env: dict[str, str], *args: str) -> str:
    result = _run(["kubectl", *args], env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _service_account_kubeconfig(env: dict[str, str], path: Path) -> Path:
    """A kubeconfig for the chart's ServiceAccount (a short-lived token), so the operator runs
    with exactly the permissions the chart grants its pod."""
    deployment = yaml.safe_load(
        _kubectl(env, "-n", RELEASE_NAMESPACE, "get", "deployment", RELEASE, "-o", "yaml")
    )
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    token = _kubectl(env, "-n", RELEASE_NAMESPACE, "create", "token", account, "--duration", "1h").strip()
    admin = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
                "current-context": account,
            }
        )
    )
    return path


def _operator_config(env: dict[str, str], path: Path) -> Path:
    """The configuration the chart gives its operator pod (its ConfigMap's config.yaml)."""
    deployment = yaml.safe_load(
        _kubectl(env, "-n", RELEASE_NAMESPACE, "get", "deployment", RELEASE, "-o", "yaml")
    )
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    config_map = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    data = yaml.safe_load(
        _kubectl(env, "-n", RELEASE_NAMESPACE, "get", "configmap", config_map, "-o", "yaml")
    )
    path.write_text(data["data"]["config.yaml"])
    return path


@pytest.mark.timeout(1800)
def test_quickstart_runs_on_the_simulated_cluster(cluster_env: dict[str, str], tmp_path: Path) -> None:
    blocks = simulated_run(QUICKSTART.read_text(encoding="utf-8"))
    install = next(i for i, b in enumerate(blocks) if "helm upgrade --install" in b.text)
    assert "helm upgrade --install" not in "".join(b.text for b in blocks[install + 1 :])

    # Up to and including the chart's installation (its operator pod is simulated).
    _shell(blocks[: install + 1], cluster_env, timeout=600)

    # The operator the chart would run, from this checkout, as the chart's ServiceAccount.
    kubeconfig = _service_account_kubeconfig(cluster_env, tmp_path / "kubeconfig")
    config = _operator_config(cluster_env, tmp_path / "config.yaml")
    log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slm_operator.cli",
            "run",
            "--config",
            str(config),
            "--all-namespaces",
            "--metrics-port",
            "0",
            "--resync-seconds",
            "8",
        ],
        cwd=tmp_path,
        env={**cluster_env, "KUBECONFIG": str(kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        out = _shell(blocks[install + 1 :], cluster_env, timeout=600)
        assert operator.poll() is None, "the operator exited"
    except AssertionError:
        log.flush()
        print((tmp_path / "operator.log").read_text()[-5000:])
        raise
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(timeout=10)
        log.close()

    # What the page promised: the model became Ready and the key was read from its Secret.
    assert "got the API key" in out
    status = yaml.safe_load(_kubectl(cluster_env, "-n", "demo", "get", "slm", "tiny", "-o", "yaml"))["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["plan"]["tier"] == "edge"
    secret = yaml.safe_load(
        _kubectl(cluster_env, "-n", "demo", "get", "secret", "tiny-api-key", "-o", "yaml")
    )
    assert len(base64.b64decode(secret["data"]["api-key"])) >= 32
