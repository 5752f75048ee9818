"""Gateway overhead against an established reverse proxy: direct, gateway and nginx in one run.

Four kinds of process, all on 127.0.0.1:

- the fake runtime (``bench.gateway.upstream``), answering as fast as it can;
- the real gateway, started exactly as in a pod (``python -m slm_operator.gateway`` with an
  API-key file, JSON access log on);
- nginx (Debian's ``nginx-light``), configured here as the same kind of door: the same key check
  (401 unless ``Authorization: Bearer <key>``), ``proxy_buffering off``, keep-alive connections
  to the runtime, and one access-log line per request (to /dev/null, as the gateway's);
- one load generator, ``wrk`` (Debian's), with the same request for all three targets.

wrk and the runtime are pinned to CPU 0, the gateway and nginx to CPU 1, so each proxy has a CPU
of its own and is measured by how much of it it spends (CPU per request, read from
``/proc/<pid>/stat``) and by the throughput and latency wrk sees. For every load (non-streaming,
streaming; concurrency 1, 8, 32) the three targets are measured in turns, in a rotating order,
``--rounds`` times; each cell is the median of its rounds. ``--runs`` repeats the whole table and
prints the median and the spread (min-max) of every cell over the runs.

nginx-light and wrk are installed with apt-get when missing (that needs root).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

KEY = "sk-bench-0123456789abcdef"
MODEL = "bench-model"
HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
LOAD_CPU, PROXY_CPU = 0, 1

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    # One JSON line per request, unbuffered, like the gateway's access log (which the benchmark
    # also sends to /dev/null).
    log_format json escape=json '{{"msg": "request", "method": "$request_method", '
        '"route": "$uri", "status": $status, "duration_s": $request_time, '
        '"upstream_s": "$upstream_response_time"}}';
    access_log /dev/null json;
    client_body_temp_path {tmp}/client-body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream runtime {{
        server {host}:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen {host}:{port};
        location = {path} {{
            if ($http_authorization != "Bearer {key}") {{
                return 401;
            }}
            proxy_pass http://runtime;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_buffering off;
        }}
    }}
}}
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


@dataclass
class Sample:
    """One wrk batch against one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float | None  # the proxy's CPU (None for direct)
    requests: int
    errors: int


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        values = [getattr(s, attribute) for s in self.samples if getattr(s, attribute) is not None]
        return statistics.median(values) if values else float("nan")


def body_for(stream: bool, chunks: int) -> bytes:
    document: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}
    if stream:
        document["stream"] = True
    return json.dumps(document).encode()


def ensure_tools() -> None:
    """Install Debian's nginx-light and wrk when they are missing."""
    missing = [name for name, binary in (("nginx-light", "nginx"), ("wrk", "wrk")) if not find(binary)]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def find(binary: str) -> str | None:
    return shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/sbin") / binary) if p.exists()), None
    )


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of ``pids`` (all their threads) so far, in seconds, to the nanosecond.

    ``/proc/<pid>/task/<tid>/schedstat`` starts with the time the thread spent on a CPU in ns;
    ``/proc/<pid>/stat``'s utime and stime count whole clock ticks (10 ms), too coarse for short
    batches of a few hundred requests.
    """
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def pin(pids: list[int], cpu: int) -> None:
    if (os.cpu_count() or 1) >= 2:
        for pid in pids:
            os.sched_setaffinity(pid, {cpu})


def wait_for_line(
    path: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes], within: float
) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {path.read_text()}")
        match = pattern.search(path.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern.pattern!r} in {path} after {within} s")


def wait_http(url: str, within: float, headers: dict[str, str] | None = None) -> None:
    import asyncio

    async def poll() -> None:
        async with aiohttp.ClientSession() as session, asyncio.timeout(within):
            while True:
                try:
                    async with session.get(url, headers=headers) as response:
                        if response.status < 500:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    asyncio.run(poll())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    script: Path, port: int, concurrency: int, seconds: float
) -> tuple[float, float, float, int, int]:
    """(req/s, p50 ms, p99 ms, requests, non-2xx+socket errors) of one wrk batch."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(LOAD_CPU),
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://{HOST}:{port}{PATH}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(non_2xx.group(1))
    if socket_errors := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in socket_errors.groups())
    return rps, p50, p99, requests, errors


def measure(
    args: argparse.Namespace,
    ports: dict[str, int],
    proxy_pids: dict[str, list[int]],
    scripts: dict[str, Path],
) -> dict[tuple[str, int], dict[str, Cell]]:
    table: dict[tuple[str, int], dict[str, Cell]] = {}
    for load in ("non-streaming", "streaming"):
        for concurrency in args.concurrency:
            targets = tuple(ports)
            cells = {target: Cell() for target in targets}
            for target in targets:  # warm-up: connections, code paths, allocator
                run_wrk(scripts[load], ports[target], concurrency, 1)
            for round_index in range(args.rounds):
                shift = round_index % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    pids = proxy_pids.get(target, [])
                    before = cpu_seconds(pids) if pids else 0.0
                    rps, p50, p99, requests, errors = run_wrk(
                        scripts[load], ports[target], concurrency, args.seconds
                    )
                    cpu = (cpu_seconds(pids) - before) / requests * 1e6 if pids and requests else None
                    cells[target].samples.append(Sample(rps, p50, p99, cpu, requests, errors))
            table[(load, concurrency)] = cells
            print(format_row(load, concurrency, cells), flush=True)
    return table


HEADER = (
    "| load | c | direct req/s | gateway req/s | nginx req/s | gateway/direct | nginx/direct "
    "| gateway/nginx | direct p50 ms | added p50 gateway ms | added p50 nginx ms "
    "| CPU/req gateway µs | CPU/req nginx µs | CPU gateway/nginx | errors |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row_values(cells: dict[str, Cell]) -> dict[str, float]:
    d, g, n = cells["direct"], cells["gateway"], cells["nginx"]
    return {
        "direct_rps": d.median("rps"),
        "gateway_rps": g.median("rps"),
        "nginx_rps": n.median("rps"),
        "gateway_vs_direct": g.median("rps") / d.median("rps"),
        "nginx_vs_direct": n.median("rps") / d.median("rps"),
        "gateway_vs_nginx": g.median("rps") / n.median("rps"),
        "direct_p50_ms": d.median("p50_ms"),
        "gateway_added_p50_ms": g.median("p50_ms") - d.median("p50_ms"),
        "nginx_added_p50_ms": n.median("p50_ms") - d.median("p50_ms"),
        "gateway_cpu_us": g.median("cpu_us_per_request"),
        "nginx_cpu_us": n.median("cpu_us_per_request"),
        "cpu_gateway_vs_nginx": g.median("cpu_us_per_request") / n.median("cpu_us_per_request"),
        "errors": float(sum(s.errors for c in cells.values() for s in c.samples)),
    }


FORMATS = {
    "direct_rps": "{:.0f}",
    "gateway_rps": "{:.0f}",
    "nginx_rps": "{:.0f}",
    "gateway_vs_direct": "{:.0%}",
    "nginx_vs_direct": "{:.0%}",
    "gateway_vs_nginx": "{:.0%}",
    "direct_p50_ms": "{:.3f}",
    "gateway_added_p50_ms": "{:+.3f}",
    "nginx_added_p50_ms": "{:+.3f}",
    "gateway_cpu_us": "{:.0f}",
    "nginx_cpu_us": "{:.0f}",
    "cpu_gateway_vs_nginx": "{:.2f}x",
    "errors": "{:.0f}",
}


def format_row(load: str, concurrency: int, cells: dict[str, Cell]) -> str:
    values = row_values(cells)
    return (
        "| " + " | ".join([load, str(concurrency), *(FORMATS[k].format(v) for k, v in values.items())]) + " |"
    )


def goal(load: str, concurrency: int, values: dict[str, float]) -> list[str]:
    """The goals this row misses (empty: all met)."""
    missed = []
    if values["cpu_gateway_vs_nginx"] > 2.0:
        missed.append(f"CPU/request {values['cpu_gateway_vs_nginx']:.2f}x nginx's (goal ≤ 2x)")
    if values["gateway_vs_nginx"] < 0.5:
        missed.append(f"throughput {values['gateway_vs_nginx']:.0%} of nginx's (goal ≥ 50 %)")
    if concurrency == 1 and values["gateway_added_p50_ms"] > 1.0:
        missed.append(f"added p50 {values['gateway_added_p50_ms']:.3f} ms (goal ≤ 1 ms)")
    return missed


def summarize(runs: list[dict[tuple[str, int], dict[str, Cell]]]) -> list[str]:
    """Median and spread over runs of every cell, and whether the goal holds on the medians."""
    lines = ["", f"Over {len(runs)} run(s): median [min-max] of the per-run medians", "", HEADER]
    verdicts = []
    for key in runs[0]:
        per_run = [row_values(run[key]) for run in runs]
        cells = []
        for name, fmt in FORMATS.items():
            values = [v[name] for v in per_run]
            med = statistics.median(values)
            cells.append(
                fmt.format(med)
                if len(values) == 1 or name == "errors"
                else f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"
            )
        lines.append("| " + " | ".join([key[0], str(key[1]), *cells]) + " |")
        medians = {name: statistics.median(v[name] for v in per_run) for name in FORMATS}
        missed = goal(key[0], key[1], medians)
        verdicts.append(
            f"{key[0]} c={key[1]}: " + ("goal met" if not missed else "MISSED: " + "; ".join(missed))
        )
    lines += ["", *verdicts]
    return lines


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    nginx_version = subprocess.run(
        [find("nginx") or "nginx", "-v"], check=False, capture_output=True, text=True
    ).stderr.strip()
    wrk_version = subprocess.run(
        ["wrk", "--version"], check=False, capture_output=True, text=True
    ).stdout.split("\n")[0]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "load average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "httptools": importlib.metadata.version("httptools"),
        "nginx": nginx_version.removeprefix("nginx version: "),
        "wrk": wrk_version.split(" [")[0],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 32])
    parser.add_argument(
        "--rounds", type=int, default=3, help="batches per target and load, in rotating order"
    )
    parser.add_argument("--seconds", type=int, default=2, help="length of one wrk batch (whole seconds)")
    parser.add_argument(
        "--runs", type=int, default=3, help="repeat the whole table; report median and spread"
    )
    parser.add_argument("--chunks", type=int, default=16, help="content events per streamed answer")
    parser.add_argument("--chunk-delay", type=float, default=0.001, help="seconds between streamed events")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    return parser.parse_args(argv)


def start_processes(
    args: argparse.Namespace, workdir: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[dict[str, int], dict[str, list[int]]]:
    key_file = workdir / "api-key"
    key_file.write_text(KEY + "\n")
    upstream_log = workdir / "upstream.log"
    with upstream_log.open("wb") as out:
        upstream = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.gateway.upstream",
                "--chunks",
                str(args.chunks),
                "--chunk-delay",
                str(args.chunk_delay),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    processes.append(upstream)
    upstream_port = int(wait_for_line(upstream_log, re.compile(r"PORT (\d+)"), upstream, 15))
    pin([upstream.pid], LOAD_CPU)

    ports = {"direct": upstream_port}
    proxy_pids: dict[str, list[int]] = {}
    gateways = {"gateway": "slm_operator.gateway"}
    for name, module in gateways.items():
        log = workdir / f"{name}.log"
        with log.open("wb") as err:
            gateway = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module,
                    "--upstream",
                    f"http://{HOST}:{upstream_port}",
                    "--runtime",
                    "vllm",
                    "--model",
                    MODEL,
                    "--listen",
                    f"{HOST}:0",
                    "--metrics-listen",
                    f"{HOST}:0",
                    "--api-key-file",
                    str(key_file),
                ],
                stdout=subprocess.DEVNULL,  # the access log is still formatted and written, as in a pod
                stderr=err,
            )
        processes.append(gateway)
        ports[name] = int(wait_for_line(log, re.compile(r"on 127\.0\.0\.1:(\d+) \(metrics"), gateway, 15))
        pin([gateway.pid], PROXY_CPU)
        proxy_pids[name] = [gateway.pid]
        wait_http(f"http://{HOST}:{ports[name]}/readyz", 15)

    nginx_port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=workdir, host=HOST, port=nginx_port, upstream_port=upstream_port, path=PATH, key=KEY
        )
    )
    nginx = subprocess.Popen(
        [find("nginx") or "nginx", "-c", str(conf), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    processes.append(nginx)
    wait_http(f"http://{HOST}:{nginx_port}/", 15)
    nginx_pids = [nginx.pid, *children(nginx.pid)]
    pin(nginx_pids, PROXY_CPU)

    ports["nginx"] = nginx_port
    proxy_pids["nginx"] = nginx_pids
    return ports, proxy_pids


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ensure_tools()
    info = machine()
    runs: list[dict[tuple[str, int], dict[str, Cell]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            ports, proxy_pids = start_processes(args, workdir, processes)
            scripts = {}
            for load, stream in (("non-streaming", False), ("streaming", True)):
                script = workdir / f"{load}.lua"
                body = body_for(stream, args.chunks).decode()
                script.write_text(WRK_SCRIPT.format(body=json.dumps(body), key=KEY))
                scripts[load] = script
            print(f"machine: {info}", flush=True)
            print(
                f"placement: wrk and the runtime on CPU {LOAD_CPU}; "
                f"the gateway and nginx on CPU {PROXY_CPU}; "
                f"{args.rounds} rounds of {args.seconds:g} s per target and load; streaming: "
                f"{args.chunks} events {args.chunk_delay * 1000:g} ms apart",
                flush=True,
            )
            for run in range(args.runs):
                print(f"\nrun {run + 1} of {args.runs}\n\n{HEADER}", flush=True)
                runs.append(measure(args, ports, proxy_pids, scripts))
        finally:
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM if process is not processes[-1] else signal.SIGQUIT)
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    print("\n".join(summarize(runs)), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "runs": [
                        {
                            f"{load} c={c}": {t: [vars(s) for s in cell.samples] for t, cell in cells.items()}
                            for (load, c), cells in run.items()
                        }
                        for run in runs
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
