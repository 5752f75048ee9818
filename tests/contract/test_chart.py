"""The Helm chart, rendered and linted by the real Helm engine, against the public contract.

Every value set of chart_support renders; every object validates against the Kubernetes
schemas of several minor versions; Helm lint is clean; values.schema.json rejects bad values
through Helm's own validation; the CRD template is the generated CRD plus the keep policy; the
config ConfigMap is accepted by the operator's loader; the image is the package version; the
Dockerfile builds a pinned, multi-stage, non-root image.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python
import jsonschema  # type: ignore[import-untyped]  # installed with kubernetes-validate
import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    find,
    render_templates,
    rendered_notes,
    rendered_objects,
    value_sets,
)

from slm_operator.api.config import Accelerator
from slm_operator.catalog.loader import gateway_image, load_config_text

KUBERNETES_VERSIONS = ("1.29", "1.31", "1.33")
VALUE_SETS = tuple(value_sets())
CRD_SOURCE = ROOT / "crds" / "slm.dev_smalllanguagemodels.yaml"
PROMETHEUS_SCHEMA_DIR = ROOT / "tests" / "data" / "prometheus-operator"


def _chart_yaml() -> dict[str, Any]:
    chart: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    return chart


def _deployment(name: str) -> dict[str, Any]:
    (deployment,) = find(rendered_objects(name), "Deployment")
    return deployment


def _operator_container(name: str) -> dict[str, Any]:
    (container,) = _deployment(name)["spec"]["template"]["spec"]["containers"]
    operator: dict[str, Any] = container
    return operator


def _config_text(name: str) -> str:
    (config_map,) = find(rendered_objects(name), "ConfigMap", f"{RELEASE}-slm-operator-config")
    text: str = config_map["data"]["config.yaml"]
    return text


# --- rendering, schemas, lint ---------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(name: str, version: str) -> None:
    problems = []
    for obj in rendered_objects(name):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not a built-in kind: checked by test_service_monitor_shape
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")
    assert problems == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_reports_no_errors_or_warnings(name: str) -> None:
    report = helm_python.lint(
        CHART, value_sets()[name], strict=True, namespace=NAMESPACE, kube_version="v1.29.0"
    )
    # Severity 1 is informational (e.g. "icon is recommended"); 2 warning, 3 error.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert (problems, report["errors"]) == ([], [])


def test_chart_metadata() -> None:
    chart = _chart_yaml()
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.29.0-0"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


def test_every_named_kind_is_present_in_the_default_install() -> None:
    kinds = {obj["kind"] for obj in rendered_objects("default")}
    assert kinds >= {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    }
    assert "ServiceMonitor" not in kinds
    assert "NetworkPolicy" not in kinds


def test_notes_tell_the_next_steps() -> None:
    notes = rendered_notes("default")
    assert "kubectl apply" in notes
    assert "smollm2-135m" in notes
    assert "api-key" in notes
    assert "Authorization: Bearer" in notes
    assert "team-a" in rendered_notes("namespaced")


# --- values.schema.json ---------------------------------------------------------------------

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", {"replicaCount": 2}, "replicaCount"),
    ("latest tag", {"image": {"tag": "latest"}}, "/image/tag"),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ("digest without sha256", {"image": {"digest": "abc"}}, "/image/digest"),
    ("crds.install not boolean", {"crds": {"install": "yes"}}, "/crds/install"),
    ("namespace list of numbers", {"watchNamespaces": [1]}, "/watchNamespaces/0"),
    ("port out of range", {"metrics": {"port": 70000}}, "/metrics/port"),
    ("unknown preset", {"tierPreset": "openshift"}, "/tierPreset"),
    ("tier with unknown field", {"tiers": {"big": {"gpuCount": 2}}}, "gpuCount"),
    ("tier runtime outside the enum", {"tiers": {"big": {"runtime": "sglang"}}}, "/tiers/big/runtime"),
    ("tier name not a DNS label", {"tiers": {"Big_GPU": {"gpus": 1}}}, "Big_GPU"),
    ("runtime image on latest", {"images": {"vllm": "vllm/vllm-openai:latest"}}, "/images/vllm"),
    ("runtime image without tag", {"images": {"ollama": "ollama/ollama"}}, "/images/ollama"),
    ("unknown image role", {"images": {"sglang": "lmsysorg/sglang:v0.5.0"}}, "sglang"),
    ("context length too small", {"defaults": {"contextLength": 100}}, "/defaults/contextLength"),
    ("registry secret not a name", {"registries": {"imagePullSecrets": ["Pull_Secret"]}}, "/registries"),
    (
        "mirror not a URL",
        {"registries": {"huggingFaceEndpoint": "hf-mirror"}},
        "/registries/huggingFaceEndpoint",
    ),
    (
        "ollama registry with a scheme",
        {"registries": {"ollama": "https://reg.example"}},
        "/registries/ollama",
    ),
    ("ollama registry without dot or port", {"registries": {"ollama": "registry"}}, "/registries/ollama"),
    ("unknown registry key", {"registries": {"docker": "mirror.example"}}, "docker"),
    ("bad resource quantity", {"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ("bad scrape interval", {"metrics": {"serviceMonitor": {"interval": "soon"}}}, "interval"),
    ("unknown log level", {"logLevel": "trace"}, "/logLevel"),
    ("unknown log format", {"logFormat": "yaml"}, "/logFormat"),
    ("env entry without a name", {"extraEnv": [{"value": "x"}]}, "/extraEnv/0"),
    (
        "env entry with value and valueFrom",
        {"extraEnv": [{"name": "A", "value": "x", "valueFrom": {}}]},
        "/extraEnv/0",
    ),
    (
        "bad not-ready duration",
        {"metrics": {"prometheusRule": {"notReadyFor": "half an hour"}}},
        "notReadyFor",
    ),
    (
        "dashboard namespace not a DNS label",
        {"grafana": {"dashboard": {"namespace": "Grafana"}}},
        "namespace",
    ),
    ("prometheusUrl without a scheme", {"defaults": {"prometheusUrl": "prometheus:9090"}}, "prometheusUrl"),
]


@pytest.mark.parametrize(("label", "values", "where"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_values_schema_rejects_bad_values(label: str, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_templates(values)
    assert where in str(caught.value), f"{label}: {caught.value}"
    report = helm_python.lint(CHART, values, namespace=NAMESPACE)
    assert report["errors"], f"{label}: helm lint accepted it"


# --- the CRD --------------------------------------------------------------------------------


def test_chart_crd_copy_is_the_generated_crd_byte_for_byte() -> None:
    assert (CHART / "files" / "crd.yaml").read_bytes() == CRD_SOURCE.read_bytes(), (
        "run `python scripts/sync_chart_files.py`"
    )


def test_crd_template_is_the_generated_crd_with_the_keep_policy() -> None:
    (crd,) = find(rendered_objects("default"), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_SOURCE.read_text(encoding="utf-8"))
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"].items() >= source["metadata"]["labels"].items()
    # Apart from metadata, the rendered CRD is the generated one value for value (this also
    # catches numbers mangled by the template's fromYaml/toYaml round trip).
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["name"] == source["metadata"]["name"]


def test_crd_install_can_be_turned_off() -> None:
    assert find(rendered_objects("minimal"), "CustomResourceDefinition") == []


# --- image and version ----------------------------------------------------------------------


def test_app_version_is_the_package_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert _chart_yaml()["appVersion"] == pyproject["project"]["version"]


def test_default_image_is_the_app_version_and_the_gateway_image() -> None:
    app_version = _chart_yaml()["appVersion"]
    image = _operator_container("default")["image"]
    assert image == f"ghcr.io/slm-operator/slm-operator:{app_version}"
    assert image == gateway_image(app_version)
    # The gateway sidecar of every model runs the operator's own image.
    assert yaml.safe_load(_config_text("default"))["images"]["gateway"] == image


def test_digest_pins_the_operator_image() -> None:
    image = _operator_container("minimal")["image"]
    assert image.endswith("@sha256:" + "ab" * 32)


# --- the operator Deployment ----------------------------------------------------------------


def test_operator_deployment_is_a_single_hardened_replica() -> None:
    deployment = _deployment("default")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _operator_container("default")
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The token is projected explicitly for this pod only, at the in-cluster client's path.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    token_volume = mounts["/var/run/secrets/kubernetes.io/serviceaccount"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == token_volume]
    assert {"serviceAccountToken", "configMap", "downwardAPI"} == {
        key for source in volume["projected"]["sources"] for key in source
    }


def test_image_user_matches_the_pod_security_context() -> None:
    from slm_operator.render.deployment import RUN_AS_ID

    assert _dockerfile_final_stage_user() == f"{RUN_AS_ID}:{RUN_AS_ID}"
    assert _deployment("default")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == RUN_AS_ID


def _option_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_args(name: str) -> None:
    args = _operator_container(name)["args"]
    assert args[0] == "run"
    assert _option_values(args, "--config") == ["/etc/slm-operator/config.yaml"]
    assert _option_values(args, "--liveness") == ["http://0.0.0.0:8080/healthz"]
    assert _option_values(args, "--metrics-port") == ["9090"]
    assert "--peering" not in args  # refused: the operator runs as one replica
    namespaces = _option_values(args, "--namespace")
    if name == "namespaced":
        assert namespaces == ["team-a", "team-b", NAMESPACE]
        assert "--all-namespaces" not in args
    else:
        assert namespaces == []
        assert "--all-namespaces" in args


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_args_parse_with_the_operator_parser(name: str) -> None:
    from slm_operator.controller.run import parse_options

    args = _operator_container(name)["args"]
    assert args[0] == "run"  # the image's ENTRYPOINT is slmctl, which dispatches "run"
    options = parse_options(args[1:])
    assert options.config_path == "/etc/slm-operator/config.yaml"
    assert options.liveness == "http://0.0.0.0:8080/healthz"
    assert options.metrics_port == 9090
    assert options.namespaces == (("team-a", "team-b", NAMESPACE) if name == "namespaced" else ())
    assert (options.log_level, options.log_format) == (
        ("debug", "json") if name == "minimal" else ("info", "full")
    )
    # The config file the operator is pointed at is the ConfigMap's key, mounted read-only.
    mounts = {m["mountPath"]: m for m in _operator_container(name)["volumeMounts"]}
    assert mounts[str(Path(options.config_path).parent)]["readOnly"] is True


def test_extra_env_reaches_the_operator_container() -> None:
    assert "env" not in _operator_container("default")
    env = _operator_container("minimal")["env"]
    assert env == [
        {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
        {"name": "TEAM", "valueFrom": {"configMapKeyRef": {"name": "team", "key": "name"}}},
    ]


def test_config_change_restarts_the_operator() -> None:
    checksums = {
        name: _deployment(name)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for name in ("default", "custom-tiers", "gke")
    }
    assert len(set(checksums.values())) == 3


# --- the operator configuration -------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_config_map_is_accepted_by_the_operator_loader(name: str) -> None:
    config = load_config_text(_config_text(name), origin=f"chart values {name}")
    assert config.images.gateway == _operator_container(name)["image"]


def test_custom_values_reach_the_operator_configuration() -> None:
    config = load_config_text(_config_text("custom-tiers"), origin="custom-tiers")
    assert config.tiers["rtx-4090"].compute_capability == 8.9
    assert config.tiers["cpu"].memory_gib == 32
    assert config.tiers["gpu-small"].gpus == 1  # built-in tiers are kept
    assert "gpu-large" not in config.tiers  # ... unless removed with null
    assert "qwen3-0.6b-mirror" in config.catalog
    assert config.images.vllm == "vllm/vllm-openai:v0.10.2"
    assert config.defaults.context_length == 4096


def test_registry_values_reach_the_operator_configuration() -> None:
    config = load_config_text(_config_text("air-gapped"), origin="air-gapped")
    assert config.registries.image_pull_secrets == ["registry-pull"]
    assert config.registries.hugging_face_endpoint == "https://hf-mirror.internal.example"
    assert config.registries.ollama == "ollama-registry.internal.example:5000"
    assert config.images.gateway.startswith("registry.internal.example/slm-operator/slm-operator:")
    assert config.images.vllm == "registry.internal.example/vllm/vllm-openai:v0.11.0"


PROVIDER_LABELS = {
    "gke": "cloud.google.com/gke-accelerator",
    "eks": "karpenter.k8s.aws/instance-gpu-name",
    "aks": "node.kubernetes.io/instance-type",
}
GFD_LABEL_PREFIX = "nvidia.com/gpu."


@pytest.mark.parametrize("preset", sorted(PROVIDER_LABELS))
def test_tier_presets_pin_every_gpu_tier_to_the_provider_labels(preset: str) -> None:
    config = load_config_text(_config_text(preset), origin=preset)
    gpu_tiers = {name: tier for name, tier in config.tiers.items() if tier.accelerator == Accelerator.NVIDIA}
    assert {"gpu-small", "gpu-medium", "gpu-large", "nvidia-t4"} <= set(gpu_tiers)
    for name, tier in gpu_tiers.items():
        keys = set(tier.node_selector) | {
            expression.key for term in tier.node_affinity for expression in term.match_expressions
        }
        assert PROVIDER_LABELS[preset] in keys, f"{preset}: {name} does not select by the provider label"
        assert not any(key.startswith(GFD_LABEL_PREFIX) for key in keys), (
            f"{preset}: {name} keeps a GFD label"
        )
        assert any(t.key == "nvidia.com/gpu" for t in tier.tolerations)
    # CPU tiers are untouched.
    assert config.tiers["cpu"].accelerator == Accelerator.NONE


def test_default_preset_keeps_the_builtin_gfd_tiers() -> None:
    config = load_config_text(_config_text("default"), origin="default")
    keys = {e.key for term in config.tiers["gpu-small"].node_affinity for e in term.match_expressions}
    assert "nvidia.com/gpu.memory" in keys


def test_user_tiers_win_over_the_preset() -> None:
    config = load_config_text(_config_text("aks"), origin="aks")
    assert config.tiers["nvidia-t4"].memory_gib == 20
    assert "nvidia-a10g" not in config.tiers  # removed by the preset: not an Azure part


# --- optional objects -----------------------------------------------------------------------


def test_service_monitor_shape() -> None:
    objects = rendered_objects("monitoring")
    (monitor,) = find(objects, "ServiceMonitor")
    (service,) = find(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    # The Prometheus Operator's own schema, shipped in tests/data (see its README).
    schema = json.loads((PROMETHEUS_SCHEMA_DIR / "servicemonitor.json").read_text(encoding="utf-8"))
    errors = [
        f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(monitor)
    ]
    assert errors == []


def test_network_policy_allows_only_metrics_in_and_dns_and_api_server_out() -> None:
    (policy,) = find(rendered_objects("monitoring"), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == ["metrics"]
    egress_ports = sorted({p["port"] for rule in spec["egress"] for p in rule["ports"]})
    assert egress_ports == [53, 443, 6443]
    api_rule = spec["egress"][-1]
    assert [peer["ipBlock"]["cidr"] for peer in api_rule["to"]] == ["10.96.0.1/32", "172.18.0.2/32"]


def test_existing_service_account_is_used_and_not_created() -> None:
    objects = rendered_objects("minimal")
    assert find(objects, "ServiceAccount") == []
    assert _deployment("minimal")["spec"]["template"]["spec"]["serviceAccountName"] == "existing-operator"
    subjects = [s for b in find(objects, "ClusterRoleBinding") for s in b["subjects"]]
    assert {s["name"] for s in subjects} == {"existing-operator"}


# --- the Dockerfile (checked statically: no Docker engine here) -----------------------------

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, arguments = stripped.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, arguments))
    return stages


def _dockerfile_final_stage_user() -> str:
    users = [arguments for instruction, arguments in _stages()[-1] if instruction == "USER"]
    return users[-1]


def test_dockerfile_is_multi_stage_with_pinned_bases() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        base = stage[0][1].split()[0]
        if base in {"build"}:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[a-f0-9]{64})?", base), base


def test_dockerfile_final_stage_runs_slmctl_as_numeric_non_root() -> None:
    final = _stages()[-1]
    user = _dockerfile_final_stage_user()
    uid = user.partition(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    entrypoints = [arguments for instruction, arguments in final if instruction == "ENTRYPOINT"]
    assert entrypoints == ['["slmctl"]']
    assert ("COPY", "--from=build /opt/slm /opt/slm") in final


def test_dockerfile_final_stage_installs_no_compilers() -> None:
    final_runs = " ".join(arguments for instruction, arguments in _stages()[-1] if instruction == "RUN")
    assert not re.search(
        r"build-essential|\bgcc\b|\bg\+\+|\bclang\b|python3?-dev|apt-get install", final_runs
    )


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!operator/"} <= set(lines)


def test_build_context_contains_what_the_dockerfile_copies() -> None:
    copied = [
        arguments.split()[:-1]
        for instruction, arguments in _instructions()
        if instruction == "COPY" and not arguments.startswith("--from")
    ]
    for sources in copied:
        for source in sources:
            assert Path(ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"


# Sample GPU nodes per provider, labelled as docs/configuration.md (tier presets) describes.
PRESET_NODES: dict[str, dict[str, dict[str, str]]] = {
    "gke": {
        "t4": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        "l4": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "a100-40gb": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        "a100-80gb": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
        "h100": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    },
    "eks": {
        name: {
            "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
            "karpenter.k8s.aws/instance-gpu-name": gpu,
            "karpenter.k8s.aws/instance-gpu-memory": memory,
        }
        for name, gpu, memory in (
            ("t4", "t4", "16384"),
            ("l4", "l4", "23034"),
            ("a100-40gb", "a100", "40960"),
            ("a100-80gb", "a100", "81920"),
            ("h100", "h100", "81559"),
        )
    },
    "aks": {
        name: {"kubernetes.azure.com/accelerator": "nvidia", "node.kubernetes.io/instance-type": size}
        for name, size in (
            ("t4", "Standard_NC4as_T4_v3"),
            ("a100-40gb", "Standard_ND96asr_v4"),
            ("a100-80gb", "Standard_NC24ads_A100_v4"),
            ("h100", "Standard_ND96isr_H100_v5"),
        )
    },
}
# Which sample nodes each tier must admit (all others must be rejected).
PRESET_ADMITS = {
    "gpu-small": {"t4", "l4", "a100-40gb", "a100-80gb", "h100"},
    "gpu-medium": {"l4", "a100-40gb", "a100-80gb", "h100"},
    "gpu-large": {"a100-80gb", "h100"},
    "nvidia-t4": {"t4"},
    "nvidia-l4": {"l4"},
    "nvidia-a100-40gb": {"a100-40gb"},
    "nvidia-a100-80gb": {"a100-80gb"},
    "nvidia-h100-80gb": {"h100"},
}


def _expression_matches(labels: dict[str, str], key: str, operator: str, values: list[str]) -> bool:
    """core/v1 NodeSelectorRequirement semantics (Gt/Lt compare integers)."""
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if key not in labels:
        return False
    value = labels[key]
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Gt":
        return int(value) > int(values[0])
    if operator == "Lt":
        return int(value) < int(values[0])
    raise AssertionError(f"unknown operator {operator}")


def _tier_admits(tier: Any, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in tier.node_selector.items()):
        return False
    if not tier.node_affinity:
        return True
    return any(
        all(_expression_matches(labels, e.key, e.operator, list(e.values)) for e in term.match_expressions)
        for term in tier.node_affinity
    )


@pytest.mark.parametrize("preset", sorted(PRESET_NODES))
def test_tier_presets_admit_exactly_the_gpus_they_claim(preset: str) -> None:
    config = load_config_text(_config_text(preset), origin=preset)
    nodes = PRESET_NODES[preset]
    checked = [name for name in PRESET_ADMITS if name in config.tiers]  # the rest are removed
    assert len(checked) >= 6
    for tier_name in checked:
        admitted = PRESET_ADMITS[tier_name]
        expected = admitted & set(nodes)
        actual = {node for node, labels in nodes.items() if _tier_admits(config.tiers[tier_name], labels)}
        assert actual == expected, f"{preset}: {tier_name}"


# --- the chart README (generated from the values schema) ------------------------------------


def _chart_readme_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "scripts" / "chart_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (CHART / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\| `([A-Za-z0-9_.]+)` \|(.*)\|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
    return rows


def _leaf_keys(values: Any, prefix: str = "") -> list[str]:
    if not isinstance(values, dict) or not values:
        return [prefix]
    return [key for k, v in values.items() for key in _leaf_keys(v, f"{prefix}.{k}" if prefix else k)]


def test_chart_readme_is_generated_from_the_schema() -> None:
    assert (CHART / "README.md").read_text(encoding="utf-8") == _chart_readme_module().readme_text(), (
        "run `make crd`"
    )


def test_chart_readme_documents_every_value() -> None:
    rows = _readme_rows()
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    # Every leaf of values.yaml is in the table, itself or as a map it belongs to (labels).
    for leaf in _leaf_keys(values):
        parts = leaf.split(".")
        assert any(".".join(parts[:n]) in rows for n in range(1, len(parts) + 1)), leaf
    undocumented = sorted(key for key, cells in rows.items() if not cells[-1])
    assert undocumented == [], "add a description to values.schema.json or a comment in values.yaml"
    # Defaults in the table are the values.yaml ones.
    assert rows["logLevel"][1] == '`"info"`'
    assert rows["networkPolicy.apiServer.ports"][1] == "`[443, 6443]`"
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert set(schema["properties"]) <= {key.split(".")[0] for key in rows}
