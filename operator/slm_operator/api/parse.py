"""Parsing user input into the typed API: a whole document or a ``spec`` mapping, with every
problem naming the user's field path (``spec.vllm.extraArgs[3]``) rather than pydantic's.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.fields import did_you_mean, known_fields
from slm_operator.api.patterns import DNS1035_LABEL, MAX_NAME_LENGTH
from slm_operator.api.spec import API_GROUP_VERSION, KIND, SmallLanguageModel, SmallLanguageModelSpec


def _field_path(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] = f"{parts[-1]}[{item}]"
            else:
                parts.append(f"[{item}]")
        elif "[" in str(item) or item in {"function-after", "function-before"}:
            # pydantic's internal validator labels; not part of the user's path
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def problems_from_validation_error(exc: ValidationError, prefix: str) -> list[SpecProblem]:
    """Translate pydantic errors into problems that name the user's field path."""
    problems: list[SpecProblem] = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            hint = did_you_mean(str(loc[-1]), known_fields(SmallLanguageModelSpec, loc)) if loc else ""
            message = f"unknown field{hint} (check the spelling; see `kubectl explain slm.spec`)"
        elif err["type"] == "missing":
            message = "required field is missing"
        problems.append(SpecProblem(field=_field_path(tuple(err["loc"]), prefix), message=message))
    return problems


def parse_spec(raw: Any, *, prefix: str = "spec") -> SmallLanguageModelSpec:
    """Validate a raw ``spec`` mapping, raising :class:`SpecError` with named field paths."""
    if not isinstance(raw, dict):
        raise SpecError([SpecProblem(field=prefix, message="must be a mapping")])
    try:
        return SmallLanguageModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(problems_from_validation_error(exc, prefix)) from None


def parse_document(doc: Any) -> SmallLanguageModel:
    """Validate a whole SmallLanguageModel document (apiVersion, kind, metadata, spec)."""
    if not isinstance(doc, dict):
        raise SpecError([SpecProblem(field="(document)", message="must be a mapping")])
    problems: list[SpecProblem] = []
    if doc.get("apiVersion") != API_GROUP_VERSION:
        problems.append(
            SpecProblem(
                field="apiVersion",
                message=f"must be {API_GROUP_VERSION}, got {doc.get('apiVersion')!r}",
            )
        )
    if doc.get("kind") != KIND:
        problems.append(SpecProblem(field="kind", message=f"must be {KIND}, got {doc.get('kind')!r}"))
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or "default"
    if not isinstance(name, str) or not name:
        problems.append(SpecProblem(field="metadata.name", message="required field is missing"))
        name = ""
    else:
        problems.extend(validate_name(name))
    spec: SmallLanguageModelSpec | None = None
    try:
        spec = parse_spec(doc.get("spec"), prefix="spec")
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems or spec is None:
        raise SpecError(problems)
    return SmallLanguageModel(
        api_version=API_GROUP_VERSION, kind=KIND, name=name, namespace=namespace, spec=spec
    )


def validate_name(name: str) -> list[SpecProblem]:
    """The model's name becomes Service and Secret names: a DNS-1035 label of <= 53 characters."""
    problems: list[SpecProblem] = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            SpecProblem(
                field="metadata.name",
                message=f"is {len(name)} characters; at most {MAX_NAME_LENGTH} "
                "(child names add suffixes up to 10)",
            )
        )
    if not re.fullmatch(DNS1035_LABEL, name):
        problems.append(
            SpecProblem(
                field="metadata.name",
                message="must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
                "letter",
            )
        )
    return problems
