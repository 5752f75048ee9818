"""The operator at N models, on the simulated cluster, side by side with a minimal kopf baseline.

For every scenario (models x children) and every run, each contender -- the slm-operator
(``slmctl run -A``) and the baseline (``python -m bench.operator.baseline``, a kopf operator that
only renders and applies the same objects) -- in turn, alternating which goes first:

1. starts as its own ServiceAccount, bound to the chart's generated RBAC;
2. N models are created (spread over namespaces), and the clock runs until every Deployment is
   available (and, for the slm-operator, every model reports ``Ready``);
3. after a settling pause, an idle window is watched;
4. the contender stops, and the namespaces are deleted with no operator running.

Figures come from the API server's audit log (requests of the contender's user, counted once
per request) and from ``/proc/<pid>`` of the contender's process: writes and reads per new
model, Events per model, requests per idle minute, CPU seconds per new model, resident memory,
and the time until all are Ready. Several runs give the median and the spread.

Needs ``e2e/sim/cluster.sh`` (etcd, kube-apiserver with an audit log, controller-manager,
scheduler and kwok nodes). ``--cluster-dir`` reuses a running cluster; otherwise one is started
in a temporary directory and stopped at the end.

    make bench-operator                       # 100 and 1000 models, 4 and 9 children, 3 runs
    python -m bench.operator --models 100 --children 4 --runs 1 --idle-seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.operator import audit, procstat, workload
from bench.operator.cluster import SimCluster, wait
from slm_operator.controller.kubeapi import ConflictError, TransientApiError

CONTENDERS = ("slm-operator", "baseline")
MODELS_PATH = "/apis/slm.dev/v1alpha1/namespaces/{ns}/smalllanguagemodels"


@dataclass
class Measurement:
    """One contender, one scenario, one run."""

    contender: str
    models: int
    children: int
    writes_per_model: float
    events_per_model: float
    gets_per_model: float
    lists_per_model: float
    idle_requests_per_minute: float
    cpu_ms_per_model: float
    rss_mib: float
    peak_rss_mib: float
    seconds_to_ready: float
    ready: int
    namespace_delete_seconds: float
    writes: dict[str, int]


def start_contender(contender: str, kubeconfig: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    liveness = f"http://127.0.0.1:{port}/healthz"
    if contender == "slm-operator":
        argv = [str(Path(sys.executable).parent / "slmctl"), "run", "-A", "--metrics-port", "0"]
        argv += ["--liveness", liveness]
    else:
        argv = [sys.executable, "-m", "bench.operator.baseline", "--liveness", liveness]
    log = log_path.open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait(lambda: _healthy(liveness) or process.poll() is not None, timeout=60, what=f"{contender} up")
    if process.poll() is not None:
        raise RuntimeError(f"{contender} exited at start; see {log_path}")
    return process


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def stop_contender(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def create_model(cluster: SimCluster, doc: dict[str, Any]) -> None:
    """Create one model, retrying what the API server calls transient (429, 5xx)."""
    for attempt in range(10):
        try:
            cluster.api.call("POST", MODELS_PATH.format(ns=doc["metadata"]["namespace"]), body=doc)
            return
        except TransientApiError:
            time.sleep(0.5 * (attempt + 1))
        except ConflictError:
            return  # created by an attempt whose answer was lost
    raise RuntimeError(f"could not create {doc['metadata']['name']}")


def count_ready(cluster: SimCluster, contender: str, namespaces: list[str], replicas: int) -> int:
    """Models whose Deployment has ``replicas`` available (for the slm-operator: and whose status
    reports them and ``Ready``). With autoscaling the Deployment starts with one replica and the
    HPA raises it to ``minReplicas``: only after that is the cluster quiet."""
    ready = 0
    for ns in namespaces:
        deployments = cluster.api.call(
            "GET",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            query={"labelSelector": "app.kubernetes.io/managed-by=slm-operator"},
        )
        available = {
            d["metadata"]["name"]
            for d in (deployments or {}).get("items") or []
            if int((d.get("status") or {}).get("availableReplicas") or 0) >= replicas
        }
        if contender == "slm-operator":
            models = cluster.api.call("GET", MODELS_PATH.format(ns=ns)) or {}
            available &= {
                m["metadata"]["name"]
                for m in models.get("items") or []
                if (m.get("status") or {}).get("phase") == "Ready"
                and int((m.get("status") or {}).get("readyReplicas") or 0) >= replicas
            }
        ready += len(available)
    return ready


def measure(
    cluster: SimCluster,
    contender: str,
    *,
    models: int,
    children: int,
    spread: int,
    idle_seconds: float,
    ready_timeout: float,
    work: Path,
    port: int,
) -> Measurement:
    kubeconfig, user = cluster.service_account_kubeconfig(contender)
    prefix = f"bench-{'op' if contender == 'slm-operator' else 'base'}"
    namespaces = workload.namespaces(prefix, spread)
    cluster.create_namespaces(namespaces)
    process = start_contender(contender, kubeconfig, port, work / f"{contender}-{models}x{children}.log")
    try:
        time.sleep(2.0)  # the initial listings are done; nothing to do yet
        cpu_start, started = procstat.cpu_seconds(process.pid), time.time()
        documents = workload.models(prefix, models, children=children, spread=spread)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda doc: create_model(cluster, doc), documents))
        ready = 0

        def all_ready() -> bool:
            nonlocal ready
            if process.poll() is not None:
                raise RuntimeError(f"{contender} exited with {process.returncode}")
            ready = count_ready(cluster, contender, namespaces, workload.replicas(children))
            return ready >= models

        try:
            wait(all_ready, timeout=ready_timeout, what="all models ready", every=2.0)
        except RuntimeError:
            print(f"  {contender}: only {ready}/{models} ready after {ready_timeout:.0f} s", flush=True)
        ready_at = time.time()
        cpu_ready = procstat.cpu_seconds(process.pid)
        time.sleep(10.0)  # late echoes of the last writes
        idle_start = time.time()
        time.sleep(idle_seconds)
        idle_end = time.time()
        rss, peak = procstat.memory_mib(process.pid)
    finally:
        stop_contender(process)
    delete_seconds = cluster.delete_namespaces(namespaces, timeout=600)

    requests = audit.read_log(cluster.audit_log)
    creating = audit.tally(requests, user=user, start=started, end=ready_at + 10.0)
    idle = audit.tally(requests, user=user, start=idle_start, end=idle_end)
    return Measurement(
        contender=contender,
        models=models,
        children=children,
        writes_per_model=creating.total_writes / models,
        events_per_model=creating.events / models,
        gets_per_model=creating.gets / models,
        lists_per_model=creating.lists / models,
        idle_requests_per_minute=idle.non_watch * 60.0 / idle_seconds,
        cpu_ms_per_model=(cpu_ready - cpu_start) * 1000.0 / models,
        rss_mib=rss,
        peak_rss_mib=peak,
        seconds_to_ready=ready_at - started,
        ready=ready,
        namespace_delete_seconds=delete_seconds,
        writes=dict(creating.writes),
    )


FIGURES = (
    ("writes per new model (non-Event)", "writes_per_model", "{:.2f}"),
    ("Events per model", "events_per_model", "{:.2f}"),
    ("GETs per new model", "gets_per_model", "{:.2f}"),
    ("LISTs per new model", "lists_per_model", "{:.2f}"),
    ("requests per idle minute (non-watch)", "idle_requests_per_minute", "{:.1f}"),
    ("CPU ms per new model", "cpu_ms_per_model", "{:.1f}"),
    ("RSS MiB after idle", "rss_mib", "{:.0f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("seconds until all Ready", "seconds_to_ready", "{:.0f}"),
    ("seconds to delete the namespaces, operator stopped", "namespace_delete_seconds", "{:.0f}"),
)


def summarize(values: list[float], fmt: str) -> str:
    """Median, and the spread (min-max) when there is more than one run."""
    if not values:
        return "-"
    median = fmt.format(statistics.median(values))
    return median if len(values) == 1 else f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def report(results: list[Measurement]) -> str:
    lines = []
    scenarios = sorted({(m.models, m.children) for m in results})
    for models, children in scenarios:
        runs = len(
            [m for m in results if (m.models, m.children, m.contender) == (models, children, CONTENDERS[0])]
        )
        lines.append(f"\n{models} models x {children} children, {runs} run(s): median (min-max)")
        lines.append(f"| figure | {' | '.join(CONTENDERS)} | ratio |")
        lines.append("|---|---|---|---|")
        for label, attr, fmt in FIGURES:
            cells, medians = [], []
            for contender in CONTENDERS:
                values = [
                    float(getattr(m, attr))
                    for m in results
                    if (m.models, m.children, m.contender) == (models, children, contender)
                ]
                cells.append(summarize(values, fmt))
                medians.append(statistics.median(values) if values else float("nan"))
            ratio = f"{medians[0] / medians[1]:.2f}" if medians[1] else "-"
            lines.append(f"| {label} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="100,1000", help="Comma-separated model counts.")
    parser.add_argument("--children", default="4,9", help="Children per model: 4 and/or 9.")
    parser.add_argument("--namespaces", type=int, default=10, help="Namespaces the models spread over.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=1800.0)
    parser.add_argument("--cluster-dir", type=Path, default=None, help="Reuse a running simulated cluster.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every measurement here.")
    parser.add_argument("--port", type=int, default=18080, help="Liveness port of the contender (127.0.0.1).")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    cluster = SimCluster(args.cluster_dir or work / "cluster")
    cluster.directory.mkdir(parents=True, exist_ok=True)
    cluster.up()
    results: list[Measurement] = []
    try:
        cluster.install_crds()
        most_pods = max(int(n) for n in args.models.split(",")) * (
            2 if "9" in args.children.split(",") else 1
        )
        cluster.add_nodes(-(-most_pods // 200))
        for models in (int(n) for n in args.models.split(",")):
            for children in (int(c) for c in args.children.split(",")):
                for run in range(args.runs):
                    order = CONTENDERS if run % 2 == 0 else tuple(reversed(CONTENDERS))
                    for contender in order:
                        print(
                            f"{models} models x {children} children, run {run + 1}: {contender}", flush=True
                        )
                        result = measure(
                            cluster,
                            contender,
                            models=models,
                            children=children,
                            spread=args.namespaces,
                            idle_seconds=args.idle_seconds,
                            ready_timeout=args.ready_timeout,
                            work=work,
                            port=args.port,
                        )
                        print(f"  {json.dumps(asdict(result))}", flush=True)
                        results.append(result)
    finally:
        cluster.down()
        if args.json is not None:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    print(report(results))
    print(f"\nlogs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
