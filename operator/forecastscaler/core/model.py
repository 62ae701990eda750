"""The fitted model of one ForecastScaler: when to refit, when to just update, and the forecast
as the decision core wants it. Pure given the model; the operator runs the fit and predict calls
in its bounded pool (operator/forecasting.py), the simulator calls them directly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import ForecastPath
from forecastscaler.models.anomaly import residual_score
from forecastscaler.models.base import FloatArray, Forecaster, InsufficientHistory
from forecastscaler.models.detector import StreamingDetector
from forecastscaler.models.ensemble import Ensemble

# The prediction interval shown in status and used to judge surprise.
INTERVAL = (0.1, 0.9)

# Backtest origins behind an interval before anomaly scores are computed from it.
MIN_CALIBRATION_ORIGINS = 30


@dataclass(frozen=True)
class ModelKey:
    """Spec fields a fitted model depends on: when one changes, the model is refitted."""

    query: str
    address: str
    step: float
    history: float
    horizon_steps: int
    models: tuple[str, ...]


def horizon_steps(spec: ForecastScalerSpec) -> int:
    """The horizon in steps (at least one)."""
    step = spec.forecast.step_seconds
    return max(1, math.ceil(spec.forecast.horizon_seconds / step))


def model_key(spec: ForecastScalerSpec, address: str) -> ModelKey:
    return ModelKey(
        query=spec.metric.query,
        address=address,
        step=spec.forecast.step_seconds,
        history=spec.forecast.history_seconds,
        horizon_steps=horizon_steps(spec),
        models=tuple(spec.forecast.models),
    )


@dataclass
class ModelState:
    """A ForecastScaler's model and the history it has seen."""

    key: ModelKey | None = None
    model: Forecaster | None = None
    fitted_at: float | None = None
    fetched_at: float | None = None
    """When the whole history window was last read (refits reuse it until retrainInterval)."""
    history: pd.Series = field(default_factory=lambda: pd.Series(dtype="float64"))
    first_refit: float = 1.0
    """Fraction of retrainInterval after which the first fit is refitted. The operator spreads
    it per object, so objects created together do not all refit in the same minute."""
    fits: int = 0

    def needs_refit(self, key: ModelKey, now: float, retrain_seconds: float) -> bool:
        due = retrain_seconds * (self.first_refit if self.fits == 1 else 1.0)
        return (
            self.model is None
            or self.key != key
            or self.fitted_at is None
            or now - self.fitted_at >= due
        )

    def needs_full_fetch(self, key: ModelKey, now: float, retrain_seconds: float) -> bool:
        return (
            self.key != key
            or not len(self.history)
            or self.fetched_at is None
            or now - self.fetched_at >= retrain_seconds
        )

    def reset(self, key: ModelKey) -> None:
        self.key, self.model, self.fitted_at, self.fetched_at = key, None, None, None
        self.history = pd.Series(dtype="float64")

    def merge_history(self, fresh: pd.Series, window_seconds: float, now: float) -> None:
        """Add newly fetched points (newer values win) and forget what left the window."""
        joined = pd.concat([self.history, fresh]) if len(self.history) else fresh
        joined = joined[~joined.index.duplicated(keep="last")].sort_index()
        cutoff = pd.Timestamp(now - window_seconds, unit="s", tz="UTC")
        self.history = joined[joined.index >= cutoff]

    @property
    def calibrated(self) -> bool:
        """Whether the model's intervals rest on enough backtest origins to judge surprise."""
        residuals = getattr(self.model, "residuals_", None)
        return residuals is not None and residuals.shape[0] >= MIN_CALIBRATION_ORIGINS

    @property
    def model_name(self) -> str:
        """The model as status shows it: the ensemble's members with their weights."""
        return model_name(self.model) if self.model is not None else ""


def model_name(model: Forecaster) -> str:
    """A fitted model as status shows it: the ensemble's members with their weights."""
    if isinstance(model, Ensemble):
        return model.summary or model.name
    return model.name


class AnomalyState:
    """The streaming anomaly detector of one ForecastScaler, fed each completed step of the
    metric's history once, in order. Its score for the newest step is the anomaly score the
    decision uses; steps scored at or above the threshold are kept out of the next refit.

    The detector judges each step against its own robust expectation (a rolling or seasonal
    median) and an IsolationForest on windowed features, never against the ensemble's
    forecast, so the simulator can score a whole trace in one batch and get exactly the
    numbers the operator gets step by step."""

    def __init__(self) -> None:
        self.detector = StreamingDetector()
        self.last_time: pd.Timestamp | None = None
        self.last_score: float | None = None
        self.flagged: list[pd.Timestamp] = []

    def observe(self, history: pd.Series, threshold: float) -> float | None:
        """Score the steps of `history` newer than the last one scored; the newest score, or
        None before the detector has enough history to score."""
        scores = self.score_history(history, threshold)
        if len(scores):
            last = float(scores.iloc[-1])
            self.last_score = last if math.isfinite(last) else None
        return self.last_score

    @property
    def warm_steps(self) -> int:
        """Steps of history the first call scores: what the detector's first refit learns
        from. Older steps would cost time (the operator's first sync of every object scores
        them) and change nothing the detector keeps."""
        return int(self.detector.train_window + self.detector.level_window)

    def score_history(self, history: pd.Series, threshold: float, trim: bool = True) -> pd.Series:
        """The scores of the steps of `history` newer than the last one scored (NaN while the
        detector is warming up). The first call scores its last `warm_steps` steps (all of
        them with `trim=False`) in one batch, later ones step by step: the detector gives the
        same numbers either way."""
        fresh = history if self.last_time is None else history[history.index > self.last_time]
        if self.last_time is None and trim:
            fresh = fresh.iloc[-self.warm_steps :]
        if fresh.empty:
            return pd.Series(dtype="float64")
        before = self.detector.n_
        if self.last_time is None:
            scores = np.asarray(self.detector.score_series(fresh), dtype=np.float64)
        else:
            scores = np.array(
                [self.detector.score(float(v), t) for t, v in fresh.items()], dtype=np.float64
            )
        stamps = pd.DatetimeIndex(fresh.index)
        self.flagged.extend(stamps[scores >= threshold])
        self.last_time = stamps[-1]
        seen = before + np.arange(1, len(scores) + 1)
        return pd.Series(
            np.where(seen > self.detector.min_train, scores, np.nan), index=stamps, dtype="float64"
        )

    def forget_before(self, cutoff: pd.Timestamp) -> None:
        self.flagged = [t for t in self.flagged if t >= cutoff]


def training_history(history: pd.Series, flagged: Sequence[pd.Timestamp]) -> pd.Series:
    """The history with anomalous steps as gaps: a model must not learn an incident as normal."""
    if not flagged or not len(history):
        return history
    values = history.to_numpy(dtype=np.float64, copy=True)
    values[pd.DatetimeIndex(history.index).isin(list(flagged))] = np.nan
    return pd.Series(values, index=history.index)


def path_from_model(
    model: Forecaster, name: str, spec: ForecastScalerSpec, now: float, history_end: float
) -> ForecastPath | None:
    """The forecast the decision core acts on, from a fitted model whose history ends at
    `history_end`: from the next step to beyond now + horizon, with the provisioned quantile
    and the 80% interval. None when the history ends more than one horizon before now (stale
    data says nothing about now). Synchronous and pure given the model: the simulator calls it
    directly, the operator through the fit pool."""
    q = spec.forecast.quantile
    paths = paths_from_model(model, name, spec, now, history_end, (q,))
    return None if paths is None else paths[q]


def paths_from_model(
    model: Forecaster,
    name: str,
    spec: ForecastScalerSpec,
    now: float,
    history_end: float,
    quantiles: Sequence[float],
) -> dict[float, ForecastPath] | None:
    """`path_from_model` at each of these provisioned quantiles, from one predict (the paths
    share their times, point and interval): the simulator's quantile tracks."""
    step = spec.forecast.step_seconds
    horizon = spec.forecast.horizon_seconds
    if now - history_end > horizon + step:  # the newest sample may lag by up to one step
        return None
    steps = max(1, math.ceil((now + horizon - history_end) / step) + 1)
    # The provisioned quantiles, plus a fixed 80% interval for status and anomaly scoring.
    # Asking for more levels changes none: the conformal offsets rise with the level, so the
    # non-crossing sort in `quantile_paths` leaves each path as it is alone (a test checks it).
    levels = tuple(sorted({INTERVAL[0], 0.5, *quantiles, INTERVAL[1]}))
    fc = model.predict(steps, levels)

    def path(values: Sequence[float] | FloatArray) -> tuple[float, ...]:
        # The first step's values also stand for the time between the last sample and it,
        # so every sync in that gap (interval < step) still has an expectation for "now".
        return (float(values[0]), *(float(v) for v in values))

    times = (history_end, *(pd.Timestamp(t).timestamp() for t in fc.index))
    point, lower, upper = (
        path(fc.point),
        path(fc.quantile(INTERVAL[0])),
        path(fc.quantile(INTERVAL[1])),
    )
    return {
        q: ForecastPath(
            times=times,
            value=path(fc.quantile(q)),
            point=point,
            lower=lower,
            upper=upper,
            quantile=q,
            model=name,
        )
        for q in quantiles
    }


def anomaly_score(
    spec: ForecastScalerSpec,
    model: ModelState,
    previous: ForecastPath | None,
    load: float | None,
    now: float,
) -> float | None:
    """How surprising the load is against what the previous sync's forecast expected for now
    (0 to 1); None when anomaly detection is off, or nothing calibrated expected anything."""
    if not spec.anomaly.enabled or load is None or previous is None:
        return None
    if not model.calibrated:  # an interval from a handful of points means nothing
        return None
    expected = previous.at(now)
    if expected is None:
        return None
    _, point, _, upper = expected
    return residual_score(load, point, upper, quantile=INTERVAL[1])


def combined_score(detector: float | None, residual: float | None) -> float | None:
    """One anomaly score from the detector's (for the newest completed step) and the
    forecast residual's (for the current load): either alone may raise the alarm."""
    scores = [x for x in (detector, residual) if x is not None]
    return max(scores) if scores else None


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "AnomalyState",
    "InsufficientHistory",
    "ModelKey",
    "ModelState",
    "anomaly_score",
    "combined_score",
    "horizon_steps",
    "model_key",
    "path_from_model",
    "paths_from_model",
    "rfc3339",
    "training_history",
]
