"""The operator's controller: the kopf process shell, the watch streams, the work queue and the
reconcile.

kopf imports the ``kubernetes`` client when it is installed, only to recognise the client's
``V1ObjectMeta``/``V1OwnerReference`` objects in its adopt/label helpers; the operator passes kopf
none (its objects are plain dicts) and reaches the API server without that client
(:mod:`slm_operator.controller.connection`). So kopf is imported here, first, with the client
hidden: the operator process does not load its hundreds of generated modules (about 17 MiB).
The client stays importable afterwards for the paths that need it (a kubeconfig credential
plugin, a proxy).
"""

from __future__ import annotations

import sys


def _import_kopf_without_the_kubernetes_client() -> None:
    if "kopf" in sys.modules or "kubernetes" in sys.modules:
        return  # already decided by whoever imported them first (a test, a tool)
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # an import of it fails
    try:
        import kopf  # noqa: F401
    finally:
        if "kubernetes" in sys.modules and sys.modules["kubernetes"] is None:
            del sys.modules["kubernetes"]


_import_kopf_without_the_kubernetes_client()
