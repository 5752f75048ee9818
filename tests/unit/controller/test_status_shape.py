"""The status a reconcile writes, key for key, in the situations a model goes through.

These pin the exact ``status`` dict (keys, values, which keys are left out, condition order and
transition times), the Events and how the pass ended, so any change in what the operator
writes shows up here first. One pass runs against :class:`FakeApi`, with no cluster.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from status_fake_api import MODEL_UID, FakeApi

from slm_operator.api.config import OperatorConfig
from slm_operator.catalog.loader import load_config
from slm_operator.contract.kinds import DEPLOYMENT, HPA
from slm_operator.controller.owner_index import Children
from slm_operator.controller.reconcile import Outcome, reconcile_model

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"
PHI = {"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}}
INVALID = {**PHI, "maxConcurrency": 0}
INVALID_MESSAGE = "spec.maxConcurrency: Input should be greater than or equal to 1"
UNFIT_MESSAGE = (
    "spec.hardware.tier: qwen3-8b does not fit tier edge: its smallest ollama variant "
    "qwen3:8b-q4_K_M (q4_k_m) needs 15.03 GiB (weights 4.84 + KV cache 9.00 + overhead 1.18) but "
    "the tier offers 4.00 GiB; choose a larger tier, more GPUs or a smaller model"
)
NOT_OBSERVED = "the Deployment controller has not observed the latest spec yet"
ONE_OF_ONE = "1/1 replicas available"
FITS_MESSAGE = "needs 15.15 GiB of 16.0 GiB available"
PLANNED = (
    "ollama serving phi4-mini:3.8b-q4_K_M (q4_k_m, q4_K_M) on tier cpu; "
    "applied Secret/m1-api-key, Deployment/m1, Service/m1, NetworkPolicy/m1"
)
AVAILABLE = {
    "observedGeneration": 1,
    "replicas": 1,
    "readyReplicas": 1,
    "availableReplicas": 1,
    "updatedReplicas": 1,
    "conditions": [{"type": "Available", "status": "True"}],
}

PHI_PLAN: dict[str, Any] = {
    "name": "m1",
    "namespace": "ai",
    "runtime": "ollama",
    "image": "ollama/ollama:0.12.6",
    "modelRef": "phi4-mini:3.8b-q4_K_M",
    "quantization": "q4_k_m",
    "dtype": "q4_K_M",
    "tier": "cpu",
    "gpus": 0,
    "contextLength": 8192,
    "maxConcurrency": 8,
    "memory": {
        "weightsGiB": 2.33,
        "kvCacheGiB": 8.0,
        "overheadGiB": 4.82,
        "requiredGiB": 15.15,
        "availableGiB": 16.0,
        "fullLengthRequests": 8,
    },
    "fits": True,
    "reasons": [
        "runtime ollama (auto) on tier cpu: CPU, 16 GiB memory",
        "contextLength 8192: default min(model maximum 131072, 8192)",
        "variant phi4-mini:3.8b-q4_K_M (q4_k_m, 4-bit): highest-quality variant that fits; skipped: "
        "phi4-mini:3.8b-fp16 (none) needs 20.15 GiB > 16.00; "
        "phi4-mini:3.8b-q8_0 (q8_0) needs 16.69 GiB > 16.00",
        "memory: weights 2.33 + KV 8.00 (131072 B/token x 8192 x 8) + overhead 4.82 = 15.15 GiB "
        "<= 16.00 GiB (16 GiB)",
        "capacity: the KV room holds 8 full-length (8192-token) requests; the plan requires "
        "maxConcurrency 8 of them; Ollama overhead includes its compute graph 4.00 GiB (flash "
        "attention off for this architecture)",
    ],
    "warnings": [],
}


@cache
def builtin_config() -> OperatorConfig:
    return load_config(None)


def condition(
    type_: str, status: str, reason: str, message: str = "", at: str = T0, generation: int = 1
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
        "observedGeneration": generation,
    }


def serving(
    phase: str, conditions: list[dict[str, Any]], *, ready: int = 0, plan: dict[str, Any] = PHI_PLAN
) -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "phase": phase,
        "conditions": conditions,
        "replicas": ready,
        "readyReplicas": ready,
        "selector": "slm.dev/model=m1",
        "endpoint": "http://m1.ai.svc.cluster.local:8000/v1",
        "apiKeySecret": "m1-api-key",
        "plan": plan,
    }


VALID_AND_FITS = [condition("SpecValid", "True", "Valid"), condition("Fits", "True", "Fits", FITS_MESSAGE)]
ROLLING_OUT = [
    condition("Ready", "False", "Unavailable", NOT_OBSERVED),
    condition("Progressing", "True", "RollingOut", NOT_OBSERVED),
]
SERVING = [
    condition("Ready", "True", "Available", ONE_OF_ONE, T1),
    condition("Progressing", "False", "RolloutComplete", ONE_OF_ONE, T1),
]
NOT_DEGRADED = condition("Degraded", "False", "AsExpected")
NOT_CREATED = [
    condition("Ready", "False", "NotCreated", "the Deployment does not exist yet"),
    condition("Progressing", "False", "NotCreated", "the Deployment does not exist yet"),
]


def body(
    spec: dict[str, Any] = PHI, status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "m1", "namespace": "ai", "uid": MODEL_UID, "generation": generation},
        "spec": copy.deepcopy(spec),
    }
    if status is not None:
        doc["status"] = copy.deepcopy(status)
    return doc


def summary(outcome: Outcome) -> dict[str, Any]:
    """What a pass decided, in plain values: the status, the Events and how it ended."""
    return {
        "status": outcome.status,
        "events": [(e.type, e.reason, e.message) for e in outcome.events],
        "result": str(outcome.result),
        "message": outcome.message,
        "written": [str(w) for w in outcome.written],
        "permanent": outcome.permanent,
    }


def first_pass(spec: dict[str, Any] = PHI, api: FakeApi | None = None) -> Outcome:
    return reconcile_model(body(spec), api=api or FakeApi(), config=builtin_config(), now=T0, existing={})


def served_children() -> tuple[dict[str, Any], Children]:
    """The status after a first pass and the children it wrote, the Deployment now available."""
    first = first_pass()
    assert first.report is not None
    existing: Children = {}
    for kind, obj in first.report.applied:
        existing.setdefault(kind, {})[obj["metadata"]["name"]] = copy.deepcopy(obj)
    existing[DEPLOYMENT]["m1"]["status"] = copy.deepcopy(AVAILABLE)
    return first.status, existing


def test_a_new_model_is_deploying() -> None:
    assert summary(first_pass()) == {
        "status": serving("Deploying", [*VALID_AND_FITS, *ROLLING_OUT, NOT_DEGRADED]),
        "events": [("Normal", "Planned", PLANNED)],
        "result": "ok",
        "message": "",
        "written": ["Secret/m1-api-key", "Deployment/m1", "Service/m1", "NetworkPolicy/m1"],
        "permanent": False,
    }


def test_an_available_deployment_makes_it_ready_and_moves_only_the_flipped_times() -> None:
    status, existing = served_children()
    outcome = reconcile_model(
        body(status=status), api=FakeApi(), config=builtin_config(), now=T1, existing=existing
    )
    assert summary(outcome) == {
        "status": serving("Ready", [*VALID_AND_FITS, *SERVING, NOT_DEGRADED], ready=1),
        "events": [("Normal", "Ready", ONE_OF_ONE)],
        "result": "ok",
        "message": "",
        "written": [],
        "permanent": False,
    }


def test_an_invalid_new_model_fails_without_endpoint_or_plan() -> None:
    outcome = first_pass(INVALID)
    assert summary(outcome) == {
        "status": {
            "observedGeneration": 1,
            "phase": "Failed",
            "conditions": [
                condition("SpecValid", "False", "InvalidSpec", INVALID_MESSAGE),
                condition("Fits", "Unknown", "SpecInvalid", "the spec must be valid first"),
                *NOT_CREATED,
            ],
            "replicas": 0,
            "readyReplicas": 0,
            "selector": "slm.dev/model=m1",
        },
        "events": [("Warning", "InvalidSpec", INVALID_MESSAGE)],
        "result": "invalid",
        "message": INVALID_MESSAGE,
        "written": [],
        "permanent": False,
    }


def test_an_invalid_edit_of_a_serving_model_keeps_its_phase_and_the_rest_of_its_status() -> None:
    status, existing = served_children()
    ready = reconcile_model(
        body(status=status), api=FakeApi(), config=builtin_config(), now=T1, existing=existing
    )
    outcome = reconcile_model(
        body(INVALID, status=ready.status, generation=2),
        api=FakeApi(),
        config=builtin_config(),
        now=T1,
        existing=existing,
    )
    assert summary(outcome) == {
        "status": {
            "observedGeneration": 2,
            "phase": "Ready",
            "conditions": [
                condition("SpecValid", "False", "InvalidSpec", INVALID_MESSAGE, T1, 2),
                condition("Fits", "Unknown", "SpecInvalid", "the spec must be valid first", T1, 2),
                condition("Ready", "True", "Available", ONE_OF_ONE, T1, 2),
                condition("Progressing", "False", "RolloutComplete", ONE_OF_ONE, T1, 2),
                NOT_DEGRADED,  # not recomputed for a rejected spec: generation 1 stays
            ],
            "replicas": 1,
            "readyReplicas": 1,
            "selector": "slm.dev/model=m1",
        },
        "events": [("Warning", "InvalidSpec", INVALID_MESSAGE)],
        "result": "invalid",
        "message": INVALID_MESSAGE,
        "written": [],
        "permanent": False,
    }


def test_a_model_too_large_for_its_tier_is_valid_but_does_not_fit() -> None:
    outcome = first_pass({"model": {"catalog": "qwen3-8b"}, "hardware": {"tier": "edge"}})
    assert summary(outcome) == {
        "status": {
            "observedGeneration": 1,
            "phase": "Failed",
            "conditions": [
                condition("SpecValid", "True", "Valid"),
                condition("Fits", "False", "DoesNotFit", UNFIT_MESSAGE),
                *NOT_CREATED,
            ],
            "replicas": 0,
            "readyReplicas": 0,
            "selector": "slm.dev/model=m1",
        },
        "events": [("Warning", "DoesNotFit", UNFIT_MESSAGE)],
        "result": "invalid",
        "message": UNFIT_MESSAGE,
        "written": [],
        "permanent": False,
    }


def test_a_foreign_object_degrades_the_model() -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "m1", "namespace": "ai", "uid": "x"},
    }
    outcome = first_pass(api=FakeApi(foreign={("Service", "m1"): foreign}))
    message = "not owned by this model, left untouched: Service/m1; rename or remove them"
    assert summary(outcome) == {
        "status": serving(
            "Degraded",
            [*VALID_AND_FITS, *ROLLING_OUT, condition("Degraded", "True", "ForeignObject", message)],
        ),
        "events": [
            ("Normal", "Planned", PLANNED.replace(" Service/m1,", "")),
            ("Warning", "ForeignObject", message),
        ],
        "result": "ok",
        "message": "",
        "written": ["Secret/m1-api-key", "Deployment/m1", "NetworkPolicy/m1"],
        "permanent": False,
    }


def test_a_write_refused_for_good_degrades_the_model_and_waits_for_a_human() -> None:
    outcome = first_pass(api=FakeApi(refuse={"Service": 403}))
    message = "Service/m1: HTTP 403: services is refused"
    assert summary(outcome) == {
        "status": serving(
            "Degraded", [*VALID_AND_FITS, *ROLLING_OUT, condition("Degraded", "True", "Forbidden", message)]
        ),
        "events": [
            ("Normal", "Planned", PLANNED.replace(" Service/m1,", "")),
            ("Warning", "Forbidden", message),
        ],
        "result": "error",
        "message": message,
        "written": ["Secret/m1-api-key", "Deployment/m1", "NetworkPolicy/m1"],
        "permanent": True,
    }


def test_a_child_no_longer_desired_is_deleted_and_reported() -> None:
    status, existing = served_children()
    ready = reconcile_model(
        body(status=status), api=FakeApi(), config=builtin_config(), now=T1, existing=existing
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": "m1",
            "namespace": "ai",
            "uid": "uid-hpa",
            "ownerReferences": [{"uid": MODEL_UID}],
        },
    }
    existing[HPA] = {"m1": hpa}
    outcome = reconcile_model(
        body(status=ready.status), api=FakeApi(), config=builtin_config(), now=T1, existing=existing
    )
    assert summary(outcome) == {
        "status": ready.status,
        "events": [("Normal", "Applied", "deleted HorizontalPodAutoscaler/m1")],
        "result": "ok",
        "message": "",
        "written": ["-HorizontalPodAutoscaler/m1"],
        "permanent": False,
    }


def test_a_failed_discovery_keeps_the_status_as_it_is_and_retries() -> None:
    status, existing = served_children()
    status["kopf"] = {"progress": {}}  # keys that are not ours are kept too
    outcome = reconcile_model(
        body(status=status),
        api=FakeApi(discovery_fails=True),
        config=builtin_config(),
        now=T1,
        existing=existing,
    )
    assert summary(outcome) == {
        "status": status,
        "events": [],
        "result": "retry",
        "message": "API discovery failed: HTTP 503: the discovery endpoint is unavailable",
        "written": [],
        "permanent": False,
    }


def test_without_auth_the_secret_is_null_and_other_controllers_conditions_are_kept() -> None:
    theirs = {"type": "example.com/Scanned", "status": "True", "reason": "Clean", "lastTransitionTime": T0}
    old = {"conditions": [theirs], "apiKeySecret": "m1-api-key"}
    outcome = reconcile_model(
        body({**PHI, "auth": {"enabled": False}}, status=old),
        api=FakeApi(),
        config=builtin_config(),
        now=T1,
        existing={},
    )
    at_t1 = [{**c, "lastTransitionTime": T1} for c in [*VALID_AND_FITS, *ROLLING_OUT, NOT_DEGRADED]]
    expected = serving("Deploying", [theirs, *at_t1])
    expected["apiKeySecret"] = None  # a merge patch with null removes the name of a Secret no longer used
    assert outcome.status == expected


def test_a_model_of_unknown_size_leaves_unknown_figures_out_of_the_plan() -> None:
    spec = {
        "model": {"source": "hf://HuggingFaceTB/SmolLM3-3B", "contextLength": 8192},
        "hardware": {"tier": "gpu-medium"},
    }
    status = first_pass(spec).status
    assert status["conditions"][1] == condition(
        "Fits",
        "Unknown",
        "FitUnchecked",
        "the model's size is unknown; set spec.model.parametersBillions to check the fit",
    )
    plan = status["plan"]
    assert plan["memory"] == {"availableGiB": 19.8}
    assert plan["fits"] is None  # unknown, but written: the key is part of the contract
    assert list(plan) == list(PHI_PLAN)
