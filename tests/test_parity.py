"""Parity: the operator's real `Reconciler.sync` and the simulator's forecast policy, replayed
through the same world, make the same decision at every sync.

The Reconciler runs as a replay policy: each engine tick sets the in-process target's replicas
to the engine's count, serves the trace's completed steps as Prometheus would (the current value
and range queries on the step grid), sets the virtual clock to the tick and awaits one real sync
(its thread pools, its incremental fetches and merges, its streaming anomaly detector, its status
patches); the replicas it writes to /scale are its decision. The simulator's `ForecastPolicy`
replays the same world with its batch detector and whole-window history. Anything that drifts
between the two paths (fetch windows, refit schedule, anomaly scoring, trust, the decision and
its memory) shows up as a differing decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.core.api import ForecastScalerSpec, ScaleTargetRef
from forecastscaler.core.traces import bundled_trace_path, load_trace
from forecastscaler.operator.kube import Kube, Scale
from forecastscaler.operator.prometheus import Endpoint, NoData, PrometheusSource
from forecastscaler.operator.reconcile import ObjectState, Reconciler, Services
from forecastscaler.operator.settings import OperatorConfig
from forecastscaler.simulator.api import build_world
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.forecast_policy import ForecastPolicy
from forecastscaler.simulator.world import PastView, World


def _apply_patch(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _apply_patch(out[key], value)
        else:
            out[key] = value
    return out


class WorldKube(Kube):
    """The target's /scale and the ForecastScaler's status, in memory."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.replicas = 1
        self.body = body
        self.writes: list[int] = []

    def autoscalers_of(self, namespace: str, ref: ScaleTargetRef) -> list[str]:
        return []

    def get_scale(self, namespace: str, ref: ScaleTargetRef) -> Scale:
        return Scale(self.replicas, self.replicas, None)

    def patch_scale(self, namespace: str, ref: ScaleTargetRef, replicas: int) -> Scale:
        self.writes.append(replicas)
        self.replicas = replicas
        return Scale(replicas, replicas, None)

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.body["status"] = _apply_patch(self.body.get("status") or {}, status)

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        raise AssertionError("no Secret in this test")


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


@dataclass
class WorldServices(Services):
    fake_source: WorldPrometheus = field(default_factory=WorldPrometheus)

    def source(self, endpoint: Endpoint) -> PrometheusSource:
        return self.fake_source


class ReconcilerPolicy:
    """The operator's Reconciler as a replay policy (the engine's Policy protocol)."""

    name = "reconciler"

    def __init__(self, spec: ForecastScalerSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec, self.loop, self.now = spec, loop, 0.0
        self.body: dict[str, Any] = {
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
        self.kube = WorldKube(self.body)
        self.services = WorldServices(
            kube=self.kube,
            config=OperatorConfig(),
            pool=ThreadPoolExecutor(max_workers=1),
            emit=lambda *_: None,
            clock=lambda: self.now,
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
        self.now, self.kube.replicas = now, current
        self.services.fake_source.past = past
        self.loop.run_until_complete(self.reconciler.sync(self.body, self.state, self.logger))
        reason = self.body["status"]["lastDecision"]["reason"]
        self.decisions.append((now, current, self.kube.replicas, reason))
        return self.kube.replicas


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


SCENARIOS = {
    "ensemble-with-anomaly-detection": True,
    "ensemble-without-anomaly-detection": False,
}


@pytest.mark.parametrize("anomaly", SCENARIOS.values(), ids=SCENARIOS.keys())
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
