"""Counting one user's requests in a kube-apiserver audit log (JSON lines, Metadata level).

Every request the API server handles is one ``audit.k8s.io/v1`` Event per stage; a request is
counted once (by ``auditID``), at the time the server received it. Pure functions over the
log's lines, so they are tested without a cluster.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    """One request as the audit log saw it."""

    time: float  # epoch seconds, when the server received it
    user: str
    verb: str  # get, list, watch, create, patch, update, delete ...
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int

    @property
    def is_event(self) -> bool:
        return self.resource == "events"

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


@dataclass
class Tally:
    """One user's requests in a time window, by kind of request."""

    writes: Counter[str] = field(default_factory=Counter)  # "verb resource[/sub]" -> count
    events: int = 0
    gets: int = 0
    lists: int = 0
    watches: int = 0
    refused: int = 0  # answers >= 400

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    @property
    def non_watch(self) -> int:
        return self.total_writes + self.events + self.gets + self.lists


def parse_time(text: str) -> float:
    """RFC 3339 with optional fraction (``2026-12-01T06:00:00.123456Z``) as epoch seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_lines(lines: Iterable[str]) -> list[Request]:
    """The requests in audit log lines, each once (its first stage carries the receive time)."""
    seen: set[str] = set()
    requests: list[Request] = []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        event = json.loads(text)
        audit_id = str(event.get("auditID"))
        if audit_id in seen:
            continue
        seen.add(audit_id)
        ref = event.get("objectRef") or {}
        requests.append(
            Request(
                time=parse_time(event.get("requestReceivedTimestamp") or event["stageTimestamp"]),
                user=str((event.get("user") or {}).get("username", "")),
                verb=str(event.get("verb", "")),
                resource=str(ref.get("resource", "")),
                subresource=str(ref.get("subresource", "")),
                namespace=str(ref.get("namespace", "")),
                name=str(ref.get("name", "")),
                code=int((event.get("responseStatus") or {}).get("code") or 0),
            )
        )
    return requests


def read_log(path: Path) -> list[Request]:
    with path.open(encoding="utf-8") as lines:
        return parse_lines(lines)


def tally(requests: Iterable[Request], *, user: str, start: float, end: float) -> Tally:
    """What ``user`` asked between ``start`` and ``end`` (epoch seconds)."""
    result = Tally()
    for request in requests:
        if request.user != user or not start <= request.time < end:
            continue
        if request.code >= 400:
            result.refused += 1
        if request.verb == "watch":
            result.watches += 1
        elif request.is_event and request.is_write:
            result.events += 1
        elif request.is_write:
            target = request.resource + (f"/{request.subresource}" if request.subresource else "")
            result.writes[f"{request.verb} {target}"] += 1
        elif request.verb == "get":
            result.gets += 1
        elif request.verb == "list":
            result.lists += 1
    return result
