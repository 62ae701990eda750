"""The pure core: spec models, the decision and its steps, behavior, trust, the sync step, traces.

Imports no cluster or plotting library (kopf, kubernetes, prometheus_api_client, matplotlib) and
does no I/O but reading trace files (`traces`): the operator, the simulator, the evaluation and
the benchmarks all drive the same code.
"""
