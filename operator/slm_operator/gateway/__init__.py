"""The model gateway: the one door in front of a model runtime inside every model pod.

The runtime (vLLM or Ollama) binds to localhost only; this small HTTP proxy checks the API key,
forwards the OpenAI-compatible routes without buffering streams, answers the kubelet's probes
and exposes Prometheus metrics. ``slmctl gateway`` runs it (see ``slm_operator.gateway.cli``).
"""
