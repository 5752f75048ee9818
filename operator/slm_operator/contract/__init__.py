"""The vocabulary every part of the operator shares: the API, the planner, the renderer, the
controller and the gateway sidecar all import from here, and this package imports none of them
(an import contract in pyproject.toml checks it).

What lives here is what two parts must agree on to work together: the runtimes
(:mod:`~slm_operator.contract.runtime`, whose names the renderer passes to the gateway's
``--runtime`` flag), the kinds of object the operator manages (:mod:`~slm_operator.contract.kinds`,
which RBAC, watches and pruning derive from) and the labels, names, field manager, ports and
mount paths the renderer writes and the controller and gateway rely on
(:mod:`~slm_operator.contract.names`); and the event loop both long-running processes run on
(:mod:`~slm_operator.contract.eventloop`).
"""
