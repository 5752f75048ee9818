"""`slmctl` as users and pipelines call it: output shapes, exit codes, problem lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from slm_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PLAN_KEYS = {
    "name",
    "namespace",
    "runtime",
    "image",
    "modelRef",
    "quantization",
    "dtype",
    "tier",
    "gpus",
    "memory",
    "fits",
    "reasons",
}
LORA_EXAMPLES = {"qwen3-8b-lora"}  # qwen3-4b-offline: size unknown, no loraGiB
MEMORY_KEYS = {
    "weightsGiB",
    "kvCacheGiB",
    "overheadGiB",
    "requiredGiB",
    "availableGiB",
    "loadPeakGiB",
    "fullLengthRequests",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def example_models() -> list[dict[str, object]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs.extend(
            d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "SmallLanguageModel"
        )
    return docs


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MODEL = """\
apiVersion: slm.dev/v1alpha1
kind: SmallLanguageModel
metadata: {{name: {name}, namespace: t}}
spec:
  model: {{catalog: {catalog}}}
  hardware: {{tier: {tier}}}
"""


def test_plan_of_every_example_succeeds_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", str(EXAMPLES), "-o", "json")
    assert code == 0, err
    plans = json.loads(out)
    assert {(p["namespace"], p["name"]) for p in plans} == {
        (d["metadata"]["namespace"], d["metadata"]["name"])  # type: ignore[index]
        for d in example_models()
    }
    for p in plans:
        assert set(p) >= PLAN_KEYS, p["name"]
        # Unknown figures (no KV estimate outside the catalog, no load peak) are left out.
        assert {"availableGiB"} <= set(p["memory"]) - {"loraGiB"} <= MEMORY_KEYS
        assert ("loraGiB" in p["memory"]) == (p["name"] in LORA_EXAMPLES)
        assert p["reasons"], p["name"]
        assert p["fits"] in (True, None)


def test_plan_table_explains_each_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(EXAMPLES / "phi-4-mini-gpu.yaml"))
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[:3] == ["MODEL", "RUNTIME", "TIER"]
    assert "ai/phi-4-mini" in out
    assert "memory GiB: weights" in out
    assert "- runtime vllm" in out


def test_plan_yaml_output_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(EXAMPLES / "phi-4-mini-cpu.yaml"), "-o", "yaml")
    assert code == 0
    [p] = yaml.safe_load(out)
    assert p["runtime"] == "ollama"


def test_plan_reports_every_problem_on_its_own_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        MODEL.format(name="ok", catalog="qwen3-0.6b", tier="cpu")
        + "---\n"
        + MODEL.format(name="bad-tier", catalog="qwen3-0.6b", tier="no-such-tier")
        + "---\n"
        + "apiVersion: slm.dev/v1alpha1\nkind: SmallLanguageModel\nmetadata: {name: two-problems}\n"
        + "spec:\n  model: {catalog: qwen3-0.6b, contextLength: 5}\n  maxConcurrency: 0\n"
    )
    path = write(tmp_path, "models.yaml", text)
    code, out, err = run(capsys, "plan", str(path), "-o", "json")
    assert code == 2
    assert [p["name"] for p in json.loads(out)] == ["ok"]
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert f"{path}#1: t/bad-tier: spec.hardware.tier: unknown tier" in lines[0]
    assert any("spec.model.contextLength" in line for line in lines[1:])
    assert any("spec.maxConcurrency" in line for line in lines[1:])


def test_plan_refuses_a_model_that_does_not_fit_with_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "big.yaml", MODEL.format(name="big", catalog="qwen3-30b-a3b", tier="edge"))
    code, _, err = run(capsys, "plan", str(path))
    assert code == 2
    assert "spec.hardware.tier: qwen3-30b-a3b does not fit tier edge" in err
    assert "GiB" in err


def test_plan_tier_flag_overrides_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", str(EXAMPLES / "phi-4-mini-gpu.yaml"), "--tier", "nvidia-h100-80gb", "-o", "json"
    )
    assert code == 0
    [p] = json.loads(out)
    assert p["tier"] == "nvidia-h100-80gb"
    assert p["dtype"] == "bfloat16"


def test_plan_uses_the_config_named_in_the_file_or_given_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workstation = EXAMPLES / "qwen3-4b-workstation.yaml"
    code, out, _ = run(capsys, "plan", str(workstation), "-o", "json")
    assert code == 0
    assert json.loads(out)[0]["tier"] == "rtx-4090"

    copy = write(tmp_path, "copy.yaml", "\n".join(workstation.read_text().splitlines()[1:]))
    code, _, err = run(capsys, "plan", str(copy))
    assert code == 2
    assert "unknown tier 'rtx-4090'" in err
    code, _, _ = run(capsys, "plan", str(copy), "--config", str(EXAMPLES / "operator-config.yaml"))
    assert code == 0


def test_bad_config_and_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "config.yaml", "tiers:\n  cpu:\n    memoryGiB: -1\n")
    code, _, err = run(capsys, "plan", str(EXAMPLES / "phi-4-mini-cpu.yaml"), "--config", str(config))
    assert code == 2
    assert "tiers.cpu.memoryGiB" in err
    code, _, err = run(capsys, "plan", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "no such file" in err


def test_invalid_yaml_and_files_without_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    code, _, err = run(capsys, "plan", str(broken))
    assert code == 2
    assert "invalid YAML" in err
    other = write(tmp_path, "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")
    code, _, err = run(capsys, "plan", str(other))
    assert code == 2
    assert "no SmallLanguageModel document" in err


def test_catalog_and_tiers_list_everything_and_flag_unverified_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "catalog", "-o", "json")
    assert code == 0
    catalog = json.loads(out)
    assert {"phi-4-mini", "qwen3-30b-a3b", "gemma-3-270m", "mistral-7b-v0.3"} <= set(catalog)
    code, out, _ = run(capsys, "catalog")
    assert code == 0
    assert "Not verified at the source" in out
    unverified_rows = [line for line in out.splitlines() if line.rstrip().endswith(" NO")]
    assert unverified_rows
    code, out, _ = run(capsys, "tiers", "-o", "json")
    assert code == 0
    assert {"cpu", "edge", "gpu-small", "gpu-medium", "gpu-large", "nvidia-t4", "nvidia-h100-80gb"} <= set(
        json.loads(out)
    )
    code, out, _ = run(capsys, "tiers", "--config", str(EXAMPLES / "operator-config.yaml"))
    assert code == 0
    assert "rtx-4090" in out


def test_render_prints_multi_document_yaml_without_secret_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", str(EXAMPLES / "phi-4-mini-gpu.yaml"))
    assert code == 0, err
    objects = list(yaml.safe_load_all(out))
    kinds = [o["kind"] for o in objects]
    assert {"Deployment", "Service", "NetworkPolicy", "Secret"} <= set(kinds)
    for obj in objects:
        if obj["kind"] == "Secret":
            assert "data" not in obj
            assert "stringData" not in obj
    again = run(capsys, "render", str(EXAMPLES / "phi-4-mini-gpu.yaml"))[1]
    assert again == out


def test_render_refuses_invalid_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "gated.yaml", MODEL.format(name="g", catalog="gemma-3-4b", tier="gpu-medium"))
    code, out, err = run(capsys, "render", str(path))
    assert code == 2
    assert out == ""
    assert "spec.modelAccessSecretRef" in err


def test_crd_command_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    assert code == 0
    assert out == (ROOT / "crds" / "slm.dev_smalllanguagemodels.yaml").read_text()


def test_render_keda_engine_needs_the_keda_flag(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES / "qwen3-8b-l4-keda.yaml")
    code, out, err = run(capsys, "render", example)
    assert code == 2
    assert out == ""
    assert "spec.autoscaling.engine" in err
    code, out, err = run(capsys, "render", "--keda-available", example)
    assert code == 0, err
    kinds = [o["kind"] for o in yaml.safe_load_all(out)]
    assert "ScaledObject" in kinds
    assert "HorizontalPodAutoscaler" not in kinds


# --- help, filters, wide output, terminal width, completion -------------------------------------

SUBCOMMANDS = ("plan", "render", "crd", "catalog", "tiers", "completion", "run", "gateway")


def test_every_subcommand_has_a_one_line_summary_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    listing = out.split("\n  COMMAND\n", 1)[1].split("\noptions:")[0]
    summaries: dict[str, str] = {}
    current = ""
    for line in listing.splitlines():
        words = line.split()
        if line.startswith("    ") and not line.startswith("      ") and words:
            current = words[0]
            summaries[current] = " ".join(words[1:])
        elif current:
            summaries[current] = (summaries[current] + " " + " ".join(words)).strip()
    assert set(summaries) == set(SUBCOMMANDS)
    for name, summary in summaries.items():
        assert len(summary) > 10, name


@pytest.mark.parametrize("command", ["plan", "render", "crd", "catalog", "tiers", "completion"])
def test_subcommand_help_opens_with_its_summary(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description[0].isupper()
    assert description.rstrip().endswith(".")


@pytest.mark.parametrize(
    ("command", "choices"),
    [("plan", "table, wide, json, yaml"), ("catalog", "table, wide, json"), ("tiers", "table, wide, json")],
)
def test_output_flag_help_lists_its_choices(
    command: str, choices: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    listed = re.sub(r"\s*\([^)]*\)", "", out.split("output format: ", 1)[1])
    assert listed.strip() == choices


def test_catalog_name_filters_by_id_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "catalog", "phi-4-mini", "-o", "json")
    assert code == 0
    assert list(json.loads(out)) == ["phi-4-mini"]
    code, out, _ = run(capsys, "catalog", "qwen3-*", "smollm2-135m", "-o", "json")
    assert code == 0
    ids = list(json.loads(out))
    assert "smollm2-135m" in ids
    assert ids
    assert all(i.startswith("qwen3-") for i in ids if i != "smollm2-135m")
    code, out, _ = run(capsys, "catalog", "phi-4-mini")
    rows = out.split("\n\n")[0].splitlines()[1:]
    assert rows
    assert {row.split()[0] for row in rows} == {"phi-4-mini"}


def test_catalog_and_tiers_name_that_matches_nothing_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "catalog", "phi-4-mimi")
    assert code == 2
    assert out == ""
    assert "no catalog model 'phi-4-mimi'; did you mean phi-4-mini" in err
    code, _, err = run(capsys, "tiers", "nvidia-l5")
    assert code == 2
    assert "no tier 'nvidia-l5'; did you mean nvidia-l4" in err


def test_tiers_name_filters(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tiers", "nvidia-*", "-o", "json")
    assert code == 0
    assert set(json.loads(out)) == {
        t for t in json.loads(run(capsys, "tiers", "-o", "json")[1]) if "nvidia" in t
    }


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["catalog", "smollm2-135m"], ["NAME", "FAMILY", "BITS", "LAYERS"]),
        (["tiers", "cpu"], ["CPU", "CPU-LIMIT", "TOLERATES"]),
        (
            ["plan", str(EXAMPLES / "smollm2-135m-edge.yaml")],
            ["CONTEXT", "CONCURRENCY", "SERVED-AS", "IMAGE"],
        ),
    ],
)
def test_wide_output_adds_columns(
    argv: list[str], extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, table, _ = run(capsys, *argv)
    code, wide, _ = run(capsys, *argv, "-o", "wide")
    assert code == 0
    table_header, wide_header = table.splitlines()[0].split(), wide.splitlines()[0].split()
    assert not set(extra) & set(table_header)
    assert set(extra) <= set(wide_header)
    assert set(table_header) <= set(wide_header)


def test_tables_fit_the_terminal_width_and_wide_never_shortens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    _, unlimited, _ = run(capsys, "tiers")  # captured output is no terminal: nothing shortened
    assert max(len(line) for line in unlimited.splitlines()) > 120
    assert "…" not in unlimited
    monkeypatch.setenv("COLUMNS", "100")
    _, fitted, _ = run(capsys, "tiers")
    assert max(len(line) for line in fitted.splitlines()) <= 100
    assert "…" in fitted
    assert [line.split()[0] for line in fitted.splitlines()] == [
        line.split()[0] for line in unlimited.splitlines()
    ]
    _, wide, _ = run(capsys, "tiers", "-o", "wide")
    assert "…" not in wide
    assert max(len(line) for line in wide.splitlines()) > 100


def test_format_table_shrinks_only_the_named_columns() -> None:
    from slm_operator.tables import format_table

    rows = [("A", "LONG", "B"), ("x", "y" * 40, "z")]
    assert format_table(rows) == f"A  LONG{' ' * 38}B\nx  {'y' * 40}  z\n"
    fitted = format_table(rows, width=30, shrink=(1,))
    assert fitted.splitlines()[1] == "x  " + "y" * 23 + "…  z"
    assert max(len(line) for line in fitted.splitlines()) <= 30
    # Never below 12 characters, even if the table then stays wider than asked.
    assert format_table(rows, width=5, shrink=(1,)).splitlines()[1] == "x  " + "y" * 11 + "…  z"
