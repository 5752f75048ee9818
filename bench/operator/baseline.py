"""The baseline: the least a kopf operator does for the same models -- render them and apply.

One ``on.create``/``on.resume`` handler renders a model with the operator's own pure core and
server-side applies every child (the API-key Secret included, with a fresh key); no drift
check, no status, no Events of its own. kopf's defaults stay as they are (its diff-base
annotation and progress bookkeeping are part of what a plain kopf operator costs).

Run: ``KUBECONFIG=... python -m bench.operator.baseline --liveness http://127.0.0.1:PORT/healthz``
"""

from __future__ import annotations

import argparse
import base64
import secrets
from typing import Any

import kopf

from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import load_config
from slm_operator.contract.kinds import kind_of
from slm_operator.contract.names import API_KEY_FILE_KEY
from slm_operator.controller.drift import prepare_child
from slm_operator.controller.kubeapi import KubeApi
from slm_operator.desired import desired_state

CONFIG = load_config(None)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False
    memo["api"] = KubeApi.from_environment()


@kopf.on.resume("slm.dev", "v1alpha1", "smalllanguagemodels")
@kopf.on.create("slm.dev", "v1alpha1", "smalllanguagemodels")
def apply_children(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    api: KubeApi = memo["api"]
    plain = dict(body)
    state = desired_state(parse_document(plain), CONFIG, monitoring_available=True)
    namespace = body["metadata"]["namespace"]
    for rendered in state.objects:
        child = prepare_child(rendered, plain)
        if child["kind"] == "Secret":
            key = secrets.token_urlsafe(32).encode()
            child["data"] = {API_KEY_FILE_KEY: base64.b64encode(key).decode()}
        api.apply(kind_of(rendered), namespace, child["metadata"]["name"], child)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator.baseline")
    parser.add_argument("--liveness", default=None)
    args = parser.parse_args()
    kopf.configure(verbose=False)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness)


if __name__ == "__main__":
    main()
