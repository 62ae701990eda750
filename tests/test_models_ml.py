"""The learning forecasters (gradient boosting, neural network) and the features they share.

Each check runs on both models over small generated series: they learn a seasonal pattern
that the last value cannot follow, in and out of sample; they learn only from what precedes
their calibration origins; `update` moves the forecast without relearning; they are
deterministic; too little history is refused clearly; awkward series still give finite,
non-negative forecasts.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models.base import InsufficientHistory, NotFitted
from forecastscaler.models.features import (
    FeatureSpec,
    WindowForecaster,
    build_features,
    calendar,
    epoch_seconds,
)
from forecastscaler.models.gbm import GradientBoosting
from forecastscaler.models.naive import LastValue
from forecastscaler.models.neural import NeuralNet

H = 5
STEP = pd.Timedelta("1min")
START = pd.Timestamp("2024-03-04 00:00:00")
PERIOD = 60  # an hourly cycle at a one-minute step: short enough for small, fast series


@dataclass(frozen=True)
class ModelCase:
    id: str
    make: Callable[[], WindowForecaster]


MODELS = [
    ModelCase("gradientBoosting", lambda: GradientBoosting(horizon=H)),
    ModelCase("neuralNet", lambda: NeuralNet(horizon=H)),
]
BY_MODEL = pytest.mark.parametrize("model", MODELS, ids=[m.id for m in MODELS])


def series(values: np.ndarray, start: pd.Timestamp = START) -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq=STEP)
    return pd.Series(np.asarray(values, dtype=np.float64), index=index)


def seasonal(n: int, seed: int = 0, level: float = 100.0) -> pd.Series:
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0.0, 2.0, n)
    return series(level + 40.0 * np.sin(2 * np.pi * t / PERIOD) + noise)


def learned(model: WindowForecaster) -> bytes:
    return pickle.dumps(model.learned_)  # type: ignore[attr-defined]


# --- learning --------------------------------------------------------------------------


@BY_MODEL
def test_learns_a_seasonal_pattern_the_last_value_misses(model: ModelCase) -> None:
    y = seasonal(1500)
    forecaster = model.make().fit(y)
    baseline = LastValue(horizon=H).fit(y)
    assert forecaster.season_ == PERIOD  # type: ignore[attr-defined]
    assert baseline.backtest_error > 5.0  # a five-minute-ahead naive miss on this cycle
    assert forecaster.backtest_error < 0.5 * baseline.backtest_error


@BY_MODEL
def test_forecasts_out_of_sample_with_updates_only(model: ModelCase) -> None:
    y = seasonal(1400, seed=1)
    train, test = 1200, 150
    forecaster = model.make().fit(y.iloc[:train])
    before = learned(forecaster)
    errors, naive = [], []
    for end in range(train, train + test):
        forecaster.update(y.iloc[:end])
        fc = forecaster.predict(H)
        assert fc.index[-1] == y.index[end - 1 + H]
        actual = float(y.iloc[end - 1 + H])
        errors.append(abs(actual - fc.point[-1]))
        naive.append(abs(actual - float(y.iloc[end - 1])))
    assert learned(forecaster) == before
    assert np.mean(errors) < 0.5 * np.mean(naive), (np.mean(errors), np.mean(naive))


@BY_MODEL
def test_learns_only_from_before_the_calibration_origins(model: ModelCase) -> None:
    """Whatever follows the first calibration origin (the targets the backtest scores) can
    change without changing what was learned: the calibration residuals are out of sample."""
    y = seasonal(1000, seed=2)
    first = model.make().fit(y)
    start = first.calibration_start(len(y))
    assert first.backtest_origins_[0] == start
    changed = y.copy()
    changed.iloc[start + 1 :] *= 3.0
    second = model.make().fit(changed)
    assert second.calibration_start(len(changed)) == start
    assert learned(second) == learned(first)
    assert second.season_ == first.season_  # type: ignore[attr-defined]
    assert second.backtest_error != first.backtest_error  # the backtest did see the change


@BY_MODEL
def test_update_moves_the_forecast_without_relearning(model: ModelCase) -> None:
    y = seasonal(800, seed=3)
    forecaster = model.make().fit(y)
    before = learned(forecaster)
    first = forecaster.predict(H)
    newer = series(np.full(10, 400.0), start=y.index[-1] + STEP)  # the load jumps
    extended = pd.concat([y, newer])

    forecaster.update(extended)

    assert learned(forecaster) == before
    moved = forecaster.predict(H)
    assert moved.index[0] == extended.index[-1] + STEP
    assert moved.point.mean() > first.point.mean() + 100.0, (first.point, moved.point)
    # The tail alone (what is new) updates exactly like the whole history.
    again = model.make().fit(y).update(newer)
    np.testing.assert_array_equal(again.predict(H).point, moved.point)
    # Nothing new keeps the origin.
    forecaster.update(extended)
    assert forecaster.predict(H).index[0] == extended.index[-1] + STEP


@BY_MODEL
def test_deterministic(model: ModelCase) -> None:
    y = seasonal(700, seed=4)
    a = model.make().fit(y)
    b = model.make().fit(y)
    assert learned(a) == learned(b)
    fa, fb = a.predict(2 * H), b.predict(2 * H)
    np.testing.assert_array_equal(fa.point, fb.point)
    for q in fa.quantiles:
        np.testing.assert_array_equal(fa.quantiles[q], fb.quantiles[q])
    assert a.backtest_error == b.backtest_error


# --- refusing and surviving ------------------------------------------------------------


@BY_MODEL
def test_too_little_history_says_how_much_is_needed(model: ModelCase) -> None:
    forecaster = model.make()
    needed = forecaster.min_history()
    assert needed > forecaster.context + 2 * H  # a window, the steps ahead and rows to learn
    with pytest.raises(InsufficientHistory) as caught:
        forecaster.fit(seasonal(needed - 1))
    assert caught.value.needed == needed
    assert f"{forecaster.name} needs at least {needed} observations" in str(caught.value)
    with pytest.raises(NotFitted):
        forecaster.predict(H)
    with pytest.raises(NotFitted):
        forecaster.update(seasonal(needed))
    forecaster.fit(seasonal(needed))  # exactly enough is enough


def gappy() -> pd.Series:
    y = seasonal(700, seed=5)
    y.iloc[100:160] = np.nan  # a NaN run
    y.iloc[-3:] = np.nan  # the newest samples are missing values
    return y.drop(y.index[[10, 11, 12, 250, 600]])  # and missing rows


def zeros() -> pd.Series:
    return series(np.zeros(600))


def constant() -> pd.Series:
    return series(np.full(600, 42.0))


def spiky() -> pd.Series:
    values = seasonal(600, seed=6).to_numpy().copy()
    values[[150, 420, 597]] = 1e9  # rate() across a counter reset, the last 3 steps ago
    values[300] = -5e8
    return series(values)


def idle_then_busy() -> pd.Series:
    values = np.zeros(700)
    values[500:] = seasonal(200, seed=7).to_numpy()  # a service that starts taking load
    return series(values)


def utc_seconds() -> pd.Series:
    y = seasonal(600, seed=8)
    y.index = pd.DatetimeIndex(y.index.tz_localize("UTC")).as_unit("s")
    return y


AWKWARD: dict[str, Callable[[], pd.Series]] = {
    "gappy": gappy,
    "zeros": zeros,
    "constant": constant,
    "spiky": spiky,
    "idle-then-busy": idle_then_busy,
    "utc-seconds": utc_seconds,
}


@pytest.mark.parametrize("scenario", list(AWKWARD))
@BY_MODEL
def test_awkward_series_give_finite_non_negative_forecasts(model: ModelCase, scenario: str) -> None:
    y = AWKWARD[scenario]()
    forecaster = model.make().fit(y)
    for horizon in (1, H, 3 * H):  # 3H: beyond the learned steps
        fc = forecaster.predict(horizon, (0.1, 0.5, 0.9))
        assert fc.point.shape == (horizon,)
        for path in (fc.point, *fc.quantiles.values()):
            assert np.isfinite(path).all(), path
            assert (path >= 0).all(), path
    if scenario == "constant":
        np.testing.assert_allclose(fc.point, 42.0)
    if scenario == "zeros":
        np.testing.assert_allclose(fc.point, 0.0, atol=1e-9)
    if scenario == "spiky":
        assert fc.point.max() < 1000.0, fc.point


# --- features --------------------------------------------------------------------------


def test_features_at_many_origins_equal_features_at_each() -> None:
    """The backtest (many origins at once) and the forecast (one origin) share one code path,
    and no feature at an origin depends on a later value."""
    values = seasonal(400, seed=9).to_numpy()
    stamps = epoch_seconds(pd.date_range(START, periods=len(values), freq=STEP))
    spec = FeatureSpec(H, 8, 32, PERIOD, calendar=(86400.0,))
    at = np.arange(spec.warm, 390)
    together, level, scale = build_features(values, at, stamps[at], spec, 1e-9)
    assert together.shape == (len(at), spec.width)
    for i in (0, 57, len(at) - 1):
        t = int(at[i])
        alone, lvl, scl = build_features(values[: t + 1], np.array([t]), stamps[[t]], spec, 1e-9)
        np.testing.assert_allclose(alone[0], together[i])
        assert (lvl[0], scl[0]) == (level[i], scale[i]) == (values[t], scale[i])


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-03-04 00:00", (0.0, 1.0, 0.0, 1.0)),  # a Monday at midnight
        ("2024-03-04 06:00", (1.0, 0.0, np.sin(2 * np.pi / 28), np.cos(2 * np.pi / 28))),
        ("2024-03-07 12:00", (0.0, -1.0, np.sin(np.pi), np.cos(np.pi))),  # Thursday noon
    ],
    ids=["monday-midnight", "monday-6am", "thursday-noon"],
)
def test_calendar_features(stamp: str, expected: tuple[float, ...]) -> None:
    seconds = epoch_seconds(pd.DatetimeIndex([pd.Timestamp(stamp, tz="UTC")]))
    got = calendar(seconds, (86400.0, 7 * 86400.0))[0]
    np.testing.assert_allclose(got, expected, atol=1e-12)
