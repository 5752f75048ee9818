"""The event loop the operator's two long-running processes run on: the controller
(``slmctl run``) and the gateway sidecar (``slmctl gateway``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency), else asyncio's default.

    uvloop (libuv underneath, its TLS in compiled code) spends markedly less CPU per socket
    operation and loop iteration than asyncio's selector loop: the gateway is all socket
    operations, and the controller reads every watch event of every child (docs/benchmarks.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop wheels
        return None
    return uvloop.new_event_loop
