"""The work queue: one entry per key, one worker per key, backoff per key, a bound on retries."""

from __future__ import annotations

import asyncio

import pytest

from slm_operator.controller.workqueue import ExponentialBackoff, TokenBucket, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_queued_once_however_often_it_is_added() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"
    assert len(queue) == 0


async def test_a_key_in_work_is_not_handed_out_again_until_done_then_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # an event while a worker holds the key
    queue.add("a")
    assert len(queue) == 0
    assert queue.processing == {"a"}
    queue.done(key)
    assert len(queue) == 1  # re-queued once, for the change seen meanwhile
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_an_idle_worker_wakes_when_a_key_arrives() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.add("x")
    assert await asyncio.wait_for(waiter, timeout=1) == "x"


async def test_retries_back_off_exponentially_per_key_and_success_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=0.5, limit=4.0))
    assert [queue.retry("a") for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert queue.retry("b") == 0.5  # another key keeps its own count
    queue.forget("a")
    assert queue.retry("a") == 0.5
    queue.close()


async def test_permanent_failures_use_the_slow_backoff() -> None:
    queue: WorkQueue[str] = WorkQueue(slow_backoff=ExponentialBackoff(base=300, limit=3600))
    assert [queue.retry("a", permanent=True) for _ in range(5)] == [300, 600, 1200, 2400, 3600]
    queue.close()


async def test_a_delayed_retry_comes_back_after_its_delay() -> None:
    queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=0.05, limit=1))
    queue.retry("a")
    assert len(queue) == 0
    assert queue.pending("a")
    assert await asyncio.wait_for(queue.get(), timeout=1) == "a"


async def test_an_event_during_a_backoff_is_handled_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=60, limit=60))
    queue.retry("a")
    queue.add("a")  # new information: do not wait out the backoff
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    await asyncio.sleep(0)
    assert not queue.pending("a")  # and the delayed retry is gone


async def test_removed_keys_leave_no_trace() -> None:
    queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=60, limit=60))
    queue.add("a")
    queue.retry("b")
    queue.remove("a")
    queue.remove("b")
    assert len(queue) == 0
    assert not queue.pending("a")
    assert not queue.pending("b")
    assert queue.backoff.failures("b") == 0


async def test_an_earlier_delayed_request_wins() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 60)
    queue.add_after("a", 0.02)
    queue.add_after("a", 30)
    assert await asyncio.wait_for(queue.get(), timeout=1) == "a"
    queue.close()


def test_token_bucket_allows_a_burst_then_spaces_requests() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 10  # refilled, never beyond the burst
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() > 0


async def test_a_storm_of_retries_is_spread_by_the_bucket() -> None:
    clock = FakeClock()
    queue: WorkQueue[int] = WorkQueue(
        backoff=ExponentialBackoff(base=0.001, limit=1), bucket=TokenBucket(rate=10, burst=2, clock=clock)
    )
    delays = [queue.retry(n) for n in range(5)]
    assert delays[:2] == [0.001, 0.001]
    assert delays[2:] == pytest.approx([0.1, 0.2, 0.3])
    queue.close()
