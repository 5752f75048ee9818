"""The renderer: a plan plus the spec and operator config become the desired child objects.

Pure (no kopf, no Kubernetes client): the operator, ``slmctl render`` and the tests share it.
"""

from slm_operator.render.children import render_children

__all__ = ["render_children"]
