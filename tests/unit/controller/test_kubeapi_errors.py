"""How the operator's API client classifies the API server's refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from slm_operator.controller.kubeapi import ApiError, KubeApi, NamespaceTerminatingError, TransientApiError


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
    user_agent: str = "test"
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def configuration(self) -> Configuration:
        return Configuration()

    def call_api(self, *args: Any, **kwargs: Any) -> Answer:
        self.calls.append((*args, kwargs))
        return self.answer


@dataclass
class Configuration:
    """The parts of ``kubernetes.client.Configuration`` the client reads; counts the reads of
    the token (each runs the configuration's refresh hook)."""

    host: str = "https://127.0.0.1:6443/"
    reads: ClassVar[list[str]] = []

    def get_api_key_with_prefix(self, key: str, alias: str | None = None) -> str:
        self.reads.append(key)
        return "Bearer abc"


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


def test_requests_carry_the_token_and_read_it_at_most_every_ttl() -> None:
    now = [0.0]
    client = OneAnswerClient(Answer(200, b'{"kind": "Service"}'))
    api = KubeApi(client=client, clock=lambda: now[0], credentials_ttl=30.0)
    Configuration.reads.clear()
    assert api.call("GET", "/api/v1/namespaces/ns/services/s") == {"kind": "Service"}
    api.call("PATCH", "/api/v1/namespaces/ns/services/s", query={"fieldManager": "m", "force": "true"})
    now[0] = 29.0
    api.call("GET", "/api/v1/namespaces/ns/services/s")
    assert Configuration.reads == ["BearerToken"]
    now[0] = 31.0
    api.call("GET", "/api/v1/namespaces/ns/services/s")
    assert Configuration.reads == ["BearerToken", "BearerToken"]
    method, url, kwargs = client.calls[1][0], client.calls[1][1], client.calls[1][-1]
    assert method == "PATCH"
    assert url == "https://127.0.0.1:6443/api/v1/namespaces/ns/services/s?fieldManager=m&force=true"
    assert kwargs["header_params"]["Authorization"] == "Bearer abc"
    assert kwargs["header_params"]["User-Agent"] == "test"


def test_a_transport_failure_on_the_clients_path_is_transient_and_named() -> None:
    import urllib3

    class Unreachable(OneAnswerClient):
        def call_api(self, *args: Any, **kwargs: Any) -> Answer:
            raise urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")  # type: ignore[arg-type]

    api = KubeApi(client=Unreachable(Answer(200, b"{}")))
    with pytest.raises(TransientApiError, match="MaxRetryError talking to the API server"):
        api.call("GET", "/api")
