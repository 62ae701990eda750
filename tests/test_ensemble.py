"""The ensemble: weights learned from members' shared backtests, conformal intervals on the
combination, and members that fail left out."""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models.base import Capabilities, FloatArray, InsufficientHistory
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.calibration import IntArray
from forecastscaler.models.ensemble import MIN_SHARED_ORIGINS, Ensemble
from forecastscaler.models.history import prepare
from forecastscaler.models.naive import LastValue, SeasonalNaive

H = 5
DAY = 288  # five-minute steps


def series(values: np.ndarray) -> pd.Series:
    index = pd.date_range("2024-03-04", periods=len(values), freq="5min")
    return pd.Series(np.asarray(values, dtype=np.float64), index=index)


def daily(days: int = 6, noise: float = 2.0, seed: int = 1) -> pd.Series:
    t = np.arange(days * DAY)
    rng = np.random.default_rng(seed)
    return series(100 + 60 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, noise, t.size))


class Constant(CalibratedForecaster):
    """Always forecasts a fixed value: a deliberately poor member."""

    name: ClassVar[str] = "constant"
    capabilities: ClassVar[Capabilities] = Capabilities(False, True)

    def __init__(self, value: float, horizon: int = H) -> None:
        super().__init__(horizon=horizon)
        self.value = value

    def min_history(self) -> int:
        return 2

    def fit(self, y: pd.Series) -> Self:
        series_, raw, values = prepare(y, self.name, 2)
        self._remember_series(series_)
        self._calibrate(raw, values)
        return self

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        return np.full((len(at), self.horizon), self.value)

    def _point(self, horizon: int) -> FloatArray:
        return np.full(horizon, self.value)


class Broken(Constant):
    name: ClassVar[str] = "broken"

    def fit(self, y: pd.Series) -> Self:
        raise RuntimeError("library crashed")


class Greedy(Constant):
    name: ClassVar[str] = "greedy"

    def min_history(self) -> int:
        return 10**6

    def fit(self, y: pd.Series) -> Self:
        raise InsufficientHistory(self.name, 10**6, len(y))


def test_weights_go_to_the_member_that_backtests_best() -> None:
    y = daily()
    model = Ensemble([SeasonalNaive(horizon=H), LastValue(horizon=H), Constant(0.0)], H).fit(y)
    w = model.weights
    assert w["seasonalNaive"] > w["lastValue"]
    assert w["constant"] < 0.01
    assert sum(w.values()) == pytest.approx(1.0)
    assert model.scheme_ == "stack"


def test_the_combination_is_the_weighted_sum_of_the_members() -> None:
    y = daily()
    model = Ensemble([SeasonalNaive(horizon=H), LastValue(horizon=H)], H).fit(y)
    fc = model.predict(H, (0.5,))
    members = {m.name: m.predict(H, (0.5,)).point for m in model.fitted_}
    expected = sum(model.weights_[i] * members[m.name] for i, m in enumerate(model.fitted_))
    np.testing.assert_allclose(fc.point, expected)


def test_ensemble_is_no_worse_than_its_best_member_in_backtest() -> None:
    y = daily(noise=8.0)
    members = [SeasonalNaive(horizon=H), LastValue(horizon=H)]
    model = Ensemble(members, H).fit(y)
    assert model.backtest_error <= min(m.backtest_error for m in model.fitted_) * 1.02


def test_failing_and_short_members_are_skipped_with_their_reason() -> None:
    model = Ensemble([Broken(1.0), Greedy(1.0), LastValue(horizon=H)], H).fit(daily(1))
    assert [m.name for m in model.fitted_] == ["lastValue"]
    assert "library crashed" in model.skipped_["broken"]
    assert "needs at least" in model.skipped_["greedy"]
    assert model.weights == {"lastValue": 1.0}


def test_nothing_fits_raises_insufficient_history_naming_every_member() -> None:
    with pytest.raises(InsufficientHistory, match="greedy"):
        Ensemble([Greedy(1.0)], H).fit(daily(1))


def test_too_few_shared_origins_falls_back_to_the_best_member() -> None:
    y = series(100 + np.arange(MIN_SHARED_ORIGINS + H - 5, dtype=np.float64))
    model = Ensemble([LastValue(horizon=H), Constant(0.0)], H).fit(y)
    assert model.scheme_ == "best"
    assert model.weights["lastValue"] == 1.0


def test_the_provisioned_quantile_is_calibrated_out_of_sample() -> None:
    # Fit on five days, then count how often the next day's loads exceed the 0.9 quantile
    # forecast made five steps earlier.
    y = daily(days=8, noise=6.0, seed=7)
    n_fit = 5 * DAY
    model = Ensemble([SeasonalNaive(horizon=H), LastValue(horizon=H)], H).fit(y.iloc[:n_fit])
    exceed = []
    for end in range(n_fit, len(y) - H, 3):
        model.update(y.iloc[:end])
        q90 = model.predict(H, (0.9,)).quantile(0.9)[-1]
        exceed.append(y.iloc[end + H - 1] > q90)
    rate = float(np.mean(exceed))
    assert 0.04 <= rate <= 0.18, rate


def test_same_input_same_output() -> None:
    y = daily()
    a = Ensemble([SeasonalNaive(horizon=H), LastValue(horizon=H)], H).fit(y).predict(H)
    b = Ensemble([SeasonalNaive(horizon=H), LastValue(horizon=H)], H).fit(y).predict(H)
    np.testing.assert_array_equal(a.point, b.point)
    for q in a.quantiles:
        np.testing.assert_array_equal(a.quantiles[q], b.quantiles[q])
