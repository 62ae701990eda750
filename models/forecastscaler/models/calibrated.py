"""Shared machinery for models whose intervals come from their own backtest residuals."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecastscaler.models.base import (
    DEFAULT_QUANTILES,
    FloatArray,
    Forecast,
    Forecaster,
    NotFitted,
)
from forecastscaler.models.calibration import (
    IntArray,
    actuals,
    mae_at,
    origins,
    quantile_paths,
)
from forecastscaler.models.conditional import Conditional, epoch_seconds, fit_conditional, plain
from forecastscaler.models.history import future_index, infer_step


class CalibratedForecaster(Forecaster):
    """A model that backtests itself at every fit and calibrates intervals on the residuals.

    Subclasses say how to forecast from many origins at once (`_backtest`) and from the end of
    the history (`_point`); fitting, calibration and quantile paths are shared.
    """

    def __init__(self, horizon: int = 5, max_origins: int = 1500) -> None:
        if horizon < 1:
            raise ValueError("horizon must be at least one step")
        self.horizon = horizon
        self.max_origins = max_origins

    @abstractmethod
    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        """(origins, horizon) point forecasts made at each origin from values[: t + 1]."""

    @abstractmethod
    def _point(self, horizon: int) -> FloatArray:
        """Point forecast for the steps after the end of the fitted history."""

    def _warm(self) -> int:
        """First origin with enough history behind it."""
        return 1

    def _origin_budget(self, n: int) -> int:
        """How many of the latest origins to backtest on for a history of n values. Models
        that train on what lies before the first origin override it to keep enough to learn."""
        return self.max_origins

    def _calibrate(self, raw: FloatArray, values: FloatArray) -> None:
        at = origins(len(values), self.horizon, self._warm(), self._origin_budget(len(values)))
        self.offsets_: dict[tuple[float, ...], dict[float, FloatArray]] = {}
        # Kept so an ensemble can combine its members' forecasts at the origins they share.
        self.backtest_origins_: IntArray = at
        self.backtest_end_ = len(values)
        if len(at) == 0:
            self.residuals_: FloatArray = np.zeros((0, self.horizon))
            self.backtest_forecasts_: FloatArray = np.zeros((0, self.horizon))
            self.backtest_error_: float | None = None
            self.conditional_: Conditional = plain(self.residuals_)
            return
        self.backtest_forecasts_ = np.asarray(self._backtest(values, at), dtype=np.float64)
        self.residuals_ = actuals(raw, at, self.horizon) - self.backtest_forecasts_
        self.backtest_error_ = mae_at(self.residuals_, self.horizon)
        self.conditional_ = fit_conditional(
            self.residuals_,
            self.backtest_forecasts_,
            target_stamps(self.index_, at, self.horizon),
            self.step_.total_seconds(),
        )

    def calibration_start(self, n: int) -> int:
        """First backtest origin for a history of n values. Models that learn parameters from
        the data train only on what lies before it (targets included), so their backtest
        residuals are out of sample and their intervals honest."""
        at = origins(n, self.horizon, self._warm(), self._origin_budget(n))
        return int(at[0]) if len(at) else n

    def _remember_series(self, series: pd.Series) -> None:
        self.index_ = pd.DatetimeIndex(series.index)
        self.step_ = infer_step(self.index_)
        self.n_obs_ = int(np.count_nonzero(np.isfinite(series.to_numpy(dtype=np.float64))))

    def point_forecast(self, horizon: int) -> FloatArray:
        """The point forecast alone, finite and non-negative (what an ensemble combines).

        Kept until the model's state changes: every fit and update gives `index_` a new
        object, and the operator predicts at every sync but updates once per step. A longer
        forecast serves a shorter one (the first steps do not depend on how many follow)."""
        cached: tuple[pd.DatetimeIndex, FloatArray] | None = self.__dict__.get("point_cache_")
        if cached is not None and cached[0] is self.index_ and len(cached[1]) >= horizon:
            return cached[1][:horizon].copy()
        # The operator's syncs within a step ask for the horizon plus one or two steps.
        steps = max(horizon, self.horizon + 2)
        point = np.maximum(np.nan_to_num(self._point(steps), nan=0.0), 0.0)
        self.point_cache_ = (self.index_, point)
        return point[:horizon].copy()

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        if not hasattr(self, "index_"):
            raise NotFitted(f"{self.name} must be fitted before predict")
        if horizon < 1:
            raise ValueError("horizon must be at least one step")
        point = self.point_forecast(horizon)
        index = future_index(self.index_, horizon, self.step_)
        offsets = interval_offsets(self, point, index, quantiles)
        return Forecast(
            index=index,
            point=point,
            quantiles=quantile_paths(point, offsets, quantiles),
            model=self.name,
        )


def target_stamps(index: pd.DatetimeIndex, at: IntArray, horizon: int) -> FloatArray:
    """(origins, horizon) UTC epoch seconds of the times each backtest forecast was for."""
    stamps = epoch_seconds(index)
    return np.asarray(stamps[at[:, None] + np.arange(1, horizon + 1)[None, :]], dtype=np.float64)


def interval_offsets(
    model: object, point: FloatArray, index: pd.DatetimeIndex, quantiles: Sequence[float]
) -> dict[float, FloatArray]:
    """Offsets of one forecast from the model's conditional calibration (`conditional_`, or
    plain split conformal on `residuals_` without one): the normalized conformal quantiles,
    computed once per calibration (the model empties `offsets_` whenever it recalibrates;
    predict runs every sync, the residuals change only at a fit), times the forecast's own
    scale at each step (its level and the calendar position of each target)."""
    state = model.__dict__
    conditional: Conditional | None = state.get("conditional_")
    if conditional is None:
        conditional = plain(state["residuals_"])
    cache: dict[tuple[float, ...], dict[float, FloatArray]] = state.setdefault("offsets_", {})
    key = tuple(float(q) for q in quantiles)
    if key not in cache:
        cache[key] = conditional.normalized(quantiles)
    return conditional.offsets(cache[key], point, epoch_seconds(index))
