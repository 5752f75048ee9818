"""The CRD against real Kubernetes schemas, and the examples against the CRD.

- The CRD validates as apiextensions.k8s.io/v1 with kubernetes-validate (several minors).
- Every example validates against the CRD's openAPIV3Schema (translated to JSON Schema draft 4,
  which OpenAPI v3.0 follows for exclusive bounds; unknown fields refused as by kubectl's
  strict field validation).
- Every CEL rule compiles and is evaluated with cel-python: the examples pass all rules, and each
  cross-field case of the invalid-spec table fails exactly the rule meant to catch it.

This is not an API server: CEL cost estimation and the server's own structural checks are out of
reach here; tests/unit/test_crd.py checks the structural rules and the bounds CEL cost needs.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest

from slm_operator.api.crd import crd_manifest

ROOT = Path(__file__).resolve().parents[2]
CRD = crd_manifest()
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _load_module(name: str, path: Path) -> ModuleType:
    # The spec tables and plan fixtures live with the unit tests; load them by path (tests/ is
    # not a package).
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


TABLE = _load_module("spec_table", ROOT / "tests" / "unit" / "test_spec_validation.py")
VALID_DOCS: list[tuple[str, dict[str, Any]]] = [
    ("minimal", TABLE.MINIMAL_DOC),
    ("architecture-example", TABLE.FULL_DOC),
    *TABLE.example_documents(),
]
CEL_CASES = [case for case in TABLE.INVALID_CASES if case[4] is not None]

# Invalid cases the schema alone (types, enums, patterns, ranges, required, unknown fields) refuses.
SCHEMA_CASES = {
    "model-missing",
    "context-too-small",
    "source-scheme",
    "source-shell",
    "catalog-case",
    "params-zero",
    "unknown-field",
    "runtime-enum",
    "quant-enum",
    "concurrency-zero",
    "replicas-negative",
    "autoscaling-cpu",
    "gpus-zero",
    "tier-name",
    "secret-ref-key",
    "hf-secret-name",
    "monitoring-enum",
    "storage-size",
    "image-untagged",
    "resources-quantity",
    "modelfile-role",
    "spec-not-mapping",
    "adapter-source-ollama",
    "adapter-name-format",
    "lora-rank-too-large",
    "lora-max-loras-zero",
    "ollama-registry-host",
    "ollama-registry-port",
    "ollama-source-four-parts",
    "pull-secret-name",
}


# --- apiextensions/v1 -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.29", "1.31", "1.33"])
def test_crd_is_a_valid_apiextensions_v1_object(version: str) -> None:
    assert kubernetes_validate.validate(CRD, version, strict=True) == version


def test_apiextensions_validation_is_not_vacuous() -> None:
    broken = copy.deepcopy(CRD)
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.31", strict=True)


# --- openAPIV3Schema as JSON Schema --------------------------------------------------------------


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3.0 structural schema -> JSON Schema draft 4 (nullable, strict unknown fields)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


VALIDATOR = jsonschema.Draft4Validator(to_json_schema(SCHEMA))


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


@pytest.mark.parametrize("doc", [d for _, d in VALID_DOCS], ids=[n for n, _ in VALID_DOCS])
def test_valid_documents_match_the_schema(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []


@pytest.mark.parametrize(
    "doc",
    [case[1] for case in TABLE.INVALID_CASES if case[0] in SCHEMA_CASES],
    ids=[case[0] for case in TABLE.INVALID_CASES if case[0] in SCHEMA_CASES],
)
def test_schema_refuses_what_it_can(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) != []


def test_schema_case_ids_exist() -> None:
    assert {case[0] for case in TABLE.INVALID_CASES} >= SCHEMA_CASES


# --- CEL rules -----------------------------------------------------------------------------------

ENV = celpy.Environment()
PROGRAMS: dict[str, Any] = {}


def program(rule: str) -> Any:
    if rule not in PROGRAMS:
        PROGRAMS[rule] = ENV.program(ENV.compile(rule))
    return PROGRAMS[rule]


def all_rules(node: dict[str, Any]) -> list[dict[str, str]]:
    """Every x-kubernetes-validations entry in the schema."""
    found = list(node.get("x-kubernetes-validations", []))
    for child in node.get("properties", {}).values():
        found += all_rules(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += all_rules(node[key])
    return found


def with_defaults(node: dict[str, Any], value: Any) -> Any:
    """Apply schema defaults as the API server does before validating."""
    if isinstance(value, dict) and "properties" in node:
        value = dict(value)
        for name, child in node["properties"].items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = with_defaults(child, value[name])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [with_defaults(node["items"], item) for item in value]
    return value


def cel_failures(node: dict[str, Any], value: Any) -> list[str]:
    """Messages of every rule that evaluates to false for value (and its children)."""
    failures: list[str] = []
    for rule in node.get("x-kubernetes-validations", []):
        result = program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        assert isinstance(result, celpy.celtypes.BoolType), f"{rule['rule']} gave {result!r}"
        if not result:
            failures.append(rule["message"])
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name in value:
                failures += cel_failures(child, value[name])
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            failures += cel_failures(node["items"], item)
    return failures


def test_every_rule_compiles() -> None:
    rules = all_rules(SCHEMA)
    assert len(rules) >= 10
    for rule in rules:
        program(rule["rule"])


@pytest.mark.parametrize("doc", [d for _, d in VALID_DOCS], ids=[n for n, _ in VALID_DOCS])
def test_valid_documents_pass_every_rule(doc: dict[str, Any]) -> None:
    assert cel_failures(SCHEMA, with_defaults(SCHEMA, doc)) == []


@pytest.mark.parametrize(
    ("doc", "message"), [(case[1], case[4]) for case in CEL_CASES], ids=[case[0] for case in CEL_CASES]
)
def test_cross_field_cases_fail_their_rule(doc: dict[str, Any], message: str) -> None:
    failures = cel_failures(SCHEMA, with_defaults(SCHEMA, doc))
    assert any(f.startswith(message) for f in failures), failures
    # and nothing else: each rule targets one mistake
    assert len(failures) == 1, failures


def test_cel_cases_cover_every_rule() -> None:
    """Each rule has at least one invalid case that trips it (or it would be untested)."""
    messages = {rule["message"] for rule in all_rules(SCHEMA)}
    tripped = {m for m in messages if any(m.startswith(case[4]) for case in CEL_CASES)}
    assert tripped == messages


def test_rules_without_defaults_behave_the_same() -> None:
    """Rules guard optional fields with has(), so they hold even where defaulting did not run."""
    for _, doc in VALID_DOCS:
        assert cel_failures(SCHEMA, doc) == []
    for case in CEL_CASES:
        assert any(f.startswith(case[4]) for f in cel_failures(SCHEMA, case[1])), case[0]


@pytest.mark.parametrize("doc", [d for _, d in VALID_DOCS], ids=[n for n, _ in VALID_DOCS])
def test_schema_defaults_agree_with_the_pydantic_defaults(doc: dict[str, Any]) -> None:
    """What the API server stores after defaulting parses to the same spec as what the user wrote."""
    defaulted = with_defaults(SCHEMA, doc)
    assert TABLE.parse_document(defaulted) == TABLE.parse_document(doc)


def test_a_full_status_matches_the_status_schema() -> None:
    """A status shaped like the operator's (plan via Plan.public()) passes the CRD, so nothing is pruned."""
    crd_unit = _load_module("crd_unit", ROOT / "tests" / "unit" / "test_crd.py")
    status = {
        "observedGeneration": 2,
        "phase": "Ready",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ModelLoaded",
                "message": "",
                "lastTransitionTime": "2026-11-29T19:00:00Z",
                "observedGeneration": 2,
            }
        ],
        "replicas": 1,
        "readyReplicas": 1,
        "selector": "slm.dev/model=phi-4-mini",
        "endpoint": "http://phi-4-mini.ai.svc.cluster.local:8000/v1",
        "apiKeySecret": "phi-4-mini-api-key",
        "plan": crd_unit.a_plan(fits=None, weights=None).public(),
    }
    assert schema_errors(TABLE.MINIMAL_DOC | {"status": status}) == []
    assert schema_errors(TABLE.MINIMAL_DOC | {"status": status | {"phase": "Running"}}) != []
