"""The cache PVC and the generated API-key Secret."""

from __future__ import annotations

import pytest
from render_cases import builtin_config, case, make_model, make_plan

from slm_operator.render import render_children
from slm_operator.render.pvc import render_cache_pvc
from slm_operator.render.secret import render_api_key_secret
from slm_operator.render.yaml_out import dump_objects


def test_pvc_when_storage_is_given() -> None:
    _model, plan = case("vllm-autoscaling-rwx").build()
    pvc = render_cache_pvc(plan)
    assert pvc is not None
    assert pvc["metadata"]["name"] == "m1-cache"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "40Gi"}},
        "storageClassName": "nfs",
    }


def test_pvc_without_class_uses_the_cluster_default() -> None:
    _model, plan = case("ollama-rwo-storage").build()
    pvc = render_cache_pvc(plan)
    assert pvc is not None
    assert "storageClassName" not in pvc["spec"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_no_pvc_without_storage() -> None:
    _model, plan = case("vllm-gpu-small").build()
    assert render_cache_pvc(plan) is None


@pytest.mark.parametrize(
    ("auth", "generated"),
    [({}, True), ({"enabled": False}, False), ({"apiKeySecretRef": {"name": "k", "key": "v"}}, False)],
)
def test_secret_only_when_auth_is_on_and_no_key_is_brought(auth: dict[str, object], generated: bool) -> None:
    model = make_model(hardware={"tier": "cpu"}, auth=auth)
    secret = render_api_key_secret(make_plan(model))
    assert (secret is not None) == generated
    if secret is not None:
        assert secret["metadata"]["name"] == "m1-api-key"
        assert secret["metadata"]["annotations"] == {"slm.dev/generated": "api-key"}
        assert secret["type"] == "Opaque"
        assert "data" not in secret
        assert "stringData" not in secret


def test_dump_never_prints_secret_values() -> None:
    model, plan = case("vllm-gpu-small").build()
    objects = render_children(model, plan, builtin_config(), monitoring_available=False)
    secret = next(o for o in objects if o["kind"] == "Secret")
    # even a Secret that somehow carried values prints without them
    secret["data"] = {"api-key": "c2VjcmV0LWtleS12YWx1ZQ=="}
    secret["stringData"] = {"api-key": "secret-key-value"}
    text = dump_objects(objects)
    assert "c2VjcmV0LWtleS12YWx1ZQ==" not in text
    assert "secret-key-value" not in text
    assert "m1-api-key" in text
