"""kopf settings, set once at startup, and the names the controller writes under."""

from __future__ import annotations

from dataclasses import dataclass

import kopf

from slm_operator.contract.names import MANAGED_BY

# Annotations and the finalizer earlier versions of the operator kept on a model through kopf
# (a copy of the whole spec as kopf's diff base, per-handler progress, a finalizer for a timer).
# kopf no longer handles the models, so nothing writes them; they are removed from a model when it
# is first seen (:func:`slm_operator.controller.leftovers.leftovers_patch`).
STORAGE_PREFIX = "slm.dev"
LEGACY_ANNOTATIONS = (
    f"{STORAGE_PREFIX}/last-handled-configuration",
    f"{STORAGE_PREFIX}/reconcile",
    f"{STORAGE_PREFIX}/drift",
)
LEGACY_FINALIZER = f"{STORAGE_PREFIX}/finalizer"
# The name the operator reports as: the source component of its Events.
COMPONENT = "slm-operator"
MANAGED_BY_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


@dataclass(frozen=True)
class Timeouts:
    """kopf's network timeouts in seconds (kopf 1.45 changed its defaults, so never rely on them)."""

    connect: float = 10.0
    request: float = 60.0


def configure(settings: kopf.OperatorSettings, *, timeouts: Timeouts = Timeouts()) -> None:
    """Pin every kopf setting the operator relies on.

    kopf handles no resource: it runs the operator process -- the login, the liveness endpoint,
    the log format, signals -- while the controller lists and watches the models, their children
    and pods itself (:mod:`slm_operator.controller.watching`). So kopf scans nothing (no watch of
    the CRDs or namespaces to find resources for handlers it does not have), posts no Events of
    its own, and runs standalone: no peering objects are read or written.
    """
    settings.scanning.disabled = True
    settings.posting.enabled = False
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # The few requests kopf makes itself (its login check) give up after these.
    settings.networking.request_timeout = timeouts.request
    settings.networking.connect_timeout = timeouts.connect
