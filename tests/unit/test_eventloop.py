"""Both long-running processes run on uvloop, a dependency, when it is installed."""

from __future__ import annotations

import asyncio

import uvloop

from slm_operator.contract.eventloop import event_loop_factory


def test_the_event_loop_is_uvloops() -> None:
    factory = event_loop_factory()
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)

        async def running() -> type[asyncio.AbstractEventLoop]:
            return type(asyncio.get_running_loop())

        assert runner.run(running()) is uvloop.Loop
