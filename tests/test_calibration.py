"""Rolling-origin backtests and split-conformal quantile offsets, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from forecastscaler.models.calibration import (
    actuals,
    conformal_offsets,
    extend,
    mae_at,
    origins,
    quantile_paths,
)

NAN = np.nan


def column(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


@pytest.mark.parametrize(
    ("n", "horizon", "warm", "max_origins", "expected"),
    [
        (20, 5, 3, 100, list(range(3, 15))),
        (20, 5, 3, 4, [11, 12, 13, 14]),  # only the latest origins
        (20, 1, 0, 100, list(range(19))),
        (8, 5, 3, 100, []),  # last origin 2 is before the warm-up
        (5, 5, 1, 100, []),  # no origin with a full horizon after it
    ],
    ids=["all-after-warm", "latest-only", "one-step", "warm-too-long", "too-short"],
)
def test_origins(n: int, horizon: int, warm: int, max_origins: int, expected: list[int]) -> None:
    at = origins(n, horizon, warm, max_origins)
    assert at.dtype == np.int64
    assert at.tolist() == expected
    if len(at):
        assert at[-1] + horizon == n - 1  # the last origin's horizon ends at the last value


def test_actuals() -> None:
    raw = np.array([0.0, 1.0, 2.0, NAN, 4.0, 5.0])
    out = actuals(raw, np.array([0, 2], dtype=np.int64), 3)
    np.testing.assert_array_equal(out, [[1.0, 2.0, NAN], [NAN, 4.0, 5.0]])


ONE_TO_TEN = column([float(v) for v in range(1, 11)])
ONE_TO_NINETEEN = column([float(v) for v in range(1, 20)])
FOUR = column([10.0, -3.0, 2.0, -1.0])


@pytest.mark.parametrize(
    ("residuals", "q", "expected"),
    [
        # n = 10: k = ceil(11 * 0.9) = 10 -> the largest; floor(11 * 0.1) = 1 -> the smallest
        (ONE_TO_TEN, 0.9, 10.0),
        (ONE_TO_TEN, 0.1, 1.0),
        (ONE_TO_TEN, 0.8, 9.0),  # ceil(8.8) = 9
        (ONE_TO_TEN, 0.2, 2.0),  # floor(2.2) = 2
        (ONE_TO_TEN, 0.5, 5.5),  # the median
        # n = 19: (n + 1) q is an integer, which floating point must not push up or down
        (ONE_TO_NINETEEN, 0.9, 18.0),
        (ONE_TO_NINETEEN, 0.1, 2.0),
        (ONE_TO_NINETEEN, 0.95, 19.0),
        (ONE_TO_NINETEEN, 0.75, 15.0),
        (ONE_TO_NINETEEN, 0.25, 5.0),
        # n = 4 (unsorted): ceil(4.5) = 5 > n -> the largest; floor(0.5) = 0 -> the smallest
        (FOUR, 0.9, 10.0),
        (FOUR, 0.1, -3.0),
        (FOUR, 0.5, 0.5),
        # NaN residuals (missing actuals) do not count: n = 3 of [5, 1, 3]
        (column([5.0, NAN, 1.0, 3.0, NAN]), 0.6, 5.0),  # ceil(2.4) = 3
        (column([5.0, NAN, 1.0, 3.0, NAN]), 0.4, 1.0),  # floor(1.6) = 1
        # nothing to calibrate on: no offset
        (column([NAN, NAN]), 0.9, 0.0),
    ],
    ids=[
        "n10-q90",
        "n10-q10",
        "n10-q80",
        "n10-q20",
        "n10-median",
        "n19-q90-integer-rank",
        "n19-q10-integer-rank",
        "n19-q95",
        "n19-q75",
        "n19-q25",
        "n4-q90-capped",
        "n4-q10-floor-zero",
        "n4-median",
        "nan-ignored-q60",
        "nan-ignored-q40",
        "all-nan",
    ],
)
def test_conformal_offsets_hand_computed(residuals: np.ndarray, q: float, expected: float) -> None:
    out = conformal_offsets(residuals, [q])
    assert set(out) == {q}
    assert out[q].shape == (1,)
    assert out[q][0] == pytest.approx(expected)


def test_conformal_offsets_per_step() -> None:
    residuals = np.column_stack([np.arange(1.0, 11.0), 10 * np.arange(1.0, 11.0)])
    out = conformal_offsets(residuals, (0.1, 0.9))
    np.testing.assert_allclose(out[0.9], [10.0, 100.0])
    np.testing.assert_allclose(out[0.1], [1.0, 10.0])


def test_conformal_offsets_without_residuals() -> None:
    out = conformal_offsets(np.zeros((0, 3)), (0.1, 0.9))
    for q in (0.1, 0.9):
        np.testing.assert_array_equal(out[q], np.zeros(3))


@pytest.mark.parametrize(
    ("offsets", "horizon", "expected"),
    [
        ([1.0, 2.0, 4.0], 2, [1.0, 2.0]),
        ([1.0, 2.0, 4.0], 3, [1.0, 2.0, 4.0]),
        # beyond step 3: 4 * sqrt(h / 3)
        (
            [1.0, 2.0, 4.0],
            6,
            [1.0, 2.0, 4.0, 4 * np.sqrt(4 / 3), 4 * np.sqrt(5 / 3), 4 * np.sqrt(2)],
        ),
        (
            [-1.0, -3.0],
            8,
            [
                -1.0,
                -3.0,
                -3 * np.sqrt(1.5),
                -3 * np.sqrt(2.0),
                -3 * np.sqrt(2.5),
                -3 * np.sqrt(3.0),
                -3 * np.sqrt(3.5),
                -6.0,
            ],
        ),
        ([], 3, [0.0, 0.0, 0.0]),
    ],
    ids=["truncate", "same-length", "widen-upper", "widen-lower", "uncalibrated"],
)
def test_extend(offsets: list[float], horizon: int, expected: list[float]) -> None:
    out = extend(np.array(offsets, dtype=np.float64), horizon)
    assert out.shape == (horizon,)
    np.testing.assert_allclose(out, expected)


def test_extend_widens_monotonically_beyond_the_calibration() -> None:
    out = extend(np.array([0.5, 1.0, 1.5]), 50)
    assert (np.diff(np.abs(out[2:])) > 0).all()
    assert out[-1] > out[2]


@pytest.mark.parametrize(
    ("residuals", "step", "expected"),
    [
        (np.array([[1.0, -2.0], [-3.0, 4.0]]), 1, 2.0),
        (np.array([[1.0, -2.0], [-3.0, 4.0]]), 2, 3.0),
        (np.array([[1.0, NAN], [-3.0, 4.0]]), 2, 4.0),
        (np.array([[1.0, NAN], [-3.0, NAN]]), 2, None),
        (np.array([[1.0, 2.0]]), 3, None),
        (np.zeros((0, 2)), 1, None),
    ],
    ids=["step1", "step2", "nan-skipped", "all-nan", "beyond-horizon", "no-origins"],
)
def test_mae_at(residuals: np.ndarray, step: int, expected: float | None) -> None:
    assert mae_at(residuals, step) == expected


QUANTILES = (0.1, 0.5, 0.9)


@pytest.mark.parametrize(
    ("point", "offsets"),
    [
        ([10.0, 10.0, 10.0], {0.1: [-2.0, -3.0], 0.5: [0.0, 0.0], 0.9: [2.0, 3.0]}),
        # offsets from a small sample can cross: paths must still be ordered
        ([10.0, 10.0, 10.0], {0.1: [1.0, -3.0], 0.5: [0.0, 0.0], 0.9: [-1.0, 3.0]}),
        # a low point with a wide lower offset must not go negative
        ([1.0, 0.5, 0.0], {0.1: [-5.0, -6.0], 0.5: [-0.5, -0.5], 0.9: [4.0, 5.0]}),
        # everything below zero
        ([0.0, 0.0, 0.0], {0.1: [-5.0, -6.0], 0.5: [-2.0, -2.0], 0.9: [-1.0, -1.0]}),
        # uncalibrated levels: the point itself
        ([3.0, 4.0, 5.0], {}),
    ],
    ids=["ordinary", "crossing-offsets", "near-zero", "all-negative", "uncalibrated"],
)
def test_quantile_paths_never_negative_or_crossing(
    point: list[float], offsets: dict[float, list[float]]
) -> None:
    p = np.array(point)
    paths = quantile_paths(p, {q: np.array(v) for q, v in offsets.items()}, QUANTILES)
    assert sorted(paths) == list(QUANTILES)
    for q in QUANTILES:
        assert paths[q].shape == p.shape
        assert (paths[q] >= 0).all(), (q, paths[q])
    assert (paths[0.1] <= paths[0.5]).all()
    assert (paths[0.5] <= paths[0.9]).all()


def test_quantile_paths_values() -> None:
    point = np.array([10.0, 10.0, 10.0])
    offsets = {0.1: np.array([-2.0, -3.0]), 0.9: np.array([2.0, 3.0])}
    paths = quantile_paths(point, offsets, (0.9, 0.1))
    np.testing.assert_allclose(paths[0.9], [12.0, 13.0, 10 + 3 * np.sqrt(1.5)])
    np.testing.assert_allclose(paths[0.1], [8.0, 7.0, 10 - 3 * np.sqrt(1.5)])
    crossed = quantile_paths(point, {0.1: np.array([1.0]), 0.9: np.array([-1.0])}, (0.1, 0.9))
    # each offset widens in its own direction beyond step 1; sorting swaps the levels back
    np.testing.assert_allclose(crossed[0.1], 10 - np.sqrt([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(crossed[0.9], 10 + np.sqrt([1.0, 2.0, 3.0]))


def exponential_residuals(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).exponential(1.0, n)[:, None]


@pytest.mark.parametrize(
    ("n", "q", "most"),
    [(199, 0.999, 2.0), (150, 0.995, 1.5), (500, 0.999, 1.5), (60, 0.999, 5.0)],
    ids=["n199-p999", "n150-p995", "n500-p999", "n60-p999"],
)
def test_a_quantile_past_the_sample_is_extrapolated_toward_its_miss_rate(
    n: int, q: float, most: float
) -> None:
    """Past the sample ((n + 1) q > n) the offset is not the largest residual, which misses
    1 / (n + 1) of fresh residuals whatever q is: it is read from the tail, never inside the
    sample, and misses at most `most` times 1 - q of fresh residuals from the same law (here
    the exponential, whose miss rate at x is exp(-x)), far less than the cap did."""
    misses = []
    for seed in range(200):
        residuals = exponential_residuals(n, seed)
        offset = conformal_offsets(residuals, (q,))[q][0]
        assert offset >= residuals.max()
        misses.append(float(np.exp(-offset)))
    miss = float(np.mean(misses))
    assert miss <= most * (1 - q)
    assert miss < 0.8 / (n + 1)  # the cap's miss rate


def test_the_lower_tail_is_extrapolated_like_the_upper() -> None:
    residuals = -exponential_residuals(199, 3)
    low = conformal_offsets(residuals, (0.001, 0.0001))
    assert low[0.001][0] <= residuals.min()
    assert low[0.0001][0] < low[0.001][0]


def test_a_short_sample_stays_capped_at_its_extremes() -> None:
    residuals = exponential_residuals(15, 1)
    out = conformal_offsets(residuals, (0.99, 0.999, 0.01))
    assert out[0.99][0] == out[0.999][0] == residuals.max()
    assert out[0.01][0] == residuals.min()


def test_offsets_rise_with_the_quantile_across_the_sample_edge() -> None:
    residuals = exponential_residuals(120, 7)
    levels = [0.9, 0.95, 0.99, 0.991, 0.995, 0.998, 0.999]
    out = conformal_offsets(residuals, levels)
    values = [out[q][0] for q in levels]
    assert values == sorted(values)
    assert values[-1] > values[-3] >= residuals.max()
