"""The Ollama Modelfile ConfigMap."""

from __future__ import annotations

from typing import Any

import pytest
from render_cases import case, make_model, make_plan

from slm_operator.api.errors import SpecError
from slm_operator.api.runtime_options import Modelfile, ModelfileMessage
from slm_operator.render.modelfile import render_modelfile_configmap, render_modelfile_text


def test_full_modelfile_text() -> None:
    _model, plan = case("ollama-edge-modelfile").build()
    configmap = render_modelfile_configmap(plan)
    assert configmap is not None
    assert configmap["metadata"]["name"] == "m1-modelfile"
    assert configmap["data"]["Modelfile"] == (
        "FROM phi4-mini:3.8b-q4_K_M\n"
        "PARAMETER num_ctx 4096\n"
        'PARAMETER stop "<|im_end|>"\n'
        'PARAMETER stop "<|user|>"\n'
        "PARAMETER temperature 0.3\n"
        'SYSTEM """Be brief."""\n'
        'TEMPLATE """{{ .Prompt }}"""\n'
        'MESSAGE user """Hi"""\n'
        'MESSAGE assistant """Hello."""\n'
    )


def test_explicit_num_ctx_wins_over_the_context_length() -> None:
    text = render_modelfile_text("x:1", Modelfile(parameters={"num_ctx": 2048}), 8192)
    assert text == "FROM x:1\nPARAMETER num_ctx 2048\n"


def test_multiline_system_prompt_is_kept_verbatim() -> None:
    text = render_modelfile_text("x:1", Modelfile(system="line one\nline two"), 512)
    assert 'SYSTEM """line one\nline two"""\n' in text


def unchecked(**fields: Any) -> Modelfile:
    """A Modelfile that skipped the spec's validation: the renderer must still refuse bad text."""
    values: dict[str, Any] = {"system": None, "template": None, "parameters": {}, "messages": []}
    values.update(fields)
    return Modelfile.model_construct(**values)


@pytest.mark.parametrize(
    ("modelfile", "field"),
    [
        (unchecked(system='say """hi"""'), "spec.ollama.modelfile.system"),
        (unchecked(template='{{ .Prompt }}"""'), "spec.ollama.modelfile.template"),
        (
            unchecked(messages=[ModelfileMessage.model_construct(role="user", content='a"""b')]),
            "spec.ollama.modelfile.messages[0].content",
        ),
        (unchecked(parameters={"stop": ['a"\nSYSTEM evil']}), "spec.ollama.modelfile.parameters.stop[0]"),
        (unchecked(parameters={"x\nFROM evil": 1}), "spec.ollama.modelfile.parameters.x\nFROM evil"),
    ],
)
def test_text_that_would_escape_its_quoting_is_refused(modelfile: Modelfile, field: str) -> None:
    with pytest.raises(SpecError) as info:
        render_modelfile_text("x:1", modelfile, 512)
    assert [p.field for p in info.value.problems] == [field]


def test_no_configmap_without_a_modelfile_or_on_vllm() -> None:
    _model, plan = case("ollama-cpu").build()
    assert render_modelfile_configmap(plan) is None
    vllm = make_model(hardware={"tier": "gpu-small"}, ollama={"modelfile": {"system": "hi"}})
    assert render_modelfile_configmap(make_plan(vllm)) is None


def test_gguf_on_a_claim_gets_a_modelfile_from_the_file() -> None:
    _model, plan = case("ollama-pvc-source").build()
    configmap = render_modelfile_configmap(plan)
    assert configmap is not None
    assert configmap["data"]["Modelfile"] == "FROM /models/smollm2.gguf\nPARAMETER num_ctx 8192\n"
