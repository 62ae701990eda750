"""The pure core: spec models, the decision and its steps, behavior, trust, the sync step.

Imports no cluster or plotting library (kopf, kubernetes, prometheus_api_client, matplotlib) and
does no I/O: the operator, the simulator and the benchmarks all drive the same code.
"""
