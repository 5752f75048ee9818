"""What the operator calls on the Kubernetes API, as data.

The Helm chart's RBAC is tested against this list (no more, no less), so keep it exact when the
controller starts or stops calling something. Children's kinds come from
:data:`slm_operator.contract.kinds.MANAGED_KINDS`; the rest is what the controller's own watches
of the models and of the optional CRDs, its status patches and its Events need (kopf itself
reads nothing: it scans no resources and watches no namespaces).
"""

from __future__ import annotations

from dataclasses import dataclass

from slm_operator.api.spec import API_GROUP, PLURAL
from slm_operator.contract.kinds import MANAGED_KINDS


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verbs: tuple[str, ...]
    purpose: str  # "framework" (the models, Events, CRDs) or "application" (our children)


# Verbs the reconciler uses on its children: read for drift/ownership checks, create for the
# API-key Secret, patch for server-side apply, delete for children no longer desired.
CHILD_VERBS: tuple[str, ...] = ("get", "list", "watch", "create", "patch", "delete")

FRAMEWORK_PERMISSIONS: tuple[Permission, ...] = (
    Permission(API_GROUP, PLURAL, ("get", "list", "watch", "patch"), "framework"),
    Permission(API_GROUP, f"{PLURAL}/status", ("get", "patch"), "framework"),
    Permission("", "events", ("create",), "framework"),
    Permission("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch"), "framework"),
)


# Children carry an owner reference with blockOwnerDeletion: true. Where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, many hardened
# clusters), setting it requires `update` on the owner's finalizers subresource, even though the
# operator never writes a finalizer (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#ownerreferencespermissionenforcement).
OWNER_PERMISSIONS: tuple[Permission, ...] = (
    Permission(API_GROUP, f"{PLURAL}/finalizers", ("update",), "application"),
)


# The models' pods are only read (watched by label), to report why a model is not running:
# unschedulable, image pulls, crash loops, failed init containers (slm_operator.diagnosis).
OBSERVED_PERMISSIONS: tuple[Permission, ...] = (
    Permission("", "pods", ("get", "list", "watch"), "application"),
)


def application_permissions() -> tuple[Permission, ...]:
    """One permission per managed child kind, derived from the renderer's list of kinds, and the
    right to name the model as a blocking owner."""
    children = tuple(Permission(k.group, k.plural, CHILD_VERBS, "application") for k in MANAGED_KINDS)
    return children + OWNER_PERMISSIONS + OBSERVED_PERMISSIONS


def all_permissions() -> tuple[Permission, ...]:
    return FRAMEWORK_PERMISSIONS + application_permissions()
