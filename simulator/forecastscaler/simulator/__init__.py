"""Trace replay: the ForecastScaler decision, the HPA and an oracle on real load.

Notebook use::

    from forecastscaler.simulator import simulate
    result = simulate("trace.csv")
    result.scores, result.frames["forecast"], result.syncs["forecast"]
"""

from forecastscaler.core.traces import Trace, TraceError, load_trace
from forecastscaler.simulator.api import SimulationResult, build_world, make_policies, simulate

__all__ = [
    "SimulationResult",
    "Trace",
    "TraceError",
    "build_world",
    "load_trace",
    "make_policies",
    "simulate",
]
