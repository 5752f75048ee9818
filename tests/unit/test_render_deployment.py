"""The Deployment: runtime container, gateway sidecar, volumes, strategy and replicas."""

from __future__ import annotations

from typing import Any

import pytest
from render_cases import builtin_config, by_kind, case, containers, make_model, make_plan

from slm_operator.render import render_children
from slm_operator.render.deployment import render_deployment


def deployment_of(case_id: str) -> dict[str, Any]:
    _model, plan = case(case_id).build()
    return render_deployment(plan, builtin_config())


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def mounts_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def volumes_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}


def test_vllm_args_start_with_the_model_and_carry_the_plan() -> None:
    runtime = containers(deployment_of("vllm-gpu-small"))["runtime"]
    assert runtime["image"] == builtin_config().images.vllm
    assert "command" not in runtime  # the image's ENTRYPOINT is `vllm serve`
    assert runtime["args"] == [
        "microsoft/Phi-4-mini-instruct",
        "--host", "127.0.0.1",
        "--port", "8001",
        "--served-model-name", "m1",
        "--max-model-len", "8192",
        "--max-num-seqs", "8",
        "--gpu-memory-utilization", "0.9",
        "--dtype", "bfloat16",
        "--tensor-parallel-size", "1",
    ]  # fmt: skip
    assert "serve" not in runtime["args"]
    # localhost only: no ports and no HTTP probes the kubelet could not reach
    for field in ("ports", "readinessProbe"):
        assert field not in runtime
    for probe in ("startupProbe", "livenessProbe"):
        assert "httpGet" not in runtime[probe]


@pytest.mark.parametrize(("case", "command"), [("vllm-gpu-small", "/health"), ("ollama-cpu", "ollama")])
def test_runtime_liveness_is_a_constant_exec_probe_held_back_during_startup(case: str, command: str) -> None:
    runtime = containers(deployment_of(case))["runtime"]
    startup, liveness = runtime["startupProbe"], runtime["livenessProbe"]
    assert startup["exec"] == liveness["exec"]
    assert any(command in part for part in liveness["exec"]["command"])
    # the startup budget (download and load) is far longer than liveness's failure window
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 1800
    assert budget > liveness["periodSeconds"] * liveness["failureThreshold"]


def test_vllm_optional_flags_and_engine_args_come_last_verbatim() -> None:
    args = containers(deployment_of("vllm-tp2-fp8kv-revision"))["runtime"]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--revision") + 1] == "v1.0"
    assert args[args.index("--kv-cache-dtype") + 1] == "fp8"
    assert args[-3:] == ["--quantization", "fp8", "--enable-prefix-caching"]


def test_vllm_without_quantization_in_engine_args_passes_no_quantization_flag() -> None:
    args = containers(deployment_of("vllm-gpu-small"))["runtime"]["args"]
    assert "--quantization" not in args
    assert "--kv-cache-dtype" not in args  # plan.kv_cache_dtype == "auto"
    assert "--revision" not in args


def test_vllm_env_writable_caches_and_no_telemetry() -> None:
    runtime = containers(deployment_of("vllm-gpu-small"))["runtime"]
    env = env_of(runtime)
    mounts = mounts_of(runtime)
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1"
    for variable in ("HOME", "XDG_CACHE_HOME", "HF_HOME"):
        # every cache path lies on a writable (non-read-only) mount
        assert any(env[variable].startswith(path) and not m.get("readOnly") for path, m in mounts.items())
    assert "HF_TOKEN" not in env
    assert "HF_HUB_OFFLINE" not in env


def test_gated_model_reads_hf_token_from_a_mounted_secret_file_not_the_environment() -> None:
    deployment = deployment_of("vllm-gated")
    runtime = containers(deployment)["runtime"]
    env = env_of(runtime)
    assert "HF_TOKEN" not in env  # not in /proc/<pid>/environ
    token_path = env["HF_TOKEN_PATH"]
    directory, _, filename = token_path.rpartition("/")
    mount = mounts_of(runtime)[directory]
    assert mount["readOnly"] is True
    volume = volumes_of(deployment)[mount["name"]]
    assert volume["secret"]["secretName"] == "hf-token"
    assert volume["secret"]["items"] == [{"key": "token", "path": filename}]
    ungated = containers(deployment_of("vllm-gpu-small"))["runtime"]
    assert directory not in mounts_of(ungated)
    assert "HF_TOKEN_PATH" not in env_of(ungated)


def test_closed_egress_makes_vllm_use_the_cache_offline() -> None:
    env = env_of(containers(deployment_of("vllm-no-auth-no-egress"))["runtime"])
    assert env["HF_HUB_OFFLINE"] == "1"


def test_vllm_gets_dev_shm_as_memory_scaled_by_gpus() -> None:
    one = volumes_of(deployment_of("vllm-gpu-small"))["dshm"]
    two = volumes_of(deployment_of("vllm-tp2-fp8kv-revision"))["dshm"]
    assert one["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert two["emptyDir"]["sizeLimit"] == "4Gi"
    assert "/dev/shm" in mounts_of(containers(deployment_of("vllm-gpu-small"))["runtime"])


def test_gpu_limits_come_from_the_plan() -> None:
    model = make_model(hardware={"tier": "gpu-small"})
    resources = {
        "requests": {"cpu": "3", "memory": "12Gi"},
        "limits": {"memory": "12Gi", "nvidia.com/gpu": "1"},
    }
    plan = make_plan(model, resources=resources)
    runtime = containers(render_deployment(plan, builtin_config()))["runtime"]
    assert runtime["resources"] == resources


def test_pvc_source_mounts_the_claim_read_only_at_models() -> None:
    deployment = deployment_of("vllm-pvc-source")
    runtime = containers(deployment)["runtime"]
    assert runtime["args"][0] == "/models/phi-4-mini"
    assert mounts_of(runtime)["/models"]["readOnly"] is True
    assert volumes_of(deployment)["models"]["persistentVolumeClaim"] == {
        "claimName": "weights",
        "readOnly": True,
    }


def test_ollama_runtime_serves_on_localhost_with_plan_limits() -> None:
    deployment = deployment_of("ollama-cpu")
    runtime = containers(deployment)["runtime"]
    env = env_of(runtime)
    assert runtime["image"] == builtin_config().images.ollama
    assert runtime["args"] == ["serve"]
    assert env["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert env["OLLAMA_NUM_PARALLEL"] == "8"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "8192"
    assert env["OLLAMA_KEEP_ALIVE"] == builtin_config().defaults.ollama_keep_alive
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "1"
    assert env["OLLAMA_MODELS"].startswith("/var/cache/slm")
    assert "dshm" not in volumes_of(deployment)


@pytest.mark.parametrize(
    ("case_id", "upstream", "runtime"),
    [("vllm-gpu-small", "http://127.0.0.1:8001", "vllm"), ("ollama-cpu", "http://127.0.0.1:11434", "ollama")],
)
def test_gateway_args_point_at_the_local_runtime(case_id: str, upstream: str, runtime: str) -> None:
    gateway = containers(deployment_of(case_id))["gateway"]
    assert gateway["image"] == builtin_config().images.gateway
    assert gateway["args"] == [
        "gateway",
        "--upstream", upstream,
        "--runtime", runtime,
        "--model", "m1",
        "--listen", "0.0.0.0:8000",
        "--metrics-listen", "0.0.0.0:9090",
        "--allow-model", "m1",
        "--api-key-file", "/var/run/slm/api-key/api-key",
    ]  # fmt: skip
    assert {p["name"]: p["containerPort"] for p in gateway["ports"]} == {"http": 8000, "metrics": 9090}


def test_gateway_probes_use_the_gateway_with_a_long_startup_budget() -> None:
    gateway = containers(deployment_of("vllm-gpu-small"))["gateway"]
    startup = gateway["startupProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["resources"]["limits"]["memory"] == "256Mi"


@pytest.mark.parametrize(
    ("case_id", "secret", "key"),
    [("vllm-gpu-small", "m1-api-key", "api-key"), ("vllm-external-key", "keys", "team-keys")],
)
def test_api_key_secret_is_projected_to_the_key_file(case_id: str, secret: str, key: str) -> None:
    deployment = deployment_of(case_id)
    volume = volumes_of(deployment)["api-key"]["secret"]
    assert volume["secretName"] == secret
    assert volume["items"] == [{"key": key, "path": "api-key"}]
    mount = mounts_of(containers(deployment)["gateway"])["/var/run/slm/api-key"]
    assert mount["readOnly"] is True


def test_auth_disabled_runs_the_gateway_without_a_key() -> None:
    deployment = deployment_of("vllm-no-auth-no-egress")
    gateway = containers(deployment)["gateway"]
    assert gateway["args"][-1] == "--no-auth"
    assert "--api-key-file" not in gateway["args"]
    assert "api-key" not in volumes_of(deployment)


@pytest.mark.parametrize(
    ("case_id", "cache"),
    [
        ("vllm-gpu-small", {"emptyDir": {"sizeLimit": "30Gi"}}),
        ("vllm-autoscaling-rwx", {"persistentVolumeClaim": {"claimName": "m1-cache"}}),
    ],
)
def test_cache_volume_is_the_claim_or_a_bounded_empty_dir(case_id: str, cache: dict[str, Any]) -> None:
    volume = dict(volumes_of(deployment_of(case_id))["cache"])
    volume.pop("name")
    assert volume == cache


def test_replicas_present_without_autoscaling_and_absent_with_it() -> None:
    assert deployment_of("vllm-tp2-fp8kv-revision")["spec"]["replicas"] == 3
    assert "replicas" not in deployment_of("vllm-autoscaling-rwx")["spec"]


@pytest.mark.parametrize(
    ("case_id", "strategy"),
    [
        ("vllm-gpu-small", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        (
            "vllm-autoscaling-rwx",
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        ),
        ("ollama-rwo-storage", {"type": "Recreate"}),
    ],
)
def test_rollout_strategy(case_id: str, strategy: dict[str, Any]) -> None:
    assert deployment_of(case_id)["spec"]["strategy"] == strategy


def test_selector_and_template_labels() -> None:
    model, plan = case("ollama-cpu").build()
    deployment = by_kind(render_children(model, plan, builtin_config(), monitoring_available=False))[
        "Deployment"
    ]
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {"slm.dev/model": "m1"}
    assert selector.items() <= labels.items()
    assert labels["app.kubernetes.io/name"] == "ollama"


def test_pod_is_hardened() -> None:
    pod = deployment_of("ollama-cpu")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["runAsGroup"] == security["fsGroup"] != 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
