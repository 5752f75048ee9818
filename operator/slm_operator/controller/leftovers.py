"""What older versions of the operator left on a model through kopf, and its removal.

Versions that ran a kopf timer per model added a finalizer (``slm.dev/finalizer``) and kept
kopf's bookkeeping annotations (:data:`~slm_operator.controller.settings.LEGACY_ANNOTATIONS`)
on every model. Nothing writes them now; the controller removes them the first time it sees
such a model, so a model deleted while an older version was stopped finishes deleting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from slm_operator.controller.kubeapi import ApiError, ConflictError, KubeApi, ModelResource, TransientApiError
from slm_operator.controller.owner_index import ModelKey
from slm_operator.controller.settings import LEGACY_ANNOTATIONS, LEGACY_FINALIZER

log = logging.getLogger(__name__)


def leftovers_patch(model: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch removing what an older version of the operator kept on a model through
    kopf -- its finalizer and annotations (:data:`LEGACY_ANNOTATIONS`) -- or ``None``.

    A merge patch replaces the whole ``finalizers`` list, so it carries the model's
    ``resourceVersion`` as a precondition: if anyone changed the list meanwhile the server
    refuses it (409) and nothing of theirs is lost.
    """
    meta = model.get("metadata") or {}
    finalizers = list(meta.get("finalizers") or [])
    annotations = meta.get("annotations") or {}
    stale = [key for key in LEGACY_ANNOTATIONS if key in annotations]
    if LEGACY_FINALIZER not in finalizers and not stale:
        return None
    patch: dict[str, Any] = {"resourceVersion": meta.get("resourceVersion")}
    if LEGACY_FINALIZER in finalizers:
        patch["finalizers"] = [name for name in finalizers if name != LEGACY_FINALIZER]
    if stale:
        patch["annotations"] = dict.fromkeys(stale)
    return {"metadata": patch}


async def remove_leftovers(
    api: KubeApi,
    resource: ModelResource,
    key: ModelKey,
    patch: dict[str, Any],
    *,
    latest: Callable[[], Mapping[str, Any] | None],
    first_delay: float = 5.0,
) -> None:
    """Send ``patch`` (from :func:`leftovers_patch`) until it holds or is no longer needed.

    After a conflict the patch is made again from the newest version the watch has shown
    (``latest()``), or left to that version's own event when none is newer yet; a transient
    failure is retried with a doubling delay while the model still carries the leftovers; a
    refusal (403, 404, 422) is logged and left.
    """
    namespace, name = key
    delay = first_delay
    failed = "%s/%s: removing what an older version left failed: %s"
    while True:
        conflict = False
        try:
            await asyncio.to_thread(api.patch_model, resource, namespace, name, patch)
            log.info("%s/%s: removed what an older operator version left on it", namespace, name)
            return
        except ConflictError:
            conflict = True
        except TransientApiError as exc:
            log.warning(failed + "; again in %.0f s", namespace, name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 300.0)
        except ApiError as exc:
            log.warning(failed, namespace, name, exc)
            return
        body = latest()
        newer = None if body is None else leftovers_patch(body)
        if newer is None or (conflict and newer == patch):
            return  # gone or clean; or, after a conflict, its newer version's event starts again
        patch = newer
