"""The model stream's events: what is queued, and what an older version left on a model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from slm_operator.controller.handlers import MODELS, ControllerContext
from slm_operator.controller.kubeapi import ApiError, ConflictError, ModelResource, TransientApiError
from slm_operator.controller.leftovers import leftovers_patch, remove_leftovers
from slm_operator.controller.metrics import OperatorMetrics


def model(
    name: str = "m",
    *,
    rv: str = "10",
    generation: int = 1,
    finalizers: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"u-{name}",
        "resourceVersion": rv,
        "generation": generation,
    }
    if finalizers is not None:
        meta["finalizers"] = finalizers
    if annotations is not None:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return {"apiVersion": "slm.dev/v1alpha1", "kind": "SmallLanguageModel", "metadata": meta, "spec": {}}


@dataclass
class PatchRecorder:
    """Stands in for KubeApi.patch_model: records each patch; fails as scripted."""

    failures: list[Exception] = field(default_factory=list)
    patches: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def patch_model(
        self, resource: ModelResource, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        self.patches.append((resource.plural, namespace, name, patch))
        if self.failures:
            raise self.failures.pop(0)
        return {}


def context(api: Any = None) -> ControllerContext:
    return ControllerContext(api=api, config=None, metrics=OperatorMetrics(), workers=0)  # type: ignore[arg-type]


def test_nothing_to_remove_from_a_clean_model() -> None:
    assert leftovers_patch(model()) is None
    assert leftovers_patch(model(finalizers=["example.com/keep"], annotations={"a": "b"})) is None


def test_the_old_finalizer_goes_and_everyone_elses_stay() -> None:
    patch = leftovers_patch(model(rv="42", finalizers=["example.com/keep", "slm.dev/finalizer"]))
    # The whole list is replaced, so the version we looked at is a precondition.
    assert patch == {"metadata": {"resourceVersion": "42", "finalizers": ["example.com/keep"]}}


def test_the_old_kopf_annotations_go_with_the_finalizer() -> None:
    old = model(
        finalizers=["slm.dev/finalizer"],
        annotations={
            "slm.dev/last-handled-configuration": "{...}",
            "slm.dev/reconcile": "{}",
            "example.com/note": "kept",
        },
    )
    assert leftovers_patch(old) == {
        "metadata": {
            "resourceVersion": "10",
            "finalizers": [],
            "annotations": {"slm.dev/last-handled-configuration": None, "slm.dev/reconcile": None},
        }
    }


async def test_a_new_model_or_a_new_generation_is_queued_an_echo_is_not() -> None:
    ctx = context()
    ctx.model_changed(None, model(rv="10"))  # from the listing
    assert len(ctx.queue) == 1
    await ctx.queue.get()
    ctx.queue.done(("ns", "m"))
    ctx.model_changed("MODIFIED", model(rv="11"))  # our own status patch: same generation
    assert len(ctx.queue) == 0
    ctx.model_changed("MODIFIED", model(rv="9", generation=2))  # late: we hold a newer version
    assert len(ctx.queue) == 0
    ctx.model_changed("MODIFIED", model(rv="12", generation=2))
    assert len(ctx.queue) == 1
    ctx.model_changed("DELETED", model(rv="13", generation=2))
    assert len(ctx.queue) == 0
    assert ("ns", "m") not in ctx.models


async def test_leftovers_are_patched_away_once_and_a_deleting_model_is_not_queued() -> None:
    api = PatchRecorder()
    ctx = context(api)
    old = model(finalizers=["slm.dev/finalizer"], deleting=True)
    ctx.model_changed("MODIFIED", old)
    ctx.model_changed("MODIFIED", old)  # again before the first patch is answered: one patch
    await asyncio.gather(*ctx._cleaning.values())
    assert api.patches == [
        (MODELS.plural, "ns", "m", {"metadata": {"resourceVersion": "10", "finalizers": []}})
    ]
    assert len(ctx.queue) == 0  # being deleted: garbage collection removes the children
    assert not ctx._cleaning


async def test_a_conflict_leaves_the_next_version_to_try_again() -> None:
    api = PatchRecorder(failures=[ConflictError(409, "the object has been modified")])
    ctx = context(api)
    ctx.model_changed("MODIFIED", model(rv="10", finalizers=["slm.dev/finalizer"]))
    await asyncio.gather(*ctx._cleaning.values())
    ctx.model_changed("MODIFIED", model(rv="11", finalizers=["slm.dev/finalizer"]))
    await asyncio.gather(*ctx._cleaning.values())
    assert [patch["metadata"]["resourceVersion"] for *_, patch in api.patches] == ["10", "11"]
    await ctx.stop()


async def test_after_a_conflict_the_newest_version_seen_is_patched_at_once() -> None:
    api = PatchRecorder(failures=[ConflictError(409, "the object has been modified")])
    newest = model(rv="12", finalizers=["example.com/keep", "slm.dev/finalizer"])
    first = leftovers_patch(model(rv="10", finalizers=["slm.dev/finalizer"]))
    assert first is not None
    await remove_leftovers(api, MODELS, ("ns", "m"), first, latest=lambda: newest)  # type: ignore[arg-type]
    assert [patch["metadata"] for *_, patch in api.patches] == [
        {"resourceVersion": "10", "finalizers": []},
        {"resourceVersion": "12", "finalizers": ["example.com/keep"]},
    ]


async def test_a_transient_failure_is_retried_while_the_leftovers_remain() -> None:
    api = PatchRecorder(failures=[TransientApiError(503, "unavailable")] * 2)
    old = model(finalizers=["slm.dev/finalizer"])
    patch = leftovers_patch(old)
    assert patch is not None
    await remove_leftovers(api, MODELS, ("ns", "m"), patch, latest=lambda: old, first_delay=0.01)  # type: ignore[arg-type]
    assert len(api.patches) == 3  # two failures, then it held
    # Once the model no longer carries them (someone removed them), the retries stop.
    api = PatchRecorder(failures=[TransientApiError(503, "unavailable")])
    await remove_leftovers(api, MODELS, ("ns", "m"), patch, latest=model, first_delay=0.01)  # type: ignore[arg-type]
    assert len(api.patches) == 1


async def test_a_refusal_is_logged_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    api = PatchRecorder(failures=[ApiError(403, "forbidden: cannot patch")])
    old = model(finalizers=["slm.dev/finalizer"])
    patch = leftovers_patch(old)
    assert patch is not None
    await remove_leftovers(api, MODELS, ("ns", "m"), patch, latest=lambda: old, first_delay=0.01)  # type: ignore[arg-type]
    assert len(api.patches) == 1
    assert "forbidden: cannot patch" in caplog.text
