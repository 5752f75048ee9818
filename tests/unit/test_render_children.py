"""Properties of the whole rendered set, over every case of the renderer's input matrix."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from render_cases import CASES, Case, builtin_config, containers

from slm_operator.contract.kinds import kind_of
from slm_operator.contract.names import common_labels
from slm_operator.render import render_children
from slm_operator.render.yaml_out import dump_objects

ORDER = [
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Deployment",
    "Service",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "ServiceMonitor",
    "PrometheusRule",
]


def render(c: Case, *, monitoring_available: bool = True) -> list[dict[str, Any]]:
    model, plan = c.build()
    return render_children(
        model, plan, builtin_config(), monitoring_available=monitoring_available, keda_available=True
    )


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_objects_come_in_the_documented_order(c: Case) -> None:
    kinds = [o["kind"] for o in render(c)]
    assert kinds == sorted(kinds, key=ORDER.index)
    assert len(set(kinds)) == len(kinds)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_every_object_is_managed_named_namespaced_and_labelled(c: Case) -> None:
    model, plan = c.build()
    for obj in render(c):
        kind_of(obj)  # raises for a kind the operator does not manage (and so has no RBAC for)
        metadata = obj["metadata"]
        assert metadata["namespace"] == model.namespace
        assert metadata["name"].startswith(model.name)
        assert metadata["labels"] == common_labels(model.name, str(plan.runtime))
        assert "ownerReferences" not in metadata


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_rendering_is_deterministic(c: Case) -> None:
    first = dump_objects(render(c))
    second = dump_objects(render(c))
    assert first == second
    assert list(yaml.safe_load_all(first)) == render(c)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_no_container_runs_as_root_escalates_or_writes_its_root(c: Case) -> None:
    deployment = next(o for o in render(c) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in containers(deployment).values():
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security.get("runAsUser", 1) != 0
        assert "privileged" not in security
        # every writable path is a mount: /tmp at least
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


IMAGE_PINNED = re.compile(r"^[^:@]+(:[0-9]+)?/?[^:@]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[a-f0-9]{64})$")


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_every_image_is_pinned(c: Case) -> None:
    deployment = next(o for o in render(c) if o["kind"] == "Deployment")
    for container in containers(deployment).values():
        image = container["image"]
        assert IMAGE_PINNED.match(image), image
        assert not image.endswith(":latest"), image


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_no_secret_value_anywhere(c: Case) -> None:
    objects = render(c)
    for obj in objects:
        if obj["kind"] == "Secret":
            assert set(obj) == {"apiVersion", "kind", "metadata", "type"}
    assert all(o["kind"] == "ConfigMap" for o in objects if "data" in o or "stringData" in o)


def test_monitoring_unavailable_drops_auto_objects_only() -> None:
    with_crds = [o["kind"] for o in render(CASES[0], monitoring_available=True)]
    without = [o["kind"] for o in render(CASES[0], monitoring_available=False)]
    assert with_crds[-2:] == ["ServiceMonitor", "PrometheusRule"]
    assert without == with_crds[:-2]
    forced = next(c for c in CASES if c.id == "ollama-forced-monitoring-replicas")
    assert [o["kind"] for o in render(forced, monitoring_available=False)][-2:] == [
        "ServiceMonitor",
        "PrometheusRule",
    ]


def test_dump_objects_is_a_yaml_stream_without_aliases() -> None:
    text = dump_objects(render(CASES[0]))
    assert text.startswith("---\n")
    assert "&id" not in text
    assert "*id" not in text
    assert dump_objects([]) == ""


def plain_types(value: Any) -> set[type]:
    """Every Python type found in a nested value."""
    if isinstance(value, dict):
        return {dict}.union(*(plain_types(k) | plain_types(v) for k, v in value.items()))
    if isinstance(value, list):
        return {list}.union(*(plain_types(v) for v in value))
    return {type(value)}


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_objects_are_plain_json_data(c: Case) -> None:
    # The operator sends these bodies as JSON; enums or pydantic objects must not leak in.
    for obj in render(c):
        assert plain_types(obj) <= {dict, list, str, int, float, bool, type(None)}
        assert json.loads(json.dumps(obj)) == obj


def _dropped_by_the_server(obj: Any, path: str = "") -> list[str]:
    """Paths of values a real API server would not store: ``""`` and ``[]`` are dropped by Go's
    ``omitempty`` (pointer fields such as ``podSelector: {}`` or ``automountServiceAccountToken:
    false`` keep their empty value, so those are not listed)."""
    if isinstance(obj, dict):
        return [p for key, value in obj.items() for p in _dropped_by_the_server(value, f"{path}.{key}")]
    if isinstance(obj, list):
        if not obj:
            return [path]
        return [p for i, value in enumerate(obj) for p in _dropped_by_the_server(value, f"{path}[{i}]")]
    return [path] if obj == "" else []


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_no_value_the_api_server_would_drop(c: Case) -> None:
    # An empty value is stored as absent, so the operator would see a difference on every pass.
    for obj in render(c):
        assert _dropped_by_the_server(obj) == [], f"{obj['kind']} renders empty values"
