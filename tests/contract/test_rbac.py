"""The chart's RBAC grants exactly what the operator calls: no wildcard, nothing missing, nothing
extra, in both the all-namespaces and the namespaced install.

The expectation is :func:`slm_operator.controller.permissions.all_permissions`, which derives
the application rules from the renderer's own list of managed kinds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

import pytest
from chart_support import NAMESPACE, ROOT, find, rendered_objects, value_sets

from slm_operator.contract.kinds import MANAGED_KINDS
from slm_operator.controller.permissions import all_permissions

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
SERVICE_ACCOUNT = "slm-slm-operator"
WATCHED = ("team-a", "team-b", NAMESPACE)  # chart_support's "namespaced" value set
CLUSTER_SCOPED_RESOURCES = {("apiextensions.k8s.io", "customresourcedefinitions")}


def _grants(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _expected(purpose: str | None = None) -> set[Grant]:
    return {
        (p.group, p.resource, verb)
        for p in all_permissions()
        if purpose is None or p.purpose == purpose
        for verb in p.verbs
    }


def _bound_roles(
    objects: list[dict[str, Any]], binding_kind: str, namespace: str | None
) -> list[dict[str, Any]]:
    """Roles bound to the operator's ServiceAccount by bindings of one kind (and namespace)."""
    role_kind = "ClusterRole" if binding_kind == "ClusterRoleBinding" else "Role"
    roles = []
    for binding in find(objects, binding_kind):
        if namespace is not None and binding["metadata"].get("namespace") != namespace:
            continue
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        ]
        assert binding["roleRef"]["kind"] == role_kind
        (role,) = [
            r
            for r in find(objects, role_kind, binding["roleRef"]["name"])
            if r["metadata"].get("namespace") == binding["metadata"].get("namespace")
        ]
        roles.append(role)
    return roles


def _rules(roles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for role in roles for rule in role["rules"]]


@pytest.mark.parametrize("name", tuple(value_sets()))
def test_no_wildcards_anywhere(name: str) -> None:
    for obj in rendered_objects(name):
        if obj["kind"] not in {"ClusterRole", "Role"}:
            continue
        for rule in obj["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{obj['metadata']['name']}: {field} has a wildcard"
            assert "resourceNames" not in rule
            assert "nonResourceURLs" not in rule


def test_all_namespaces_mode_grants_exactly_what_the_operator_calls() -> None:
    objects = rendered_objects("default")
    assert find(objects, "Role") == []
    assert find(objects, "RoleBinding") == []
    roles = _bound_roles(objects, "ClusterRoleBinding", None)
    assert _grants(_rules(roles)) == _expected()


def test_namespaced_mode_grants_exactly_what_the_operator_calls_in_each_namespace() -> None:
    objects = rendered_objects("namespaced")
    cluster_grants = _grants(_rules(_bound_roles(objects, "ClusterRoleBinding", None)))
    # Cluster-wide, only what a Role cannot grant: reads of cluster-scoped resources.
    assert {(group, resource) for group, resource, _ in cluster_grants} <= CLUSTER_SCOPED_RESOURCES
    for namespace in WATCHED:
        namespaced_grants = _grants(_rules(_bound_roles(objects, "RoleBinding", namespace)))
        assert namespaced_grants | cluster_grants == _expected(), namespace
        assert not namespaced_grants & cluster_grants
    role_namespaces = {r["metadata"]["namespace"] for r in find(objects, "Role")}
    assert role_namespaces == set(WATCHED)


@pytest.mark.parametrize("name", ["default", "namespaced"])
def test_roles_are_grouped_into_framework_and_application(name: str) -> None:
    objects = rendered_objects(name)
    by_group: dict[str, set[Grant]] = {"framework": set(), "application": set()}
    for role in find(objects, "ClusterRole") + find(objects, "Role"):
        if role["metadata"]["name"].endswith(("-edit", "-view")):
            continue  # the aggregated roles for people (test below)
        group = role["metadata"]["labels"]["slm.dev/rbac-group"]
        assert role["metadata"]["name"].endswith(f"-{group}")
        by_group[group] |= _grants(role["rules"])
    assert by_group["framework"] == _expected("framework")
    assert by_group["application"] == _expected("application")


def test_application_rules_cover_every_managed_kind() -> None:
    """The application group follows the renderer's list of kinds (not a copy of it), plus the
    model's finalizers subresource that blockOwnerDeletion needs, and read-only pods."""
    objects = rendered_objects("default")
    (application,) = find(objects, "ClusterRole", "slm-slm-operator-application")
    grants = _grants(application["rules"])
    resources = {(group, resource) for group, resource, _ in grants}
    assert resources == {(kind.group, kind.plural) for kind in MANAGED_KINDS} | {
        ("slm.dev", "smalllanguagemodels/finalizers"),
        ("", "pods"),
    }
    assert {verb for _, resource, verb in grants if resource == "pods"} == {"get", "list", "watch"}
    assert {verb for _, resource, verb in grants if resource.endswith("/finalizers")} == {"update"}


def test_no_rbac_when_disabled() -> None:
    from chart_support import render_templates

    objects = list(rendered_objects("default"))
    assert find(objects, "ClusterRole")
    templates = render_templates({"rbac": {"create": False}})
    assert not any("kind: ClusterRole" in text or "kind: Role" in text for text in templates.values())


def test_generated_rbac_file_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "sync_chart_files", ROOT / "scripts" / "sync_chart_files.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.RBAC_FILE.read_text(encoding="utf-8") == module.rbac_text(), (
        "run `python scripts/sync_chart_files.py`"
    )


def test_security_doc_rbac_table_matches_the_code() -> None:
    rows = set()
    for line in (ROOT / "docs" / "security.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in {"framework", "application"}:
            group = "" if cells[1] == "core" else cells[1]
            rows.add((cells[0], group, cells[2], tuple(v.strip() for v in cells[3].split(","))))
    assert rows == {(p.purpose, p.group, p.resource, p.verbs) for p in all_permissions()}


# --- aggregated ClusterRoles for people ---------------------------------------------------

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@pytest.mark.parametrize("name", ["default", "namespaced"])
def test_edit_and_view_roles_aggregate_into_the_built_in_roles(name: str) -> None:
    objects = rendered_objects(name)
    (edit,) = find(objects, "ClusterRole", "slm-slm-operator-edit")
    (view,) = find(objects, "ClusterRole", "slm-slm-operator-view")
    aggregated = {
        role["metadata"]["name"]: {
            k.removeprefix(AGGREGATE)
            for k, v in role["metadata"]["labels"].items()
            if k.startswith(AGGREGATE) and v == "true"
        }
        for role in (edit, view)
    }
    assert aggregated == {"slm-slm-operator-edit": {"edit", "admin"}, "slm-slm-operator-view": {"view"}}
    edit_grants, view_grants = _grants(edit["rules"]), _grants(view["rules"])
    # Only the custom resource and its subresources; the children are built-in kinds.
    assert {g for g, _, _ in edit_grants | view_grants} == {"slm.dev"}
    assert ("slm.dev", "smalllanguagemodels", "create") in edit_grants
    assert ("slm.dev", "smalllanguagemodels/scale", "update") in edit_grants
    # view reads everything edit can see and writes nothing; edit never writes status.
    assert not {verb for _, _, verb in view_grants} & WRITE_VERBS
    assert {(g, r) for g, r, _ in view_grants} >= {(g, r) for g, r, _ in edit_grants}
    assert not [g for g in edit_grants if g[1].endswith("/status") and g[2] in WRITE_VERBS]
    # Nothing binds them: aggregation does.
    bound = {b["roleRef"]["name"] for b in find(objects, "ClusterRoleBinding") + find(objects, "RoleBinding")}
    assert not bound & {"slm-slm-operator-edit", "slm-slm-operator-view"}


def test_aggregated_roles_can_be_turned_off() -> None:
    from chart_support import objects_of, render_templates

    names = {
        o["metadata"]["name"]
        for o in objects_of(render_templates({"rbac": {"aggregateToDefaultRoles": False}}))
    }
    assert not names & {"slm-slm-operator-edit", "slm-slm-operator-view"}
    assert "slm-slm-operator-application" in names
