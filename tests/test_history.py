"""Cleaning metric histories: grid, gaps, bad values, duplicates, datetime resolutions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models.base import InsufficientHistory
from forecastscaler.models.history import (
    fill_gaps,
    future_index,
    infer_step,
    prepare,
    regularize,
    spikes,
    valid_count,
)

START = pd.Timestamp("2024-03-04 00:00:00")
MINUTE = pd.Timedelta("1min")
UNITS = ["s", "ms", "us", "ns"]


def grid(n: int, step: pd.Timedelta = MINUTE, unit: str = "ns", tz: str | None = None):
    return pd.date_range(START, periods=n, freq=step, tz=tz).as_unit(unit)


# --- infer_step --------------------------------------------------------------------------


def regular(unit: str) -> pd.DatetimeIndex:
    return grid(50, unit=unit)


def quarter_minute(unit: str) -> pd.DatetimeIndex:
    return grid(50, pd.Timedelta("15s"), unit=unit)


def hourly(unit: str) -> pd.DatetimeIndex:
    return grid(50, pd.Timedelta("1h"), unit=unit)


def missing_rows(unit: str) -> pd.DatetimeIndex:
    index = grid(100, unit=unit)
    return index.delete([3, 4, 10, 20, 21, 22, 50, 70, 71, 90])


def sparse_gaps(unit: str) -> pd.DatetimeIndex:
    """Most spacings are gaps of 2-5 steps: the single steps are a minority."""
    steps = np.cumsum(np.tile([1, 2, 3, 4, 5], 20))
    return pd.DatetimeIndex(START + steps * MINUTE).as_unit(unit)


def stray_sample(unit: str) -> pd.DatetimeIndex:
    """A clean grid with gaps plus one sample a second off it."""
    index = grid(100, unit=unit).delete(list(range(1, 100, 3)))
    return index.insert(10, index[10] + pd.Timedelta("1s")).sort_values()


def second_jitter(unit: str) -> pd.DatetimeIndex:
    jitter = np.random.default_rng(1).integers(-10, 11, 200)
    return pd.DatetimeIndex(grid(200, unit=unit) + pd.to_timedelta(jitter, unit="s")).as_unit(unit)


def jitter_with_gaps(unit: str) -> pd.DatetimeIndex:
    return second_jitter(unit).delete(list(range(20, 60, 3)))


def two_stamps(unit: str) -> pd.DatetimeIndex:
    return grid(2, pd.Timedelta("5min"), unit=unit)


def utc(unit: str) -> pd.DatetimeIndex:
    return grid(50, unit=unit, tz="UTC")


STEP_CASES = [
    (regular, MINUTE),
    (quarter_minute, pd.Timedelta("15s")),
    (hourly, pd.Timedelta("1h")),
    (missing_rows, MINUTE),
    (sparse_gaps, MINUTE),
    (stray_sample, MINUTE),
    (second_jitter, MINUTE),
    (jitter_with_gaps, MINUTE),
    (two_stamps, pd.Timedelta("5min")),
    (utc, MINUTE),
]


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize(
    ("make", "expected"), STEP_CASES, ids=[make.__name__ for make, _ in STEP_CASES]
)
def test_infer_step(make, expected: pd.Timedelta, unit: str) -> None:
    index = make(unit)
    assert index.unit == unit
    assert infer_step(index) == expected


def test_infer_step_sub_second_jitter() -> None:
    offsets = np.random.default_rng(2).uniform(-0.5, 0.5, 300)
    index = pd.DatetimeIndex(grid(300, pd.Timedelta("10s")) + pd.to_timedelta(offsets, unit="s"))
    assert infer_step(index) == pd.Timedelta("10s")


@pytest.mark.parametrize(
    "index",
    [grid(1), pd.DatetimeIndex([START, START, START])],
    ids=["one-stamp", "all-equal"],
)
def test_infer_step_needs_two_distinct_stamps(index: pd.DatetimeIndex) -> None:
    with pytest.raises(ValueError, match="timestamps"):
        infer_step(index)


# --- regularize --------------------------------------------------------------------------


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize(
    ("jitter_seconds", "first_exact", "pass_step"),
    [(2, False, False), (14, False, False), (10, False, True), (25, True, True)],
    ids=["2s-jitter", "14s-jitter", "given-step", "25s-jitter-first-on-grid-given-step"],
)
def test_regularize_snaps_jittered_stamps(
    jitter_seconds: int, first_exact: bool, pass_step: bool, unit: str
) -> None:
    n = 180
    jitter = np.random.default_rng(3).integers(-jitter_seconds, jitter_seconds + 1, n)
    if first_exact:
        jitter[0] = 0
    stamps = pd.DatetimeIndex(grid(n, unit=unit) + pd.to_timedelta(jitter, unit="s")).as_unit(unit)
    y = pd.Series(np.arange(n, dtype=float), index=stamps)

    out = regularize(y, MINUTE if pass_step else None)

    assert len(out) == n
    assert out.index[0] == stamps[0]
    assert (out.index[1:] - out.index[:-1] == MINUTE).all()
    np.testing.assert_array_equal(out.to_numpy(), np.arange(n, dtype=float))
    if first_exact:
        assert (out.index == grid(n)).all()


@pytest.mark.parametrize("unit", UNITS)
def test_regularize_missing_rows_become_nan(unit: str) -> None:
    index = grid(30, unit=unit).delete([5, 6, 7, 20])
    y = pd.Series(np.arange(len(index), dtype=float) + 1, index=index)
    out = regularize(y)
    assert len(out) == 30
    assert (out.index == grid(30)).all()
    assert np.isnan(out.to_numpy()[[5, 6, 7, 20]]).all()
    assert np.isfinite(out.drop(out.index[[5, 6, 7, 20]])).all()
    assert valid_count(out) == 26


@pytest.mark.parametrize(
    ("bad", "position"),
    [(-1.0, 3), (-1e-9, 0), (np.inf, 9), (-np.inf, 5), (np.nan, 4), ("n/a", 6)],
    ids=["negative", "tiny-negative-first", "inf-last", "minus-inf", "nan", "garbage-string"],
)
def test_regularize_marks_unusable_values_nan(bad: object, position: int) -> None:
    values: list[object] = [float(v) for v in range(1, 11)]
    values[position] = bad
    out = regularize(pd.Series(values, index=grid(10)))
    assert out.dtype == np.float64
    assert np.isnan(out.iloc[position])
    expected = np.arange(1.0, 11.0)
    keep = np.arange(10) != position
    np.testing.assert_array_equal(out.to_numpy()[keep], expected[keep])
    assert valid_count(out) == 9


def test_regularize_keeps_zero() -> None:
    out = regularize(pd.Series([0.0, 0.0, 1.0], index=grid(3)))
    np.testing.assert_array_equal(out.to_numpy(), [0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([0, 1, 2, 2, 3], [0.0, 1.0, 3.0, 4.0]),  # a re-scrape of t2 arrives later: it wins
        ([3, 2, 1, 0, 2], [3.0, 2.0, 4.0, 0.0]),  # unsorted input, duplicate last
        ([0, 0, 0, 1, 1], None),  # fewer than two distinct stamps after de-duplication
    ],
    ids=["duplicate-keeps-last", "unsorted-keeps-last", "collapses-to-two"],
)
def test_regularize_deduplicates_keeping_last(
    order: list[int], expected: list[float] | None
) -> None:
    index = pd.DatetimeIndex([grid(4)[i] for i in order])
    y = pd.Series(np.arange(len(order), dtype=float), index=index)
    out = regularize(y)
    assert out.index.is_unique
    assert out.index.is_monotonic_increasing
    if expected is None:
        assert len(out) == 2
        np.testing.assert_array_equal(out.to_numpy(), [2.0, 4.0])
    else:
        assert (out.index == grid(4)).all()
        np.testing.assert_array_equal(out.to_numpy(), expected)


@pytest.mark.parametrize("unit", UNITS)
def test_regularize_keeps_timezone_and_resolution_agnostic(unit: str) -> None:
    y = pd.Series(np.arange(10.0), index=grid(10, unit=unit, tz="UTC"))
    out = regularize(y)
    assert str(out.index.tz) == "UTC"
    assert out.index[0] == pd.Timestamp(START, tz="UTC")
    np.testing.assert_array_equal(out.to_numpy(), np.arange(10.0))


def test_regularize_requires_a_datetime_index() -> None:
    with pytest.raises(TypeError):
        regularize(pd.Series([1.0, 2.0]))


# --- fill_gaps ---------------------------------------------------------------------------

NAN = np.nan


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, NAN, 3.0], [1.0, 2.0, 3.0]),
        ([0.0, NAN, NAN, NAN, 8.0], [0.0, 2.0, 4.0, 6.0, 8.0]),
        ([NAN, NAN, 5.0, 7.0], [5.0, 5.0, 5.0, 7.0]),
        ([5.0, 7.0, NAN, NAN], [5.0, 7.0, 7.0, 7.0]),
        ([NAN, 2.0, NAN, 4.0, NAN], [2.0, 2.0, 3.0, 4.0, 4.0]),
        ([NAN, 3.0, NAN], [3.0, 3.0, 3.0]),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ([NAN, NAN], [NAN, NAN]),
        ([], []),
    ],
    ids=[
        "one-inside",
        "run-inside",
        "leading-run-flat",
        "trailing-run-flat",
        "both-ends-and-inside",
        "single-valid",
        "no-gaps",
        "all-nan-stays",
        "empty",
    ],
)
def test_fill_gaps(values: list[float], expected: list[float]) -> None:
    raw = np.array(values, dtype=np.float64)
    before = raw.copy()
    out = fill_gaps(raw)
    np.testing.assert_allclose(out, np.array(expected, dtype=np.float64), equal_nan=True)
    np.testing.assert_array_equal(raw, before)  # the input is not modified


# --- prepare and future_index ------------------------------------------------------------


def test_prepare_returns_raw_and_filled() -> None:
    y = pd.Series([1.0, -3.0, 3.0, np.inf, 5.0], index=grid(5))
    series, raw, filled = prepare(y, "m", 3)
    assert len(series) == 5
    np.testing.assert_array_equal(raw, [1.0, NAN, 3.0, NAN, 5.0])
    np.testing.assert_array_equal(filled, [1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize(
    ("values", "needed", "reported"),
    [([1.0, np.nan, -1.0, 2.0], 3, 3), ([4.0], 1, 2), ([], 5, 5)],
    ids=["too-few-valid", "single-sample-needs-two", "empty"],
)
def test_prepare_raises_insufficient_history(
    values: list[float], needed: int, reported: int
) -> None:
    y = pd.Series(values, index=grid(len(values)), dtype=np.float64)
    with pytest.raises(InsufficientHistory, match=f"needs at least {reported}") as caught:
        prepare(y, "someModel", needed)
    assert caught.value.model == "someModel"
    assert caught.value.got == valid_count(y)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("tz", [None, "UTC"], ids=["naive", "utc"])
def test_future_index(unit: str, tz: str | None) -> None:
    index = grid(10, pd.Timedelta("5min"), unit=unit, tz=tz)
    out = future_index(index, 4, pd.Timedelta("5min"))
    assert len(out) == 4
    assert out[0] == index[-1] + pd.Timedelta("5min")
    assert (out[1:] - out[:-1] == pd.Timedelta("5min")).all()
    assert out.tz == index.tz


# --- spikes ---------------------------------------------------------------------------------


def _load(n: int = 200, seed: int = 11) -> np.ndarray:
    return 100.0 + np.random.default_rng(seed).normal(0.0, 2.0, n)


def _with(values: np.ndarray, at: dict[int, float]) -> np.ndarray:
    out = values.copy()
    for i, v in at.items():
        out[i] = v
    return out


SPIKE_CASES = [
    # (id, series, indices expected flagged)
    ("counter reset", _with(_load(), {80: 1e9}), {80}),
    ("two-sample glitch", _with(_load(), {80: 5e6, 81: 4e6}), {80, 81}),
    ("drop to zero for one scrape", _with(_load(), {120: 0.0}), {120}),
    ("spike next to a gap", _with(_load(), {79: np.nan, 80: 1e9}), {80}),
    ("newest sample is believed", _with(_load(), {199: 1e9}), set()),
    ("one before the newest", _with(_load(), {198: 1e9}), {198}),
    ("level shift is not a spike", np.concatenate([_load(100), _load(100) + 400.0]), set()),
    ("a 20 % bump is load", _with(_load(), {80: 120.0}), set()),
    ("clean noise", _load(), set()),
    ("constant", np.full(50, 7.0), set()),
    ("all missing", np.full(10, np.nan), set()),
]


@pytest.mark.parametrize(
    ("values", "expected"), [pytest.param(v, e, id=i) for i, v, e in SPIKE_CASES]
)
def test_spikes_flags_isolated_glitches_only(values: np.ndarray, expected: set[int]) -> None:
    assert set(np.flatnonzero(spikes(values)).tolist()) == expected


def test_prepare_turns_spikes_into_gaps_for_every_model() -> None:
    values = _with(_load(), {80: 1e9})
    y = pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="1min"))
    _, raw, filled = prepare(y, "m", 2)
    assert np.isnan(raw[80])
    assert filled[80] < 200.0
