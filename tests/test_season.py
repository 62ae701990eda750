"""Season detection from the autocorrelation, and the calendar periods it snaps to."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models.naive import calendar_periods
from forecastscaler.models.season import autocorrelation, find_season


def sine(n: int, period: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    values = 100 + 50 * np.sin(2 * np.pi * t / period)
    return values + np.random.default_rng(seed).normal(0.0, noise, n)


def daily_load(step_minutes: int, days: int, seed: int) -> np.ndarray:
    """A daily cycle with a sharper evening peak and noise, at a step of `step_minutes`."""
    per_day = 1440 // step_minutes
    t = np.arange(days * per_day) / per_day  # in days
    values = (
        200
        + 80 * np.sin(2 * np.pi * t)
        + 30 * np.sin(4 * np.pi * t + 1.0)
        + np.random.default_rng(seed).normal(0.0, 15.0, t.size)
    )
    return np.maximum(values, 0.0)


@pytest.mark.parametrize(
    ("step_minutes", "days", "expected"),
    [(5, 4, 288), (5, 7, 288), (1, 3, 1440), (15, 5, 96)],
    ids=["5min-4days", "5min-7days", "1min-3days", "15min-5days"],
)
def test_finds_the_daily_season(step_minutes: int, days: int, expected: int) -> None:
    values = daily_load(step_minutes, days, seed=step_minutes + days)
    calendar = calendar_periods(pd.Timedelta(minutes=step_minutes))
    assert calendar[0] == expected
    assert find_season(values, calendar=calendar) == expected


@pytest.mark.parametrize(
    ("period", "calendar", "expected"),
    [
        (284.0, (288,), 288),  # 1.4 % short of a day: snapped
        (292.0, (288,), 288),  # 1.4 % long: snapped
        (284.0, (), None),  # no calendar: the measured period (checked below)
        (276.0, (288,), None),  # 4 % off: not snapped
        (288.0, (288, 2016), 288),
    ],
    ids=["short-snaps", "long-snaps", "no-calendar", "too-far-to-snap", "exact"],
)
def test_snaps_to_the_calendar_within_two_percent(
    period: float, calendar: tuple[int, ...], expected: int | None
) -> None:
    found = find_season(sine(5 * 288, period, noise=5.0, seed=1), calendar=calendar)
    assert found is not None
    if expected is None:
        assert abs(found - period) <= 0.01 * period
        assert found not in calendar
    else:
        assert found == expected


def test_accepts_exactly_two_cycles() -> None:
    assert find_season(sine(2 * 100, 100), calendar=(100,)) == 100


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(2).normal(100.0, 10.0, 2000),
        np.full(2000, 42.0),
        np.zeros(2000),
        10.0 + 0.3 * np.arange(2000.0),
        10.0 + 0.3 * np.arange(2000.0) + np.random.default_rng(3).normal(0, 1, 2000),
        sine(int(1.5 * 288), 288),
        sine(int(1.9 * 288), 288),
        sine(7, 3),
    ],
    ids=[
        "white-noise",
        "constant",
        "zeros",
        "pure-trend",
        "noisy-trend",
        "one-and-a-half-cycles",
        "just-under-two-cycles",
        "too-short",
    ],
)
def test_no_season(values: np.ndarray) -> None:
    assert find_season(values, calendar=(288,)) is None


def test_trend_does_not_hide_a_season() -> None:
    values = sine(4 * 288, 288, noise=3.0, seed=4) + 0.2 * np.arange(4 * 288)
    assert find_season(values, calendar=(288,)) == 288


def test_autocorrelation_of_constant_is_zero_not_nan() -> None:
    acf = autocorrelation(np.full(50, 7.0))
    assert acf.shape == (50,)
    assert np.isfinite(acf).all()
    assert not acf.any()


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("1min", (1440, 10080)),
        ("5min", (288, 2016)),
        ("1h", (24, 168)),
        ("7min", (1440,)),  # 7 min divides a week but not a day
        ("11min", ()),
        ("30s", (2880, 20160)),
    ],
    ids=["1min", "5min", "1h", "7min-week-only", "11min-neither", "30s"],
)
def test_calendar_periods(step: str, expected: tuple[int, ...]) -> None:
    assert calendar_periods(pd.Timedelta(step)) == expected
