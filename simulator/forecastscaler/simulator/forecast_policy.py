"""The ForecastScaler as a replay policy: the operator's own sync, in virtual time.

Each sync does what `forecastscaler.operator.reconcile.Reconciler.sync` does, in its order,
with the same functions:

- read: the current load (a gap is a failed read: `failures` counts them, no forecast that
  sync) and the history window up to now (`forecast.history`, gaps omitted as Prometheus
  omits absent samples);
- forecast: refit with `make_forecaster` when `ModelState.needs_refit` says so (first sync, then
  every `forecast.retrainInterval` of simulated time), `update` in between, and
  `path_from_model` for the path; InsufficientHistory or a model error drop the model;
- anomaly score: `forecasting.anomaly_score`, as the operator computes it (the load against
  the previous sync's forecast, once the model's intervals are calibrated);
- trust: `trust.judge` settles past forecasts with the load and gates the forecast on its
  measured accuracy, and `trust.remember_forecast` keeps this sync's, as the operator does;
- decide (`decide` with `initial_memory` on the first sync), apply (the count changes when the
  decision says so; `mode` is treated as Active), `remember`.

One shortcut, exact by construction: `update` is skipped when no step completed since the last
sync, because the history is then unchanged and every model's `update` is a no-op on a history
with no new point.

One difference, outside what is scored: the operator runs a new object's first fit in the
background and decides on the current load until it is ready; the replay fits at its first
sync, which is a lead-in (an hour or more) before the scored part begins.

Another shortcut, exact by check: with `fit_workers` > 0 the next refit is fitted ahead in a worker
process (`fit_ahead.FitAhead`) and used only if it was fitted on exactly the history the refit
sees; otherwise the refit happens in place.

Other provisioned quantiles, from the same run (`QuantileTrack`): nothing a decision does feeds
back into the model, the trust or the anomaly score (they see the load, never the replicas), so
the policy keeps, per sync, what it saw and the forecast at every extra quantile asked for
(`track_quantiles`), and a track replays `decide` on those inputs with its own replicas and
memory. A track gives exactly what a separate replay at its quantile gives (a test checks it):
the engine keeps replicas within [min, max], so `decide` never takes the early returns that
leave the forecast out of what trust records. It costs the decisions and little else.

Timing (`clock`) is optional and injected, for the benchmark; the replay never reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec, ForecastSpec, parse_duration
from forecastscaler.core.decision import (
    Decision,
    ForecastPath,
    Memory,
    Observation,
    decide,
    initial_memory,
    remember,
)
from forecastscaler.core.model import (
    AnomalyState,
    ModelState,
    anomaly_score,
    combined_score,
    model_key,
    path_from_model,
    paths_from_model,
    training_history,
)
from forecastscaler.core.trust import judge, new_tracker, remember_forecast
from forecastscaler.models.base import InsufficientHistory
from forecastscaler.models.selection import make_forecaster
from forecastscaler.simulator.fit_ahead import FitAhead
from forecastscaler.simulator.world import FloatArray, PastView, World


@dataclass
class Timings:
    """Seconds spent per phase and how often (filled only when a clock is given)."""

    seconds: dict[str, float] = field(
        default_factory=lambda: {"fit": 0.0, "update": 0.0, "predict": 0.0, "decide": 0.0}
    )
    calls: dict[str, int] = field(
        default_factory=lambda: {"fit": 0, "update": 0, "predict": 0, "decide": 0}
    )


@dataclass(frozen=True)
class SyncRecord:
    """One sync, for the results' decision log and the forecast scores."""

    time: float
    load: float | None
    current: int
    desired: int
    reason: str
    forecast_value: float | None
    forecast_point: float | None
    forecast_lower: float | None
    forecast_upper: float | None
    anomalous: bool
    trusted: bool
    model: str
    held: bool = False
    """A scale-down held for what the forecast needs within the horizon."""


@dataclass(frozen=True)
class SyncInput:
    """What one sync saw besides the replicas and the memory, for the quantile tracks."""

    now: float
    load: float | None
    failures: int
    trusted: bool
    anomaly_score: float | None
    model: str
    paths: FloatArray | None
    """The forecast packed as rows (times, point, lower, upper, then the value path of each
    tracked quantile, in `quantiles` order); None where the sync had no forecast. Arrays, not
    tuples of floats: a 30-day replay keeps one per sync."""
    quantiles: tuple[float, ...] = ()

    def forecast_at(self, quantile: float) -> ForecastPath | None:
        """The forecast the base policy would have acted on at this provisioned quantile."""
        if self.paths is None:
            return None
        rows = self.paths
        return ForecastPath(
            times=tuple(rows[0].tolist()),
            value=tuple(rows[4 + self.quantiles.index(quantile)].tolist()),
            point=tuple(rows[1].tolist()),
            lower=tuple(rows[2].tolist()),
            upper=tuple(rows[3].tolist()),
            quantile=quantile,
            model=self.model,
        )


class RecordedPolicy:
    """The sync log of a forecast-driven policy, and the scores computed from it."""

    name: str
    spec: ForecastScalerSpec
    horizon: float
    records: list[SyncRecord]
    memory: Memory | None

    def _step(self, obs: Observation, model: str) -> Decision:
        """decide, remember and record (`obs` without memory): what every forecast-driven
        policy's sync ends with."""
        now = obs.now
        if self.memory is None:
            self.memory = initial_memory(now, obs.current_replicas)
        d = decide(self.spec, replace(obs, memory=self.memory))
        self.memory = remember(self.spec, self.memory, d, now, d.changes_scale)
        self._record(now, d, obs.load, obs.forecast_trusted, model)
        return d

    def _sync_times(self, world: World) -> np.ndarray:
        return np.arange(
            world.start_time, world.end_time, self.spec.interval_seconds, dtype=np.float64
        )

    def _first_replicas(self, world: World) -> int:
        return min(max(world.initial_replicas(), self.spec.min_replicas), self.spec.max_replicas)

    def _record(
        self, now: float, d: Decision, load: float | None, trusted: bool, model: str
    ) -> None:
        fh = d.forecast_at_horizon
        self.records.append(
            SyncRecord(
                time=now,
                load=load,
                current=d.current_replicas,
                desired=d.desired_replicas,
                reason=d.reason.value,
                forecast_value=fh[0] if fh else None,
                forecast_point=fh[1] if fh else None,
                forecast_lower=fh[2] if fh else None,
                forecast_upper=fh[3] if fh else None,
                anomalous=d.anomalous,
                trusted=trusted,
                model=model,
                held=d.held,
            )
        )

    def sync_frame(self) -> pd.DataFrame:
        """Every sync as a row (time as UTC timestamps)."""
        frame = pd.DataFrame([r.__dict__ for r in self.records])
        if len(frame):
            frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def forecast_scores(self, world: World) -> dict[str, float | int | None]:
        """Forecast error and interval coverage at the horizon, over syncs in the scored part:
        each forecast of the load at now + horizon against the load of the step that ends
        there (end labels, as the model sees the history)."""
        scored_from = world.time(world.first_scored)
        actual: list[float] = []
        point: list[float] = []
        lower: list[float] = []
        upper: list[float] = []
        value: list[float] = []
        for r in self.records:
            if r.time < scored_from or r.forecast_point is None:
                continue
            target = r.time + self.horizon
            j = math.ceil((target - world.t0) / world.step - 1e-9) - 1
            if j < 0 or j >= world.n or not math.isfinite(world.load[j]):
                continue
            actual.append(float(world.load[j]))
            point.append(r.forecast_point)
            lower.append(r.forecast_lower if r.forecast_lower is not None else math.nan)
            upper.append(r.forecast_upper if r.forecast_upper is not None else math.nan)
            value.append(r.forecast_value if r.forecast_value is not None else math.nan)
        if not actual:
            return {
                "forecast_points": 0,
                "forecast_mae": None,
                "forecast_wape": None,
                "interval_coverage": None,
                "quantile_coverage": None,
            }
        a, p = np.array(actual), np.array(point)
        lo, hi, v = np.array(lower), np.array(upper), np.array(value)
        err = np.abs(a - p)
        total = float(np.sum(np.abs(a)))
        return {
            "forecast_points": len(a),
            "forecast_mae": float(err.mean()),
            "forecast_wape": float(err.sum() / total) if total > 0 else None,
            "interval_coverage": float(np.mean((a >= lo) & (a <= hi))),
            "quantile_coverage": float(np.mean(a <= v)),
        }


class ForecastPolicy(RecordedPolicy):
    """One ForecastScaler configuration replayed through the operator's decision sequence."""

    def __init__(
        self,
        spec: ForecastScalerSpec,
        *,
        name: str = "forecast",
        trace_step: float | None = None,
        clock: Callable[[], float] | None = None,
        fit_workers: int = 0,
        track_quantiles: Sequence[float] = (),
    ) -> None:
        self.name = name
        self.spec = spec
        own = spec.forecast.quantile
        self.track_quantiles = tuple(sorted({round(float(q), 4) for q in track_quantiles} - {own}))
        """Extra provisioned quantiles whose forecasts each sync keeps in `inputs` (to 4 decimals,
        so two never share a name; the policy's own quantile is the policy itself)."""
        self.track_specs = {q: with_quantile(spec, q) for q in self.track_quantiles}
        self.inputs: list[SyncInput] = []
        self._tracked: dict[float, tuple[float, ...]] = {}
        self.key = model_key(spec, "simulator")
        self.model = ModelState()
        self.model.reset(self.key)
        self.memory: Memory | None = None
        self.failures = 0
        self.last_forecast: ForecastPath | None = None
        self.accuracy = new_tracker(spec)
        self.anomaly: AnomalyState | None = None
        self.detector_scores = pd.Series(dtype="float64")
        self.retrain = parse_duration(spec.forecast.retrain_interval)
        self.window = parse_duration(spec.forecast.history)
        self.horizon = parse_duration(spec.forecast.horizon)
        self.step = parse_duration(spec.forecast.step)
        self.trace_step = self.step if trace_step is None else trace_step
        self.records: list[SyncRecord] = []
        self.problems: dict[str, int] = {}
        self.clock = clock
        self.timings = Timings()
        self._seen = -1
        self._world: World | None = None
        self._ticks: np.ndarray | None = None
        self.fit_ahead = (
            FitAhead(self.key.models, self.key.horizon_steps, fit_workers)
            if fit_workers > 0
            else None
        )

    # The engine's policy interface.

    def tick_times(self, world: World) -> np.ndarray:
        self._ticks = self._sync_times(world)
        return self._ticks

    def initial_replicas(self, world: World) -> int:
        self._world = world
        self._prepare_detector(world)
        self.inputs = []
        return self._first_replicas(world)

    def decide(self, now: float, past: PastView, current: int) -> int:
        load = past.current_load()
        forecast: ForecastPath | None = None
        self._tracked = {}
        if load is None:
            self.failures += 1
        else:
            self.failures = 0
            forecast = self._forecast(now, past)
        score = self._score_anomaly(now, load, forecast)
        trusted = judge(self.accuracy, self.spec, now, load)
        model = self.model.model_name if self.model.model is not None else ""
        t = self._tick()
        obs = Observation(
            now=now,
            current_replicas=current,
            load=load,
            forecast=forecast,
            forecast_trusted=trusted,
            anomaly_score=score,
            consecutive_failures=self.failures,
        )
        d = self._step(obs, model)
        remember_forecast(self.accuracy, self.spec, now, d)
        self._tock("decide", t)
        if self.track_quantiles:
            self.inputs.append(self._input(obs, model))
        return d.desired_replicas

    def _input(self, obs: Observation, model: str) -> SyncInput:
        paths = None
        f = obs.forecast
        if f is not None:
            tracked = [self._tracked[q] for q in self.track_quantiles]
            paths = np.array([f.times, f.point, f.lower, f.upper, *tracked], dtype=np.float64)
        return SyncInput(
            now=obs.now,
            load=obs.load,
            failures=obs.consecutive_failures,
            trusted=obs.forecast_trusted,
            anomaly_score=obs.anomaly_score,
            model=model,
            paths=paths,
            quantiles=self.track_quantiles,
        )

    # The phases of a sync.

    def _forecast(self, now: float, past: PastView) -> ForecastPath | None:
        state = self.model
        fresh = past.completed != self._seen
        if fresh or state.model is None:
            state.history = self._history(now, past)
            self._seen = past.completed
        try:
            if state.needs_refit(self.key, now, self.retrain):
                t = self._tick()
                training = self._training(state.history)
                model = self.fit_ahead.take(training) if self.fit_ahead is not None else None
                if model is None:
                    model = make_forecaster(self.key.models, self.key.horizon_steps)
                    model.fit(training)
                state.model = model
                state.fitted_at = now
                state.fits += 1
                self._tock("fit", t)
                self._fit_next_ahead(now)
            elif fresh:
                assert state.model is not None
                t = self._tick()
                state.model.update(state.history)
                self._tock("update", t)
            if state.model is None or not len(state.history):
                return None
            t = self._tick()
            end = pd.Timestamp(state.history.index[-1]).timestamp()
            if self.track_quantiles:
                path = self._forecast_and_track(now, end)
            else:
                path = path_from_model(state.model, state.model_name, self.spec, now, end)
            self._tock("predict", t)
            if path is None:
                self._problem("StaleHistory")
            return path
        except InsufficientHistory:
            state.model = None
            self._problem("InsufficientHistory")
        except Exception as exc:  # as the operator: a model bug means reactive, not a crash
            state.model = None
            self._problem(f"ForecastFailed: {type(exc).__name__}: {exc}")
        return None

    def _forecast_and_track(self, now: float, end: float) -> ForecastPath | None:
        """The path, and the tracked quantiles' values kept for the tracks (one predict)."""
        state, own = self.model, self.spec.forecast.quantile
        assert state.model is not None
        quantiles = (own, *self.track_quantiles)
        paths = paths_from_model(state.model, state.model_name, self.spec, now, end, quantiles)
        if paths is None:
            return None
        self._tracked = {q: paths[q].value for q in self.track_quantiles}
        return paths[own]

    def _training(self, history: pd.Series) -> pd.Series:
        flagged = self.anomaly.flagged if self.anomaly is not None else ()
        return training_history(history, flagged)

    def _fit_next_ahead(self, fitted_at: float) -> None:
        """Start the next refit in the worker: at the first sync a retrainInterval after this
        fit, on the history the policy will hold then (read at the first sync of that step)."""
        world, ticks = self._world, self._ticks
        if self.fit_ahead is None or world is None or ticks is None:
            return
        i = int(np.searchsorted(ticks, fitted_at + self.retrain - 1e-6))
        while i < len(ticks) and ticks[i] - fitted_at < self.retrain:
            i += 1
        if i >= len(ticks):
            return
        k = world.completed(float(ticks[i]))
        while i > 0 and world.completed(float(ticks[i - 1])) == k:
            i -= 1
        history = self._history(float(ticks[i]), world.past(k))
        self.fit_ahead.submit(float(ticks[i]), self._training(history))

    def close(self) -> None:
        """Stop the fit-ahead worker, if any."""
        if self.fit_ahead is not None:
            self.fit_ahead.close()

    def _history(self, now: float, past: PastView) -> pd.Series:
        history = past.history(now - self.window)
        if self.step <= self.trace_step * (1 + 1e-9):
            return history
        # A coarser forecast.step: the range query samples the grid of multiples of the step.
        seconds = pd.DatetimeIndex(history.index).as_unit("s").asi8
        sampled: pd.Series = history[(seconds % round(self.step)) == 0]
        return sampled

    def _prepare_detector(self, world: World) -> None:
        """Score every step the operator's detector would see, in one batch: the detector is
        causal and gives the same numbers batch or step by step, and the operator started at
        the first sync would first read `forecast.history` before it, then each new step."""
        self.anomaly = None
        self.detector_scores = pd.Series(dtype="float64")
        if not self.spec.anomaly.enabled:
            return
        start = world.start_time
        state = AnomalyState()
        # The operator's first sync scores the last warm_steps of the history it reads then.
        first = world.past(world.completed(start)).history(start - self.window)
        series = world.past(world.n).history(start - self.window)
        if len(first) > state.warm_steps:
            series = series[series.index >= first.index[-state.warm_steps]]
        self.detector_scores = state.score_history(series, self.spec.anomaly.threshold, trim=False)
        self.anomaly = state

    def _detector_score(self, now: float) -> float | None:
        """The detector's score for the newest completed step at `now`, as the operator has it."""
        scores = self.detector_scores
        if not len(scores):
            return None
        pos = int(scores.index.searchsorted(pd.Timestamp(now, unit="s", tz="UTC"), side="right"))
        if pos == 0:
            return None
        value = float(scores.iloc[pos - 1])
        return value if math.isfinite(value) else None

    def _score_anomaly(
        self, now: float, load: float | None, forecast: ForecastPath | None
    ) -> float | None:
        previous, self.last_forecast = self.last_forecast, forecast
        residual = anomaly_score(self.spec, self.model, previous, load, now)
        return combined_score(self._detector_score(now), residual)

    # Bookkeeping.

    def _problem(self, what: str) -> None:
        self.problems[what] = self.problems.get(what, 0) + 1

    def _tick(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def _tock(self, phase: str, start: float) -> None:
        if self.clock is not None:
            self.timings.seconds[phase] += self.clock() - start
            self.timings.calls[phase] += 1


def quantile_name(base: str, quantile: float) -> str:
    """The track's policy name: the base policy's and the quantile in percent (forecast@p75)."""
    return f"{base}@p{100 * quantile:g}"


class QuantileTrack(RecordedPolicy):
    """The base policy's ForecastScaler at another `forecast.quantile`, replayed on the inputs
    the base policy recorded (replay it after the base policy, through the same world)."""

    def __init__(self, base: ForecastPolicy, quantile: float) -> None:
        if quantile not in base.track_quantiles:
            raise ValueError(f"{base.name} does not track quantile {quantile:g}")
        self.base = base
        self.quantile = quantile
        self.name = quantile_name(base.name, quantile)
        self.spec = base.track_specs[quantile]
        self.horizon = base.horizon
        self.memory: Memory | None = None
        self.records = []
        self._next = 0

    def tick_times(self, world: World) -> np.ndarray:
        return self._sync_times(world)

    def initial_replicas(self, world: World) -> int:
        self._next = 0
        self.memory = None
        self.records = []
        return self._first_replicas(world)

    def decide(self, now: float, past: PastView, current: int) -> int:
        inputs = self.base.inputs
        if self._next >= len(inputs) or inputs[self._next].now != now:
            raise RuntimeError(
                f"{self.name}: replay {self.base.name} first, through the same world"
            )
        seen = inputs[self._next]
        self._next += 1
        obs = Observation(
            now=now,
            current_replicas=current,
            load=seen.load,
            forecast=seen.forecast_at(self.quantile),
            forecast_trusted=seen.trusted,
            anomaly_score=seen.anomaly_score,
            consecutive_failures=seen.failures,
        )
        return self._step(obs, seen.model).desired_replicas


def quantile_range() -> tuple[float, float]:
    """The bounds the API puts on forecast.quantile (inclusive)."""
    low, high = 0.0, 1.0
    for bound in ForecastSpec.model_fields["quantile"].metadata:
        low = float(getattr(bound, "ge", low))
        high = float(getattr(bound, "le", high))
    return low, high


def parse_quantiles(text: str) -> tuple[float, ...]:
    """Comma-separated provisioned quantiles (as --quantiles takes them), range-checked."""
    low, high = quantile_range()
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            q = float(part)
        except ValueError:
            raise ValueError(f"quantiles: {part!r} is not a number (e.g. 0.6,0.75)") from None
        if not low <= q <= high:
            raise ValueError(
                f"quantile {part}: forecast.quantile must be between {low:g} and {high:g}"
            )
        out.append(q)
    return tuple(out)


def with_quantile(spec: ForecastScalerSpec, quantile: float) -> ForecastScalerSpec:
    """The spec with another `forecast.quantile`, validated like a manifest's."""
    low, high = quantile_range()
    if not low <= quantile <= high:
        raise ValueError(
            f"quantile {quantile:g}: forecast.quantile must be between {low:g} and {high:g}"
        )
    return spec.model_copy(
        update={"forecast": spec.forecast.model_copy(update={"quantile": quantile})}
    )
