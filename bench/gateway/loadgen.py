"""A lean closed-loop HTTP/1.1 load generator (keep-alive, one connection per worker).

It writes pre-encoded requests and parses only what it must (status, Content-Length or chunked
framing), so that on a 2-core machine the client takes as little CPU as possible away from the
servers being measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Batch:
    """The outcome of one timed batch against one target."""

    latencies: list[float] = field(default_factory=list)  # seconds, request sent -> last byte
    first_bytes: list[float] = field(default_factory=list)  # seconds, request sent -> first body chunk
    errors: int = 0
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def build_request(host: str, port: int, path: str, body: bytes, key: str | None) -> bytes:
    """A complete keep-alive POST, encoded once and sent for every request."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader, sent: float) -> tuple[int, float]:
    """Read one response; returns (status, time of the first body bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    first = 0.0
    if b"transfer-encoding: chunked" in lower:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if not first:
                first = time.perf_counter()
            if size == 0:
                break
    else:
        start = lower.index(b"content-length:") + 15
        length = int(lower[start : lower.index(b"\r\n", start)])
        await reader.readexactly(length)
        first = time.perf_counter()
    return status, first - sent


async def _worker(host: str, port: int, request: bytes, deadline: float, cap: int, batch: Batch) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and len(batch.latencies) < cap:
            sent = time.perf_counter()
            writer.write(request)
            status, first_byte = await _read_response(reader, sent)
            done = time.perf_counter()
            if status != 200:
                batch.errors += 1
                continue
            batch.latencies.append(done - sent)
            batch.first_bytes.append(first_byte)
    finally:
        writer.close()


async def run_batch(
    host: str, port: int, request: bytes, *, concurrency: int, seconds: float, cap: int
) -> Batch:
    """``concurrency`` workers send ``request`` back to back for ``seconds`` (or ``cap`` answers)."""
    batch = Batch()
    start = time.perf_counter()
    deadline = start + seconds
    async with asyncio.timeout(seconds + 30):  # a stuck server must not hang the benchmark
        await asyncio.gather(
            *(_worker(host, port, request, deadline, cap, batch) for _ in range(concurrency))
        )
    batch.elapsed = time.perf_counter() - start
    return batch
