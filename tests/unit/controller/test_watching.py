"""The lean list-and-watch stream against a small fake API server (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from slm_operator.controller.watching import ApiSession, WatchStream


def obj(name: str, rv: int, uid: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid or f"u-{name}", "resourceVersion": str(rv)}
    }


@dataclass
class FakeApi:
    """Listings (one per call, in pages of 2) and watch answers, scripted per call."""

    listings: list[list[dict[str, Any]]]
    watches: list[list[dict[str, Any]] | int]  # the events of one watch, or an HTTP status
    requests: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        if query.get("watch") == "true":
            if not self.watches:
                await asyncio.sleep(0.05)  # nothing more to say: a quiet watch that ends
                return web.Response(text="")
            script = self.watches.pop(0)
            if isinstance(script, int):
                return web.json_response({"kind": "Status", "code": script}, status=script)
            response = web.StreamResponse()
            await response.prepare(request)
            for event in script:
                # One event split over two writes: lines are reassembled from chunks.
                line = json.dumps(event).encode() + b"\n"
                await response.write(line[:7])
                await response.write(line[7:])
            await response.write_eof()
            return response
        items = self.listings[0]
        start = int(query.get("continue") or 0)
        page = items[start : start + 2]
        more = start + 2 < len(items)
        if not more:
            self.listings.pop(0)
        meta = {"resourceVersion": "100", **({"continue": str(start + 2)} if more else {})}
        return web.json_response({"apiVersion": "v1", "kind": "ServiceList", "items": page, "metadata": meta})


@dataclass
class Config:
    """The parts of a ``kubernetes.client.Configuration`` the session reads."""

    host: str
    verify_ssl: bool = True
    ssl_ca_cert: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str = ""
    password: str = ""

    def get_api_key_with_prefix(self, key: str, alias: str | None = None) -> str | None:
        return "Bearer t0ken" if key == "BearerToken" else None


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeApi, str]]:
    api = FakeApi(listings=[], watches=[])
    app = web.Application()
    app.router.add_get("/api/v1/services", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield api, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@dataclass
class Collector:
    """The stream's sink: keeps what it is given, and says when it has ``wanted`` events."""

    wanted: int
    what: Any  # what to keep of (type, body)
    events: list[Any] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, type_: str | None, body: dict[str, Any]) -> None:
        self.events.append(self.what(type_, body))
        self.bodies.append(body)
        if len(self.events) >= self.wanted:
            self.enough.set()


async def run_until(stream: WatchStream, collector: Collector) -> None:
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(collector.enough.wait(), 5.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_lists_in_pages_then_watches_from_the_listing_and_resumes(served: tuple[FakeApi, str]) -> None:
    fake, url = served
    fake.listings = [[obj("a", 1), obj("b", 2), obj("c", 3)]]
    fake.watches = [
        [{"type": "ADDED", "object": obj("d", 101)}, {"type": "BOOKMARK", "object": obj("", 150)}],
        [{"type": "DELETED", "object": obj("a", 151)}],
    ]
    collector = Collector(5, lambda type_, body: (type_, body["metadata"]["name"]))
    listed: list[int] = []
    session = ApiSession(Config(host=url))
    stream = WatchStream(
        session,
        path="/api/v1/services",
        label_selector="app=x",
        sink=collector,
        on_listed=lambda: listed.append(len(collector.events)),
    )
    await run_until(stream, collector)
    await session.close()
    assert collector.events == [(None, "a"), (None, "b"), (None, "c"), ("ADDED", "d"), ("DELETED", "a")]
    assert listed == [3]  # once, after the whole first listing
    # Listed items get the apiVersion and kind a list leaves out (drift compares them).
    assert all((body["apiVersion"], body["kind"]) == ("v1", "Service") for body in collector.bodies[:3])
    lists = [q for q in fake.requests if "watch" not in q]
    watches = [q for q in fake.requests if q.get("watch") == "true"]
    assert [q.get("continue") for q in lists] == [None, "2"]
    assert all(q["labelSelector"] == "app=x" for q in fake.requests)
    # The first watch starts at the listing's version; the next one at the last seen (a bookmark).
    assert [q["resourceVersion"] for q in watches[:2]] == ["100", "150"]
    assert watches[0]["allowWatchBookmarks"] == "true"


async def test_a_gone_version_lists_again_and_reports_only_what_changed(served: tuple[FakeApi, str]) -> None:
    fake, url = served
    fake.listings = [
        [obj("a", 1), obj("b", 2), obj("c", 3), obj("f", 4)],
        # Meanwhile: a gone, b deleted and created again, c changed, d new, e (seen in the
        # watch) gone, f unchanged.
        [obj("b", 9, uid="u-b2"), obj("c", 7), obj("d", 8), obj("f", 4)],
    ]
    fake.watches = [[{"type": "ADDED", "object": obj("e", 101)}], 410]
    collector = Collector(
        11, lambda type_, body: (type_, body["metadata"]["name"], body["metadata"]["resourceVersion"])
    )
    session = ApiSession(Config(host=url))
    stream = WatchStream(session, path="/api/v1/services", label_selector="app=x", sink=collector)
    await run_until(stream, collector)
    await session.close()
    events = collector.events
    first = [(None, "a", "1"), (None, "b", "2"), (None, "c", "3"), (None, "f", "4"), ("ADDED", "e", "101")]
    assert events[:5] == first
    after = events[5:]
    assert after.index(("DELETED", "b", "2")) < after.index(("ADDED", "b", "9"))
    assert sorted(after) == [
        ("ADDED", "b", "9"),
        ("ADDED", "d", "8"),
        ("DELETED", "a", "1"),
        ("DELETED", "b", "2"),
        ("DELETED", "e", "101"),
        ("MODIFIED", "c", "7"),
    ]


async def test_an_error_event_other_than_gone_retries_the_watch(served: tuple[FakeApi, str]) -> None:
    fake, url = served
    fake.listings = [[obj("a", 1)]]
    fake.watches = [
        [{"type": "ERROR", "object": {"code": 500, "message": "boom"}}],
        [{"type": "MODIFIED", "object": obj("a", 120)}],
    ]
    collector = Collector(2, lambda type_, body: (type_, body["metadata"]["resourceVersion"]))
    session = ApiSession(Config(host=url))
    stream = WatchStream(
        session, path="/api/v1/services", label_selector="app=x", sink=collector, retry_delay=0.01
    )
    await run_until(stream, collector)
    await session.close()
    assert collector.events == [(None, "1"), ("MODIFIED", "120")]
    watches = [q for q in fake.requests if q.get("watch") == "true"]
    assert [q["resourceVersion"] for q in watches[:2]] == ["100", "100"]  # resumed, not relisted
    assert len([q for q in fake.requests if "watch" not in q]) == 1


def test_the_bearer_token_is_sent_as_the_client_has_it() -> None:
    assert ApiSession(Config(host="https://x")).headers()["Authorization"] == "Bearer t0ken"


async def test_an_optional_kind_is_streamed_while_its_crd_exists() -> None:
    from slm_operator.controller.handlers import OPTIONAL_KINDS, ControllerContext
    from slm_operator.controller.metrics import OperatorMetrics

    kind = OPTIONAL_KINDS[0]
    ctx = ControllerContext(api=None, config=None, metrics=OperatorMetrics(), workers=0)  # type: ignore[arg-type]
    ctx._session = ApiSession(Config(host="http://127.0.0.1:9"))  # nothing listens: streams retry
    ctx._unlisted = 1  # the CRD's own stream, still listing
    crd = {"metadata": {"name": f"{kind.plural}.{kind.group}"}}
    ctx._crd_changed(kind, None, crd)  # present at start-up: its kind joins the start-up gate
    assert ctx._unlisted == 2
    assert not ctx._listed.is_set()
    ((stream, task),) = ctx._optional[kind]
    assert stream.path.endswith(f"/{kind.plural}")
    ctx._crd_changed(kind, "MODIFIED", crd)  # already streamed
    assert len(ctx._optional[kind]) == 1
    ctx.index.observe(
        kind, None, {"metadata": {"name": "m", "namespace": "ns", "labels": {"slm.dev/model": "m"}}}
    )
    stream._remember({"metadata": {"name": "m", "namespace": "ns", "labels": {"slm.dev/model": "m"}}})
    ctx._crd_changed(kind, "DELETED", crd)  # the CRD went: so did its objects
    await asyncio.sleep(0)
    assert task.cancelled() or task.done()
    assert kind not in ctx._optional
    assert ctx.index.children(("ns", "m"), [kind])[kind] == {}
    await ctx._session.close()
