"""Static security scan (checkov) of everything this repository ships to a cluster.

Scans, in one checkov run: the Helm chart rendered for every value set of the chart tests, the
child objects the operator renders for every example model, and the Dockerfile. Every failed
check must be in security/checkov-skips.yaml for its scope with a reason; every entry there
must still match a finding; docs/security.md must list the same entries.

checkov lives in its own virtualenv (.venv-checkov, built by `make checkov`): its pins clash
with this project's test dependencies. Without it the scan is skipped locally and fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import ROOT, value_sets, write_manifests

from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import load_config
from slm_operator.desired import desired_state
from slm_operator.documents import config_named_in
from slm_operator.render.yaml_out import dump_objects

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIPS_FILE = ROOT / "security" / "checkov-skips.yaml"
SECURITY_DOC = ROOT / "docs" / "security.md"
EXAMPLES = ROOT / "examples"
SCOPES = ("chart", "models", "dockerfile")

Finding = tuple[str, str, str]  # (check id, scope, resource)


def _skips() -> list[dict[str, Any]]:
    skips: list[dict[str, Any]] = yaml.safe_load(SKIPS_FILE.read_text(encoding="utf-8"))["skips"]
    return skips


def _render_examples(directory: Path) -> list[Path]:
    """What `slmctl render` prints for every example: each with the config it names, if any."""
    paths = []
    for example in sorted(EXAMPLES.glob("*.yaml")):
        config = load_config(config_named_in(example))
        for document in yaml.safe_load_all(example.read_text(encoding="utf-8")):
            if not document or document.get("kind") != "SmallLanguageModel":
                continue
            desired = desired_state(
                parse_document(document), config, monitoring_available=True, keda_available=True
            )
            path = directory / f"{document['metadata']['name']}.yaml"
            path.write_text(dump_objects(desired.objects), encoding="utf-8")
            paths.append(path)
    return paths


def _scope(file_path: str) -> str:
    first = file_path.strip("/").split("/")[0]
    return "dockerfile" if first == "Dockerfile" else first


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> set[Finding]:
    if not CHECKOV.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"{CHECKOV.relative_to(ROOT)} is missing: `make checkov` must run before the tests in CI"
            )
        pytest.skip("checkov is not installed: run `make checkov`")
    scan = tmp_path_factory.mktemp("checkov")
    (scan / "chart").mkdir()
    (scan / "models").mkdir()
    assert write_manifests(scan / "chart", list(value_sets()))
    assert _render_examples(scan / "models")
    shutil.copy(ROOT / "Dockerfile", scan / "Dockerfile")
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(scan),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--compact",
            "--quiet",
            "--output",
            "json",
            "--skip-download",
        ],
        # BC_SKIP_MAPPING: no request to the vendor's guideline API (there is no network here).
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Exit code 1 means "some check failed"; anything else is a crash.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, "a framework scanned nothing"
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["check_type"]
        assert report["summary"]["passed"] > 0, report["check_type"]
    return {
        (failed["check_id"], _scope(failed["file_path"]), failed["resource"])
        for report in reports
        for failed in report["results"]["failed_checks"]
    }


def test_every_skip_has_a_reason_and_known_scopes() -> None:
    ids = [skip["id"] for skip in _skips()]
    assert len(ids) == len(set(ids)), "one entry per check id"
    for skip in _skips():
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", skip["id"]), skip
        assert skip["scopes"], skip
        assert set(skip["scopes"]) <= set(SCOPES), skip
        assert len(skip["reason"].split()) >= 8, f"{skip['id']}: the reason must explain the exception"


def test_no_failed_check_outside_the_allow_list(findings: set[Finding]) -> None:
    allowed = {(skip["id"], scope) for skip in _skips() for scope in skip["scopes"]}
    unexpected = sorted(f for f in findings if (f[0], f[1]) not in allowed)
    assert unexpected == []


def test_every_allow_list_entry_is_still_needed(findings: set[Finding]) -> None:
    seen = {(check, scope) for check, scope, _ in findings}
    stale = sorted(
        (skip["id"], scope)
        for skip in _skips()
        for scope in skip["scopes"]
        if (skip["id"], scope) not in seen
    )
    assert stale == [], "remove these entries from security/checkov-skips.yaml and docs/security.md"


def test_operator_deployment_and_dockerfile_pass_every_other_check(findings: set[Finding]) -> None:
    by_scope: dict[str, set[str]] = defaultdict(set)
    for check, scope, _ in findings:
        by_scope[scope].add(check)
    assert by_scope["dockerfile"] == set()
    assert by_scope["chart"] <= {"CKV_K8S_15", "CKV_K8S_43", "CKV2_K8S_6"}


def test_operator_network_policy_satisfies_the_network_policy_check(findings: set[Finding]) -> None:
    # CKV2_K8S_6 is accepted only while networkPolicy.enabled is false (the default): the value
    # set that enables it ("monitoring", its own release) has no finding.
    enabled = [name for name, v in value_sets().items() if v.get("networkPolicy", {}).get("enabled")]
    assert enabled == ["monitoring"]
    flagged = {resource for check, scope, resource in findings if (check, scope) == ("CKV2_K8S_6", "chart")}
    assert flagged, "the default install is expected to be flagged (see security/checkov-skips.yaml)"
    assert not [r for r in flagged if "app.kubernetes.io/instance-monitoring." in r]


def _documented_skips() -> dict[str, tuple[list[str], str]]:
    """Rows ``| CKV_... | scope, scope | reason |`` of docs/security.md's checkov table."""
    rows = {}
    for line in SECURITY_DOC.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\|\s*`?(CKV2?_[A-Z0-9]+_\d+)`?\s*\|([^|]+)\|(.+)\|\s*", line)
        if match:
            scopes = [s.strip() for s in match.group(2).split(",")]
            rows[match.group(1)] = (scopes, " ".join(match.group(3).split()))
    return rows


def test_security_doc_lists_the_same_skips_with_the_same_reasons() -> None:
    documented = _documented_skips()
    expected = {skip["id"]: (skip["scopes"], " ".join(skip["reason"].split())) for skip in _skips()}
    assert documented == expected
