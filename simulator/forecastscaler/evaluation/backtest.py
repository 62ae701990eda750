"""`forecastscaler backtest`: how well each model forecasts a trace at the horizon.

The simulator judges the whole decision loop; this judges the forecast alone, for every model
and the ensemble, so a new model can be compared with the baselines on the same origins.

Protocol (rolling origin, as the operator uses its model):

- The trace is loaded with `load_trace` (a regular grid, NaN for gaps) and cleaned as every
  model cleans its history (`regularize`: negative or infinite values become gaps).
- Origins t are trace steps from the warmup (default the last half of the trace, `--warmup 50%`)
  to the last step that still has `horizon` steps after it. When there are more than
  `--max-origins` (default 3000), every k-th step is an origin (a stride, said in the output).
- At each origin the model sees only the history window `load[t - history + 1 .. t]`
  (`--history`, default 7d as the operator's `forecast.history`, or 720 steps on coarse
  traces), gaps kept as NaN so the window ends at t.
- It is refitted (a new instance, `fit`) at the first origin and then at the first origin at
  least `--retrain` later (default 1h of trace time, the operator's `retrainInterval`); at every
  other origin it is brought up to date with `update` on the window and asked to `predict`.
  A trace costs at most `--max-refits` refits (default 24): when the retrain period would need
  more, it is lengthened to span / max-refits steps, and the output says so.
- The forecast scored is the one `horizon` steps ahead (point, the `--quantile`, and the
  0.1-0.9 interval the operator shows) against the load at t + horizon. Gaps in the load are
  skipped, never scored as zero; origins where a model had no forecast are counted, not scored.
- Members are built alone (`MODEL_FACTORIES[name](horizon)`): a member that cannot fit a window
  (InsufficientHistory, UnsuitableSeries, or any error) has no forecast until its next refit,
  and one that never fits is reported as skipped with the reason. `ensemble` is what the
  operator runs for `models: [ensemble]` (`make_forecaster(["ensemble"], horizon)`, which always
  has a lastValue fallback).

Figures per model, at the horizon step: MAE; MAE relative to the last-value forecast on the same
points (the last observed value in the window at the origin; below 1 beats naive); sMAPE in
percent (0-200, 0/0 counted as 0); pinball loss at the quantile; the share of actuals at or
below the quantile forecast (target: the quantile); the share inside the 0.1-0.9 interval
(target 0.8) and its mean width relative to the mean load; mean seconds per fit and mean
milliseconds per update + predict; for a combining model, each member's mean weight at the
horizon over the refits (a selecting model's choice counts as weight 1); and the quantile's
coverage per hour-of-day and minute-of-hour bucket of the target time (backtest_buckets.py:
every bucket in the JSON, the worst and the spread in the table). A forecast whose
timestamps do not start right after the origin counts as a failure, not as a forecast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecastscaler.core.api import default_history, format_duration, parse_duration
from forecastscaler.core.model import INTERVAL
from forecastscaler.core.traces import Trace, parse_warmup
from forecastscaler.evaluation.backtest_buckets import BUCKET_COLUMNS, bucket_figures
from forecastscaler.evaluation.backtest_report import format_table
from forecastscaler.evaluation.scores import (
    coverage,
    finite_mask,
    interval_coverage,
    mae,
    pinball,
    smape,
)
from forecastscaler.models import selection
from forecastscaler.models.base import FloatArray, Forecaster
from forecastscaler.models.history import regularize

ModelFactory = Callable[[int], Forecaster]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ENSEMBLE = "ensemble"
DEFAULT_RETRAIN = "1h"
DEFAULT_HORIZON = "5m"
DEFAULT_MAX_REFITS = 24
DEFAULT_MAX_ORIGINS = 3000
DEFAULT_QUANTILE = 0.9
# Fewer scored origins than this say nothing about a model.
MIN_ORIGINS = 10

METRIC_COLUMNS = (
    "status",
    "reason",
    "origins",
    "forecasts",
    "scored",
    "mae",
    "mae_vs_last",
    "smape_pct",
    "pinball",
    "quantile_coverage",
    "interval_coverage",
    "interval_width_rel",
    "refits",
    "failed_refits",
    "failures",
    "fit_s",
    "step_ms",
    "weights",
)


class BacktestError(ValueError):
    """The backtest cannot run as asked (trace too short, unknown model, bad option)."""


# ------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Schedule:
    """Where the backtest forecasts from and where it refits."""

    origins: IntArray
    """Trace positions of the origins."""
    refit: BoolArray
    """Whether each origin starts with a refit."""
    stride: int
    retrain_steps: int
    """The refit period actually used, in steps."""
    requested_retrain_steps: int

    @property
    def coarsened(self) -> bool:
        return self.retrain_steps > self.requested_retrain_steps


def make_schedule(
    n: int,
    horizon: int,
    first: int,
    *,
    max_origins: int,
    retrain_steps: int,
    max_refits: int,
) -> Schedule:
    """Origins from `first` to the last one with `horizon` steps after it (strided down to at
    most `max_origins`), refitting every `retrain_steps` but at most `max_refits` times."""
    last = n - 1 - horizon
    count = last - first + 1
    if count < MIN_ORIGINS:
        raise BacktestError(
            f"{n} steps leave {max(count, 0)} origins from step {first} at {horizon} steps "
            f"ahead; a backtest needs at least {MIN_ORIGINS} (a longer trace, a shorter "
            "horizon or a smaller --warmup)"
        )
    if max_origins < MIN_ORIGINS or max_refits < 1:
        raise BacktestError(f"max origins must be at least {MIN_ORIGINS} and max refits 1")
    stride = math.ceil(count / max_origins)
    at = np.arange(first, last + 1, stride, dtype=np.int64)
    requested = max(1, retrain_steps)
    period = max(requested, math.ceil(count / max_refits))
    refit = np.zeros(len(at), dtype=np.bool_)
    last_fit: int | None = None
    for i, t in enumerate(at.tolist()):
        if last_fit is None or t - last_fit >= period:
            refit[i] = True
            last_fit = t
    return Schedule(at, refit, stride, period, requested)


# ---------------------------------------------------------------------------- the models


def default_models() -> list[str]:
    """Every registered member (the ensemble's first) plus the ensemble."""
    members = [*selection.ENSEMBLE_MEMBERS]
    members += [name for name in selection.MODEL_FACTORIES if name not in members]
    return [name for name in members if name != ENSEMBLE] + [ENSEMBLE]


def ensemble_members() -> tuple[str, ...]:
    return tuple(m for m in selection.ENSEMBLE_MEMBERS if m != ENSEMBLE)


def resolve_models(
    models: Sequence[str] | Mapping[str, ModelFactory] | None,
) -> dict[str, ModelFactory]:
    """Factories by name: registered members alone, `ensemble` as the operator builds it, or
    the given mapping (any forecaster, e.g. a test's spy)."""
    if isinstance(models, Mapping):
        return dict(models)
    names = default_models() if models is None else [m.strip() for m in models if m.strip()]
    if not names:
        raise BacktestError("no models to backtest")
    out: dict[str, ModelFactory] = {}
    for name in names:
        if name == ENSEMBLE:
            out[name] = lambda h: selection.make_forecaster([ENSEMBLE], h)
        elif name in selection.MODEL_FACTORIES:
            out[name] = selection.MODEL_FACTORIES[name]
        else:
            known = ", ".join([*selection.MODEL_FACTORIES, ENSEMBLE])
            raise BacktestError(f"unknown model {name!r}; known: {known}")
    return out


@dataclass
class _Run:
    """One model's forecasts at every origin and what it cost."""

    point: FloatArray
    value: FloatArray
    lower: FloatArray
    upper: FloatArray
    fit_seconds: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    predict_seconds: list[float] = field(default_factory=list)
    refits: int = 0
    failed_refits: int = 0
    failures: int = 0
    first_failure: str = ""
    weights: dict[str, float] = field(default_factory=dict)
    """Sum over successful refits of each member's weight (a combining model's)."""

    def fail(self, exc: Exception) -> None:
        self.failures += 1
        if not self.first_failure:
            kind = "" if isinstance(exc, ValueError) else f"{type(exc).__name__}: "
            self.first_failure = f"{kind}{exc}"


def _run_model(
    factory: ModelFactory,
    series: pd.Series,
    sched: Schedule,
    history_steps: int,
    horizon: int,
    quantile: float,
    clock: Callable[[], float],
    tick: Callable[[], None],
) -> _Run:
    n_at = len(sched.origins)
    run = _Run(
        point=np.full(n_at, np.nan),
        value=np.full(n_at, np.nan),
        lower=np.full(n_at, np.nan),
        upper=np.full(n_at, np.nan),
    )
    levels = tuple(sorted({INTERVAL[0], 0.5, quantile, INTERVAL[1]}))
    step = pd.Timedelta(series.index[1] - series.index[0])
    model: Forecaster | None = None
    for i, t in enumerate(sched.origins.tolist()):
        tick()
        window = series.iloc[max(0, t - history_steps + 1) : t + 1]
        refit = bool(sched.refit[i])
        try:
            started = clock()
            if refit:
                model = None
                run.refits += 1
                try:
                    model = factory(horizon).fit(window)
                except Exception:
                    run.failed_refits += 1
                    raise
                run.fit_seconds.append(clock() - started)
                for member, weight in member_weights(model).items():
                    run.weights[member] = run.weights.get(member, 0.0) + weight
                started = clock()
            elif model is None:
                continue  # the last refit failed: no forecast until the next one
            else:
                model.update(window)
            fc = model.predict(horizon, levels)
            elapsed = clock() - started
            (run.predict_seconds if refit else run.step_seconds).append(elapsed)
            expected = series.index[t] + horizon * step
            if fc.index[horizon - 1] != expected:
                raise RuntimeError(
                    f"forecast {horizon} steps ahead is for {fc.index[horizon - 1]}, "
                    f"expected {expected}"
                )
        except Exception as exc:  # a model's failure is a figure of the backtest, not a crash
            run.fail(exc)
            model = None
            continue
        run.point[i] = fc.point[horizon - 1]
        run.value[i] = fc.quantile(quantile)[horizon - 1]
        run.lower[i] = fc.quantile(INTERVAL[0])[horizon - 1]
        run.upper[i] = fc.quantile(INTERVAL[1])[horizon - 1]
    return run


def _figures(run: _Run, actual: FloatArray, naive: FloatArray, quantile: float) -> dict[str, Any]:
    has = finite_mask(run.point, run.value, run.lower, run.upper)
    scored = has & finite_mask(actual, naive)
    a = np.where(scored, actual, np.nan)
    model_mae = mae(a, run.point)
    naive_mae = mae(a, naive)
    if not scored.any():
        relative = math.nan
    elif naive_mae > 0:
        relative = model_mae / naive_mae
    else:
        relative = 1.0 if model_mae == 0 else math.inf
    mean_load = float(np.mean(np.abs(a[scored]))) if scored.any() else math.nan
    width = float(np.mean(run.upper[scored] - run.lower[scored])) if scored.any() else math.nan
    forecasts = int(np.count_nonzero(has))
    status = "skipped" if forecasts == 0 else "partial" if forecasts < len(actual) else "ok"
    step = run.step_seconds or run.predict_seconds
    return {
        "status": status,
        "reason": run.first_failure,
        "origins": len(actual),
        "forecasts": forecasts,
        "scored": int(np.count_nonzero(scored)),
        "mae": model_mae,
        "mae_vs_last": relative,
        "smape_pct": smape(a, run.point),
        "pinball": pinball(a, run.value, quantile),
        "quantile_coverage": coverage(a, run.value),
        "interval_coverage": interval_coverage(a, run.lower, run.upper),
        "interval_width_rel": width / mean_load if mean_load > 0 else math.nan,
        "refits": run.refits,
        "failed_refits": run.failed_refits,
        "failures": run.failures,
        "fit_s": float(np.mean(run.fit_seconds)) if run.fit_seconds else math.nan,
        "step_ms": 1e3 * float(np.mean(step)) if step else math.nan,
        "weights": _mean_weights(run),
    }


def member_weights(model: Forecaster) -> dict[str, float]:
    """What a combining model made of its members at the horizon: the weights of a weighted
    ensemble (`weights`), 1 for the member a selecting one chose (`chosen_`), else nothing."""
    weights = getattr(model, "weights", None)
    if isinstance(weights, Mapping) and weights:
        return {str(k): float(v) for k, v in weights.items()}
    chosen = getattr(model, "chosen_", None)
    return {chosen.name: 1.0} if isinstance(chosen, Forecaster) else {}


def _mean_weights(run: _Run) -> str:
    """Mean weight per member over the successful refits, heaviest first."""
    fits = len(run.fit_seconds)
    if not fits or not run.weights:
        return ""
    mean = sorted(((w / fits, k) for k, w in run.weights.items()), key=lambda x: (-x[0], x[1]))
    return ", ".join(f"{k} {w:.2f}" for w, k in mean if w >= 0.005)


# ---------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Protocol:
    """How the backtest was run, in steps and in trace time."""

    trace: str
    steps: int
    step: pd.Timedelta
    horizon_steps: int
    history_steps: int
    warmup: float
    quantile: float
    origins: int
    stride: int
    first_origin: pd.Timestamp
    last_origin: pd.Timestamp
    refits: int
    retrain_steps: int
    requested_retrain_steps: int
    max_refits: int

    @property
    def coarsened(self) -> bool:
        return self.retrain_steps > self.requested_retrain_steps

    def _span(self, steps: int) -> str:
        return format_duration(round(steps * self.step.total_seconds()))

    def describe(self) -> str:
        every = f" every {self.stride} steps" if self.stride > 1 else ""
        refit = f"refit every {self._span(self.retrain_steps)} ({self.refits} refits"
        if self.coarsened:
            refit += (
                f"; {self._span(self.requested_retrain_steps)} asked, lengthened to stay "
                f"within --max-refits {self.max_refits}"
            )
        return (
            f"trace {self.trace}: {self.steps} steps of {self._span(1)}; horizon "
            f"{self.horizon_steps} steps ({self._span(self.horizon_steps)}); history "
            f"{self._span(self.history_steps)}; {self.origins} origins{every} from "
            f"{self.first_origin:%Y-%m-%d %H:%M} (last {100 * (1 - self.warmup):.0f}%); "
            f"{refit}); quantile {self.quantile:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "steps": self.steps,
            "step_seconds": self.step.total_seconds(),
            "horizon_steps": self.horizon_steps,
            "history_steps": self.history_steps,
            "warmup": self.warmup,
            "quantile": self.quantile,
            "interval": list(INTERVAL),
            "origins": self.origins,
            "stride": self.stride,
            "first_origin": self.first_origin.isoformat(),
            "last_origin": self.last_origin.isoformat(),
            "refits": self.refits,
            "retrain_steps": self.retrain_steps,
            "requested_retrain_steps": self.requested_retrain_steps,
            "retrain_coarsened": self.coarsened,
            "max_refits": self.max_refits,
        }


def _json_value(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


@dataclass(frozen=True)
class BacktestResult:
    """The figures per model (`metrics`, one row each) and every scored forecast."""

    protocol: Protocol
    metrics: pd.DataFrame
    forecasts: pd.DataFrame
    """One row per origin and model with a forecast: origin, target, model, actual, naive,
    point, value (the quantile), lower, upper."""
    warnings: tuple[str, ...] = ()

    @property
    def skipped(self) -> dict[str, str]:
        rows = self.metrics[self.metrics["status"] == "skipped"]
        return {str(name): str(reason) for name, reason in rows["reason"].items()}

    def compare(self, model: str, other: str) -> float:
        """MAE of `model` over MAE of `other` on the points both forecast (NaN if none)."""
        f = self.forecasts
        a = f[f["model"] == model].set_index("origin")
        b = f[f["model"] == other].set_index("origin")
        common = a.index.intersection(b.index)
        if not len(common):
            return math.nan
        actual = a.loc[common, "actual"].to_numpy(np.float64)
        mine = mae(actual, a.loc[common, "point"].to_numpy(np.float64))
        theirs = mae(actual, b.loc[common, "point"].to_numpy(np.float64))
        if not math.isfinite(mine) or not math.isfinite(theirs):
            return math.nan
        if theirs == 0:
            return 1.0 if mine == 0 else math.inf
        return mine / theirs

    def to_dict(self) -> dict[str, Any]:
        models = {
            str(name): {k: _json_value(v) for k, v in row.items()}
            for name, row in self.metrics.to_dict(orient="index").items()
        }
        return {
            "trace": self.protocol.trace,
            "protocol": self.protocol.to_dict(),
            "models": models,
            "skipped": self.skipped,
            "warnings": list(self.warnings),
        }

    def table(self) -> str:
        return format_table(self)


# ---------------------------------------------------------------------------- the engine


def _steps(value: str | pd.Timedelta, step: pd.Timedelta, what: str) -> int:
    seconds = value.total_seconds() if isinstance(value, pd.Timedelta) else parse_duration(value)
    if seconds <= 0:
        raise BacktestError(f"{what} must be positive")
    return max(1, math.ceil(seconds / step.total_seconds() - 1e-9))


def horizon_to_steps(horizon: str | pd.Timedelta, step: pd.Timedelta) -> int:
    """A horizon duration in whole steps, rounded up (as the operator does)."""
    return _steps(horizon, step, "the horizon")


def backtest(
    series: pd.Series | Trace,
    models: Sequence[str] | Mapping[str, ModelFactory] | None = None,
    horizon_steps: int = 5,
    *,
    history: str | pd.Timedelta | None = None,
    retrain: str | pd.Timedelta = DEFAULT_RETRAIN,
    max_refits: int = DEFAULT_MAX_REFITS,
    warmup: str | float = 0.5,
    max_origins: int = DEFAULT_MAX_ORIGINS,
    quantile: float = DEFAULT_QUANTILE,
    name: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Rolling-origin evaluation of `models` (names, or factories by name; default every
    member plus the ensemble) at `horizon_steps` ahead; see the module docstring.

    `progress(done, total)` is called once per origin and model."""
    warnings: tuple[str, ...] = ()
    if isinstance(series, Trace):
        name = name or series.name
        warnings = series.warnings
        series = series.load
    if not isinstance(series.index, pd.DatetimeIndex) or len(series) < 2:
        raise BacktestError("the load must be a series of at least two steps on a DatetimeIndex")
    if not 0 < quantile < 1:
        raise BacktestError(f"quantile must be between 0 and 1, not {quantile}")
    if horizon_steps < 1:
        raise BacktestError("the horizon must be at least one step")
    factories = resolve_models(models)
    load = regularize(series)
    step = pd.Timedelta(load.index[1] - load.index[0])
    if history is None:
        history = default_history(step.total_seconds())
    history_steps = max(2, _steps(history, step, "the history"))
    n = len(load)
    fraction = parse_warmup(warmup)
    sched = make_schedule(
        n,
        horizon_steps,
        min(max(1, round(n * fraction)), n - 1),
        max_origins=max_origins,
        retrain_steps=_steps(retrain, step, "the retrain interval"),
        max_refits=max_refits,
    )
    values = load.to_numpy(dtype=np.float64)
    at = sched.origins
    actual = values[at + horizon_steps]
    # The last-value forecast: the newest observation the window holds at each origin.
    held = load.ffill(limit=history_steps - 1).to_numpy(dtype=np.float64)
    naive = held[at]

    total = len(at) * len(factories)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    rows: dict[str, dict[str, Any]] = {}
    frames: list[pd.DataFrame] = []
    origin_times = pd.DatetimeIndex(load.index[at])
    target_times = pd.DatetimeIndex(load.index[at + horizon_steps])
    for model_name, factory in factories.items():
        run = _run_model(factory, load, sched, history_steps, horizon_steps, quantile, clock, tick)
        rows[model_name] = _figures(run, actual, naive, quantile)
        rows[model_name].update(
            bucket_figures(target_times, actual, run.value, step.total_seconds())
        )
        has = finite_mask(run.point, run.value, run.lower, run.upper)
        frames.append(
            pd.DataFrame(
                {
                    "origin": origin_times[has],
                    "target": target_times[has],
                    "model": model_name,
                    "actual": actual[has],
                    "naive": naive[has],
                    "point": run.point[has],
                    "value": run.value[has],
                    "lower": run.lower[has],
                    "upper": run.upper[has],
                }
            )
        )
    metrics = pd.DataFrame.from_dict(rows, orient="index")[[*METRIC_COLUMNS, *BUCKET_COLUMNS]]
    protocol = Protocol(
        trace=name or str(series.name or "series"),
        steps=n,
        step=step,
        horizon_steps=horizon_steps,
        history_steps=history_steps,
        warmup=fraction,
        quantile=quantile,
        origins=len(at),
        stride=sched.stride,
        first_origin=pd.Timestamp(origin_times[0]),
        last_origin=pd.Timestamp(origin_times[-1]),
        refits=int(np.count_nonzero(sched.refit)),
        retrain_steps=sched.retrain_steps,
        requested_retrain_steps=sched.requested_retrain_steps,
        max_refits=max_refits,
    )
    return BacktestResult(protocol, metrics, pd.concat(frames, ignore_index=True), warnings)
