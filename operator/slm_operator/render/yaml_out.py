"""Deterministic multi-document YAML for rendered objects (``slmctl render`` and golden files)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors/aliases (a shared dict must print in full everywhere it appears)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as kubectl and most manifests do.
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Scripts and Modelfiles read best as literal blocks; PyYAML falls back to quoting on its
    # own when a literal block cannot represent the text exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _without_secret_values(obj: dict[str, Any]) -> dict[str, Any]:
    # Rendered Secrets carry no values; this is the second lock on the door, so that no key
    # can ever reach a terminal or a golden file even if one were added upstream.
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        return {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    return obj


def dump_objects(objects: Iterable[dict[str, Any]]) -> str:
    """Objects as a YAML stream, one document each, keys in the order they were built."""
    docs = [_without_secret_values(obj) for obj in objects]
    if not docs:
        return ""
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100_000,
    )
