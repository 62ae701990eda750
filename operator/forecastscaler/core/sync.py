"""One sync of one ForecastScaler, as pure code the operator and the simulator both run.

A sync is these steps, in this order, on one `Sync` object (which is also what the sync learned,
for status and metrics):

1. `target`: the target's replica count, or why it cannot be read; `resume` (the operator's
   first sync of the object: the memory status keeps); `conflict` when another autoscaler owns
   it (the sync then decides but does not write);
2. `metric_read`: whether the metric could be read (consecutive failures counted), with
   `select_model` (a changed query or endpoint starts the model afresh), `fetch_range` (the range
   to read: the whole window at refits, else what is new) and `history_read` (merge it);
3. `model_work` describes the refit or update and the predict; the caller runs
   `run_model_work` where it likes (the operator in its bounded fit pool, the simulator inline)
   and hands the result to `model_done`;
4. `decide`: the anomaly score (the load against the previous sync's forecast, and the
   detector's), trust (the forecast's own track record), the decision, and this sync's forecast
   remembered for trust;
5. `write_wanted` says what to write, `written` what came of it: the Events and log lines it
   deserves and the decision memory (`remember`);
6. `forecastscaler.core.status.render` turns it into status, conditions and their Events.

The caller does the I/O between the steps and nothing else. No step reads a clock (the caller
passes `now`), does I/O or touches a global: the simulator replays exactly this in virtual time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec, format_duration
from forecastscaler.core.decision import (
    Decision,
    ForecastPath,
    Memory,
    Observation,
    Reason,
    decide,
    initial_memory,
    remember,
)
from forecastscaler.core.memory import resume
from forecastscaler.core.model import (
    AnomalyState,
    ModelState,
    anomaly_score,
    combined_score,
    model_key,
    model_name,
    paths_from_model,
    rfc3339,
    training_history,
)
from forecastscaler.core.trust import (
    Accuracy,
    AccuracyTracker,
    judge,
    new_tracker,
    remember_forecast,
)
from forecastscaler.models.base import Forecaster, InsufficientHistory
from forecastscaler.models.selection import make_forecaster

FITTING = "Fitting"
"""ForecastReady's reason while a new object's first fit runs in the background."""


@dataclass(frozen=True)
class Problem:
    """Something a sync could not do, as a condition shows it: a CamelCase reason, a message."""

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the ForecastScaler."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class LogLine:
    """A line for the operator's log (the simulator ignores them)."""

    level: Literal["info", "warning", "error"]
    message: str
    error: BaseException | None = None


@dataclass
class SyncState:
    """What one ForecastScaler remembers between syncs. The steps update it in place; its owner
    (the operator's per-object state, the simulator's policy) keeps it between syncs."""

    memory: Memory | None = None
    failures: int = 0
    """Syncs in a row in which the metric could not be read."""
    model: ModelState = field(default_factory=ModelState)
    last_forecast: ForecastPath | None = None
    accuracy: AccuracyTracker | None = None
    """The forecast's own track record at the horizon (accuracy-gated trust)."""
    anomaly: AnomalyState | None = None
    """The streaming anomaly detector over the metric's history."""
    detector_score: float | None = None
    last_dry_run: int | None = None
    dry_run_replicas: int | None = None
    """The count Active mode would have now (DryRun only)."""
    dry_run_anchor: int | None = None
    """The real count dry_run_replicas started from."""
    last_write_error: str | None = None
    last_scale_time: str | None = None
    resumed: bool = False
    """The memory kept in status was read back (once per process: see `Sync.resume`)."""


@dataclass(frozen=True)
class FetchRange:
    """The history range to read: epoch seconds on the step grid, and whether it is the whole
    window (which then replaces what was kept)."""

    start: float
    end: float
    step: float
    full: bool


@dataclass(frozen=True)
class ModelWork:
    """A refit or an update, then a predict, as the sync wants them."""

    spec: ForecastScalerSpec
    now: float
    names: tuple[str, ...]
    horizon_steps: int
    refit: bool
    update: bool
    """Update the model with the history (a refit or a history without new steps does not)."""
    model: Forecaster | None
    history: pd.Series
    training: pd.Series | None
    """What a refit learns from: the history with anomalous steps as gaps."""
    quantiles: tuple[float, ...]
    """The provisioned quantiles to predict (the spec's first)."""


@dataclass(frozen=True)
class ModelResult:
    """What the model work gave: the model (refitted or updated), the forecast paths, or the
    error that stopped it; `fitted` when a refit succeeded (even if the predict then failed)."""

    model: Forecaster | None
    paths: dict[float, ForecastPath] | None
    fitted: bool = False
    error: Exception | None = None
    seconds: float | None = None
    """The refit's seconds in the worker, when the caller measured them."""


def headline(spec: ForecastScalerSpec, d: Decision) -> str:
    """The reason for a scale in one phrase, for Events and logs."""
    per = f"{spec.metric.target_per_replica:g} per replica"
    horizon = format_duration(spec.forecast.horizon_seconds)
    q = round(spec.forecast.quantile * 100)
    if d.reason == Reason.FORECAST and d.held:
        return (
            f"scale-down held at {d.desired_replicas}: the p{q} forecast needs it within "
            f"{horizon}, {per}"
        )
    if d.reason == Reason.FORECAST and d.forecast_value is not None:
        return f"p{q} forecast {d.forecast_value:.4g} in {horizon}, {per}"
    if d.reason == Reason.REACTIVE and d.load is not None:
        return f"current load {d.load:.4g}, {per}"
    return f"{d.reason.value}: {d.message}"


Lap = Callable[[str], None]
"""Called after each phase of the model work ("fit", "update", "predict"): a timer's hook."""


def _no_lap(_: str) -> None:
    return None


def run_model_work(
    work: ModelWork, fitted: Forecaster | None = None, lap: Lap = _no_lap
) -> ModelResult:
    """Do the model work: refit (or take `fitted`, a model already fitted on exactly
    `work.training`) or update, then predict. Pure given the models; any error is returned."""
    model, did_fit = work.model, False
    try:
        if work.refit:
            assert work.training is not None
            model = fitted or make_forecaster(work.names, work.horizon_steps).fit(work.training)
            did_fit = True
            lap("fit")
        elif work.update and model is not None:
            model.update(work.history)
            lap("update")
        if model is None or not len(work.history):
            return ModelResult(model, None, did_fit)
        end = pd.Timestamp(work.history.index[-1]).timestamp()
        paths = paths_from_model(model, model_name(model), work.spec, work.now, end, work.quantiles)
        lap("predict")
        return ModelResult(model, paths, did_fit)
    except Exception as exc:  # a model bug means reactive scaling, not a crash
        return ModelResult(None, None, did_fit, error=exc)


class Sync:
    """One sync of one ForecastScaler in progress, and what it learned."""

    def __init__(self, spec: ForecastScalerSpec, state: SyncState, now: float) -> None:
        self.spec, self.state, self.now = spec, state, now
        self.current: int | None = None
        """The target's replica count (after the write, when one was made)."""
        self.target_problem: Problem | None = None
        self.write_problem: Problem | None = None
        """A write refused by the API, or not tried (another autoscaler owns the target)."""
        self.metric_problem: Problem | None = None
        self.load: float | None = None
        self.forecast: ForecastPath | None = None
        self.paths: dict[float, ForecastPath] | None = None
        self.forecast_problem: Problem | None = None
        self.model_error: Exception | None = None
        self.refit_seconds: float | None = None
        self.anomaly_score: float | None = None
        self.trusted = True
        self.accuracy: Accuracy | None = None
        self.decision: Decision | None = None
        self.applied = False
        self.events: list[Event] = []
        self.logs: list[LogLine] = []

    # 1. the target

    def target(self, current: int | None, problem: Problem | None = None) -> None:
        """The target's replicas, or why they cannot be read. Nothing is decided without the
        target, and its windows start afresh when it is back."""
        self.current, self.target_problem = current, problem
        if problem is not None:
            self.state.memory = None
            self.state.dry_run_replicas = None

    def resume(self, status: Mapping[str, Any] | None) -> None:
        """The first sync of this object in this process (a restart, a new leader): carry on
        from the decision memory and the failure count status keeps, so the scale-down window
        is counted from the recommendations actually made and Fallback does not start over.
        Before the metric is read, which adds to the failures."""
        state = self.state
        if state.resumed:
            return
        state.resumed = True
        memory, state.failures = resume(status or {}, self.spec, self.now, current=self.current)
        if self.target_problem is None:
            state.memory = memory

    def conflict(self, problem: Problem) -> None:
        """Another autoscaler scales the target: decide and report, but do not write."""
        self.write_problem = problem

    # 2. the metric

    def select_model(self, address: str) -> None:
        """The model this spec and endpoint want; a different one starts afresh, and so do
        the scores and the detector of the old query."""
        state, key = self.state, model_key(self.spec, address)
        if state.model.key != key:
            state.model.reset(key)
            if state.accuracy is not None:
                state.accuracy.reset()
            state.anomaly = None

    def fetch_range(self) -> FetchRange:
        """The whole window at refits (or when nothing is kept), else only what is new since
        the last sync with a little overlap for late samples; starts on the step grid, so
        every fetch lands on the same timestamps."""
        spec, model, now = self.spec, self.state.model, self.now
        step, window = spec.forecast.step_seconds, spec.forecast.history_seconds
        assert model.key is not None, "select_model first"
        retrain = spec.forecast.retrain_seconds
        full = model.needs_full_fetch(model.key, now, retrain)
        first = now - window
        if not full:
            last = model.history.index[-1].timestamp()
            first = max(first, last - 2 * step)
        return FetchRange(math.ceil(first / step) * step, now, step, full)

    def history_read(self, fresh: pd.Series, fetched: FetchRange) -> None:
        """Merge newly read points (a whole window replaces what was kept). Pure pandas work:
        the operator runs it off the event loop."""
        model = self.state.model
        if fetched.full:
            model.history = fresh.iloc[0:0]
            model.fetched_at = self.now
        model.merge_history(fresh, self.spec.forecast.history_seconds, self.now)

    def history_is(self, history: pd.Series) -> None:
        """The whole window as read (the simulator's view of the trace)."""
        self.state.model.history = history

    def metric_read(self, load: float | None, problem: Problem | None = None) -> None:
        """The current load, or why the metric could not be read (a failure in a row)."""
        self.load, self.metric_problem = (None, problem) if problem is not None else (load, None)
        self.state.failures = self.state.failures + 1 if problem is not None else 0

    # 3. the model

    def model_work(self, fresh: bool = True, extra_quantiles: tuple[float, ...] = ()) -> ModelWork:
        """The refit (first sync, a changed spec, every retrainInterval) or update, then the
        predict. `fresh`: the history has steps the model has not seen (the operator always
        says so; the simulator knows when it has not, and an update would then be a no-op)."""
        spec, state = self.spec, self.state
        model = state.model
        assert model.key is not None, "select_model first"
        refit = model.needs_refit(model.key, self.now, spec.forecast.retrain_seconds)
        flagged = state.anomaly.flagged if state.anomaly is not None else ()
        return ModelWork(
            spec=spec,
            now=self.now,
            names=model.key.models,
            horizon_steps=model.key.horizon_steps,
            refit=refit,
            update=fresh and not refit,
            model=model.model,
            history=model.history,
            training=training_history(model.history, flagged) if refit else None,
            quantiles=(spec.forecast.quantile, *extra_quantiles),
        )

    def model_done(self, result: ModelResult) -> None:
        """Keep the refitted model and the forecast, or drop the model (the sync goes on on
        the current load) and say why."""
        model = self.state.model
        if result.fitted:
            model.model, model.fitted_at = result.model, self.now
            model.fits += 1
            self.refit_seconds = result.seconds
        if result.error is not None:
            self.model_failed(result.error)
            return
        self.paths = result.paths
        self.forecast = None if result.paths is None else result.paths[self.spec.forecast.quantile]
        if self.forecast is None:
            self.forecast_problem = Problem(
                "StaleHistory", "the metric's history ends more than one horizon ago"
            )

    def model_failed(self, exc: Exception) -> None:
        """A model that could not be fitted or asked: dropped, and why is ForecastReady's."""
        self.state.model.model = None
        self.model_error = exc
        if isinstance(exc, InsufficientHistory):
            self.forecast_problem = Problem(
                "InsufficientHistory", f"{exc}; following the current load"
            )
            return
        text = f"{type(exc).__name__}: {exc}"
        self.forecast_problem = Problem("ForecastFailed", text)
        self.logs.append(LogLine("error", f"forecasting failed: {text}", exc))

    def fitting(self) -> None:
        """The first fit runs in the background: follow the current load until it is done."""
        points = int(self.state.model.history.notna().sum())
        self.forecast_problem = Problem(
            FITTING,
            f"first fit on {points} points in progress; following the current load until then",
        )

    def first_fit_done(
        self, anomaly: AnomalyState | None, score: float | None, fitted: Forecaster, since: float
    ) -> None:
        """A background first fit (begun at `since`, with its detector pass) is ready."""
        state = self.state
        state.anomaly, state.detector_score = anomaly, score
        state.model.model, state.model.fitted_at = fitted, since
        state.model.fits += 1

    # 4. the decision

    def decide(self, detector_score: float | None) -> Decision | None:
        """Score the anomaly, judge the forecast's track record, decide and remember this
        sync's forecast for trust; None when the target could not be read."""
        spec, state, now = self.spec, self.state, self.now
        previous, state.last_forecast = state.last_forecast, self.forecast
        residual = anomaly_score(spec, state.model, previous, self.load, now)
        detector = detector_score if spec.anomaly.enabled else None
        self.anomaly_score = combined_score(detector, residual)
        if state.accuracy is None:
            state.accuracy = new_tracker(spec)
        self.trusted = judge(state.accuracy, spec, now, self.load)
        self.accuracy = state.accuracy.accuracy()
        if self.current is None:
            return None
        current = self._dry_run_current(self.current)
        if state.memory is None:
            state.memory = initial_memory(now, current)
        self.decision = decide(
            spec,
            Observation(
                now=now,
                current_replicas=current,
                load=self.load,
                forecast=self.forecast,
                forecast_trusted=self.trusted,
                anomaly_score=self.anomaly_score,
                consecutive_failures=state.failures,
                memory=state.memory,
            ),
        )
        remember_forecast(state.accuracy, spec, now, self.decision)
        return self.decision

    def _dry_run_current(self, current: int) -> int:
        """DryRun follows the count Active mode would have reached, so it reports what the
        operator would do (1→5→8 under rate limits), not a single capped step. Someone else
        changing the real count re-anchors it."""
        state = self.state
        if self.spec.mode != "DryRun":
            state.dry_run_replicas = state.dry_run_anchor = None
            return current
        if state.dry_run_replicas is None or state.dry_run_anchor != current:
            state.dry_run_replicas, state.dry_run_anchor = current, current
        return state.dry_run_replicas

    # 5. the write

    def write_wanted(self) -> int | None:
        """The replicas to write to the target's /scale, or None (no change, DryRun, a
        conflict, nothing decided)."""
        d = self.decision
        if d is None or self.state.memory is None or self.spec.mode != "Active":
            return None
        if not d.changes_scale or self.write_problem is not None:
            return None
        return d.desired_replicas

    def written(self, replicas: int | None = None, problem: Problem | None = None) -> None:
        """What the write did (`replicas` after it, or the API's refusal), the Events and log
        lines that deserves, and the decision memory."""
        d, spec, state = self.decision, self.spec, self.state
        if d is None or state.memory is None:
            return
        if problem is not None:
            self.write_problem = problem
        elif self.write_wanted() is not None:
            self._scaled(d, replicas)
        if spec.mode == "Active" and self.write_problem is not None:
            self._write_refused(d, self.write_problem)
        if spec.mode == "DryRun":
            self._dry_run(d)
        applied = self.applied or (spec.mode == "DryRun" and d.changes_scale)
        state.memory = remember(spec, state.memory, d, self.now, applied)

    def _scaled(self, d: Decision, replicas: int | None) -> None:
        self.applied = True
        self.current = d.desired_replicas if replicas is None else replicas
        self.state.last_scale_time = rfc3339(self.now)
        self.state.last_write_error = None
        target = self.spec.scale_target_ref.name
        text = (
            f"scaled {target} {d.current_replicas}→{d.desired_replicas}: {headline(self.spec, d)}"
        )
        self.logs.append(LogLine("info", text))
        self.events.append(Event("Normal", "SuccessfulRescale", text))

    def _write_refused(self, d: Decision, problem: Problem) -> None:
        state = self.state
        if d.changes_scale:
            self.logs.append(
                LogLine("warning", f"not scaling {self.spec.scale_target_ref.name}: {problem}")
            )
        if str(problem) != state.last_write_error:  # once per distinct problem
            self.events.append(Event("Warning", problem.reason, str(problem)))
        state.last_write_error = str(problem)

    def _dry_run(self, d: Decision) -> None:
        state = self.state
        if d.changes_scale and d.desired_replicas != state.last_dry_run:
            text = (
                f"would scale {self.spec.scale_target_ref.name} "
                f"{d.current_replicas}→{d.desired_replicas} (DryRun): {headline(self.spec, d)}"
            )
            self.logs.append(LogLine("info", text))
            self.events.append(Event("Normal", "DryRunRescale", text))
        state.last_dry_run = d.desired_replicas
        state.dry_run_replicas = d.desired_replicas


__all__ = [
    "FITTING",
    "Event",
    "FetchRange",
    "LogLine",
    "ModelResult",
    "ModelWork",
    "Problem",
    "Sync",
    "SyncState",
    "headline",
    "run_model_work",
]
