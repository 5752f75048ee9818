"""The invalid-spec table of the unit tests, sent to the real API server as ``kubectl apply``
would: what the CRD can refuse is refused by the API server with the field named; everything
else reaches the operator, which reports the field in the SpecValid condition and one Event,
and creates nothing."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from kube import ApiError, Kube, wait_for
from sim_scenario import children, condition, reasons
from simcluster import ROOT, OperatorProcess, load_test_module

pytestmark = pytest.mark.timeout(300)


TABLE = load_test_module("spec_table_cluster", ROOT / "tests" / "unit" / "test_spec_validation.py")
CONTRACT = load_test_module("crd_contract_cluster", ROOT / "tests" / "contract" / "test_crd_contract.py")
# Cases the CRD's schema or CEL rules refuse (the contract tests check the same on paper).
CRD_REFUSES = set(CONTRACT.SCHEMA_CASES) | {case[0] for case in TABLE.INVALID_CASES if case[4] is not None}


def test_every_invalid_spec_is_refused_with_its_field_named(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    by_apiserver: dict[str, str] = {}
    by_operator: dict[str, tuple[str, str]] = {}
    for index, (case_id, doc, field, _text, _cel) in enumerate(TABLE.INVALID_CASES):
        body: dict[str, Any] = copy.deepcopy(doc)
        if isinstance(body.get("metadata"), dict):
            body["metadata"]["namespace"] = namespace
            if not case_id.startswith("name-"):  # the name cases are about the name itself
                body["metadata"]["name"] = f"case-{index}"
        try:
            admin.create(body, kind="SmallLanguageModel", namespace=namespace)
        except ApiError as exc:
            by_apiserver[case_id] = f"{exc.code} {exc.message}"
            continue
        by_operator[case_id] = (str(body["metadata"]["name"]), field)

    # What the CRD can refuse, the API server refuses -- and names the field.
    assert set(by_apiserver) >= CRD_REFUSES, sorted(CRD_REFUSES - set(by_apiserver))
    for case_id, message in by_apiserver.items():
        assert message.startswith(("400 ", "422 ")), f"{case_id}: {message}"
        field = next(case[2] for case in TABLE.INVALID_CASES if case[0] == case_id)
        # A rule on a list names the list (spec.vllm.extraArgs), the table the item ([1]).
        field = re.sub(r"\[\d+\]", "", field)
        leaf = field.rsplit(".", 1)[-1]
        if field in ("apiVersion", "kind"):  # the API server names the wrong value instead
            doc = next(case[1] for case in TABLE.INVALID_CASES if case[0] == case_id)
            leaf = str(doc.get(field)).rsplit("/", 1)[-1]
        assert leaf in message or field in message, f"{case_id}: {message}"

    # The rest reaches the operator: SpecValid=False naming the field, one InvalidSpec Event.
    assert by_operator, "every case was refused by the API server: the operator's checks went untested"
    for case_id, (name, field) in by_operator.items():
        wait_for(
            lambda n=name: condition(admin, namespace, n, "SpecValid").get("status") == "False",
            timeout=60,
            message=f"{case_id}: SpecValid False",
        )
        message = condition(admin, namespace, name, "SpecValid")["message"]
        assert field in message, f"{case_id}: {message}"
        wait_for(lambda n=name: "InvalidSpec" in reasons(admin, namespace, n), timeout=30, message=case_id)
    assert children(admin, namespace) == {}
