"""The ensemble: every member that can fit, combined with weights learned from their
rolling-origin backtests on the recent history, and intervals calibrated on the combination's
own backtest residuals (split conformal).

At every fit each member backtests itself on the latest origins of the history (the learning
members train only on what lies before them, so those forecasts are out of sample). On the
origins all members share, the weights are learned by stacking: per step ahead, the
non-negative weights summing to one whose combination has the least absolute error (what
forecasts are judged by), so a member that is good a step ahead and poor five steps ahead counts
for what it is worth at each. With too few shared origins to learn weights from, the member
with the lowest backtest error forecasts alone. The combination's residuals at the shared
origins give the quantile offsets, so the 0.9 quantile is exceeded about 10 % of the time
whatever the members' own calibration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from forecastscaler.models.base import (
    DEFAULT_QUANTILES,
    Capabilities,
    FloatArray,
    Forecast,
    Forecaster,
    InsufficientHistory,
    NotFitted,
)
from forecastscaler.models.calibrated import (
    CalibratedForecaster,
    interval_offsets,
    target_stamps,
)
from forecastscaler.models.calibration import (
    IntArray,
    actuals,
    mae_at,
    quantile_paths,
)
from forecastscaler.models.conditional import Conditional, fit_conditional
from forecastscaler.models.history import future_index, glitches, regularize, valid_count

log = logging.getLogger(__name__)

# Fewest origins shared by the members before weights are learned; below it, the single
# member with the lowest backtest error forecasts alone.
MIN_SHARED_ORIGINS = 30


STACK = "stack"
# How strongly stacking weights are held to a sum of one (a row of the least-squares system).
SUM_PENALTY = 1e3
IRLS_ROUNDS = 4


def _stack(forecasts: FloatArray, truth: FloatArray) -> FloatArray:
    """(members, steps) non-negative weights summing to one that minimise the absolute error of
    the combination at each step (stacking)."""
    members, _, steps = forecasts.shape
    out = np.zeros((members, steps))
    for j in range(steps):
        y = truth[:, j]
        ok = np.isfinite(y) & np.isfinite(forecasts[:, :, j]).all(axis=0)
        if ok.sum() < members:
            out[:, j] = 1.0 / members
            continue
        f = forecasts[:, ok, j].T
        target = y[ok]
        scale = max(float(np.std(target)), 1e-9)
        rows = np.ones(len(target))
        w = np.full(members, 1.0 / members)
        # Least absolute error (what the ensemble is judged by) by iteratively reweighted
        # least squares: each origin weighted by 1 / |its residual| of the previous round.
        for _ in range(IRLS_ROUNDS):
            a = np.vstack([f * rows[:, None] / scale, np.full((1, members), SUM_PENALTY)])
            b = np.concatenate([target * rows / scale, [SUM_PENALTY]])
            w, _ = nnls(a, b)
            residual = np.abs(target - f @ w) / scale
            rows = 1.0 / np.sqrt(np.maximum(residual, 1e-3))
        total = float(w.sum())
        out[:, j] = w / total if total > 0 else 1.0 / members
    return out


def _combine(forecasts: FloatArray, weights: FloatArray) -> FloatArray:
    """(origins, steps) combination of (members, origins, steps) forecasts."""
    return np.asarray(np.einsum("mos,ms->os", forecasts, weights), dtype=np.float64)


class Ensemble(Forecaster):
    """Members combined by backtest-learned weights, with conformal intervals."""

    name: ClassVar[str] = "ensemble"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(self, members: Sequence[CalibratedForecaster], horizon: int = 5) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if horizon < 1:
            raise ValueError("horizon must be at least one step")
        self.members = list(members)
        self.horizon = horizon

    def min_history(self) -> int:
        return min(m.min_history() for m in self.members)

    def fit(self, y: pd.Series) -> Self:
        series = regularize(y)
        raw = series.to_numpy(dtype=np.float64, copy=True)
        raw[glitches(series)] = np.nan
        got = valid_count(series)
        fitted: list[CalibratedForecaster] = []
        self.skipped_: dict[str, str] = {}
        for member in self.members:
            try:
                fitted.append(member.fit(series))
            except ValueError as exc:  # InsufficientHistory, UnsuitableSeries
                self.skipped_[member.name] = str(exc)
            except Exception as exc:  # a member's library failing must not sink the others
                log.warning("%s failed to fit: %s", member.name, exc)
                self.skipped_[member.name] = f"{type(exc).__name__}: {exc}"
        if not fitted:
            needs = ", ".join(f"{m.name} {m.min_history()}" for m in self.members)
            raise InsufficientHistory(f"every model ({needs})", self.min_history(), got)
        self.fitted_ = fitted
        self.errors_ = {m.name: m.backtest_error for m in fitted}
        self._learn(raw, pd.DatetimeIndex(series.index))
        return self

    def _shared_origins(self) -> IntArray:
        ends = {m.backtest_end_ for m in self.fitted_}
        if len(ends) != 1:  # members saw different grids: nothing to line up
            return np.zeros(0, dtype=np.int64)
        first = max(
            int(m.backtest_origins_[0]) if len(m.backtest_origins_) else 1 << 62
            for m in self.fitted_
        )
        last = min(
            int(m.backtest_origins_[-1]) if len(m.backtest_origins_) else -1 for m in self.fitted_
        )
        return (
            np.arange(first, last + 1, dtype=np.int64)
            if last >= first
            else np.zeros(0, dtype=np.int64)
        )

    def _learn(self, raw: FloatArray, index: pd.DatetimeIndex) -> None:
        self.offsets_: dict[tuple[float, ...], dict[float, FloatArray]] = {}
        at = self._shared_origins()
        h = self.horizon
        n_members = len(self.fitted_)
        if len(at) < MIN_SHARED_ORIGINS or n_members == 1:
            best = min(range(n_members), key=lambda i: self.fitted_[i].backtest_error)
            self.weights_ = np.zeros((n_members, h))
            self.weights_[best, :] = 1.0
            self.scheme_ = "best"
            chosen = self.fitted_[best]
            self.residuals_ = chosen.residuals_
            self.backtest_error_: float | None = chosen.backtest_error_
            self.conditional_: Conditional = chosen.conditional_
            return
        forecasts = np.stack(
            [m.backtest_forecasts_[np.searchsorted(m.backtest_origins_, at)] for m in self.fitted_]
        )
        truth = actuals(raw, at, h)
        self.scheme_ = STACK
        self.weights_ = _stack(forecasts, truth)
        combined = _combine(forecasts, self.weights_)
        self.residuals_ = truth - combined
        self.backtest_error_ = mae_at(self.residuals_, h)
        # The intervals' scale follows the combination's level and the targets' calendar.
        step = self.fitted_[0].step_.total_seconds()
        self.conditional_ = fit_conditional(
            self.residuals_, combined, target_stamps(index, at, h), step
        )

    @property
    def weights(self) -> dict[str, float]:
        """Each member's weight at the horizon step."""
        if not hasattr(self, "weights_"):
            return {}
        return {m.name: float(self.weights_[i, -1]) for i, m in enumerate(self.fitted_)}

    @property
    def summary(self) -> str:
        """The members that carry weight at the horizon, heaviest first, for status."""
        parts = sorted(self.weights.items(), key=lambda kv: -kv[1])
        return "+".join(f"{name}:{w:.2f}" for name, w in parts if w >= 0.005)

    def update(self, y: pd.Series) -> Self:
        if not hasattr(self, "fitted_"):
            raise NotFitted("ensemble must be fitted before update")
        for member in self._active():
            member.update(y)
        return self

    def _active(self) -> list[CalibratedForecaster]:
        """Members with weight at some step: the only ones kept up to date and asked."""
        return [m for i, m in enumerate(self.fitted_) if self.weights_[i].any()]

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        if not hasattr(self, "fitted_"):
            raise NotFitted("ensemble must be fitted before predict")
        if horizon < 1:
            raise ValueError("horizon must be at least one step")
        # Beyond the calibrated steps each member keeps its last step's weight.
        cols = np.minimum(np.arange(horizon), self.horizon - 1)
        point = np.zeros(horizon)
        for i, member in enumerate(self.fitted_):
            w = self.weights_[i, cols]
            if w.any():
                point += w * member.point_forecast(horizon)
        point = np.maximum(np.nan_to_num(point, nan=0.0), 0.0)
        ref = self._active()[0]  # members track the newest timestamp through update
        index = future_index(ref.index_, horizon, ref.step_)
        offsets = interval_offsets(self, point, index, quantiles)
        return Forecast(
            index=index,
            point=point,
            quantiles=quantile_paths(point, offsets, quantiles),
            model=self.summary or self.name,
        )

    @property
    def backtest_error(self) -> float:
        value = getattr(self, "backtest_error_", None)
        return float("inf") if value is None else float(value)
