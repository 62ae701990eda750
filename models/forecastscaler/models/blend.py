"""Seasonal naive blended with a damped trend: the simple forecaster.

Operational load is mostly "what it did this time yesterday, shifted to today's level", plus a
trend that matters in the minutes ahead (a ramp must be met before it peaks). The model is a
weighted blend of

- a level-adjusted seasonal naive: the value one season ago, moved by how much the recent
  window differs from the same window one season ago, and
- Holt's damped trend: a smoothed level plus a decaying trend,

with the smoothing constants and the blend weight chosen by a rolling-origin backtest at the
horizon on the series itself, and intervals from the same backtest's residuals. Without a
season (short or aperiodic history) it is the damped trend alone.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Self

import numpy as np
import pandas as pd

from forecastscaler.models.base import Capabilities, FloatArray, NotFitted
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.calibration import IntArray, actuals, mae_at, origins
from forecastscaler.models.history import fill_gaps, newer_steps, prepare
from forecastscaler.models.naive import calendar_periods, seasonal_lookup
from forecastscaler.models.season import find_season

ALPHAS = (0.1, 0.3, 0.6, 0.9)
BETAS = (0.0, 0.05, 0.2)
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)


def holt_states(
    values: FloatArray, alpha: float, beta: float, phi: float
) -> tuple[FloatArray, FloatArray]:
    """Level and trend after each observation (Holt's damped-trend recursion)."""
    n = len(values)
    levels = np.empty(n)
    trends = np.empty(n)
    level = float(values[0])
    trend = float(values[1] - values[0]) if n > 1 else 0.0
    for t, y in enumerate(values.tolist()):
        previous = level
        level = alpha * y + (1 - alpha) * (previous + phi * trend)
        trend = beta * (level - previous) + (1 - beta) * phi * trend
        levels[t] = level
        trends[t] = trend
    return levels, trends


def damped_sums(phi: float, horizon: int) -> FloatArray:
    """phi + phi^2 + ... + phi^h for h = 1..horizon."""
    return np.cumsum(phi ** np.arange(1, horizon + 1))


def level_shift(values: FloatArray, at: IntArray, season: int, window: int) -> FloatArray:
    """Mean of the `window` values up to each origin minus the same window one season before."""
    csum = np.concatenate([[0.0], np.cumsum(values)])
    now = (csum[at + 1] - csum[at + 1 - window]) / window
    before = (csum[at + 1 - season] - csum[at + 1 - season - window]) / window
    return np.asarray(now - before, dtype=np.float64)


class SeasonalBlend(CalibratedForecaster):
    """Level-adjusted seasonal naive blended with a damped trend, self-tuned by backtest."""

    name: ClassVar[str] = "seasonalBlend"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(
        self,
        horizon: int = 5,
        season: int | None = None,
        level_window: int = 12,
        phi: float = 0.98,
        max_origins: int = 1500,
    ) -> None:
        super().__init__(horizon=horizon, max_origins=max_origins)
        self.season = season
        self.level_window = level_window
        self.phi = phi

    def min_history(self) -> int:
        return self.horizon + 20

    def _warm(self) -> int:
        if self.season_:
            return self.season_ + self.window_
        return 10

    def fit(self, y: pd.Series) -> Self:
        series, raw, values = prepare(y, self.name, self.min_history())
        self._remember_series(series)
        season = self.season or find_season(values, calendar=calendar_periods(self.step_))
        self.season_: int | None = season
        self.window_ = max(1, min(self.level_window, season or 1))
        at = origins(len(values), self.horizon, self._warm(), self.max_origins)
        if len(at) < 5:  # too short to tune: a steady damped trend, weakly smoothed
            self.alpha_, self.beta_, self.blend_ = 0.5, 0.1, 0.0
        else:
            self._tune(raw, values, at)
        self._set_state(values)
        self._calibrate(raw, values)
        return self

    def _tune(self, raw: FloatArray, values: FloatArray, at: IntArray) -> None:
        truth = actuals(raw, at, self.horizon)[:, -1]
        ok = np.isfinite(truth)
        seasonal = self._seasonal(values, at)[:, -1] if self.season_ else None
        best = (np.inf, 0.5, 0.1, 0.0)
        damp = damped_sums(self.phi, self.horizon)[-1]
        for alpha, beta in itertools.product(ALPHAS, BETAS):
            levels, trends = holt_states(values, alpha, beta, self.phi)
            trend_pred = levels[at] + damp * trends[at]
            for blend in BLENDS if seasonal is not None else (0.0,):
                pred = (
                    trend_pred
                    if seasonal is None
                    else (blend * seasonal + (1 - blend) * trend_pred)
                )
                err = float(np.mean(np.abs(truth[ok] - pred[ok]))) if ok.any() else np.inf
                if err < best[0]:
                    best = (err, alpha, beta, blend)
        _, self.alpha_, self.beta_, self.blend_ = best

    def _seasonal(self, values: FloatArray, at: IntArray) -> FloatArray:
        assert self.season_ is not None
        shift = level_shift(values, at, self.season_, self.window_)
        return seasonal_lookup(values, at, self.horizon, self.season_) + shift[:, None]

    def _set_state(self, values: FloatArray) -> None:
        levels, trends = holt_states(values, self.alpha_, self.beta_, self.phi)
        self.levels_, self.trends_ = levels, trends
        self.level_, self.trend_ = float(levels[-1]), float(trends[-1])
        keep = (self.season_ or 0) + self.window_ + 1
        self.values_ = values[-keep:] if len(values) > keep else values

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        damp = damped_sums(self.phi, self.horizon)
        trend_pred = self.levels_[at][:, None] + damp[None, :] * self.trends_[at][:, None]
        if not self.season_ or self.blend_ == 0.0:
            return np.asarray(trend_pred, dtype=np.float64)
        blended = self.blend_ * self._seasonal(values, at) + (1 - self.blend_) * trend_pred
        return np.asarray(blended, dtype=np.float64)

    def _point(self, horizon: int) -> FloatArray:
        damp = damped_sums(self.phi, horizon)
        trend_pred = self.level_ + damp * self.trend_
        if not self.season_ or self.blend_ == 0.0 or len(self.values_) <= self.season_:
            return np.asarray(trend_pred, dtype=np.float64)
        at = np.array([len(self.values_) - 1], dtype=np.int64)
        shift = level_shift(self.values_, at, self.season_, self.window_)[0]
        seasonal = seasonal_lookup(self.values_, at, horizon, self.season_)[0] + shift
        return np.asarray(self.blend_ * seasonal + (1 - self.blend_) * trend_pred)

    def update(self, y: pd.Series) -> Self:
        """Advance the level, trend and seasonal memory over observations newer than the fit,
        keeping the tuned constants and the calibration."""
        if not hasattr(self, "index_"):
            raise NotFitted(f"{self.name} must be fitted before update")
        step = self.step_
        grid, fresh = newer_steps(y, self.index_[-1], step)
        if not len(grid):
            return self
        joined = fill_gaps(np.concatenate([self.values_, fresh]))
        added = joined[len(self.values_) :]
        level, trend = self.level_, self.trend_
        for value in added.tolist():
            previous = level
            level = self.alpha_ * value + (1 - self.alpha_) * (previous + self.phi * trend)
            trend = self.beta_ * (level - previous) + (1 - self.beta_) * self.phi * trend
        self.level_, self.trend_ = level, trend
        keep = (self.season_ or 0) + self.window_ + 1
        self.values_ = joined[-keep:]
        self.index_ = pd.DatetimeIndex(self.index_.append(grid)[-max(keep, 2) :])
        self.n_obs_ += int(np.count_nonzero(np.isfinite(fresh)))
        return self

    @property
    def summary(self) -> str:
        season = f"season {self.season_} steps" if self.season_ else "no season"
        return (
            f"{season}, blend {self.blend_:g}, alpha {self.alpha_:g}, beta {self.beta_:g}, "
            f"backtest MAE {mae_at(self.residuals_, self.horizon) or float('nan'):.4g}"
        )
