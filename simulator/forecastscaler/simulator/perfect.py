"""The forecast policy with a perfect model: the decision core fed the true future load.

Everything but the model is the forecast policy's: the same spec, sync sequence, `decide` and
`remember`, the current load of the last completed step as the reactive signal. The forecast
path is the trace itself from the step in progress on (every quantile equal to it, always
trusted, never anomalous), laid out exactly as a model's path is (end labels, the first value
also standing for the time since the last sample). Whatever a better model could do for the
forecast policy, this shows the most of it: a result the perfect forecast cannot reach is out
of reach of any model under this decision rule and target.

Like the oracle it reads the future, by definition; it is a yardstick, not a policy to run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import ForecastPath, Memory, Observation
from forecastscaler.simulator.forecast_policy import RecordedPolicy, SyncRecord
from forecastscaler.simulator.world import PastView, World

MODEL = "perfect"


class PerfectForecastPolicy(RecordedPolicy):
    """A ForecastScaler spec replayed with the true future as its forecast."""

    def __init__(self, world: World, spec: ForecastScalerSpec, *, name: str = "perfect") -> None:
        self.name = name
        self.spec = spec
        self.horizon = spec.forecast.horizon_seconds
        self.step = spec.forecast.step_seconds
        self.memory: Memory | None = None
        self.records: list[SyncRecord] = []
        self.failures = 0
        load = pd.Series(world.load).ffill().bfill().to_numpy(dtype=np.float64)
        self._truth = np.where(np.isfinite(load), load, 0.0)
        self._world = world

    def tick_times(self, world: World) -> np.ndarray:
        return self._sync_times(world)

    def initial_replicas(self, world: World) -> int:
        self.memory = None
        self.records = []
        self.failures = 0
        return self._first_replicas(world)

    def path(self, now: float, known: int) -> ForecastPath:
        """The true load until past ``now + horizon``, laid out as `paths_from_model` lays out
        a model's forecast after the history that ends with step ``known - 1``: on the
        `forecast.step` grid (a coarser step samples the labels that are its multiples, as
        the range query does), the first value also at the history's end."""
        w = self._world
        history_end = w.time(known)
        if self.step > w.step * (1 + 1e-9):
            history_end = math.floor(history_end / self.step + 1e-9) * self.step
        steps = max(1, math.ceil((now + self.horizon - history_end) / self.step) + 1)
        times = history_end + self.step * np.arange(steps + 1, dtype=np.float64)
        # The value labelled T is the load of the trace step that ends at T.
        idx = np.rint((times[1:] - w.t0) / w.step).astype(np.int64) - 1
        values = self._truth[np.clip(idx, 0, w.n - 1)]
        path = (float(values[0]), *values.tolist())
        return ForecastPath(
            times=tuple(times.tolist()),
            value=path,
            point=path,
            lower=path,
            upper=path,
            quantile=self.spec.forecast.quantile,
            model=MODEL,
        )

    def decide(self, now: float, past: PastView, current: int) -> int:
        load = past.current_load()
        if load is None:
            self.failures += 1
        else:
            self.failures = 0
        obs = Observation(
            now=now,
            current_replicas=current,
            load=load,
            forecast=None if load is None else self.path(now, past.completed),
            forecast_trusted=True,
            anomaly_score=None,
            consecutive_failures=self.failures,
        )
        return self._step(obs, MODEL).desired_replicas
