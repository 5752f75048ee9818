"""kopf settings, set once at startup; each one is pinned on purpose (kopf's defaults move)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kopf

from slm_operator.render.kinds import MANAGED_KINDS
from slm_operator.render.names import MANAGED_BY

# kopf's own bookkeeping (handler progress, the last handled spec) lives in annotations under
# our prefix, never in status: the CRD's status schema would prune unknown keys, and a user's
# GitOps diff ignores annotations it did not set.
STORAGE_PREFIX = "slm.dev"
DIFFBASE_KEY = "last-handled-configuration"
PEERING_NAME = "slm-operator"
MANAGED_BY_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


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
    # Progress and diff-base in annotations with our own prefix (see STORAGE_PREFIX).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX, v1=False)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key=DIFFBASE_KEY, v1=False
    )
    # No deletion handler exists (owner references garbage-collect children), so kopf adds no
    # finalizer; the marker is still renamed so a stray one is recognisably ours.
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/finalizer"

    # Watches end server-side first (the API closes the stream after timeoutSeconds), the client
    # timeout is only a backstop for a silently dead connection.
    settings.watching.server_timeout = timeouts.watch_server
    settings.watching.client_timeout = timeouts.watch_client
    settings.watching.connect_timeout = timeouts.connect
    # Every request kopf makes (status patches, events, listings) gives up after this long.
    settings.networking.request_timeout = timeouts.request
    settings.networking.connect_timeout = timeouts.connect

    # Children are watched only to notice drift: let the API server filter them by our label,
    # so the operator never streams every Secret or Service of the cluster.
    for kind in MANAGED_KINDS:
        settings.watching.label_selectors[watch_selector(kind.group, kind.version, kind.plural)] = (
            MANAGED_BY_SELECTOR
        )

    # Events: we post our own, only for transitions (Planned, Applied, Ready, InvalidSpec ...);
    # kopf's per-handler log lines are not turned into Events.
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = PEERING_NAME

    # One replica with a Recreate strategy by default; peering only when asked for (it is not
    # Lease-based leader election: equal priorities pause every replica).
    settings.peering.standalone = standalone
    settings.peering.name = PEERING_NAME
    settings.peering.mandatory = not standalone

    # The drift timer waits on kopf's stop flag, so it exits at once; give it a moment beyond
    # kopf's zero-time cycles before kopf falls back to polling through the storages.
    settings.background.instant_exit_timeout = 0.1

    # Permanent errors are final; TemporaryError carries its own delay; other exceptions back off.
    settings.execution.default_backoff = 10


def watch_selector(group: str, version: str, plural: str) -> tuple[str, str] | tuple[str, str, str]:
    """The resource selector kopf expects: ``(group, version, plural)``, ``('v1', plural)`` for core."""
    return (group, version, plural) if group else (version, plural)
