"""Generate ``charts/slm-operator/README.md`` from the chart's values schema and values.yaml.

Every key of ``values.schema.json`` gets a row: its type and allowed values from the schema,
its default from ``values.yaml``, and its description from the schema's ``description`` or,
failing that, the prose comment right above the key in ``values.yaml``. Written by
``scripts/sync_chart_files.py`` (``make crd``); a contract test keeps the file in sync.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "slm-operator"
SCHEMA_FILE = CHART / "values.schema.json"
VALUES_FILE = CHART / "values.yaml"
README_FILE = CHART / "README.md"

REF_NAMES = {
    "port": "port (1-65535)",
    "stringMap": "map of strings",
    "quantity": "quantity",
    "dns1123Label": "DNS label",
    "pinnedImage": "image (exact tag or digest)",
    "toleration": "toleration",
    "tier": "tier",
    "nodeSelectorTerm": "node selector term",
}

HEADER = """# slm-operator Helm chart

Installs the slm-operator: the `SmallLanguageModel` CRD, the operator Deployment, its RBAC
and configuration, and optionally a ServiceMonitor, operator alert rules, a Grafana dashboard
and a NetworkPolicy. Guides: [install](../../docs/install.md),
[configuration](../../docs/configuration.md), [autoscaling](../../docs/autoscaling.md),
[GitOps](../../docs/gitops.md), [security](../../docs/security.md).

```bash
helm install slm-operator charts/slm-operator --namespace slm-system --create-namespace
```

## Values

Generated from `values.schema.json` and `values.yaml` by `scripts/sync_chart_files.py`
(`make crd`); do not edit. The schema rejects unknown keys and wrong types.

| key | type | default | description |
|---|---|---|---|
"""


def value_comments(text: str) -> dict[str, str]:
    """``{dotted key: prose}`` from the comment block right above each key of ``values.yaml``.

    Indented comment lines (``#   example: ...``) are examples and are left out; a blank line
    ends a block.
    """
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            block = []
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            if body.startswith("  ") or body.strip().startswith("---"):
                continue
            block.append(body.strip())
            continue
        match = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not match:
            block = []
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if block:
            comments[".".join(k for _, k in stack)] = " ".join(block)
        block = []
    return comments


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return name, schema["definitions"][name]
    return None, node


def type_of(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """A short human description of a schema node's type."""
    name, resolved = _resolve(schema, node)
    if name is not None:
        return REF_NAMES.get(name, name)
    if "enum" in resolved:
        choices = (v if isinstance(v, str) else json.dumps(v) for v in resolved["enum"])
        return " \\| ".join(f"`{choice}`" for choice in choices)
    if "oneOf" in resolved:
        return " or ".join(type_of(schema, branch) for branch in resolved["oneOf"])
    if "const" in resolved:
        return f"`{json.dumps(resolved['const'])}`"
    kind = resolved.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema, resolved.get('items', {}))}"
    if kind == "object" and isinstance(resolved.get("additionalProperties"), dict):
        return f"map of {type_of(schema, resolved['additionalProperties'])}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind)


def _default(values: Any, path: list[str]) -> str:
    node = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return "—"
        node = node[key]
    return f"`{json.dumps(node, separators=(', ', ': '))}`"


def rows(schema: dict[str, Any], values: dict[str, Any], comments: dict[str, str]) -> list[str]:
    """One table row per schema key, in values.yaml order (schema-only keys after)."""
    out: list[str] = []

    def walk(node: dict[str, Any], path: list[str], present: Any) -> None:
        properties: dict[str, Any] = node.get("properties", {})
        given = present if isinstance(present, dict) else {}
        order = [k for k in given if k in properties] + [k for k in properties if k not in given]
        for key in order:
            child = properties[key]
            child_path = [*path, key]
            dotted = ".".join(child_path)
            _, resolved = _resolve(schema, child)
            description = child.get("description") or resolved.get("description") or comments.get(dotted, "")
            nested = resolved.get("type") == "object" and "properties" in resolved and "$ref" not in child
            if not nested or description:
                default = "—" if nested else _default(values, child_path)
                kind = "object" if nested else type_of(schema, child)
                text = description.replace("|", "\\|")
                out.append(f"| `{dotted}` | {kind} | {default} | {text} |")
            if nested:
                walk(resolved, child_path, given.get(key))

    walk(schema, [], values)
    return out


def readme_text() -> str:
    """The content of ``charts/slm-operator/README.md``."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    text = VALUES_FILE.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    return HEADER + "\n".join(rows(schema, values, value_comments(text))) + "\n"


if __name__ == "__main__":
    README_FILE.write_text(readme_text(), encoding="utf-8")
