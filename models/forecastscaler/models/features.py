"""Features for the learning forecasters, and the fit/update/predict machinery they share.

A learner sees, at each origin t, only values up to t, expressed relative to the current value
and divided by a local scale (the median of the recent context), so what it learns about the
shape of load carries over between levels (a service at 50 or 5000 requests per second):

- the recent window's lags, and the mean, spread, minimum and maximum of the recent window and
  of the longer context;
- the calendar at t: minute of the hour (steps under an hour: cron jobs at :00 and :30), hour
  of day and day of week as sine/cosine pairs, each only when the training origins span two
  hours (days, weeks): with fewer, a learner memorises single days;
- with a season S (found in the data, snapped to a day or a week): the change one season ago
  over the same steps ahead, v[t+h-S] - v[t-S], how far now is from one season ago, and how far
  the recent window's mean is from the same window one season ago.

The target is the change over the next steps, (v[t+h] - v[t]) / scale. The same function builds
the features for the ~1500 backtest origins and for the single forecast origin, so the
calibration measures exactly the model that forecasts.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecastscaler.models.base import FloatArray, NotFitted
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.calibration import IntArray
from forecastscaler.models.conditional import epoch_seconds
from forecastscaler.models.history import fill_gaps, newer_steps, prepare
from forecastscaler.models.naive import calendar_periods
from forecastscaler.models.season import find_season

# Scale-free features and targets are clipped to this many local scales: a counter-reset spike
# of 1e9 on a load of 100 must not become a feature value of 1e7 that swamps the fit.
CLIP = 20.0
# Training origins a learner needs at the least, and calibration origins it keeps at the least.
MIN_TRAIN = 200
MIN_CALIBRATION = 100
# Calendar features need the training origins to span this many days (weeks).
CALENDAR_CYCLES = 2.0
HOUR_SECONDS = 3600.0
DAY_SECONDS = 86400.0
WEEK_SECONDS = 7 * DAY_SECONDS
# 1970-01-01, day 0 of the epoch, was a Thursday: day 3 of a week starting on Monday.
EPOCH_WEEKDAY = 3.0


@dataclass(frozen=True)
class FeatureSpec:
    """The shape of the feature vector: `window` recent lags, a `context` of values for the
    rolling statistics and the scale, the steps ahead, and the season (None without one)."""

    horizon: int
    window: int
    context: int
    season: int | None
    calendar: tuple[float, ...] = ()

    @property
    def cycles(self) -> int:
        """Seasons to look back so that every step ahead lands at or before the origin."""
        return math.ceil(self.horizon / self.season) if self.season else 0

    @property
    def warm(self) -> int:
        """First origin at which every feature is defined."""
        if self.season:
            return max(self.context - 1, self.cycles * self.season + self.window - 1)
        return self.context - 1

    @property
    def width(self) -> int:
        seasonal = self.horizon + 2 if self.season else 0
        return (self.window - 1) + 8 + 2 * len(self.calendar) + seasonal


def calendar(stamps: FloatArray, periods: tuple[float, ...]) -> FloatArray:
    """(origins, 2 per period): the position in each calendar period (a day, a week starting on
    Monday), as sine and cosine, from UTC epoch seconds."""
    columns = []
    for period in periods:
        offset = EPOCH_WEEKDAY * DAY_SECONDS if period == WEEK_SECONDS else 0.0
        angle = 2 * np.pi * (((stamps + offset) % period) / period)
        columns.extend([np.sin(angle), np.cos(angle)])
    return np.column_stack(columns) if columns else np.zeros((len(stamps), 0))


def build_features(
    values: FloatArray, at: IntArray, stamps: FloatArray, spec: FeatureSpec, floor: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(features (origins, spec.width), level v[t], scale) at each origin t >= spec.warm, from
    values[: t + 1] only. `stamps` are the origins' UTC epoch seconds."""
    at = np.asarray(at, dtype=np.int64)
    context = sliding_window_view(values, spec.context)[at - spec.context + 1]
    level = context[:, -1].copy()
    scale = np.maximum(np.median(context, axis=1), floor)
    rel = (context - level[:, None]) / scale[:, None]
    recent = rel[:, -spec.window :]
    blocks = [recent[:, :-1]]
    for block in (recent, rel):
        blocks.append(
            np.column_stack(
                [block.mean(axis=1), block.std(axis=1), block.min(axis=1), block.max(axis=1)]
            )
        )
    blocks.append(calendar(stamps, spec.calendar))
    if spec.season:
        season = spec.season
        steps = np.arange(1, spec.horizon + 1)
        back = np.ceil(steps / season).astype(np.int64) * season
        ahead = values[at[:, None] + steps[None, :] - back[None, :]]
        anchor = values[at[:, None] - back[None, :]]
        blocks.append((ahead - anchor) / scale[:, None])
        blocks.append(((values[at - season] - level) / scale)[:, None])
        csum = np.concatenate([[0.0], np.cumsum(values)])
        w = spec.window
        now = (csum[at + 1] - csum[at + 1 - w]) / w
        before = (csum[at + 1 - season] - csum[at + 1 - season - w]) / w
        blocks.append(((now - before) / scale)[:, None])
    features = np.clip(np.nan_to_num(np.hstack(blocks)), -CLIP, CLIP)
    return features, level, scale


def targets(
    raw: FloatArray, at: IntArray, horizon: int, level: FloatArray, scale: FloatArray
) -> FloatArray:
    """(origins, horizon) scale-free changes (v[t+h] - v[t]) / scale, NaN where unobserved."""
    steps = np.arange(1, horizon + 1)
    future = raw[at[:, None] + steps[None, :]]
    changes = np.clip((future - level[:, None]) / scale[:, None], -CLIP, CLIP)
    return np.asarray(changes, dtype=np.float64)


class WindowForecaster(CalibratedForecaster):
    """A learner of the change over the next `horizon` steps from the features above: direct
    multi-horizon (all steps from the same origin, no feeding back of its own forecasts within
    the horizon).

    It trains only on origins whose targets end at or before `calibration_start`, so the
    backtest that calibrates its intervals is out of sample, and `update` only appends new
    observations to the tail it forecasts from. Subclasses supply the learner (`_learn`,
    `_infer`); `learned_` holds everything it learned.
    """

    def __init__(
        self,
        horizon: int = 5,
        window: int = 16,
        context: int = 64,
        season: int | None = None,
        max_train: int = 3000,
        max_origins: int = 1500,
    ) -> None:
        super().__init__(horizon=horizon, max_origins=max_origins)
        if window < 2 or context < window:
            raise ValueError("need 2 <= window <= context")
        if max_train < 1:
            raise ValueError("max_train must be positive")
        self.window = window
        self.context = context
        self.season = season
        self.max_train = max_train

    @abstractmethod
    def _learn(self, features: FloatArray, changes: FloatArray) -> None:
        """Learn (rows, horizon) scale-free changes (NaN where unobserved) from features;
        store the result in `learned_`."""

    @abstractmethod
    def _infer(self, features: FloatArray) -> FloatArray:
        """(rows, horizon) predicted scale-free changes."""

    # --- how much history ----------------------------------------------------------------

    def _origin_budget(self, n: int) -> int:
        """A quarter of the history for calibration (at least MIN_CALIBRATION origins, at most
        max_origins); the rest is for learning."""
        return min(self.max_origins, max(MIN_CALIBRATION, n // 4))

    def _train_rows(self, n: int, warm: int) -> int:
        """Training origins a history of n values leaves after calibration."""
        first_calibration = max(warm, n - self.horizon - self._origin_budget(n))
        return max(0, first_calibration - self.horizon - warm + 1)

    def min_history(self) -> int:
        # The shortest history that leaves MIN_TRAIN training origins without a season (the
        # season's features are dropped when they would leave fewer).
        warm = self.context - 1
        n = warm + 2 * self.horizon + MIN_TRAIN
        while self._train_rows(n, warm) < MIN_TRAIN:
            n += 1
        return n

    def _warm(self) -> int:
        spec = getattr(self, "spec_", None)
        return spec.warm if isinstance(spec, FeatureSpec) else self.context - 1

    # --- fit -----------------------------------------------------------------------------

    def _choose_season(self, values: FloatArray) -> int | None:
        if self.season == 0:
            return None
        if self.season:
            return self.season
        return find_season(values, calendar=calendar_periods(self.step_))

    def _spec(self, n: int, season: int | None) -> FeatureSpec:
        """The features a history of n values supports: the season's only when they leave
        MIN_TRAIN training origins, a calendar period only when the training origins span
        CALENDAR_CYCLES of it and it is at least four steps long (the minute of the hour, for
        cron jobs at fixed minutes, only at steps of 15 minutes or less)."""
        spec = FeatureSpec(self.horizon, self.window, self.context, season)
        if season and self._train_rows(n, spec.warm) < MIN_TRAIN:
            spec = replace(spec, season=None)
        step = self.step_.total_seconds()
        span = self._train_rows(n, spec.warm) * step
        periods = tuple(
            p
            for p in (HOUR_SECONDS, DAY_SECONDS, WEEK_SECONDS)
            if 4 * step <= p <= span / CALENDAR_CYCLES
        )
        return replace(spec, calendar=periods)

    def fit(self, y: pd.Series) -> Self:
        series, raw, values = prepare(y, self.name, self.min_history())
        self._remember_series(series)
        n = len(values)
        # The season is found on what precedes the calibration origins, like everything learned.
        before = n - self.horizon - self._origin_budget(n)
        spec = self._spec(n, self._choose_season(values[: before + 1]))
        self.spec_ = spec
        self.season_ = spec.season
        start = self.calibration_start(n)
        # min_history() guarantees MIN_TRAIN of these without the season, and _spec keeps the
        # season only when it leaves as many.
        at = np.arange(spec.warm, start - self.horizon + 1, dtype=np.int64)
        if len(at) > self.max_train:  # evenly spread, so every hour and weekday is seen
            at = at[np.round(np.linspace(0, len(at) - 1, self.max_train)).astype(np.int64)]
        known = values[: start + 1]
        self.floor_ = float(0.05 * np.quantile(known, 0.9)) + 1e-9
        self.stamps_ = epoch_seconds(self.index_)
        features, level, scale = build_features(values, at, self.stamps_[at], spec, self.floor_)
        self._learn(features, targets(raw, at, self.horizon, level, scale))
        self.train_rows_ = len(at)
        self._keep_tail(values)
        self._calibrate(raw, values)
        del self.stamps_  # only the backtest needs every timestamp
        return self

    def _keep_tail(self, values: FloatArray) -> None:
        keep = self.spec_.warm + 1
        self.values_ = values[-keep:].copy()

    # --- forecast ------------------------------------------------------------------------

    def _forecast(self, values: FloatArray, at: IntArray, stamps: FloatArray) -> FloatArray:
        features, level, scale = build_features(values, at, stamps, self.spec_, self.floor_)
        change = self._infer(features)
        return np.maximum(level[:, None] + scale[:, None] * change, 0.0)

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        return self._forecast(values, at, self.stamps_[at])

    def _point(self, horizon: int) -> FloatArray:
        """The direct forecast; beyond the learned steps, the same model again from the end of
        its own forecast."""
        values = self.values_
        stamp = float(epoch_seconds(self.index_[-1:])[0])
        step = self.step_.total_seconds()
        out: list[FloatArray] = []
        done = 0
        while done < horizon:
            at = np.array([len(values) - 1], dtype=np.int64)
            block = self._forecast(values, at, np.array([stamp]))[0]
            out.append(block)
            done += len(block)
            values = np.concatenate([values, block])
            stamp += len(block) * step
        return np.concatenate(out)[:horizon]

    def update(self, y: pd.Series) -> Self:
        """Append observations newer than the fit (gaps interpolated) to the tail the forecast
        starts from; what was learned and the calibration stay. Called every sync with the
        whole history, so only the part after the last known step is cleaned."""
        if not hasattr(self, "learned_"):
            raise NotFitted(f"{self.name} must be fitted before update")
        grid, fresh = newer_steps(y, self.index_[-1], self.step_)
        if not len(grid):
            return self
        joined = fill_gaps(np.concatenate([self.values_, fresh]))
        self._keep_tail(joined)
        keep = max(len(self.values_), 2)
        self.index_ = pd.DatetimeIndex(self.index_.append(grid)[-keep:])
        self.n_obs_ += int(np.count_nonzero(np.isfinite(fresh)))
        return self
