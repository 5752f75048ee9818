"""deploy/argocd/health.lua, executed by a real Lua runtime (lupa) on SmallLanguageModel samples.

Argo CD runs the script with the live object in the global ``obj`` and reads the returned
table's ``status`` and ``message``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
ARGOCD_CM = ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml"
HEALTH_KEY = "resource.customizations.health.slm.dev_SmallLanguageModel"


def _lua_value(runtime: Any, value: Any) -> Any:
    """Python data as Lua values: dicts become tables, lists 1-based sequence tables."""
    if isinstance(value, dict):
        return runtime.table_from({k: _lua_value(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_lua_value(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run health.lua on ``obj`` the way Argo CD does; returns (status, message)."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _lua_value(runtime, obj)
    # Argo CD loads the script as a chunk whose return value is the health table.
    result = runtime.execute(HEALTH_LUA.read_text(encoding="utf-8"))
    return str(result["status"]), str(result["message"])


def condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": 3}


def model(
    status: dict[str, Any] | None,
    generation: int = 3,
    *,
    spec: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "phi-4-mini", "namespace": "ai", "generation": generation, **(metadata or {})},
        "spec": {"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "gpu-small"}, **(spec or {})},
    }
    if status is not None:
        obj["status"] = status
    return obj


READY = condition("Ready", "True", "Ready", "1/1 replicas ready")
VALID = condition("SpecValid", "True", "Valid")
FITS = condition("Fits", "True", "Fits")
ENDPOINT = "http://phi-4-mini.ai.svc.cluster.local:8000/v1"

SAMPLES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no status yet", model(None), "Progressing", "Waiting for the operator to report status"),
    (
        "status without observedGeneration",
        model({"phase": "Pending"}),
        "Progressing",
        "Waiting for the operator to observe the model",
    ),
    (
        "ready and current",
        model(
            {
                "observedGeneration": 3,
                "phase": "Ready",
                "endpoint": ENDPOINT,
                "conditions": [VALID, FITS, READY],
            }
        ),
        "Healthy",
        f"1/1 replicas ready at {ENDPOINT}",
    ),
    (
        "ready but an older generation observed",
        model({"observedGeneration": 2, "phase": "Ready", "conditions": [VALID, FITS, READY]}, generation=3),
        "Progressing",
        "Waiting for the operator to observe generation 3 (observed 2)",
    ),
    (
        "deploying",
        model(
            {
                "observedGeneration": 3,
                "phase": "Deploying",
                "conditions": [
                    VALID,
                    FITS,
                    condition("Ready", "False", "Deploying", "0/1 replicas ready"),
                    condition("Progressing", "True", "Rollout", "Waiting for the model to load (0/1 ready)"),
                ],
            }
        ),
        "Progressing",
        "Waiting for the model to load (0/1 ready)",
    ),
    (
        "not ready, not progressing",
        model(
            {
                "observedGeneration": 3,
                "conditions": [VALID, FITS, condition("Ready", "False", "Starting", "")],
            }
        ),
        "Progressing",
        "Starting",
    ),
    (
        "invalid spec",
        model(
            {
                "observedGeneration": 3,
                "phase": "Failed",
                "conditions": [
                    condition(
                        "SpecValid", "False", "InvalidSpec", "spec.model.contextLength: 200000 > 131072"
                    ),
                    condition("Ready", "False", "InvalidSpec", "not deployed"),
                ],
            }
        ),
        "Degraded",
        "spec.model.contextLength: 200000 > 131072",
    ),
    (
        "does not fit",
        model(
            {
                "observedGeneration": 3,
                "phase": "Failed",
                "conditions": [
                    VALID,
                    condition("Fits", "False", "DoesNotFit", "needs 18.2 GiB, tier gpu-small has 13.5 GiB"),
                ],
            }
        ),
        "Degraded",
        "needs 18.2 GiB, tier gpu-small has 13.5 GiB",
    ),
    (
        "degraded while serving (foreign object)",
        model(
            {
                "observedGeneration": 3,
                "phase": "Degraded",
                "conditions": [
                    VALID,
                    FITS,
                    READY,
                    condition(
                        "Degraded",
                        "True",
                        "ForeignObject",
                        "Service ai/phi-4-mini is not owned by this model",
                    ),
                ],
            }
        ),
        "Degraded",
        "Service ai/phi-4-mini is not owned by this model",
    ),
    (
        "failed phase without a failing condition",
        model(
            {
                "observedGeneration": 3,
                "phase": "Failed",
                "conditions": [
                    VALID,
                    FITS,
                    condition("Ready", "False", "CrashLoop", "runtime exits with code 1"),
                ],
            }
        ),
        "Degraded",
        "runtime exits with code 1",
    ),
    (
        "degraded condition without a message uses the reason",
        model({"observedGeneration": 3, "conditions": [condition("Degraded", "True", "ApplyFailed", "")]}),
        "Degraded",
        "ApplyFailed",
    ),
    (
        "degraded=False does not degrade",
        model(
            {
                "observedGeneration": 3,
                "conditions": [VALID, FITS, READY, condition("Degraded", "False", "AsExpected")],
            }
        ),
        "Healthy",
        "1/1 replicas ready",
    ),
    (
        "being deleted while still ready",
        model(
            {
                "observedGeneration": 3,
                "phase": "Ready",
                "endpoint": ENDPOINT,
                "conditions": [VALID, FITS, READY],
            },
            metadata={"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["slm.dev/finalizer"]},
        ),
        "Progressing",
        "Being deleted",
    ),
    (
        "being deleted before any status",
        model(None, metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        "Progressing",
        "Being deleted",
    ),
    (
        "scaled to zero",
        model(
            {
                "observedGeneration": 3,
                "phase": "Ready",
                "replicas": 0,
                "readyReplicas": 0,
                "conditions": [VALID, FITS, condition("Ready", "True", "Available", "0/0 replicas ready")],
            },
            spec={"replicas": 0},
        ),
        "Suspended",
        "Scaled to zero (spec.replicas: 0)",
    ),
    (
        "replicas 0 is ignored under autoscaling",
        model(
            {"observedGeneration": 3, "phase": "Ready", "conditions": [VALID, FITS, READY]},
            spec={"replicas": 0, "autoscaling": {"enabled": True, "minReplicas": 1}},
        ),
        "Healthy",
        "1/1 replicas ready",
    ),
    (
        "scaled to zero but not yet observed",
        model(
            {"observedGeneration": 2, "phase": "Ready", "conditions": [VALID, FITS, READY]},
            spec={"replicas": 0},
        ),
        "Progressing",
        "Waiting for the operator to observe generation 3 (observed 2)",
    ),
    (
        "scaled to zero with an invalid spec is still degraded",
        model(
            {
                "observedGeneration": 3,
                "phase": "Failed",
                "conditions": [condition("SpecValid", "False", "InvalidSpec", "spec.image: latest")],
            },
            spec={"replicas": 0},
        ),
        "Degraded",
        "spec.image: latest",
    ),
]


@pytest.mark.parametrize(("label", "obj", "status", "message"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_health(label: str, obj: dict[str, Any], status: str, message: str) -> None:
    assert health(obj) == (status, message), label


HEALTH_TESTS = ROOT / "deploy" / "argocd" / "health_test.yaml"
ARGOCD_CASES = yaml.safe_load(HEALTH_TESTS.read_text(encoding="utf-8"))["tests"]


@pytest.mark.parametrize("case", ARGOCD_CASES, ids=[c["inputPath"] for c in ARGOCD_CASES])
def test_argocd_format_test_cases(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HEALTH_TESTS.parent / case["inputPath"]).read_text(encoding="utf-8"))
    expected = case["healthStatus"]
    assert health(obj) == (expected["status"], expected["message"])


def test_argocd_format_cases_cover_deletion_and_scale_to_zero() -> None:
    statuses = {c["healthStatus"]["status"] for c in ARGOCD_CASES}
    assert statuses == {"Healthy", "Progressing", "Suspended", "Degraded"}
    inputs = sorted(p.name for p in (HEALTH_TESTS.parent / "testdata").glob("*.yaml"))
    assert inputs == sorted(Path(c["inputPath"]).name for c in ARGOCD_CASES), "every test input is used"


def test_argocd_cm_snippet_embeds_the_script_verbatim() -> None:
    config_map = yaml.safe_load(ARGOCD_CM.read_text(encoding="utf-8"))
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert config_map["data"][HEALTH_KEY] == HEALTH_LUA.read_text(encoding="utf-8")


def test_script_uses_only_lua_5_1_features() -> None:
    """Argo CD runs gopher-lua (Lua 5.1): no integer division, bit operators, goto or utf8."""
    source = HEALTH_LUA.read_text(encoding="utf-8")
    for construct in ("//", "goto ", "utf8.", "<<", ">>", " & ", " | "):
        assert construct not in source, construct


def test_script_knows_every_condition_and_the_failed_phase() -> None:
    from slm_operator.api.status import ConditionType, Phase

    source = HEALTH_LUA.read_text(encoding="utf-8")
    for kind in ConditionType:
        assert f'"{kind.value}"' in source, kind
    assert f'"{Phase.FAILED.value}"' in source


def _application(name: str) -> dict[str, Any]:
    app: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "argocd" / name).read_text(encoding="utf-8"))
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    return app


def _wave(app: dict[str, Any]) -> int:
    return int(app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_example_applications_install_the_operator_before_the_models() -> None:
    root = _application("root.yaml")
    operator = _application("applications/slm-operator.yaml")
    models = _application("applications/models.yaml")
    # The app of apps syncs exactly the folder holding the two children.
    assert (ROOT / root["spec"]["source"]["path"] / "slm-operator.yaml").exists()
    assert _wave(operator) < _wave(models)
    # The chart path and the model files the Applications point at exist in this repository.
    assert (ROOT / operator["spec"]["source"]["path"] / "Chart.yaml").exists()
    models_dir = ROOT / models["spec"]["source"]["path"]
    included = models["spec"]["source"]["directory"]["include"]
    assert (models_dir / included).exists()
    assert "SkipDryRunOnMissingResource=true" in models["spec"]["syncPolicy"]["syncOptions"]
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    # Nothing needs ignoring: the operator never writes a model's spec (docs/gitops.md).
    assert "ignoreDifferences" not in models["spec"]


def test_example_chart_values_pass_the_chart_schema() -> None:
    import helm_python

    operator = _application("applications/slm-operator.yaml")
    values = operator["spec"]["source"]["helm"]["valuesObject"]
    chart = helm_python.Chart.load(ROOT / operator["spec"]["source"]["path"])
    assert chart.render(
        values, name=operator["spec"]["source"]["helm"]["releaseName"], namespace="slm-system"
    )


def test_crd_is_never_pruned_or_deleted_by_argo_cd() -> None:
    """Argo CD ignores helm.sh/resource-policy: keep; with ``prune: true`` a sync after
    ``crds.install: false``, or deleting the Application, would delete the CRD and every model."""
    import helm_python

    operator = _application("applications/slm-operator.yaml")
    assert operator["spec"]["syncPolicy"]["automated"]["prune"] is True  # why the annotation matters
    source = operator["spec"]["source"]
    chart = helm_python.Chart.load(ROOT / source["path"])
    rendered = chart.render(
        source["helm"]["valuesObject"], name=source["helm"]["releaseName"], namespace="slm-system"
    )
    objects = [
        doc
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict)
    ]
    (crd,) = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    annotations = crd["metadata"]["annotations"]
    # Several options are one comma-separated value; Argo CD trims white space around each.
    options = {item.strip() for item in annotations["argocd.argoproj.io/sync-options"].split(",")}
    assert {"Prune=false", "Delete=false"} <= options
    assert annotations["helm.sh/resource-policy"] == "keep"
