"""The building blocks of the API's models: the base class (of the spec's and the operator
configuration's models), CEL rules, errors at sub-locations, and the constrained string types
more than one model uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from slm_operator.api.patterns import DOT_SEGMENT, IMAGE_PATTERN


class ApiModel(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extras carrying CEL ``x-kubernetes-validations`` (rule, message) for the CRD.

    Each rule mirrors a pydantic validator next to it, so ``kubectl apply`` and the operator
    reject the same specs; the messages name the field like the operator's errors do.
    """
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def no_dot_segments(value: str) -> str:
    if re.search(DOT_SEGMENT, value):
        raise ValueError("a path may not contain '.' or '..' segments")
    return value


def no_latest(value: str) -> str:
    if value.endswith(":latest"):
        raise ValueError("images must be pinned to an exact tag or digest, never ':latest'")
    return value


PinnedImage = Annotated[str, Field(pattern=IMAGE_PATTERN), AfterValidator(no_latest)]


def located_errors(title: str, errors: Sequence[tuple[tuple[int | str, ...], str, Any]]) -> ValidationError:
    """A ValidationError whose errors sit at sub-locations (list indexes, map keys) of the field.

    pydantic prefixes the locations with the field's own path, so problems name
    ``spec.vllm.extraArgs[3]`` rather than the whole list.
    """
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("slm_spec", "{detail}", {"detail": message}), loc=loc, input=value
            )
            for loc, message, value in errors
        ],
    )
