"""Parity: the operator's real `Reconciler.sync` and the simulator's forecast policy, replayed
through the same world, make the same decision at every sync.

The Reconciler runs as a replay policy: each engine tick sets the in-process target's replicas
to the engine's count, serves the trace's completed steps as Prometheus would (the current value
and range queries on the step grid), sets the virtual clock to the tick and awaits one real sync
(its thread pools, its incremental fetches and merges, its streaming anomaly detector, its status
patches), on the shared fakes of /scale and status (tests/fakes); the replicas it writes to /scale
are its decision. The simulator's `ForecastPolicy` replays the same world with its batch detector
and whole-window history. Anything that drifts between the two paths (fetch windows, refit
schedule, anomaly scoring, trust, the decision and its memory) shows up as a differing decision.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.traces import bundled_trace_path, load_trace
from forecastscaler.operator.prometheus import Endpoint, NoData, PrometheusSource
from forecastscaler.operator.reconcile import ObjectState, Reconciler
from forecastscaler.operator.settings import OperatorConfig
from forecastscaler.simulator.api import build_world
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.forecast_policy import ForecastPolicy
from forecastscaler.simulator.world import PastView, World
from tests.fakes import FakeKube, FakeServices, VirtualClock

TARGET = ("default", "web")


class WorldPrometheus(PrometheusSource):
    """The completed steps of the trace, as Prometheus answers for them: a gap is no data."""

    def __init__(self) -> None:
        super().__init__(Endpoint(url="http://world.invalid"))
        self.past: PastView | None = None

    def current(self, query: str, at: datetime | None = None) -> float:
        assert self.past is not None
        value = self.past.current_load()
        if value is None:
            raise NoData(f"query {query!r} returned no data")
        return value

    def history(self, query: str, start: datetime, end: datetime, step_seconds: float) -> pd.Series:
        assert self.past is not None
        series = self.past.history(start.timestamp())
        return series[series.index <= pd.Timestamp(end)]


class ReconcilerPolicy:
    """The operator's Reconciler as a replay policy (the engine's Policy protocol)."""

    name = "reconciler"

    def __init__(self, spec: ForecastScalerSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec, self.loop, self.clock = spec, loop, VirtualClock()
        self.body: dict[str, Any] = {
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
        self.kube = FakeKube({TARGET: self.body})
        self.prometheus = WorldPrometheus()
        self.services = FakeServices(
            kube=self.kube,
            config=OperatorConfig(),
            pool=ThreadPoolExecutor(max_workers=1),
            emit=lambda *_: None,
            clock=self.clock,
            make_source=lambda _endpoint: self.prometheus,
        )
        self.reconciler = Reconciler(self.services)
        self.state = ObjectState()
        self.decisions: list[tuple[float, int, int, str]] = []
        self.logger = logging.getLogger("parity")

    def tick_times(self, world: World) -> np.ndarray:
        interval = self.spec.interval_seconds
        return np.arange(world.start_time, world.end_time, interval, dtype=np.float64)

    def initial_replicas(self, world: World) -> int:
        first = world.initial_replicas()
        return min(max(first, self.spec.min_replicas), self.spec.max_replicas)

    def decide(self, now: float, past: PastView, current: int) -> int:
        self.clock.now, self.kube.replicas[TARGET] = now, current
        self.prometheus.past = past
        self.loop.run_until_complete(self.reconciler.sync(self.body, self.state, self.logger))
        reason = self.body["status"]["lastDecision"]["reason"]
        replicas = self.kube.replicas[TARGET]
        self.decisions.append((now, current, replicas, reason))
        return replicas


def _spec(anomaly: bool) -> ForecastScalerSpec:
    return ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 60,
            "interval": "10m",
            "metric": {"query": "sum(rate(requests_total[5m]))", "targetPerReplica": 20_000},
            "forecast": {
                "models": ["seasonalNaive", "lastValue"],
                "step": "1h",
                "horizon": "1h",
                "history": "7d",
                "retrainInterval": "6h",
            },
            "anomaly": {"enabled": anomaly},
        }
    )


SCENARIOS = [
    # The longer replay (the detector runs at every sync) is `slow`: make test runs it.
    pytest.param(True, id="ensemble-with-anomaly-detection", marks=pytest.mark.slow),
    pytest.param(False, id="ensemble-without-anomaly-detection"),
]


@pytest.mark.parametrize("anomaly", SCENARIOS)
def test_reconciler_and_simulator_decide_alike_at_every_sync(anomaly: bool) -> None:
    trace = load_trace(bundled_trace_path())
    world = build_world(trace, startup="2m", warmup=0.5)
    spec = _spec(anomaly)
    simulated = ForecastPolicy(spec, trace_step=trace.step_seconds)
    replay(world, simulated)
    loop = asyncio.new_event_loop()
    try:
        operated = ReconcilerPolicy(spec, loop)
        replay(world, operated)
    finally:
        loop.close()
    sim = [(r.time, r.current, r.desired, r.reason) for r in simulated.records]
    assert len(operated.decisions) == len(sim) > 500
    for i, (got, want) in enumerate(zip(operated.decisions, sim, strict=True)):
        assert got == want, f"sync {i} at {pd.Timestamp(got[0], unit='s')}: {got} != {want}"
    assert len({d for _, _, d, _ in sim}) > 3, "the replay must actually scale"
    assert operated.kube.writes, "the operator must have written /scale"
    if anomaly:
        assert operated.state.anomaly is not None
