"""One level-based reconcile of a SmallLanguageModel: parse, plan, render, apply, observe.

:func:`reconcile_model` is synchronous (the ``kubernetes`` client blocks; handlers run it in a
thread) and returns an :class:`Outcome`: the status the model should have, the Events worth
posting and how the pass ended (:class:`Result`, which decides when to try again). What exists
is passed in (``existing``, from the operator's watches); the model itself is never written
here: the worker that called it patches the status and posts the Events.

A pass that leaves every child as desired also returns what it knew (:class:`Settled`); while
the caller sees the model's children change only in their status, :func:`refresh_status`
makes the same pass without parsing, planning, rendering or comparing a child. Both compute
the status in one place (``_status_outcome``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import FitError, SpecError
from slm_operator.api.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    Phase,
    Reason,
    SmallLanguageModelStatus,
)
from slm_operator.contract.kinds import DEPLOYMENT, SCALED_OBJECT, SERVICE_MONITOR, served_kinds
from slm_operator.contract.names import endpoint_url, selector_string
from slm_operator.controller import conditions as cond
from slm_operator.controller.children import ApplyReport, Write, reconcile_children
from slm_operator.controller.desired_cache import DesiredCache, compute, inputs_key
from slm_operator.controller.kubeapi import KubeApi, TransientApiError
from slm_operator.controller.observed import (
    DeploymentView,
    EventNote,
    degradation,
    deployment_view,
    serving_conditions,
    transition_events,
)
from slm_operator.controller.owner_index import Children, kept_json
from slm_operator.diagnosis import diagnose

log = logging.getLogger(__name__)


class Result(StrEnum):
    """How a pass ended; also the ``result`` label of the reconcile metrics."""

    OK = "ok"  # done until something changes
    INVALID = "invalid"  # the spec is rejected: done until the user's next edit
    RETRY = "retry"  # incomplete (the API was unavailable or conflicted): again, with backoff
    ERROR = "error"  # a child was refused for good: again, slowly (``Outcome.permanent``)


@dataclass
class Outcome:
    """What a reconcile decided: the status to hold, Events to post, and how it ended."""

    # As written: a SmallLanguageModelStatus serialized once (to_json), or the stored status
    # kept as it is when the pass could not complete.
    status: dict[str, Any]
    events: list[EventNote] = field(default_factory=list)
    result: Result = Result.OK
    message: str = ""
    permanent: bool = False  # the API refused for good: retry slowly, a human has to act
    written: list[Write] = field(default_factory=list)
    failed_kinds: list[str] = field(default_factory=list)
    report: ApplyReport | None = None
    # Set when the pass found every child as desired and nothing wrong: what its next pass
    # needs to refresh the status alone (:func:`refresh_status`).
    settled: Settled | None = None


@dataclass(frozen=True)
class Settled:
    """What a pass that left a model's children as desired knows that a later pass would
    compute again: its inputs, and the parts of the status that follow from the plan.

    A later pass with the same inputs, over children that have changed only in their status
    since (the caller tracks that from the watches), would render the same objects, find no
    drift and write the same plan: :func:`refresh_status` skips straight to the status.
    """

    inputs: bytes  # desired_cache.inputs_key of the body, with the discovery answers
    tier: str
    fits: tuple[ConditionStatus, Reason, str]  # the Fits condition's status, reason and message
    carried: bytes  # endpoint, apiKeySecret and plan, as written (JSON)


def reconcile_model(
    body: Mapping[str, Any],
    *,
    api: KubeApi,
    config: OperatorConfig,
    now: str,
    existing: Children,
    pods: Sequence[Mapping[str, Any]] = (),
    cache: DesiredCache | None = None,
) -> Outcome:
    """Bring the model's children to the desired state and compute its status.

    ``existing`` holds what the watches know of the model's children, by kind and name;
    ``pods`` the model's pods, read to say why it is not Ready (:func:`diagnose`); ``cache``
    keeps the desired state for the model's next pass (:class:`DesiredCache`).
    """
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    old_status: Mapping[str, Any] = body.get("status") or {}
    old_conditions = cond.parse_conditions(old_status.get("conditions"))

    try:
        monitoring, keda = _discovery(api)
        fetch = compute if cache is None else cache.get
        model, state = fetch(body, config, monitoring=monitoring, keda=keda)
    except FitError as exc:
        return _rejected(body, exc, fits=False, existing=existing, now=now, old=old_conditions)
    except SpecError as exc:
        return _rejected(body, exc, fits=None, existing=existing, now=now, old=old_conditions)
    except TransientApiError as exc:
        return _retry(old_status, f"API discovery failed: {exc}")

    served = served_kinds(monitoring_available=monitoring, keda_available=keda)
    considered = {kind: items for kind, items in existing.items() if kind in served}
    report = reconcile_children(
        api,
        model=body,
        desired=state.objects,
        existing=considered,
        autoscaled_minimum=state.plan.min_replicas if state.plan.replicas is None else None,
    )
    if report.terminating:
        # Its namespace is being deleted (so are its children, by the namespace controller):
        # nothing to repair, report or retry -- the model goes next.
        outcome = Outcome(status=dict(old_status), message="the namespace is being deleted", report=report)
        outcome.written = list(report.written)
        return outcome
    if report.transient:
        # Incomplete knowledge: keep the status as it is (no flapping conditions on a serving
        # model) and try again shortly.
        outcome = _retry(old_status, "; ".join(report.transient))
        outcome.written, outcome.failed_kinds = list(report.written), list(report.failed_kinds)
        outcome.report = report
        if report.written:
            outcome.events.extend(
                transition_events(old_conditions, old_status.get("plan"), old_conditions, None, report)
            )
        return outcome
    fits: tuple[ConditionStatus, Reason, str]
    if state.plan.fits is None:
        fits = (
            "Unknown",
            Reason.FIT_UNCHECKED,
            "the model's size is unknown; set spec.model.parametersBillions to check the fit",
        )
    else:
        memory = state.plan.memory
        needs = f"needs {memory.required_gib} GiB of {memory.available_gib} GiB available"
        fits = ("True", Reason.FITS, needs)
    carried = SmallLanguageModelStatus(
        endpoint=endpoint_url(name, namespace),
        api_key_secret=state.plan.api_key.name if state.plan.api_key is not None else None,
        plan=state.plan.public_view(),
    ).to_json()
    tier = model.spec.hardware.tier
    outcome = _status_outcome(
        body,
        now=now,
        fits=fits,
        carried=carried,
        live_deployment=report.live.get((DEPLOYMENT.kind, name)),
        pods=pods,
        tier=tier,
        report=report,
    )
    if outcome.result is Result.OK and not report.foreign:
        try:
            inputs = inputs_key(body, monitoring=monitoring, keda=keda)
        except TypeError:  # not encodable (see DesiredCache.get): no shortcut for this model
            return outcome
        outcome.settled = Settled(inputs, tier, fits, kept_json(carried))
    return outcome


def settled_inputs(body: Mapping[str, Any], api: KubeApi) -> bytes | None:
    """The inputs a :class:`Settled` record is compared with (None: unknown, do a full pass)."""
    try:
        monitoring, keda = _discovery(api)
        return inputs_key(body, monitoring=monitoring, keda=keda)
    except (TransientApiError, TypeError):
        return None


def refresh_status(
    body: Mapping[str, Any],
    *,
    settled: Settled,
    existing: Children,
    pods: Sequence[Mapping[str, Any]] = (),
    now: str,
) -> Outcome:
    """The pass :func:`reconcile_model` would make when ``settled`` still holds (same inputs,
    children changed only in their status): no parse, plan, render or drift check; the status
    from the Deployment and pods the watches show, the rest as the settled pass wrote it."""
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    outcome = _status_outcome(
        body,
        now=now,
        fits=settled.fits,
        carried=orjson.loads(settled.carried),
        live_deployment=existing.get(DEPLOYMENT, {}).get(name),
        pods=pods,
        tier=settled.tier,
        report=ApplyReport(namespace=namespace),
    )
    outcome.settled = settled
    return outcome


def _status_outcome(
    body: Mapping[str, Any],
    *,
    now: str,
    fits: tuple[ConditionStatus, Reason, str],
    carried: Mapping[str, Any],
    live_deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    tier: str,
    report: ApplyReport,
) -> Outcome:
    """The status of a valid model whose children were reconciled (``report``), its Events
    and result: one computation for a full pass and a status refresh."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name"))
    generation = int(meta.get("generation") or 0)
    old_status: Mapping[str, Any] = body.get("status") or {}
    old_conditions = cond.parse_conditions(old_status.get("conditions"))
    deployment = deployment_view(live_deployment)
    why = None if deployment.available else diagnose(pods, live_deployment, tier=tier)

    conditions = cond.set_condition(
        old_conditions, ConditionType.SPEC_VALID, "True", Reason.VALID, "", generation, now
    )
    fit_status, fit_reason, fit_message = fits
    conditions = cond.set_condition(
        conditions, ConditionType.FITS, fit_status, fit_reason, fit_message, generation, now
    )
    conditions = serving_conditions(conditions, deployment, generation, now, why)
    degraded_reason, degraded_message = degradation(report)
    conditions = cond.set_condition(
        conditions,
        ConditionType.DEGRADED,
        "True" if degraded_reason else "False",
        degraded_reason or Reason.AS_EXPECTED,
        degraded_message,
        generation,
        now,
    )
    phase = cond.derive_phase(
        spec_ok=True,
        deployment_exists=deployment.exists,
        available=deployment.available,
        degraded=degraded_reason == Reason.FOREIGN_OBJECT or bool(report.failed),
    )
    status = {**_observed_status(name, generation, phase, conditions, deployment).to_json(), **carried}
    outcome = Outcome(
        status=status,
        written=list(report.written),
        failed_kinds=list(report.failed_kinds),
        report=report,
    )
    outcome.events.extend(
        transition_events(old_conditions, old_status.get("plan"), conditions, status.get("plan"), report)
    )
    if report.failed:
        outcome.result = Result.ERROR
        outcome.message = "; ".join(str(f) for f in report.failed)
        outcome.permanent = True
    return outcome


def _discovery(api: KubeApi) -> tuple[bool, bool]:
    """Whether the Prometheus Operator's and KEDA's APIs are served (discovery, cached by
    :class:`KubeApi`).

    The first is asked even when the spec disables monitoring: the answer also decides which
    kinds are considered for pruning, so a ServiceMonitor is removed once monitoring is turned
    off (the renderer applies the spec's auto/enabled/disabled to this answer).
    """
    return (
        api.has_api(SERVICE_MONITOR.api_version, SERVICE_MONITOR.plural),
        api.has_api(SCALED_OBJECT.api_version, SCALED_OBJECT.plural),
    )


def _rejected(
    body: Mapping[str, Any],
    exc: SpecError,
    *,
    fits: bool | None,
    existing: Children,
    now: str,
    old: Sequence[Condition],
) -> Outcome:
    """An invalid or unfit spec: report every problem, touch no child, keep what serves."""
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    generation = int(meta.get("generation") or 0)
    message = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
    if fits is False:
        conditions = cond.set_condition(
            old, ConditionType.SPEC_VALID, "True", Reason.VALID, "", generation, now
        )
        conditions = cond.set_condition(
            conditions, ConditionType.FITS, "False", Reason.DOES_NOT_FIT, message, generation, now
        )
        reason, condition_type = Reason.DOES_NOT_FIT, ConditionType.FITS
    else:
        conditions = cond.set_condition(
            old, ConditionType.SPEC_VALID, "False", Reason.INVALID_SPEC, message, generation, now
        )
        conditions = cond.set_condition(
            conditions,
            ConditionType.FITS,
            "Unknown",
            Reason.SPEC_INVALID,
            "the spec must be valid first",
            generation,
            now,
        )
        reason, condition_type = Reason.INVALID_SPEC, ConditionType.SPEC_VALID
    del namespace
    live = existing.get(DEPLOYMENT, {}).get(name)
    uid = str(meta.get("uid"))
    owned = live is not None and any(
        r.get("uid") == uid for r in live["metadata"].get("ownerReferences") or []
    )
    deployment = deployment_view(live if owned else None)
    conditions = serving_conditions(conditions, deployment, generation, now)
    degraded = cond.is_true(conditions, ConditionType.DEGRADED)
    phase = cond.derive_phase(
        spec_ok=False, deployment_exists=deployment.exists, available=deployment.available, degraded=degraded
    )
    # No endpoint, API key Secret or plan: left unset, they keep what the last good spec wrote.
    status = _observed_status(name, generation, phase, conditions, deployment)
    outcome = Outcome(status=status.to_json(), result=Result.INVALID, message=message)
    old_condition = cond.get_condition(old, condition_type)
    if old_condition is None or old_condition.reason != reason or old_condition.message != message:
        outcome.events.append(EventNote("Warning", reason, message))
    return outcome


def _observed_status(
    name: str, generation: int, phase: Phase, conditions: list[Condition], deployment: DeploymentView
) -> SmallLanguageModelStatus:
    """What every pass that completes writes: generation, phase, conditions and replicas."""
    return SmallLanguageModelStatus(
        observed_generation=generation,
        phase=phase,
        conditions=conditions,
        replicas=deployment.replicas,
        ready_replicas=deployment.ready_replicas,
        selector=selector_string(name),
    )


def _retry(old: Mapping[str, Any], message: str) -> Outcome:
    return Outcome(status=dict(old), result=Result.RETRY, message=message)
