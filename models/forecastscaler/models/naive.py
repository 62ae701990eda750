"""The baselines: last value and seasonal naive. Every other model has to beat them, and they
are what the operator falls back to when history is too short for anything else."""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import pandas as pd

from forecastscaler.models.base import Capabilities, FloatArray, NotFitted
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.calibration import IntArray
from forecastscaler.models.history import fill_gaps, newer_steps, prepare
from forecastscaler.models.season import find_season


class UnsuitableSeries(ValueError):
    """The series lacks what a model needs (for example a season)."""


class LastValue(CalibratedForecaster):
    """Tomorrow looks like now: the naive forecast, with intervals from past h-step changes."""

    name: ClassVar[str] = "lastValue"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def min_history(self) -> int:
        # Two observations: one value to carry forward and a second timestamp for the step
        # (prepare rejects a single sample, so promising one would be a lie).
        return 2

    def fit(self, y: pd.Series) -> Self:
        series, raw, values = prepare(y, self.name, self.min_history())
        self._remember_series(series)
        self.last_ = float(values[-1])
        self._calibrate(raw, values)
        return self

    def update(self, y: pd.Series) -> Self:
        """The newest observed value becomes the forecast; the calibration stays."""
        if not hasattr(self, "index_"):
            raise NotFitted(f"{self.name} must be fitted before update")
        grid, fresh = newer_steps(y, self.index_[-1], self.step_)
        if not len(grid):
            return self
        seen = fresh[np.isfinite(fresh)]
        if len(seen):
            self.last_ = float(seen[-1])
        self.index_ = pd.DatetimeIndex(self.index_[-1:].append(grid))
        self.n_obs_ += len(seen)
        return self

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        return np.repeat(values[at][:, None], self.horizon, axis=1)

    def _point(self, horizon: int) -> FloatArray:
        return np.full(horizon, self.last_)


def seasonal_lookup(values: FloatArray, at: IntArray, horizon: int, season: int) -> FloatArray:
    """values[t + h - k*season] for the smallest k that lands at or before t."""
    steps = np.arange(1, horizon + 1)
    cycles = np.ceil(steps / season).astype(np.int64)
    return np.asarray(values[at[:, None] + steps[None, :] - cycles[None, :] * season], np.float64)


def calendar_periods(step: pd.Timedelta) -> tuple[int, ...]:
    """Day and week in steps, when the step divides them."""
    seconds = step.total_seconds()
    return tuple(int(p / seconds) for p in (86400.0, 604800.0) if seconds > 0 and p % seconds == 0)


class SeasonalNaive(CalibratedForecaster):
    """Same time last season, with the season found from the data (or given)."""

    name: ClassVar[str] = "seasonalNaive"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=True, supports_intervals=True
    )

    def __init__(self, horizon: int = 5, season: int | None = None, max_origins: int = 1500):
        super().__init__(horizon=horizon, max_origins=max_origins)
        self.season = season

    def min_history(self) -> int:
        return 2 * self.season if self.season else 16

    def fit(self, y: pd.Series) -> Self:
        series, raw, values = prepare(y, self.name, self.min_history())
        self._remember_series(series)
        season = self.season or find_season(values, calendar=calendar_periods(self.step_))
        if season is None:
            raise UnsuitableSeries(f"{self.name}: no season found in {len(values)} observations")
        self.season_ = season
        self.values_ = values
        self._calibrate(raw, values)
        self.values_ = values[-season:]  # all a forecast needs: the last season
        return self

    def update(self, y: pd.Series) -> Self:
        """Slide the last season forward over the new observations (gaps interpolated); the
        season and the calibration stay."""
        if not hasattr(self, "index_"):
            raise NotFitted(f"{self.name} must be fitted before update")
        grid, fresh = newer_steps(y, self.index_[-1], self.step_)
        if not len(grid):
            return self
        joined = fill_gaps(np.concatenate([self.values_, fresh]))
        self.values_ = joined[-self.season_ :]
        self.index_ = pd.DatetimeIndex(self.index_[-1:].append(grid))
        self.n_obs_ += int(np.count_nonzero(np.isfinite(fresh)))
        return self

    def _warm(self) -> int:
        return self.season_

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        return seasonal_lookup(values, at, self.horizon, self.season_)

    def _point(self, horizon: int) -> FloatArray:
        at = np.array([len(self.values_) - 1], dtype=np.int64)
        return np.asarray(seasonal_lookup(self.values_, at, horizon, self.season_)[0])
