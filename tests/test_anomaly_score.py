"""The anomaly score: how surprising an observation is against the forecast's own interval."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from forecastscaler.models.anomaly import residual_score

Z90 = NormalDist().inv_cdf(0.9)
EXPECTED = 100.0
SCALE = 10.0  # interval scale: the 0.9 quantile sits Z90 scales above the expectation
UPPER = EXPECTED + Z90 * SCALE


@pytest.mark.parametrize(
    ("observed", "expected_score"),
    [
        (EXPECTED, 0.0),
        (UPPER, 0.0),  # at the edge of the interval
        (EXPECTED - Z90 * SCALE, 0.0),  # at the mirrored lower edge
        (EXPECTED + 2.9 * SCALE, 0.0),  # outside the interval but before the onset
        (EXPECTED + 3.0 * SCALE, 0.0),  # the onset: 3 scales
        (EXPECTED + 4.5 * SCALE, 0.5),  # halfway to twice the onset
        (EXPECTED - 4.5 * SCALE, 0.5),  # a drop is as surprising as a surge
        (EXPECTED + 6.0 * SCALE, 1.0),  # twice the onset
        (EXPECTED + 100.0 * SCALE, 1.0),  # far outside: capped
        (0.0, 1.0),  # load vanished
    ],
    ids=[
        "at-expectation",
        "at-upper",
        "at-lower-mirror",
        "just-before-onset",
        "at-onset",
        "halfway-up",
        "halfway-down",
        "twice-onset",
        "far-outside",
        "load-vanished",
    ],
)
def test_score_hand_computed(observed: float, expected_score: float) -> None:
    assert residual_score(observed, EXPECTED, UPPER) == pytest.approx(expected_score, abs=1e-9)


@pytest.mark.parametrize(
    ("observed", "expected", "upper"),
    [
        (math.nan, EXPECTED, UPPER),
        (1e9, math.nan, UPPER),
        (1e9, EXPECTED, math.nan),
        (math.inf, EXPECTED, UPPER),
        (1e9, EXPECTED, math.inf),
        (-math.inf, EXPECTED, UPPER),
    ],
    ids=["nan-observed", "nan-expected", "nan-upper", "inf-observed", "inf-upper", "-inf-observed"],
)
def test_score_is_zero_without_finite_inputs(
    observed: float, expected: float, upper: float
) -> None:
    assert residual_score(observed, expected, upper) == 0.0


@pytest.mark.parametrize(
    ("expected", "upper", "quantile"),
    [(EXPECTED, UPPER, 0.9), (5.0, 6.0, 0.9), (1000.0, 1100.0, 0.99), (50.0, 52.0, 0.75)],
    ids=["q90", "small-load", "q99", "q75"],
)
def test_score_is_monotone_in_the_distance(expected: float, upper: float, quantile: float) -> None:
    width = upper - expected
    distances = np.linspace(0.0, 30.0 * width, 301)
    for sign in (1.0, -1.0):
        scores = [
            residual_score(expected + sign * d, expected, upper, quantile=quantile)
            for d in distances
            if expected + sign * d >= 0
        ]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert all(b >= a for a, b in itertools.pairwise(scores)), scores
        assert scores[0] == 0.0
        if sign > 0:
            assert scores[-1] == 1.0
            assert len(set(scores)) > 10  # it rises gradually, not as a step


def test_wider_interval_means_less_surprise() -> None:
    narrow = residual_score(150.0, EXPECTED, EXPECTED + 5.0)
    wide = residual_score(150.0, EXPECTED, EXPECTED + 20.0)
    assert narrow > wide


@pytest.mark.parametrize("quantile", [0.5, 0.3], ids=["median", "below-median"])
def test_median_quantile_gives_no_score_instead_of_crashing(quantile: float) -> None:
    # The API allows forecast.quantile = 0.5; the median spans no interval to judge against.
    assert residual_score(1e6, EXPECTED, EXPECTED, quantile=quantile) == 0.0


def test_zero_width_interval_does_not_divide_by_zero() -> None:
    score = residual_score(0.0, 0.0, 0.0)
    assert score == 0.0
    assert residual_score(1.0, 0.0, 0.0) == 1.0
