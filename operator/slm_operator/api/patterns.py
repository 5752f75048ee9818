"""The patterns the API's names, sources and references must match, and the checks that explain
a mismatch.

One definition each: the spec's fields, the CRD generated from them, the operator configuration
(``api/config.py``) and the catalog loader all use these constants, so a tier or catalog entry
the configuration accepts is one a spec can name.
"""

from __future__ import annotations

import re

# Children are named "<name>", "<name>-api-key", "<name>-modelfile", "<name>-cache"; Services
# and most object names must be DNS-1035 labels of at most 63 characters, so the longest
# suffix ("-modelfile", 10 characters) bounds the model's own name.
MAX_NAME_LENGTH = 53
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A DNS-1123 label of at most 63 characters, unanchored (a part of the patterns below).
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"

# Sources are passed to runtimes as argv or env, never through a shell; these patterns are
# strict on purpose (KubeAI's Ollama command-injection bug came from a loose model name).
HF_REPO_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
OLLAMA_TAG_PATTERN = (
    r"[a-z0-9][a-z0-9._-]{0,63}(/[a-z0-9][a-z0-9._-]{0,63})?(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
)
# An Ollama registry other than the default: Ollama names models host/namespace/model:tag
# (https://github.com/ollama/ollama/blob/v0.12.6/types/model/name.go). The host is a DNS name
# with at least one dot, or any DNS name with a port, so that "namespace/model" is never read
# as "host/model".
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
OLLAMA_HOST_PATTERN = rf"({DNS_LABEL}(\.{DNS_LABEL})+(:{_PORT})?|{DNS_LABEL}:{_PORT})"
OLLAMA_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
OLLAMA_REMOTE_TAG_PATTERN = (
    rf"{OLLAMA_HOST_PATTERN}/{OLLAMA_NAME_PATTERN}/{OLLAMA_NAME_PATTERN}"
    r"(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
)
PVC_PATTERN = rf"{DNS_LABEL}(/[A-Za-z0-9._-]+)*"
SOURCE_PATTERN = (
    rf"^(hf://{HF_REPO_PATTERN}|ollama://{OLLAMA_TAG_PATTERN}|ollama://{OLLAMA_REMOTE_TAG_PATTERN}"
    rf"|pvc://{PVC_PATTERN})$"
)
# LoRA adapters come from the Hugging Face Hub (optionally pinned: hf://org/repo@revision) or
# from a claim (never from Ollama).
ADAPTER_SOURCE_PATTERN = (
    rf"^(hf://{HF_REPO_PATTERN}(@[A-Za-z0-9][A-Za-z0-9._/-]{{0,127}})?|pvc://{PVC_PATTERN})$"
)
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
SERVED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
# Kubernetes resource quantity (a simplified form of the apimachinery regexp).
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"
# A pinned image: an explicit tag or a digest (RE2 has no look-ahead, so ":latest" is refused
# separately: by a validator here and a CEL rule in the CRD).
IMAGE_PATTERN = (
    r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._/-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
)
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# Names the configuration defines and specs refer to: a tier (spec.hardware.tier) and a catalog
# id (spec.model.catalog). Unanchored, like the source patterns above; fields anchor them.
TIER_NAME_PATTERN = DNS_LABEL
CATALOG_ID_PATTERN = r"[a-z0-9][a-z0-9.-]{0,62}"
# A DNS-1123 subdomain: the names of Secrets, StorageClasses and PriorityClasses.
DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"

# A pvc:// path is joined under the claim's mount point; "." and ".." segments could leave it.
DOT_SEGMENT = r"/[.][.]?(/|$)"


def ollama_host_problem(host: str) -> str | None:
    """Why ``host`` cannot be an Ollama registry host, or None when it can."""
    port = host.partition(":")[2]
    if port.isdigit() and not 1 <= int(port) <= 65535:
        return f"registry host {host!r} has port {port}, outside 1-65535"
    if not re.fullmatch(OLLAMA_HOST_PATTERN, host):
        return (
            f"registry host {host!r} is not a lower-case DNS name with a dot or a port "
            "(e.g. registry.example.com or registry:5000)"
        )
    return None
