"""The Ollama runtime container and its ``pull-model`` init container."""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.plan import Plan, SourceKind
from slm_operator.contract.names import OLLAMA_PORT
from slm_operator.render.containers import (
    HOME_DIR,
    LOCALHOST,
    MODELFILE_VOLUME,
    OLLAMA_MODELS,
    PULL_CONTAINER,
    env_var,
    init_container,
    mount,
    runtime_container,
    runtime_mounts,
)
from slm_operator.render.modelfile import MODELFILE_MOUNT_DIR, MODELFILE_PATH

# The init container's script: a constant. Values arrive as environment variables, which the
# shell expands as single words inside double quotes, so no value can become shell syntax.
# `ollama pull` talks to a running server, hence the temporary background `ollama serve`.
PULL_SCRIPT = """\
set -eu
log="${TMPDIR:-/tmp}/ollama-pull-serve.log"
ollama serve >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
waited=0
until ollama list >/dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "ollama serve exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  if [ "$waited" -ge "$SERVER_START_TIMEOUT" ]; then
    echo "ollama serve did not answer within $SERVER_START_TIMEOUT s" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
case "$PULL_POLICY" in
  always) ollama pull "$MODEL_TAG" || ollama show "$MODEL_TAG" >/dev/null ;;
  if-missing) ollama show "$MODEL_TAG" >/dev/null 2>&1 || ollama pull "$MODEL_TAG" ;;
  never) ;;
  *) echo "unknown PULL_POLICY" >&2; exit 2 ;;
esac
if [ -n "${MODELFILE:-}" ]; then
  ollama create "$SERVED_NAME" -f "$MODELFILE"
elif [ "$SERVED_NAME" != "$MODEL_TAG" ]; then
  ollama cp "$MODEL_TAG" "$SERVED_NAME"
fi
kill "$server"
wait "$server" || true
"""
SERVER_START_TIMEOUT_SECONDS = 120

# Ollama's own CLI: `ollama list` asks the local server (OLLAMA_HOST is in the environment).
OLLAMA_HEALTH_COMMAND = ["ollama", "list"]


def _ollama_env() -> list[dict[str, Any]]:
    return [
        env_var("HOME", HOME_DIR),
        env_var("OLLAMA_HOST", f"{LOCALHOST}:{OLLAMA_PORT}"),
        env_var("OLLAMA_MODELS", OLLAMA_MODELS),
    ]


def ollama_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The Ollama runtime container (``ollama serve`` on localhost)."""
    env = [
        *_ollama_env(),
        env_var("OLLAMA_NUM_PARALLEL", str(plan.max_concurrency)),
        env_var("OLLAMA_CONTEXT_LENGTH", str(plan.context_length)),
        env_var("OLLAMA_KEEP_ALIVE", config.defaults.ollama_keep_alive),
        # One model per pod: the served model is the only one that may occupy memory.
        env_var("OLLAMA_MAX_LOADED_MODELS", "1"),
    ]
    return runtime_container(
        plan, args=["serve"], env=env, health_command=OLLAMA_HEALTH_COMMAND, mounts=runtime_mounts(plan)
    )


def ollama_pull_ref(ref: str, registry: str | None) -> str:
    """The name ``ollama pull`` fetches: ``ref`` from the configured registry, if any.

    Ollama names models ``host/namespace/model:tag`` with registry.ollama.ai and ``library`` as
    defaults (https://github.com/ollama/ollama/blob/v0.12.6/types/model/name.go). A ref that
    already names a host is left alone; a registry given as ``host/namespace`` replaces the
    ``library`` namespace of un-namespaced tags.
    """
    if not registry or ref.count("/") >= 2:
        return ref
    host, _, namespace = registry.partition("/")
    if "/" in ref:
        return f"{host}/{ref}"
    return f"{host}/{namespace or 'library'}/{ref}"


def pull_init_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """Ollama's ``pull-model`` init container: pull the tag, then create or copy the served name."""
    with_modelfile = plan.modelfile is not None
    model_tag = plan.model_ref
    if plan.source_kind is SourceKind.OLLAMA:
        model_tag = ollama_pull_ref(plan.model_ref, config.registries.ollama)
    env = [
        *_ollama_env(),
        env_var("MODEL_TAG", model_tag),
        env_var("SERVED_NAME", plan.served_name),
        # Only set with a Modelfile: the API server drops an empty ``value`` (omitempty), so an
        # empty one would differ from the stored object forever; the script reads unset as "".
        *([env_var("MODELFILE", MODELFILE_PATH)] if with_modelfile else []),
        env_var("PULL_POLICY", str(plan.pull_policy)),
        env_var("SERVER_START_TIMEOUT", str(SERVER_START_TIMEOUT_SECONDS)),
    ]
    mounts = runtime_mounts(plan)
    if with_modelfile:
        mounts.append(mount(MODELFILE_VOLUME, MODELFILE_MOUNT_DIR, read_only=True))
    return init_container(
        plan, PULL_CONTAINER, command=["/bin/sh", "-c", PULL_SCRIPT], env=env, mounts=mounts
    )
