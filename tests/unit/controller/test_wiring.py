"""Command line, kopf settings, status patches, API paths and metrics of the operator shell."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys

import kopf
import pytest

from slm_operator.contract.kinds import DEPLOYMENT, HPA, MANAGED_KINDS, SECRET, SERVICE_MONITOR
from slm_operator.controller.bodies import only_status_changed, reported_status_changed, status_patch
from slm_operator.controller.handlers import BUILT_IN_KINDS, OPTIONAL_KINDS, ControllerContext
from slm_operator.controller.kubeapi import KubeApi, collection_path, object_path
from slm_operator.controller.metrics import OperatorMetrics
from slm_operator.controller.run import build_operator, configure_logging, parse_options
from slm_operator.controller.settings import Timeouts, configure


def test_defaults_serve_all_namespaces_with_metrics_on_9090(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLM_OPERATOR_CONFIG", raising=False)
    options = parse_options([])
    assert options.clusterwide
    assert options.metrics_port == 9090
    assert options.config_path is None


def test_namespaces_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_OPERATOR_CONFIG", "/etc/slm/config.yaml")
    options = parse_options(
        ["--namespace", "a", "-n", "b", "--standalone", "--liveness", "http://0.0.0.0:8080/healthz"]
    )
    assert options.namespaces == ("a", "b")
    assert not options.clusterwide
    assert options.config_path == "/etc/slm/config.yaml"
    assert options.liveness == "http://0.0.0.0:8080/healthz"


def test_peering_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--peering"])
    error = capsys.readouterr().err
    assert "--peering is no longer supported" in error
    assert "one replica" in error


def test_log_level_and_format(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_options([])
    assert (defaults.log_level, defaults.log_format) == ("info", "full")
    assert parse_options(["-v"]).log_level == "debug"
    options = parse_options(["--log-level", "warning", "--log-format", "json"])
    assert (options.log_level, options.log_format) == ("warning", "json")
    with pytest.raises(SystemExit):
        parse_options(["--log-format", "yaml"])
    with pytest.raises(SystemExit):
        parse_options(["--log-level", "trace"])
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    configure_logging(options)
    assert root.level == logging.WARNING
    (handler,) = [h for h in root.handlers if type(h).__name__ == "_KopfStreamHandler"]
    record = logging.LogRecord("slm", logging.WARNING, __file__, 1, "hello", None, None)
    assert '"message": "hello"' in handler.format(record)
    configure_logging(parse_options(["--log-level", "error", "--log-format", "plain"]))
    assert root.level == logging.ERROR
    (handler,) = [h for h in root.handlers if type(h).__name__ == "_KopfStreamHandler"]
    assert handler.format(record) == "hello"


def test_all_namespaces_and_namespace_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse_options(["--all-namespaces", "--namespace", "a"])


def test_settings_are_pinned() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, timeouts=Timeouts(connect=7, request=45))
    # kopf handles no resource: it scans no CRDs or namespaces, posts no Events, never peers.
    assert settings.scanning.disabled is True
    assert settings.posting.enabled is False
    assert settings.peering.standalone is True
    assert settings.peering.mandatory is False
    assert (settings.networking.connect_timeout, settings.networking.request_timeout) == (7, 45)


def test_status_patch_holds_only_changes() -> None:
    old = {"phase": "Ready", "replicas": 1, "apiKeySecret": "m-api-key"}
    assert status_patch(old, {"phase": "Ready", "replicas": 1, "apiKeySecret": "m-api-key"}) == {}
    assert status_patch(old, {"phase": "Deploying", "replicas": 1, "apiKeySecret": None}) == {
        "phase": "Deploying",
        "apiKeySecret": None,
    }
    assert status_patch({}, {"apiKeySecret": None}) == {}


def test_api_paths() -> None:
    assert collection_path(SECRET, "ns") == "/api/v1/namespaces/ns/secrets"
    assert object_path(DEPLOYMENT, "ns", "m") == "/apis/apps/v1/namespaces/ns/deployments/m"
    assert (
        object_path(SERVICE_MONITOR, "ns", "m")
        == "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/m"
    )


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_metrics_count_reconciles_phases_and_apply_errors() -> None:
    metrics = OperatorMetrics()
    metrics.observe_reconcile("ok", 0.2)
    metrics.observe_reconcile("ok", 0.3)
    metrics.observe_reconcile("invalid", 0.1)
    metrics.apply_errors.labels(kind="Deployment").inc()
    metrics.set_phase("ns", "a", "Ready")
    metrics.set_phase("ns", "b", "Ready")
    metrics.set_phase("ns", "b", "Degraded")
    metrics.set_phase("ns", "c", "Ready")
    metrics.set_phase("ns", "c", "Ready")  # the same again: counted once
    metrics.set_phase("ns", "c", None)
    metrics.set_phase("ns", "gone", None)  # never seen: nothing to forget
    metrics.set_phase("ns", "d", "Deploying")
    metrics.set_phase("ns", "d", "Ready")
    metrics.set_phase("ns", "d", "Degraded")
    metrics.set_phase("ns", "d", "Ready")
    assert _value(metrics, "slm_operator_reconcile_total", result="ok") == 2
    assert _value(metrics, "slm_operator_reconcile_duration_seconds_count", result="invalid") == 1
    assert _value(metrics, "slm_operator_models", phase="Ready") == 2
    assert _value(metrics, "slm_operator_models", phase="Degraded") == 1
    assert _value(metrics, "slm_operator_models", phase="Deploying") == 0
    assert _value(metrics, "slm_operator_models", phase="Failed") == 0
    assert _value(metrics, "slm_operator_apply_errors_total", kind="Deployment") == 1
    versions = [s.labels["version"] for m in metrics.build_info.collect() for s in m.samples]
    assert len(versions) == 1


def test_kopf_handles_no_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    # kopf would keep a diff base and progress for create/update/resume handlers, and add a
    # finalizer for timers and daemons: the operator registers no resource handler at all,
    # only the login; the models, children and pods are streamed by the context itself.
    monkeypatch.setattr(KubeApi, "from_environment", classmethod(lambda cls, **_: cls(client=None)))
    registry, _, ctx = build_operator(parse_options([]))
    assert registry._spawning.get_all_handlers() == []
    assert registry._changing.get_all_handlers() == []
    assert registry._watching.get_all_handlers() == []
    assert registry._indexing.get_all_handlers() == []
    assert [h.id for h in registry._activities.get_all_handlers()] == ["login"]
    assert isinstance(ctx, ControllerContext)
    assert sorted(kind.plural for kind in BUILT_IN_KINDS + OPTIONAL_KINDS) == sorted(
        kind.plural for kind in MANAGED_KINDS
    )


async def test_queue_depth_is_exported_while_the_workers_run() -> None:
    metrics = OperatorMetrics()
    ctx = ControllerContext(api=None, config=None, metrics=metrics, workers=0)  # type: ignore[arg-type]
    ctx.start()
    try:
        ctx.models[("ns", "a")] = {"metadata": {"namespace": "ns", "name": "a"}}
        ctx.models[("ns", "b")] = {"metadata": {"namespace": "ns", "name": "b"}}
        ctx.enqueue("ns", "a")
        ctx.enqueue("ns", "b")
        ctx.enqueue("ns", "a")
        ctx.enqueue("ns", "unknown")  # not a model this operator has seen
        assert metrics.registry.get_sample_value("slm_operator_queue_depth") == 2
    finally:
        await ctx.stop()


def test_watch_timeout_is_whole_seconds() -> None:
    """The API server parses a watch's timeoutSeconds as an integer: "300.0" is a 400."""
    assert type(parse_options([]).watch_timeout) is int
    assert type(parse_options(["--watch-timeout", "20"]).watch_timeout) is int


def _pod(
    phase: str, *, conditions: list[dict[str, str]] | None = None, name: str = "m-1"
) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"slm.dev/model": "m"}},
        "spec": {"containers": [{"name": "server", "image": "img"}]},
        "status": {"phase": phase, "conditions": conditions or []},
    }


def test_only_pod_events_that_change_the_diagnosis_queue_the_model() -> None:
    ctx = ControllerContext(api=None, config=None, metrics=OperatorMetrics())  # type: ignore[arg-type]
    ctx.models[("ns", "m")] = {"metadata": {"namespace": "ns", "name": "m"}}
    ctx.pod_changed(None, _pod("Pending"))  # the initial listing queues nothing
    # Created, scheduled, running, ready: the Deployment's status tells that; no pass each.
    ctx.pod_changed("ADDED", _pod("Pending", name="m-2"))
    ctx.pod_changed("MODIFIED", _pod("Running", name="m-2", conditions=[{"type": "Ready", "status": "True"}]))
    assert len(ctx.queue) == 0
    assert set(ctx.pods[("ns", "m")]) == {"m-1", "m-2"}
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3"}
    ctx.pod_changed("MODIFIED", _pod("Pending", conditions=[unschedulable]))
    assert len(ctx.queue) == 1  # Ready now says why it cannot run
    ctx.queue = type(ctx.queue)()
    ctx.pod_changed("DELETED", _pod("Pending", conditions=[unschedulable]))
    assert len(ctx.queue) == 1  # and no longer, once that pod is gone
    assert set(ctx.pods[("ns", "m")]) == {"m-2"}


def test_a_pod_event_compares_with_what_the_pods_said_before_it() -> None:
    """Each model's diagnosis from its pods is kept from event to event: a failure known from
    the listing queues nothing again while it lasts, and a forgotten model starts afresh."""
    ctx = ControllerContext(api=None, config=None, metrics=OperatorMetrics())  # type: ignore[arg-type]
    ctx.models[("ns", "m")] = {"metadata": {"namespace": "ns", "name": "m"}}
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3"}
    ctx.pod_changed(None, _pod("Pending", conditions=[unschedulable]))
    ctx.pod_changed("ADDED", _pod("Pending", name="m-2"))
    ctx.pod_changed("MODIFIED", _pod("Pending", conditions=[unschedulable]))  # still the same reason
    assert len(ctx.queue) == 0
    ctx.forget("ns", "m")  # deleted while its pod could not be scheduled
    ctx.models[("ns", "m")] = {"metadata": {"namespace": "ns", "name": "m"}}  # and created again
    ctx.pod_changed("ADDED", _pod("Pending", conditions=[unschedulable]))
    assert ctx.queue.pending(("ns", "m"))  # news for the new model
    ctx.queue = type(ctx.queue)()
    ctx.pod_changed("MODIFIED", _pod("Running", conditions=[{"type": "Ready", "status": "True"}]))
    assert ctx.queue.pending(("ns", "m"))  # the failure is over


def _deployment(**status: object) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "ns", "generation": 1, "resourceVersion": "5"},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, **status},
    }


def test_a_child_status_change_queues_a_pass_only_when_the_model_reports_it() -> None:
    before = _deployment(replicas=1, availableReplicas=0, conditions=[{"type": "Progressing"}])
    after = _deployment(replicas=1, availableReplicas=0, conditions=[{"type": "Progressing", "x": "y"}])
    after["metadata"] = {**after["metadata"], "resourceVersion": "6"}  # type: ignore[dict-item]
    assert only_status_changed(DEPLOYMENT, before, after)
    assert not reported_status_changed(DEPLOYMENT, before, after)  # nothing the model shows changed
    ready = _deployment(replicas=1, readyReplicas=1, availableReplicas=1, updatedReplicas=1)
    assert only_status_changed(DEPLOYMENT, before, ready)
    assert reported_status_changed(DEPLOYMENT, before, ready)  # readyReplicas is in the model's status
    # Any other kind's status is never read.
    hpa = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "m"}, "spec": {"minReplicas": 2}}
    assert only_status_changed(HPA, {**hpa, "status": {"currentReplicas": 1}}, {**hpa, "status": {}})
    assert not reported_status_changed(HPA, {**hpa, "status": {"currentReplicas": 1}}, {**hpa, "status": {}})
    # But a changed spec or label is a possible drift.
    assert not only_status_changed(HPA, hpa, {**hpa, "spec": {"minReplicas": 3}})
    relabelled = {**hpa, "metadata": {"name": "m", "labels": {"a": "b"}}}
    assert not only_status_changed(HPA, hpa, relabelled)


def test_the_deployment_controllers_revision_annotation_is_not_drift() -> None:
    before = _deployment(replicas=1, availableReplicas=0)
    ours = {"slm.dev/applied-hash": "abc"}
    before["metadata"] = {**before["metadata"], "annotations": ours}  # type: ignore[dict-item]
    numbered = copy.deepcopy(before)
    numbered["metadata"]["annotations"] = {**ours, "deployment.kubernetes.io/revision": "1"}  # type: ignore[index]
    assert only_status_changed(DEPLOYMENT, before, numbered)
    assert not reported_status_changed(DEPLOYMENT, before, numbered)
    # Any other annotation, ours or someone's, is still a possible drift.
    edited = copy.deepcopy(numbered)
    edited["metadata"]["annotations"]["slm.dev/applied-hash"] = "def"  # type: ignore[index]
    assert not only_status_changed(DEPLOYMENT, numbered, edited)
    added = copy.deepcopy(numbered)
    added["metadata"]["annotations"]["example.com/note"] = "x"  # type: ignore[index]
    assert not only_status_changed(DEPLOYMENT, numbered, added)


def test_the_garbage_collector_skips_start_up_and_collects_less_often() -> None:
    # In a child process: the setting is process-wide.
    code = (
        "import gc; from slm_operator.controller.run import GC_YOUNG_THRESHOLD, tune_gc; "
        "before = gc.get_threshold(); tune_gc(); after = gc.get_threshold(); "
        "assert after == (GC_YOUNG_THRESHOLD, before[1], before[2]), after; "
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
