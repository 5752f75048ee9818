"""The operator at N models on the simulated cluster, against a minimal kopf baseline."""
