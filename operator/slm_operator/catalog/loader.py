"""Load the operator configuration: the packaged catalog, tiers and images, plus a user file.

The built-in defaults live next to this module (``tiers.yaml``, ``models.yaml``,
``defaults.yaml``) so the CLI works with no configuration at all. A user's ``--config`` file
(the Helm values rendered into a ConfigMap) is one YAML document with optional ``tiers``,
``catalog``, ``images`` and ``defaults``; it is merged over the built-ins and the result is
validated as a whole. Every error is a :class:`ConfigError` naming the file and the field path,
e.g. ``config.yaml: tiers.gpu-small.gpuMemoryGiB: Input should be greater than 0``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

import slm_operator
from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import ConfigError
from slm_operator.api.fields import did_you_mean, known_fields
from slm_operator.api.patterns import CATALOG_ID_PATTERN, TIER_NAME_PATTERN

TOP_LEVEL_KEYS = ("tiers", "catalog", "images", "defaults", "registries")
# Sections whose entries are named by the user: a null entry removes a built-in one.
NAMED_SECTIONS = ("tiers", "catalog")
# Both names end up in user specs (spec.hardware.tier, spec.model.catalog): the patterns are
# the spec's own, so every configured entry can actually be referenced.
NAME_PATTERNS = {"tiers": TIER_NAME_PATTERN, "catalog": CATALOG_ID_PATTERN}
GATEWAY_IMAGE_REPOSITORY = "ghcr.io/slm-operator/slm-operator"
_BUILTIN_FILES = {"tiers": "tiers.yaml", "catalog": "models.yaml"}
_BUILTIN_DEFAULTS_FILE = "defaults.yaml"


def gateway_image(version: str | None = None) -> str:
    """The operator's own image at the installed package version (it runs ``slmctl gateway``)."""
    return f"{GATEWAY_IMAGE_REPOSITORY}:{version or slm_operator.__version__}"


@cache
def builtin_config() -> OperatorConfig:
    """The packaged configuration, validated once per process (the model is immutable)."""
    return _validate(_builtin_data(), origin="built-in configuration")


def load_config(path: str | Path | None = None) -> OperatorConfig:
    """The built-in configuration merged with the user file at ``path`` (if any).

    Raises :class:`ConfigError` naming the file and the field path for unreadable files, YAML
    syntax errors (with the line), unknown keys and invalid values.
    """
    if path is None:
        return builtin_config()
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{origin}: cannot read the configuration file: {error.strerror or error}"
        ) from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{origin}: the configuration file is not UTF-8 text") from error
    return load_config_text(text, origin=origin)


def load_config_text(text: str, *, origin: str) -> OperatorConfig:
    """Like :func:`load_config` for text already read (a ConfigMap value, a test string).

    ``origin`` names the text in error messages (a file name, ``configmap/slm-operator``).
    """
    user = _parse_user_document(text, origin=origin)
    merged = merge_config(_builtin_data(), user)
    return _validate(merged, origin=origin)


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` over ``base`` (both plain data, neither is modified).

    Mappings merge recursively, lists and scalars replace, and a ``None`` value removes the key
    (so a user file can drop a built-in tier or model with ``name: null``).
    """
    merged: dict[str, Any] = {key: _copy(value) for key, value in base.items()}
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    """A deep copy of plain YAML data with nulls inside new mappings dropped like merged ones."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _builtin_data() -> dict[str, Any]:
    """The packaged YAML as one plain configuration document (a fresh copy on every call)."""
    copy: dict[str, Any] = _copy(_builtin_document())
    return copy


@cache
def _builtin_document() -> dict[str, Any]:
    # Parsed once per process: PyYAML is slow and every user config is merged over this.
    data: dict[str, Any] = {}
    for section, name in _BUILTIN_FILES.items():
        data[section] = _parse_builtin(name)
    defaults = _parse_builtin(_BUILTIN_DEFAULTS_FILE)
    for section in ("images", "defaults"):
        if section in defaults:
            data[section] = defaults[section]
    return data


def _parse_builtin(name: str) -> dict[str, Any]:
    # A broken packaged file is a build defect, but it is reported like a user's so the
    # message still names the file and the line.
    text = resources.files("slm_operator.catalog").joinpath(name).read_text(encoding="utf-8")
    return _parse_mapping(text, origin=f"slm_operator/catalog/{name}")


def _parse_user_document(text: str, *, origin: str) -> dict[str, Any]:
    data = _parse_mapping(text, origin=origin)
    unknown = sorted(str(key) for key in data if key not in TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"{origin}: {unknown[0]}: unknown top-level key{did_you_mean(unknown[0], TOP_LEVEL_KEYS)} "
            f"(expected one of {', '.join(TOP_LEVEL_KEYS)})"
        )
    # A section left empty ("catalog:" above commented-out entries) is null in YAML: it means
    # "nothing to change", never "remove every built-in model".
    data = {section: value for section, value in data.items() if value is not None}
    for section in TOP_LEVEL_KEYS:
        value = data.get(section)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{origin}: {section}: must be a mapping, got {_kind(value)}")
    for section in NAMED_SECTIONS:
        for name, entry in (data.get(section) or {}).items():
            if entry is not None and not isinstance(entry, Mapping):
                raise ConfigError(
                    f"{origin}: {section}.{name}: must be a mapping or null, got {_kind(entry)}"
                )
    return data


def _parse_mapping(text: str, *, origin: str) -> dict[str, Any]:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin}: {_describe_yaml_error(error)}") from error
    documents = [document for document in documents if document is not None]
    if len(documents) > 1:
        raise ConfigError(f"{origin}: expected one YAML document, found {len(documents)}")
    if not documents:
        return {}
    document = documents[0]
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: the configuration must be a mapping, got {_kind(document)}")
    for key in document:
        if not isinstance(key, str):
            raise ConfigError(f"{origin}: {key!r}: keys must be strings")
    return document


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "invalid YAML"
    if mark is not None:
        # PyYAML marks are 0-based; editors count from 1.
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"


def _validate(data: dict[str, Any], *, origin: str) -> OperatorConfig:
    for section in NAMED_SECTIONS:
        pattern = NAME_PATTERNS[section]
        for name in data.get(section) or {}:
            if not re.fullmatch(pattern, str(name)):
                raise ConfigError(
                    f"{origin}: {section}.{name}: invalid name (lower-case letters, digits and '-'"
                    f"{' or .' if section == 'catalog' else ''}, as used in SmallLanguageModel specs)"
                )
    images = data.get("images")
    if isinstance(images, Mapping) and "gateway" not in images:
        data = {**data, "images": {**images, "gateway": gateway_image()}}
    try:
        return OperatorConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, origin=origin)) from error


def _describe_validation_error(error: ValidationError, *, origin: str) -> str:
    lines = []
    for item in error.errors(include_url=False):
        path = _format_location(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and item["loc"]:
            hint = did_you_mean(str(item["loc"][-1]), known_fields(OperatorConfig, item["loc"]))
            message = f"unknown field{hint}"
        lines.append(f"{origin}: {path}: {message}" if path else f"{origin}: {message}")
    return "\n".join(lines)


def _format_location(location: tuple[int | str, ...]) -> str:
    """``('tiers', 'gpu-small', 'nodeAffinity', 0)`` -> ``tiers.gpu-small.nodeAffinity[0]``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"{type(value).__name__} {value!r}"
