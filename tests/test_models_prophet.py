"""The Prophet forecaster: what its curve learns, what update does without refitting, and the
awkward series (flat, zero, gappy, short) every model has to survive."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models import prophet_model
from forecastscaler.models.base import Forecast, InsufficientHistory, NotFitted
from forecastscaler.models.prophet_model import ProphetForecaster

H = 5
STEP = pd.Timedelta("1min")
START = pd.Timestamp("2024-03-04 00:00:00")
DAY = 1440  # steps in a day at one minute
QUANTILES = (0.1, 0.5, 0.9)


def series(values: np.ndarray, start: pd.Timestamp = START) -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq=STEP)
    return pd.Series(np.asarray(values, dtype=np.float64), index=index)


def daily_values(days: float, seed: int, sd: float = 5.0) -> np.ndarray:
    """A daily cycle with a second harmonic (a sharper peak) and white noise."""
    t = np.arange(int(days * DAY))
    cycle = 60 * np.sin(2 * np.pi * t / DAY) + 25 * np.sin(4 * np.pi * t / DAY + 1.0)
    noise = np.random.default_rng(seed).normal(0.0, sd, t.size)
    return np.asarray(200 + cycle + noise, dtype=np.float64)


def check_forecast(fc: Forecast, history_end: pd.Timestamp, horizon: int) -> None:
    assert len(fc.index) == horizon
    assert fc.index[0] == history_end + STEP
    assert np.isfinite(fc.point).all(), fc.point
    assert (fc.point >= 0).all(), fc.point
    for lo, hi in itertools.pairwise(sorted(fc.quantiles)):
        assert np.isfinite(fc.quantiles[lo]).all()
        assert (fc.quantiles[lo] >= 0).all()
        assert (fc.quantiles[lo] <= fc.quantiles[hi]).all()


class ProphetSpy:
    """Stands in for the Prophet class: records what each fit saw and keeps the models."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.frames: list[pd.DataFrame] = []
        self.models: list[Any] = []

    def __call__(self, **kwargs: Any) -> Any:
        model = self.real(**kwargs)
        original_fit = model.fit

        def fit(frame: pd.DataFrame, **fit_kwargs: Any) -> Any:
            self.frames.append(frame.copy())
            return original_fit(frame, **fit_kwargs)

        model.fit = fit
        self.models.append(model)
        return model


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> ProphetSpy:
    recorder = ProphetSpy(prophet_model._prophet_class())
    monkeypatch.setattr(prophet_model, "_prophet_class", lambda: recorder)
    return recorder


# --- what it learns ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2], ids=["seed1", "seed2"])
def test_learns_a_daily_pattern_better_than_last_value(seed: int) -> None:
    values = daily_values(4, seed)
    y, train, walk = series(values), 3 * DAY, 300
    model = ProphetForecaster(horizon=H).fit(y.iloc[:train])
    assert model.curve_source_ == "prophet"
    assert model.daily_ and not model.weekly_  # three days: a daily cycle, no weekly one
    errors, naive = [], []
    for end in range(train, train + walk):  # forecasting from values[:end], out of sample
        if end > train:
            model.update(y.iloc[:end])
        truth = values[end - 1 + H]
        errors.append(abs(model.predict(H).point[-1] - truth))
        naive.append(abs(values[end - 1] - truth))
    assert np.mean(errors) < 0.85 * np.mean(naive), (np.mean(errors), np.mean(naive))


def hourly_daily(days: int) -> pd.Series:
    t = np.arange(days * 24)
    values = 100 + 30 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(3).normal(0, 2, t.size)
    return pd.Series(values, index=pd.date_range(START, periods=t.size, freq="1h"))


def daily_weekly(days: int) -> pd.Series:
    """One value a day with a weekly cycle: a day is one step, too coarse for a daily cycle."""
    t = np.arange(days)
    values = 100 + 30 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(3).normal(0, 2, t.size)
    return pd.Series(values, index=pd.date_range(START, periods=t.size, freq="1D"))


@pytest.mark.parametrize(
    ("build", "daily", "weekly"),
    [
        (lambda: series(daily_values(1, seed=3)), False, False),
        (lambda: series(daily_values(3, seed=3)), True, False),
        (lambda: hourly_daily(13), True, False),
        (lambda: hourly_daily(22), True, True),
        (lambda: daily_weekly(300), False, True),
    ],
    ids=[
        "one-day-by-minute",
        "three-days-by-minute",
        "13-days-hourly",
        "22-days-hourly",
        "300-days-daily",
    ],
)
def test_seasonalities_only_when_the_training_stretch_covers_them(
    build: Callable[[], pd.Series], daily: bool, weekly: bool
) -> None:
    # Prophet trains on the first three quarters: 22 days leave 16.5 of them, 13 days 9.75.
    model = ProphetForecaster(horizon=H).fit(build())
    assert (model.daily_, model.weekly_) == (daily, weekly)
    assert model.period_ == (604800.0 if weekly else 86400.0 if daily else 0.0)


# --- update: cheap, no refit, moves the level ----------------------------------------------


def test_update_moves_the_level_without_refitting(
    spy: ProphetSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = daily_values(3, seed=4)
    train = 2 * DAY + 600
    model = ProphetForecaster(horizon=H).fit(series(values[:train]))
    assert len(spy.models) == 1
    curve = model.curve_y_.copy()
    plain = values[: train + 30]
    raised = plain.copy()
    raised[train:] += 80.0  # the level steps up after the fit

    fresh = ProphetForecaster(horizon=H).fit(series(values[:train]))  # an identical fit
    before = fresh.predict(H).point

    def no_prophet() -> Any:
        raise AssertionError("update must not fit or call Prophet")

    monkeypatch.setattr(prophet_model, "_prophet_class", no_prophet)
    model.update(series(plain))
    fresh.update(series(raised))

    np.testing.assert_array_equal(model.curve_y_, curve)
    check_forecast(fresh.predict(H, QUANTILES), series(raised).index[-1], H)
    assert not np.array_equal(fresh.predict(H).point, before)  # the origin moved
    # Same curve, same times: the raised history forecasts higher, by most of the step.
    gap = fresh.predict(H).point - model.predict(H).point
    assert (gap > 40.0).all(), gap


def test_update_with_nothing_new_keeps_the_forecast() -> None:
    y = series(daily_values(1, seed=5))
    model = ProphetForecaster(horizon=H).fit(y)
    first = model.predict(H, QUANTILES)
    model.update(y.iloc[:-10])  # older data only
    model.update(y)
    again = model.predict(H, QUANTILES)
    np.testing.assert_array_equal(first.point, again.point)
    assert first.index.equals(again.index)


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # Prophet's own predict, on pandas 3
def test_update_over_a_gap_and_past_the_cached_curve(spy: ProphetSpy) -> None:
    """Updating for days without a refit runs past the cached future: the curve extends as
    Prophet itself would forecast it (linear trend, periodic season), not flat or NaN."""
    values = daily_values(3.5, seed=6)
    train = 3 * DAY
    model = ProphetForecaster(horizon=H, future_days=0.25).fit(series(values[:train]))
    assert model.period_ == 86400.0
    later = START + (train + int(2.5 * DAY)) * STEP  # beyond the cache (a day ahead)
    newer = pd.Series([250.0, np.nan], index=pd.DatetimeIndex([later - STEP, later]))
    model.update(newer)
    assert model.since_ == 1  # the newest sample is missing
    fc = model.predict(3 * H, QUANTILES)
    check_forecast(fc, later, 3 * H)

    ahead = pd.date_range(later - 2 * DAY * STEP, periods=3 * DAY, freq=STEP)
    seconds = (ahead - START).total_seconds().to_numpy()
    expected = spy.models[0].predict(pd.DataFrame({"ds": ahead}))["yhat"].to_numpy()
    np.testing.assert_allclose(model._curve(seconds), expected, rtol=0, atol=0.05)


# --- honest calibration ------------------------------------------------------------------


def test_trains_only_before_calibration_start(spy: ProphetSpy) -> None:
    values = daily_values(3, seed=7)
    y = series(values)
    model = ProphetForecaster(horizon=H).fit(y)
    start = model.calibration_start(len(y))
    assert start == len(y) - 1 - H - (len(y) // 4) + 1
    seen = spy.frames[0]["ds"]
    assert seen.max() < y.index[start]
    assert seen.min() >= y.index[0]

    # Changing what lies after the start leaves the curve as it was; changing before does not.
    after, before = values.copy(), values.copy()
    after[start:] *= 3.0
    before[start - 200 : start] *= 3.0
    curve_after = ProphetForecaster(horizon=H).fit(series(after)).curve_y_
    curve_before = ProphetForecaster(horizon=H).fit(series(before)).curve_y_
    np.testing.assert_array_equal(curve_after, model.curve_y_)
    assert not np.allclose(curve_before, model.curve_y_)


def test_deterministic() -> None:
    y = series(daily_values(2.5, seed=8))
    a = ProphetForecaster(horizon=H).fit(y)
    b = ProphetForecaster(horizon=H).fit(y.copy())
    fa, fb = a.predict(2 * H, QUANTILES), b.predict(2 * H, QUANTILES)
    np.testing.assert_array_equal(fa.point, fb.point)
    for q in QUANTILES:
        np.testing.assert_array_equal(fa.quantiles[q], fb.quantiles[q])
    assert a.backtest_error == b.backtest_error
    assert (a.alpha_, a.decay_) == (b.alpha_, b.decay_)


# --- awkward series ----------------------------------------------------------------------


def gappy() -> pd.Series:
    y = series(daily_values(2.5, seed=9))
    y.iloc[500:700] = np.nan  # a long outage
    y.iloc[2000:2003] = np.nan
    y.iloc[-4:] = np.nan  # the newest samples are missing
    return y.drop(y.index[[10, 11, 12, 3000]])  # and missing rows


def sparse_start() -> pd.Series:
    values = daily_values(1, seed=10)
    values[: DAY // 2] = np.nan  # Prophet's stretch is mostly missing
    return series(values)


def noisy_zeros() -> pd.Series:
    values = np.zeros(800)
    values[::97] = 3.0  # idle, with rare blips
    return series(values)


def utc_seconds() -> pd.Series:
    """What the operator builds from Prometheus: tz-aware UTC, second resolution."""
    y = series(daily_values(1, seed=11), start=pd.Timestamp("2024-03-04", tz="UTC"))
    y.index = pd.DatetimeIndex(y.index).as_unit("s")
    return y


AWKWARD: dict[str, tuple[Callable[[], pd.Series], str | None]] = {
    # name: (builder, where the curve must come from, None when either is fine)
    "constant": (lambda: series(np.full(600, 42.0)), "flat"),
    "zeros": (lambda: series(np.zeros(600)), "flat"),
    "noisy-zeros": (noisy_zeros, None),
    "gappy": (gappy, "prophet"),
    "sparse-start": (sparse_start, None),
    "falling-to-zero": (lambda: series(np.linspace(300.0, 0.0, 700)), "prophet"),
    "utc-seconds": (utc_seconds, "prophet"),
}


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_series_give_finite_non_negative_forecasts(name: str) -> None:
    build, source = AWKWARD[name]
    y = build()
    model = ProphetForecaster(horizon=H).fit(y)
    if source is not None:
        assert model.curve_source_.startswith(source), model.curve_source_
    for horizon in (1, H, 3 * H):
        check_forecast(model.predict(horizon, QUANTILES), y.index[-1], horizon)
    newer = pd.Series(
        [np.nan, 0.0, 5.0], index=pd.date_range(y.index[-1] + STEP, periods=3, freq=STEP)
    )
    model.update(pd.concat([y, newer]))
    check_forecast(model.predict(H, QUANTILES), newer.index[-1], H)


def test_a_constant_series_forecasts_its_value() -> None:
    fc = ProphetForecaster(horizon=H).fit(series(np.full(600, 42.0))).predict(H, QUANTILES)
    np.testing.assert_allclose(fc.point, 42.0)
    np.testing.assert_allclose(fc.quantiles[0.9], 42.0)


@pytest.mark.parametrize("horizon", [1, H, 60], ids=["h1", "h5", "h60"])
def test_short_history_raises_insufficient_history(horizon: int) -> None:
    model = ProphetForecaster(horizon=horizon)
    needed = model.min_history()
    assert needed >= 200
    with pytest.raises(InsufficientHistory) as caught:
        model.fit(series(daily_values(1, seed=12)[: needed - 1]))
    assert caught.value.needed == needed
    with pytest.raises(NotFitted):
        model.predict(H)
    # Exactly enough is accepted, and leaves origins to calibrate on.
    model.fit(series(daily_values(1, seed=12)[:needed]))
    assert np.isfinite(model.backtest_error)
