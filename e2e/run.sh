#!/usr/bin/env bash
# End-to-end test on a local kind cluster: build the image, install the chart, serve a tiny CPU
# model through Ollama, call it with and without the API key, check NetworkPolicy enforcement,
# scale, delete. Skips (exit 0) when docker, kind, helm, kubectl or curl are missing.
#
# Environment (all optional):
#   SLM_E2E_CLUSTER      kind cluster name (default slm-e2e)
#   SLM_E2E_KEEP=1       keep the cluster afterwards (default: delete it if this script made it)
#   SLM_E2E_NODE_IMAGE   kind node image (default: the kind release's own pinned image)
#   SLM_E2E_NETPOL=auto  auto: check NetworkPolicy when kind >= 0.24 (kindnet enforces it);
#                        1: always check (e.g. with Calico); 0: never
#   SLM_E2E_READY_TIMEOUT  seconds to wait for the model to become Ready (default 900)
set -euo pipefail

cd "$(dirname "$0")/.."

CLUSTER="${SLM_E2E_CLUSTER:-slm-e2e}"
KEEP="${SLM_E2E_KEEP:-0}"
NETPOL="${SLM_E2E_NETPOL:-auto}"
READY_TIMEOUT="${SLM_E2E_READY_TIMEOUT:-900}"
OPERATOR_NS="slm-system"
MODEL_NS="slm-e2e"
OUTSIDE_NS="slm-e2e-outside"
MODEL="tiny"
LOCAL_PORT=18000
# A pinned curl image for the in-cluster NetworkPolicy probes.
CURL_IMAGE="curlimages/curl:8.10.1"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
IMAGE="ghcr.io/slm-operator/slm-operator:${VERSION}"

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

skip_unless_available() {
  local missing=()
  local tool
  for tool in docker kind helm kubectl curl; do
    command -v "$tool" > /dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    log "SKIP: missing ${missing[*]} (the kind end-to-end test needs docker, kind, helm, kubectl and curl)"
    exit 0
  fi
  if ! docker info > /dev/null 2>&1; then
    log "SKIP: the docker daemon is not reachable"
    exit 0
  fi
}

created_cluster=0
port_forward_pid=""

cleanup() {
  local status=$?
  if [[ -n "$port_forward_pid" ]]; then
    kill "$port_forward_pid" 2> /dev/null || true
  fi
  if ((status != 0)); then
    log "diagnostics after failure:"
    kubectl get slm,deploy,pods,svc,networkpolicy -A -o wide 2> /dev/null || true
    kubectl -n "$OPERATOR_NS" logs deployment/slm-operator --tail=100 2> /dev/null || true
  fi
  if ((created_cluster)) && [[ "$KEEP" != "1" ]]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" > /dev/null 2>&1 || true
  fi
  exit "$status"
}

# wait_until DESCRIPTION TIMEOUT_SECONDS COMMAND...: retry COMMAND every 2 s until it succeeds
# or the deadline passes.
wait_until() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep 2
  done
}

kind_enforces_network_policy() {
  # kindnet enforces NetworkPolicy since kind v0.24.0 (kubernetes-sigs/kind#842).
  local version major minor
  version="$(kind version | sed -n 's/^kind v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
  read -r major minor <<< "$version"
  [[ -n "${major:-}" ]] && ((major > 0 || minor >= 24))
}

create_cluster() {
  if kind get clusters 2> /dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
  else
    log "creating kind cluster $CLUSTER"
    local args=(create cluster --name "$CLUSTER" --wait 180s)
    if [[ -n "${SLM_E2E_NODE_IMAGE:-}" ]]; then
      args+=(--image "$SLM_E2E_NODE_IMAGE")
    fi
    kind "${args[@]}"
    created_cluster=1
  fi
  kubectl config use-context "kind-$CLUSTER" > /dev/null
}

install_operator() {
  log "building $IMAGE"
  docker build --tag "$IMAGE" .
  kind load docker-image "$IMAGE" --name "$CLUSTER"
  log "installing the chart"
  helm upgrade --install slm-operator charts/slm-operator \
    --namespace "$OPERATOR_NS" --create-namespace \
    --set image.pullPolicy=IfNotPresent \
    --wait --timeout 5m
  kubectl -n "$OPERATOR_NS" rollout status deployment/slm-operator --timeout=180s
}

apply_model() {
  log "applying SmallLanguageModel $MODEL_NS/$MODEL (smollm2-135m on the edge tier, Ollama)"
  kubectl create namespace "$MODEL_NS" --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f - << YAML
apiVersion: slm.dev/v1alpha1
kind: SmallLanguageModel
metadata:
  name: $MODEL
  namespace: $MODEL_NS
spec:
  model:
    catalog: smollm2-135m
    contextLength: 2048
  hardware:
    tier: edge
  maxConcurrency: 1
YAML
  log "waiting up to ${READY_TIMEOUT}s for Ready (the init container pulls the model)"
  kubectl -n "$MODEL_NS" wait "slm/$MODEL" --for=condition=Ready --timeout="${READY_TIMEOUT}s"
  kubectl -n "$MODEL_NS" get slm "$MODEL" -o wide
}

call_api() {
  local key code body
  key="$(kubectl -n "$MODEL_NS" get secret "$MODEL-api-key" -o jsonpath='{.data.api-key}' | base64 -d)"
  [[ -n "$key" ]] || fail "the generated API-key Secret is empty"
  kubectl -n "$MODEL_NS" port-forward "svc/$MODEL" "$LOCAL_PORT:8000" > /dev/null 2>&1 &
  port_forward_pid=$!
  wait_until "the port-forward" 30 curl -s -o /dev/null "http://127.0.0.1:$LOCAL_PORT/healthz"

  log "OpenAI chat completion with the API key"
  body="$(curl -sS --max-time 120 "http://127.0.0.1:$LOCAL_PORT/v1/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$MODEL\", \"max_tokens\": 16, \"messages\": [{\"role\": \"user\", \"content\": \"Say hello.\"}]}")"
  grep -q '"choices"' <<< "$body" || fail "no choices in the response: $body"

  log "the same request without the key must be refused"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1:$LOCAL_PORT/v1/models")"
  [[ "$code" == "401" ]] || fail "expected 401 without the API key, got $code"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H 'Authorization: Bearer wrong' \
    "http://127.0.0.1:$LOCAL_PORT/v1/models")"
  [[ "$code" == "401" ]] || fail "expected 401 with a wrong API key, got $code"

  kill "$port_forward_pid" 2> /dev/null || true
  port_forward_pid=""
}

# probe NAMESPACE: the HTTP status code a pod in NAMESPACE gets from the model's API ("000" when
# the connection is blocked or times out).
probe() {
  kubectl -n "$1" run "probe-$RANDOM" --rm -i --quiet --restart=Never --image="$CURL_IMAGE" \
    --command -- curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    "http://$MODEL.$MODEL_NS.svc.cluster.local:8000/v1/models" 2> /dev/null || true
}

check_network_policy() {
  if [[ "$NETPOL" == "0" ]] || { [[ "$NETPOL" == "auto" ]] && ! kind_enforces_network_policy; }; then
    log "skipping the NetworkPolicy check (kind < 0.24 does not enforce NetworkPolicy; set SLM_E2E_NETPOL=1 with Calico)"
    return
  fi
  log "NetworkPolicy: same namespace reaches the API, another namespace does not"
  kubectl create namespace "$OUTSIDE_NS" --dry-run=client -o yaml | kubectl apply -f -
  local inside outside
  inside="$(probe "$MODEL_NS")"
  [[ "$inside" == "401" ]] || fail "a pod in $MODEL_NS should reach the gateway (401 without a key), got '$inside'"
  outside="$(probe "$OUTSIDE_NS")"
  [[ "$outside" == "000" || -z "$outside" ]] || fail "a pod in $OUTSIDE_NS reached the model API (HTTP $outside)"
  kubectl delete namespace "$OUTSIDE_NS" --wait=false > /dev/null
}

scale_model() {
  log "scaling to 2 replicas through spec.replicas"
  kubectl -n "$MODEL_NS" patch slm "$MODEL" --type merge -p '{"spec": {"replicas": 2}}'
  kubectl -n "$MODEL_NS" wait "slm/$MODEL" --for=jsonpath='{.status.readyReplicas}'=2 --timeout="${READY_TIMEOUT}s"
  log "scaling back to 1 through the scale subresource"
  kubectl -n "$MODEL_NS" scale slm "$MODEL" --replicas=1
  kubectl -n "$MODEL_NS" wait "deployment/$MODEL" --for=jsonpath='{.spec.replicas}'=1 --timeout=120s
}

delete_model() {
  log "deleting the model: its children are garbage-collected"
  kubectl -n "$MODEL_NS" delete slm "$MODEL" --wait --timeout=120s
  local kind
  for kind in deployment service networkpolicy secret; do
    wait_until "$kind/$MODEL to be garbage-collected" 120 \
      bash -c "! kubectl -n '$MODEL_NS' get '$kind' '$MODEL' '$MODEL-api-key' --ignore-not-found -o name | grep -q ."
  done
}

uninstall_operator() {
  log "uninstalling the chart: the CRD stays (helm.sh/resource-policy: keep)"
  helm uninstall slm-operator --namespace "$OPERATOR_NS" --wait --timeout 2m
  kubectl get crd smalllanguagemodels.slm.dev > /dev/null || fail "the CRD was deleted by helm uninstall"
}

main() {
  skip_unless_available
  trap cleanup EXIT
  create_cluster
  install_operator
  apply_model
  call_api
  check_network_policy
  scale_model
  delete_model
  uninstall_operator
  log "PASS"
}

main "$@"
