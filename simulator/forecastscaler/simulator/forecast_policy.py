"""The ForecastScaler as a replay policy: the operator's own sync step, in virtual time.

Each sync runs `forecastscaler.core.sync.Sync`, the pure step `Reconciler.sync` runs, in the same
order (a parity test replays the bundled trace through both and compares every decision):

- target: the engine's replica count (`mode` is treated as Active: every decision applies);
- metric: the current load is the last completed step's (a gap is a failed read, counted in
  `failures`, with no forecast that sync), the history the window up to now (gaps omitted, as
  Prometheus omits absent samples);
- model work: `Sync.model_work` and `run_model_work`, inline; `Sync.model_done`;
- decide: `Sync.decide` (anomaly score, trust, decision, the forecast kept for trust);
- write: `Sync.written` (the decision memory).

One shortcut, exact by construction: `update` is skipped when no step completed since the last
sync, because the history is then unchanged and every model's `update` is a no-op on a history
with no new point.

The detector scores the whole trace in one batch before the replay (`_prepare_detector`): it is
causal and gives the numbers the operator gets step by step.

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

from forecastscaler.core.api import ForecastScalerSpec, ForecastSpec
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
    model_key,
    training_history,
)
from forecastscaler.core.sync import Problem, Sync, SyncState, run_model_work
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
        self.state = SyncState()
        self.state.model.reset(model_key(spec, "simulator"))
        self.key = self.state.model.key
        assert self.key is not None
        self.memory: Memory | None = None
        self.detector_scores = pd.Series(dtype="float64")
        self.retrain = spec.forecast.retrain_seconds
        self.window = spec.forecast.history_seconds
        self.horizon = spec.forecast.horizon_seconds
        self.step = spec.forecast.step_seconds
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

    @property
    def model(self) -> ModelState:
        """The model and the history it has seen."""
        return self.state.model

    def decide(self, now: float, past: PastView, current: int) -> int:
        sync = Sync(self.spec, self.state, now)
        sync.target(current)
        load = past.current_load()
        if load is None:
            sync.metric_read(None, Problem("NoData", "the newest step is a gap in the trace"))
        else:
            sync.metric_read(load)
            self._forecast(sync, now, past)
        model = self.model.model_name if self.model.model is not None else ""
        t = self._tick()
        d = sync.decide(self._detector_score(now))
        assert d is not None and self.state.memory is not None
        sync.written()
        self.memory = self.state.memory
        self._record(now, d, sync.load, sync.trusted, model)
        self._tock("decide", t)
        if self.track_quantiles:
            obs = Observation(
                now=now,
                current_replicas=current,
                load=sync.load,
                forecast=sync.forecast,
                forecast_trusted=sync.trusted,
                anomaly_score=sync.anomaly_score,
                consecutive_failures=self.state.failures,
            )
            tracked = {} if sync.paths is None else sync.paths
            self.inputs.append(self._input(obs, model, tracked))
        return d.desired_replicas

    def _input(
        self, obs: Observation, model: str, paths_at: dict[float, ForecastPath]
    ) -> SyncInput:
        paths = None
        f = obs.forecast
        if f is not None:
            tracked = [paths_at[q].value for q in self.track_quantiles]
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

    def _forecast(self, sync: Sync, now: float, past: PastView) -> None:
        """The model work of the sync, inline: refit (or take the one fitted ahead) or update,
        then predict at the policy's quantile and the tracked ones."""
        fresh = past.completed != self._seen
        if fresh or self.model.model is None:
            sync.history_is(self._history(now, past))
            self._seen = past.completed
        work = sync.model_work(fresh=fresh, extra_quantiles=self.track_quantiles)
        fitted = None
        if work.refit and self.fit_ahead is not None and work.training is not None:
            fitted = self.fit_ahead.take(work.training)
        result = run_model_work(work, fitted, self._lap_from(self._tick()))
        sync.model_done(result)
        if result.fitted:
            self._fit_next_ahead(now)
        problem = sync.forecast_problem
        if problem is not None:
            failed = problem.reason == "ForecastFailed"
            self._problem(f"{problem.reason}: {problem.message}" if failed else problem.reason)

    def _lap_from(self, start: float) -> Callable[[str], None]:
        """A lap hook adding each phase's seconds to the timings (a no-op without a clock)."""
        last = [start]

        def lap(phase: str) -> None:
            if self.clock is not None:
                now = self.clock()
                self.timings.seconds[phase] += now - last[0]
                self.timings.calls[phase] += 1
                last[0] = now

        return lap

    def _training(self, history: pd.Series) -> pd.Series:
        anomaly = self.state.anomaly
        return training_history(history, anomaly.flagged if anomaly is not None else ())

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
        self.state.anomaly = None
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
        self.state.anomaly = state

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
