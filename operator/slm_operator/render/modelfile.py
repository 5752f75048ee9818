"""The Ollama Modelfile (ConfigMap ``<name>-modelfile``), read by the ``pull-model`` init container.

A Modelfile is text, so it comes from a jinja2 template; every user value is checked first so
that no value can end its quoting and smuggle in another instruction.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2

from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.plan import Plan
from slm_operator.api.runtime_options import Modelfile
from slm_operator.contract.kinds import CONFIG_MAP
from slm_operator.contract.names import modelfile_configmap_name
from slm_operator.render.meta import child_metadata

MODELFILE_KEY = "Modelfile"
MODELFILE_MOUNT_DIR = "/etc/slm/modelfile"
MODELFILE_PATH = f"{MODELFILE_MOUNT_DIR}/{MODELFILE_KEY}"
FIELD = "spec.ollama.modelfile"
TRIPLE_QUOTE = '"""'
PARAMETER_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("slm_operator.render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Modelfile is not HTML; values are checked below
        keep_trailing_newline=True,
    )
    return environment.get_template("modelfile.j2")


def _parameter_value(field: str, value: float | int | str) -> str:
    if isinstance(value, str):
        # Ollama reads a quoted parameter value up to the next quote; a quote or a line break
        # inside could end it early, so such values are refused rather than escaped.
        if '"' in value or "\n" in value or "\r" in value:
            raise SpecError([SpecProblem(field, "must not contain double quotes or line breaks")])
        return f'"{value}"'
    return repr(value) if isinstance(value, float) else str(value)


def _parameters(modelfile: Modelfile, context_length: int) -> list[tuple[str, str]]:
    values: dict[str, Any] = dict(modelfile.parameters)
    values.setdefault("num_ctx", context_length)
    lines: list[tuple[str, str]] = []
    for name in sorted(values):
        field = f"{FIELD}.parameters.{name}"
        if not PARAMETER_NAME.fullmatch(name):
            raise SpecError([SpecProblem(field, "a parameter name is lower-case letters, digits and '_'")])
        value = values[name]
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            item_field = f"{field}[{index}]" if isinstance(value, list) else field
            lines.append((name, _parameter_value(item_field, item)))
    return lines


def _quotable(field: str, text: str | None) -> str | None:
    if text is not None and TRIPLE_QUOTE in text:
        raise SpecError([SpecProblem(field, 'contains """, which a Modelfile cannot quote; remove it')])
    return text


def render_modelfile_text(model_ref: str, modelfile: Modelfile | None, context_length: int) -> str:
    """The Modelfile text: ``FROM``, sorted ``PARAMETER`` lines, ``SYSTEM``, ``TEMPLATE``, ``MESSAGE``.

    ``num_ctx`` defaults to ``context_length``. Raises :class:`SpecError` naming the field when
    a value cannot be written safely.
    """
    modelfile = modelfile or Modelfile()
    messages = [
        (message.role, _quotable(f"{FIELD}.messages[{index}].content", message.content))
        for index, message in enumerate(modelfile.messages)
    ]
    return _template().render(
        source=model_ref,
        parameters=_parameters(modelfile, context_length),
        system=_quotable(f"{FIELD}.system", modelfile.system),
        template=_quotable(f"{FIELD}.template", modelfile.template),
        messages=messages,
    )


def render_modelfile_configmap(plan: Plan) -> dict[str, Any] | None:
    """ConfigMap ``<name>-modelfile`` holding the plan's Modelfile, or ``None`` when it has none."""
    if plan.modelfile is None:
        return None
    text = render_modelfile_text(plan.model_ref, plan.modelfile, plan.context_length)
    return {
        "apiVersion": CONFIG_MAP.api_version,
        "kind": CONFIG_MAP.kind,
        "metadata": child_metadata(plan, modelfile_configmap_name(plan.name)),
        "data": {MODELFILE_KEY: text},
    }
