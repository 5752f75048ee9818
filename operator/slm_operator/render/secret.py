"""The generated API-key Secret ``<name>-api-key``.

It is rendered without any key: the operator fills the value once, when it creates the
Secret, and never rewrites it; ``slmctl render`` therefore never prints a key.
"""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import Plan
from slm_operator.contract.kinds import SECRET
from slm_operator.contract.names import GENERATED_ANNOTATION, api_key_secret_name
from slm_operator.render.meta import child_metadata

GENERATED_API_KEY = "api-key"  # value of the GENERATED_ANNOTATION on the generated Secret


def render_api_key_secret(plan: Plan) -> dict[str, Any] | None:
    """The empty, annotated Secret the operator fills once; ``None`` when none is needed."""
    if not plan.generate_api_key:
        return None
    return {
        "apiVersion": SECRET.api_version,
        "kind": SECRET.kind,
        "metadata": child_metadata(
            plan, api_key_secret_name(plan.name), annotations={GENERATED_ANNOTATION: GENERATED_API_KEY}
        ),
        "type": "Opaque",
    }
