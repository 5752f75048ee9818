"""How the operator's API client classifies the API server's refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from slm_operator.controller.kubeapi import ApiError, KubeApi, NamespaceTerminatingError


@dataclass
class Answer:
    status: int
    body: bytes

    def read(self) -> bytes:
        return self.body


@dataclass
class OneAnswerClient:
    """Stands in for ``kubernetes.client.ApiClient``: every request gets the same answer."""

    answer: Answer

    def param_serialize(self, **kwargs: Any) -> tuple[str, str, dict[str, str], None, None]:
        url = "https://127.0.0.1" + kwargs["resource_path"]
        return kwargs["method"], url, kwargs["header_params"], None, None

    def call_api(self, *args: Any, **kwargs: Any) -> Answer:
        return self.answer


# The 403 a real kube-apiserver (v1.36) sends for a create in a terminating namespace, verbatim:
# the cause's type is serialized under "reason".
TERMINATING = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'services "tiny" is forbidden: unable to create new content in namespace ns1 '
    "because it is being terminated",
    "reason": "Forbidden",
    "details": {
        "name": "tiny",
        "kind": "services",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace ns1 is being terminated",
                "field": "metadata.namespace",
            }
        ],
    },
    "code": 403,
}


def test_a_write_into_a_terminating_namespace_is_recognised() -> None:
    api = KubeApi(client=OneAnswerClient(Answer(403, json.dumps(TERMINATING).encode())))
    with pytest.raises(NamespaceTerminatingError):
        api.call("PATCH", "/api/v1/namespaces/ns1/services/tiny")


def test_any_other_403_is_a_refusal() -> None:
    forbidden = dict(TERMINATING, details={"name": "tiny", "kind": "services"}, message="RBAC says no")
    api = KubeApi(client=OneAnswerClient(Answer(403, json.dumps(forbidden).encode())))
    with pytest.raises(ApiError) as raised:
        api.call("PATCH", "/api/v1/namespaces/ns1/services/tiny")
    assert not isinstance(raised.value, NamespaceTerminatingError)
    assert raised.value.status == 403
    assert "RBAC says no" in str(raised.value)
