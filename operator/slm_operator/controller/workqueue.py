"""A deduplicating, rate-limited work queue of model keys for a fixed pool of workers.

The shape follows client-go's ``workqueue``: a key is queued at most once however many events
ask for it; a key being worked on is never handed to a second worker, and a request that arrives
meanwhile re-queues it once the worker is done; failures are retried after a per-key exponential
backoff, and an overall token bucket bounds how fast retries of all keys together come back.

Only asyncio, no kopf and no kubernetes: the workers and the watch handlers share one event
loop, so nothing here needs a lock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class ExponentialBackoff(Generic[K]):
    """Per-key delays: ``base``, 2x, 4x ... up to ``limit``; :meth:`forget` starts a key over."""

    base: float = 1.0
    limit: float = 300.0
    _failures: dict[K, int] = field(default_factory=dict)

    def when(self, key: K) -> float:
        """The delay before the next retry of ``key``, counting this failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(self.limit, self.base * float(2 ** min(failures, 30)))

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


@dataclass
class TokenBucket:
    """At most ``rate`` retries a second on average, with bursts of ``burst``.

    :meth:`reserve` takes a token now and returns how long the caller must wait for it, so a
    storm of failures spreads out instead of hammering the API server together.
    """

    rate: float = 10.0
    burst: int = 100
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = self.clock()

    def reserve(self) -> float:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class WorkQueue(Generic[K]):
    """Keys waiting for a worker; see the module docstring for the rules."""

    backoff: ExponentialBackoff[K] = field(default_factory=ExponentialBackoff)
    slow_backoff: ExponentialBackoff[K] = field(
        default_factory=lambda: ExponentialBackoff(base=300.0, limit=3600.0)
    )
    bucket: TokenBucket = field(default_factory=TokenBucket)
    _queue: deque[K] = field(default_factory=deque)
    _queued: set[K] = field(default_factory=set)
    _processing: set[K] = field(default_factory=set)
    _dirty: set[K] = field(default_factory=set)
    _timers: dict[K, tuple[float, asyncio.TimerHandle]] = field(default_factory=dict)
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def pending(self, key: K) -> bool:
        """Whether ``key`` is queued, being worked on, or waiting for a delayed retry."""
        return key in self._queued or key in self._processing or key in self._timers

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op if it is already queued)."""
        self._cancel_timer(key)
        if key in self._processing:
            self._dirty.add(key)  # handed out again once the current worker is done
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds; an earlier pending request wins."""
        if delay <= 0:
            self.add(key)
            return
        if key in self._queued:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._timers.get(key)
        if current is not None and current[0] <= due:
            return
        self._cancel_timer(key)
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def retry(self, key: K, *, permanent: bool = False) -> float:
        """Re-queue ``key`` after its backoff (the slow one for errors only a human can fix)."""
        delay = (self.slow_backoff if permanent else self.backoff).when(key)
        if not permanent:
            delay = max(delay, self.bucket.reserve())
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next failure starts from the shortest backoff again."""
        self.backoff.forget(key)
        self.slow_backoff.forget(key)

    def remove(self, key: K) -> None:
        """Drop every trace of ``key`` (its object was deleted)."""
        self._cancel_timer(key)
        self.forget(key)
        self._dirty.discard(key)
        if key in self._queued:
            self._queued.discard(key)
            self._queue.remove(key)

    async def get(self) -> K:
        """Wait for the next key and mark it as being worked on; pair with :meth:`done`."""
        while not self._queue:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        """A worker finished ``key``; a request that came meanwhile queues it again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        """Cancel every delayed retry (the operator is stopping)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def _notify(self) -> None:
        # Wake one idle worker; it re-checks the queue, so a spurious wake-up is harmless.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
