"""Gateway overhead benchmark: the same load sent to a fake runtime directly and through the gateway.

Run it with ``make bench-gateway`` (``python -m bench.gateway``); see docs/benchmarks.md.
"""
