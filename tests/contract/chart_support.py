"""Render the Helm chart with the real Helm engine (helm-python-sdk), once per value set.

Shared by the chart, RBAC and checkov contract tests. The value sets cover the default install
and the modes the chart must support: namespaced, monitoring (ServiceMonitor, alert rules,
Grafana dashboard) and network policy on, custom
tiers/catalog/images/defaults, each cloud tier preset, and an install without CRDs, with an
existing ServiceAccount, debug JSON logs and extra environment variables.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python
import yaml

from slm_operator.api.config import dump_config
from slm_operator.catalog.loader import builtin_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "slm-operator"
RELEASE = "slm"
NAMESPACE = "slm-system"


def _copied_catalog_entry() -> dict[str, Any]:
    """A real catalog entry from the built-ins, registered under a new id (catalog extension)."""
    catalog = dump_config(builtin_config())["catalog"]
    entry: dict[str, Any] = dict(catalog["qwen3-0.6b"])
    entry["displayName"] = "Qwen3 0.6B (mirrored)"
    return entry


def value_sets() -> dict[str, dict[str, Any]]:
    """Named Helm value sets, each rendered once per test module."""
    return {
        "default": {},
        "namespaced": {"watchNamespaces": ["team-a", "team-b", "{{ .Release.Namespace }}"]},
        "monitoring": {
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            },
            "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32", "172.18.0.2/32"]}},
            "grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "LLM"}}},
        },
        "custom-tiers": {
            "tiers": {
                "rtx-4090": {
                    "description": "Workstation RTX 4090 (24 GB, compute capability 8.9)",
                    "accelerator": "nvidia",
                    "runtime": "vllm",
                    "gpus": 1,
                    "gpuMemoryGiB": 23.0,
                    "computeCapability": 8.9,
                    "memoryGiB": 32,
                    "cpu": "8",
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-4090"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                },
                "cpu": {"memoryGiB": 32, "cpu": "8"},
                "gpu-large": None,  # removes a built-in tier
            },
            "catalog": {"qwen3-0.6b-mirror": _copied_catalog_entry()},
            "images": {"vllm": "vllm/vllm-openai:v0.10.2", "ollama": "ollama/ollama:0.12.5"},
            "defaults": {"contextLength": 4096, "monitoringNamespace": "observability"},
        },
        "air-gapped": {
            "image": {"repository": "registry.internal.example/slm-operator/slm-operator"},
            "imagePullSecrets": [{"name": "registry-pull"}],
            "images": {
                "vllm": "registry.internal.example/vllm/vllm-openai:v0.11.0",
                "ollama": "registry.internal.example/ollama/ollama:0.12.6",
            },
            "registries": {
                "imagePullSecrets": ["registry-pull"],
                "huggingFaceEndpoint": "https://hf-mirror.internal.example",
                "ollama": "ollama-registry.internal.example:5000",
            },
        },
        "gke": {"tierPreset": "gke"},
        "eks": {"tierPreset": "eks"},
        "aks": {"tierPreset": "aks", "tiers": {"nvidia-t4": {"memoryGiB": 20}}},
        "minimal": {
            "crds": {"install": False},
            "serviceAccount": {"create": False, "name": "existing-operator"},
            "metrics": {"service": {"enabled": False}},
            "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
            "logLevel": "debug",
            "logFormat": "json",
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
                {"name": "TEAM", "valueFrom": {"configMapKeyRef": {"name": "team", "key": "name"}}},
            ],
        },
    }


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render_templates(values: dict[str, Any], release: str = RELEASE) -> dict[str, str]:
    """``{template path: rendered text}`` for the given values (raises on schema errors)."""
    rendered: dict[str, str] = chart().render(values, name=release, namespace=NAMESPACE)
    return rendered


def objects_of(templates: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered templates, in template order."""
    objects: list[dict[str, Any]] = []
    for path in sorted(templates):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(templates[path]) if doc)
    return objects


@functools.cache
def _rendered(name: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    templates = render_templates(value_sets()[name])
    return templates, objects_of(templates)


def rendered_objects(name: str) -> list[dict[str, Any]]:
    """The objects of a named value set (rendered once per process)."""
    return _rendered(name)[1]


def rendered_notes(name: str) -> str:
    return next(text for path, text in _rendered(name)[0].items() if path.endswith("NOTES.txt"))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def write_manifests(directory: Path, names: list[str]) -> list[Path]:
    """Write each value set's objects as one multi-document YAML file (for scanners).

    Each value set is its own release (named after it), so the pod labels differ between sets:
    a scanner's graph checks, which connect objects across files by labels, must not let the
    NetworkPolicy of one value set cover the operator pod of another.
    """
    paths = []
    for name in names:
        path = directory / f"chart-{name}.yaml"
        objects = objects_of(render_templates(value_sets()[name], release=name))
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths
