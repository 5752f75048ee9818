"""The vocabulary every part of the operator shares: the API, the planner, the renderer, the
controller and the gateway sidecar all import from here, and this package imports none of them.

What lives here is what two parts must agree on to work together, such as the runtime names the
renderer passes to the gateway's ``--runtime`` flag.
"""
