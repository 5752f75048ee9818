"""Kubernetes core/v1 shapes the spec reuses: Secret references, label selectors, NetworkPolicy
peers, resource requirements and tolerations, with the API server's own rules as validators.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from slm_operator.api.base import ApiModel, cel_rules
from slm_operator.api.patterns import (
    DNS1123_SUBDOMAIN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    QUANTITY_PATTERN,
)


class SecretKeyRef(ApiModel):
    """A key in a Secret of the model's namespace."""

    name: str = Field(pattern=rf"^{DNS1123_SUBDOMAIN}$", description="The Secret's name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$", description="The key within the Secret.")


class LocalObjectReference(ApiModel):
    """A Secret in the model's namespace, by name."""

    name: str = Field(pattern=rf"^{DNS1123_SUBDOMAIN}$", description="The Secret's name.")


class LabelSelectorRequirement(ApiModel):
    """A set-based label requirement (as in core/v1 LabelSelector)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "matchExpressions: values are required for In and NotIn and must be empty for Exists "
                "and DoesNotExist",
            )
        )
    )

    key: str = Field(pattern=LABEL_KEY_PATTERN, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="The set operator: In, NotIn, Exists or DoesNotExist."
    )
    values: list[Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]] | None = Field(
        default=None, max_length=64, description="Values for In and NotIn; empty for Exists and DoesNotExist."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values are required when operator is {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values must be empty when operator is {self.operator}")
        return self


class LabelSelector(ApiModel):
    """A core/v1 label selector; an empty selector matches everything."""

    match_labels: dict[str, str] | None = Field(
        default=None, max_length=64, description="Exact label matches."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Set-based label requirements (all must hold)."
    )


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/16 or fd00::/8") from None
    if "/" not in value:
        raise ValueError(f"{value!r} needs a prefix length, e.g. {value}/32")
    return value


Cidr = Annotated[str, Field(max_length=43), AfterValidator(_cidr)]


class IPBlock(ApiModel):
    """An address range (NetworkPolicy ipBlock)."""

    cidr: Cidr = Field(description="An allowed CIDR, e.g. 10.0.0.0/16.")
    except_: list[Cidr] | None = Field(
        default=None, alias="except", max_length=32, description="CIDRs excluded from cidr."
    )


class NetworkPeer(ApiModel):
    """A NetworkPolicy peer allowed to call the model's API."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.namespaceSelector) || has(self.podSelector) || has(self.ipBlock)",
                "spec.network.allowFrom: a peer needs namespaceSelector, podSelector or ipBlock",
            ),
            (
                "!has(self.ipBlock) || !(has(self.namespaceSelector) || has(self.podSelector))",
                "spec.network.allowFrom: ipBlock cannot be combined with namespaceSelector or podSelector",
            ),
        )
    )

    namespace_selector: LabelSelector | None = Field(default=None, description="Namespaces allowed.")
    pod_selector: LabelSelector | None = Field(default=None, description="Pods allowed.")
    ip_block: IPBlock | None = Field(default=None, description="An address range allowed.")

    @model_validator(mode="after")
    def _not_empty(self) -> NetworkPeer:
        if self.namespace_selector is None and self.pod_selector is None and self.ip_block is None:
            raise ValueError("a peer needs namespaceSelector, podSelector or ipBlock")
        if self.ip_block is not None and (self.namespace_selector or self.pod_selector):
            raise ValueError("ipBlock cannot be combined with namespaceSelector or podSelector")
        return self


class ResourceRequirements(ApiModel):
    requests: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource requests that override the tier's."
    )
    limits: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource limits that override the tier's."
    )


class Toleration(ApiModel):
    """A core/v1 toleration."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "tolerations: value must be empty when operator is Exists",
            ),
            (
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerations: tolerationSeconds is only valid with effect NoExecute",
            ),
        )
    )

    key: str | None = Field(default=None, max_length=317, description="Taint key; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated before eviction."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is only valid with effect NoExecute")
        return self
