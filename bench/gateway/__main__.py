"""Gateway overhead: the same closed-loop load against a fake runtime, directly and through the gateway.

Three processes: the fake runtime (``bench.gateway.upstream``), the real gateway started exactly
as in a pod (``python -m slm_operator.gateway`` with an API-key file, JSON access log on), and
this load generator. ``--placement`` pins them on a machine with 2 or more CPUs:

- ``shared`` (default): the load generator on CPU 0, the runtime and the gateway share CPU 1, like
  a runtime and its sidecar sharing a pod's CPU while clients run elsewhere. The throughput ratio
  then says how much of that one CPU the gateway takes from the runtime.
- ``separate``: the load generator and the runtime on CPU 0, the gateway alone on CPU 1, like a
  sidecar with its own CPU; the ratio then says whether the gateway keeps up with the runtime.
- ``none``: the scheduler decides.

Direct and gateway batches alternate within every round (direct first on even rounds, gateway
first on odd ones), so drift of the machine affects both alike. Each batch is bounded in time
(``--seconds``) and count (``--cap``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.gateway.loadgen import Batch, build_request, run_batch

KEY = "sk-bench-0123456789abcdef"
MODEL = "bench-model"
HOST = "127.0.0.1"
NON_STREAM = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}).encode()
STREAM = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "stream": True}
).encode()


@dataclass
class Row:
    scenario: str
    concurrency: int
    direct: Batch
    gateway: Batch


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def merge(batches: list[Batch]) -> Batch:
    merged = Batch()
    for batch in batches:
        merged.latencies += batch.latencies
        merged.first_bytes += batch.first_bytes
        merged.errors += batch.errors
        merged.elapsed += batch.elapsed
    return merged


def machine() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
    }


def wait_for_line(
    path: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes], within: float
) -> str:
    """Poll a child's log file until ``pattern`` matches (bounded by ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {path.read_text()}")
        match = pattern.search(path.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern.pattern!r} in {path} after {within} s")


PLACEMENTS = {
    # name: (load generator CPU, runtime CPU, gateway CPU, description)
    "shared": (0, 1, 1, "load generator on CPU 0; runtime and gateway share CPU 1"),
    "separate": (0, 0, 1, "load generator and runtime on CPU 0; gateway alone on CPU 1"),
}


def place(placement: str, upstream: int, gateway: int) -> str:
    """Pin the three processes; returns a description of what was done."""
    if placement == "none" or (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return "unpinned (the scheduler decides)"
    client_cpu, upstream_cpu, gateway_cpu, description = PLACEMENTS[placement]
    os.sched_setaffinity(0, {client_cpu})
    os.sched_setaffinity(upstream, {upstream_cpu})
    os.sched_setaffinity(gateway, {gateway_cpu})
    return description


async def wait_ready(url: str, within: float) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def measure(args: argparse.Namespace, upstream_port: int, gateway_port: int) -> list[Row]:
    await wait_ready(f"http://{HOST}:{gateway_port}/readyz", 15)
    targets = {
        "direct": (upstream_port, None),
        "gateway": (gateway_port, KEY),
    }
    rows: list[Row] = []
    for scenario, body in (("non-streaming", NON_STREAM), (f"streaming ({args.chunks} chunks)", STREAM)):
        requests = {
            name: build_request(HOST, port, "/v1/chat/completions", body, key)
            for name, (port, key) in targets.items()
        }
        for concurrency in args.concurrency:
            # Warm-up: connections, code paths, allocator.
            for name, (port, _) in targets.items():
                await run_batch(
                    HOST, port, requests[name], concurrency=concurrency, seconds=0.2, cap=args.cap
                )
            results: dict[str, list[Batch]] = {"direct": [], "gateway": []}
            for round_index in range(args.rounds):
                order = ("direct", "gateway") if round_index % 2 == 0 else ("gateway", "direct")
                for name in order:
                    port = targets[name][0]
                    batch = await run_batch(
                        HOST,
                        port,
                        requests[name],
                        concurrency=concurrency,
                        seconds=args.seconds,
                        cap=args.cap,
                    )
                    results[name].append(batch)
            row = Row(scenario, concurrency, merge(results["direct"]), merge(results["gateway"]))
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = (
    "| load | conc. | direct p50 ms | gateway p50 ms | added p50 ms | direct p99 ms | gateway p99 ms "
    "| added p99 ms | added first-byte p50 ms | direct req/s | gateway req/s | ratio | errors |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def format_row(row: Row) -> str:
    d, g = row.direct, row.gateway
    ms = 1000.0
    cells = [
        row.scenario,
        str(row.concurrency),
        f"{percentile(d.latencies, 50) * ms:.3f}",
        f"{percentile(g.latencies, 50) * ms:.3f}",
        f"{(percentile(g.latencies, 50) - percentile(d.latencies, 50)) * ms:+.3f}",
        f"{percentile(d.latencies, 99) * ms:.3f}",
        f"{percentile(g.latencies, 99) * ms:.3f}",
        f"{(percentile(g.latencies, 99) - percentile(d.latencies, 99)) * ms:+.3f}",
        f"{(percentile(g.first_bytes, 50) - percentile(d.first_bytes, 50)) * ms:+.3f}",
        f"{d.throughput:.0f}",
        f"{g.throughput:.0f}",
        f"{g.throughput / d.throughput:.0%}" if d.throughput else "n/a",
        str(d.errors + g.errors),
    ]
    return "| " + " | ".join(cells) + " |"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=4, help="alternating direct/gateway rounds per level")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one batch")
    parser.add_argument("--cap", type=int, default=50_000, help="most requests in one batch")
    parser.add_argument("--chunks", type=int, default=16, help="content events per streamed answer")
    parser.add_argument("--chunk-delay", type=float, default=0.001, help="seconds between streamed events")
    parser.add_argument("--placement", choices=[*PLACEMENTS, "none"], default="shared", help="CPU pinning")
    parser.add_argument("--json", type=Path, help="also write the raw summary here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "api-key"
        key_file.write_text(KEY + "\n")
        upstream_log = workdir / "upstream.log"
        gateway_log = workdir / "gateway.log"
        processes: list[subprocess.Popen[bytes]] = []
        try:
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
            with gateway_log.open("wb") as err:
                gateway = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "slm_operator.gateway",
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
            listening = re.compile(r"on 127\.0\.0\.1:(\d+) \(metrics")
            gateway_port = int(wait_for_line(gateway_log, listening, gateway, 15))
            placement = place(args.placement, upstream.pid, gateway.pid)
            print(f"machine: {info}; placement: {placement}", flush=True)
            print(HEADER, flush=True)
            rows = asyncio.run(measure(args, upstream_port, gateway_port))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    if args.json:
        summary = {
            "machine": info,
            "placement": placement,
            "rows": [
                {
                    "load": row.scenario,
                    "concurrency": row.concurrency,
                    "direct_p50_ms": percentile(row.direct.latencies, 50) * 1000,
                    "gateway_p50_ms": percentile(row.gateway.latencies, 50) * 1000,
                    "direct_p99_ms": percentile(row.direct.latencies, 99) * 1000,
                    "gateway_p99_ms": percentile(row.gateway.latencies, 99) * 1000,
                    "direct_rps": row.direct.throughput,
                    "gateway_rps": row.gateway.throughput,
                    "requests": len(row.direct.latencies) + len(row.gateway.latencies),
                    "errors": row.direct.errors + row.gateway.errors,
                }
                for row in rows
            ],
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
