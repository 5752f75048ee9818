"""kopf settings, set once at startup; each one is pinned on purpose (kopf's defaults move)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kopf

from slm_operator.contract.names import MANAGED_BY

# kopf's own bookkeeping would live in annotations under our prefix. The operator registers no
# create/update/resume handler, timer or daemon, so kopf stores nothing on a model; earlier
# versions did (a copy of the whole spec as the diff base, per-handler progress, a finalizer),
# and those are removed when a model is first seen.
STORAGE_PREFIX = "slm.dev"
DIFFBASE_KEY = "last-handled-configuration"
LEGACY_ANNOTATIONS = (
    f"{STORAGE_PREFIX}/{DIFFBASE_KEY}",
    f"{STORAGE_PREFIX}/reconcile",
    f"{STORAGE_PREFIX}/drift",
)
PEERING_NAME = "slm-operator"
MANAGED_BY_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Keep no diff base at all: the reconcile is level-based and never asks what changed.

    kopf's annotation storage would copy the whole spec into an annotation on every model, and
    an allowed spec can exceed the API server's 256 KiB limit on all annotations together
    (https://github.com/kubernetes/apimachinery/blob/master/pkg/api/validation/objectmeta.go,
    ``TotalAnnotationSizeLimitB``).
    """

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        # kopf builds an essence of every object on every event (children included) only to
        # compare it with the diff base; with none kept, an empty one saves a deep copy each time.
        del body, extra_fields
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        del body, patch, essence


@dataclass(frozen=True)
class Timeouts:
    """Network timeouts in seconds (kopf 1.45 changed its defaults, so never rely on them)."""

    # Whole seconds: kopf sends it as the watch's timeoutSeconds, which the API server parses as
    # an integer (a "300.0" is refused with 400 BadRequest).
    watch_server: int = 300
    watch_client: float = 330.0
    connect: float = 10.0
    request: float = 60.0


def configure(settings: kopf.OperatorSettings, *, standalone: bool, timeouts: Timeouts = Timeouts()) -> None:
    """Pin every kopf setting the operator relies on."""
    # Progress in annotations with our own prefix (unused: no handler has progress to keep), and
    # no diff base (see NoDiffBaseStorage).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX, v1=False)
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    # No handler needs a finalizer (owner references garbage-collect the children), so kopf adds
    # none, and it removes this one -- which older versions added for their timer -- from any
    # model it sees, so such a model can be deleted.
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/finalizer"

    # Watches end server-side first (the API closes the stream after timeoutSeconds), the client
    # timeout is only a backstop for a silently dead connection.
    settings.watching.server_timeout = timeouts.watch_server
    settings.watching.client_timeout = timeouts.watch_client
    settings.watching.connect_timeout = timeouts.connect
    # Every request kopf makes (status patches, events, listings) gives up after this long.
    settings.networking.request_timeout = timeouts.request
    settings.networking.connect_timeout = timeouts.connect

    # kopf watches only the models; the children and pods are streamed by the controller itself
    # with MANAGED_BY_SELECTOR (slm_operator.controller.watching).

    # Events: the workers post their own, only for transitions (Planned, Applied, Ready,
    # InvalidSpec ...); kopf's per-handler log lines are not turned into Events.
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = PEERING_NAME

    # One replica with a Recreate strategy by default; peering only when asked for (it is not
    # Lease-based leader election: equal priorities pause every replica).
    settings.peering.standalone = standalone
    settings.peering.name = PEERING_NAME
    settings.peering.mandatory = not standalone

    # Permanent errors are final; TemporaryError carries its own delay; other exceptions back off.
    settings.execution.default_backoff = 10
