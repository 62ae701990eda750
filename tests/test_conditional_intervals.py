"""Conditional conformal intervals: widths that follow the level (Poisson-like noise) and the
calendar (bursts at fixed minutes), with the marginal coverage kept and high quantiles sane."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from forecastscaler.models.blend import SeasonalBlend
from forecastscaler.models.calibration import conformal_offsets
from forecastscaler.models.conditional import epoch_seconds, fit_conditional, plain
from forecastscaler.models.naive import LastValue

DAY = 1440
H = 5


def bursty(days: float = 3.0, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    """A daily cycle with bursts of random size at :00 and :30 (cron jobs)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * DAY))
    values = 200 + 100 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 5, t.size)
    burst = (t % 60 == 0) | (t % 60 == 30)
    values[burst] += rng.uniform(50, 250, burst.sum())
    index = pd.date_range("2024-03-04", periods=t.size, freq="1min")
    return pd.Series(values, index=index), burst


def poisson_cycle(days: float = 2.0, seed: int = 1) -> pd.Series:
    """Poisson counts whose rate follows a daily cycle from 20 to 500."""
    t = np.arange(int(days * DAY))
    rate = 260 + 240 * np.sin(2 * np.pi * t / DAY)
    values = np.random.default_rng(seed).poisson(rate).astype(np.float64)
    return pd.Series(values, index=pd.date_range("2024-03-04", periods=t.size, freq="1min"))


def replay(model: SeasonalBlend | LastValue, y: pd.Series, train: int, test: int, q: float):
    """(hit, width) of the q path at every step of `test` origins after `train`."""
    model.fit(y.iloc[:train])
    hits, widths, targets = [], [], []
    for end in range(train, train + test):
        if end > train:
            model.update(y.iloc[:end])
        fc = model.predict(H, (0.5, q))
        hits.extend(y.iloc[end : end + H].to_numpy() <= fc.quantiles[q])
        widths.extend(fc.quantiles[q] - fc.point)
        targets.extend(range(end, end + H))
    return np.array(hits), np.array(widths), np.array(targets)


@pytest.mark.parametrize("q", [0.9, 0.99])
def test_burst_minutes_are_covered_and_the_rest_is_narrower(q: float) -> None:
    y, burst = bursty()
    hits, widths, targets = replay(SeasonalBlend(horizon=H), y, int(2.5 * DAY), 300, q)
    on = burst[targets]
    assert hits[on].mean() >= q - 0.15, hits[on].mean()
    assert abs(hits.mean() - q) <= 0.05, hits.mean()
    assert widths[~on].mean() < 0.25 * widths[on].mean()


def test_the_width_grows_with_the_level_of_poisson_counts() -> None:
    y = poisson_cycle()
    model = LastValue(horizon=H).fit(y)
    assert 0.3 <= model.conditional_.exponent <= 0.8  # sqrt-like noise
    _, widths, targets = replay(LastValue(horizon=H), y, int(1.25 * DAY), 600, 0.9)
    level = y.to_numpy()[targets]
    high, low = widths[level > 400].mean(), widths[level < 150].mean()
    assert high > 1.5 * low


def test_short_histories_are_plain_split_conformal() -> None:
    rng = np.random.default_rng(3)
    residuals = rng.normal(0, 1, (50, H))
    levels = rng.uniform(1, 100, (50, H))
    stamps = np.arange(50 * H, dtype=np.float64).reshape(50, H) * 60
    fitted = fit_conditional(residuals, levels, stamps, 60.0)
    assert fitted.plain
    table = fitted.normalized((0.1, 0.9))
    expected = conformal_offsets(residuals, (0.1, 0.9))
    np.testing.assert_allclose(table[0.9][:, 0], expected[0.9])


def test_nan_and_constant_residuals_fall_back_to_plain() -> None:
    zeros = np.zeros((300, H))
    stamps = np.arange(300 * H, dtype=np.float64).reshape(300, H) * 60
    assert fit_conditional(zeros, zeros + 5, stamps, 60.0).plain
    gappy = np.random.default_rng(4).normal(0, 1, (300, H))
    gappy[::3] = np.nan
    fitted = fit_conditional(gappy, np.full((300, H), np.nan), stamps, 60.0)
    assert np.isfinite(fitted.normalized((0.9,))[0.9]).all()


@pytest.mark.parametrize("quantiles", [(0.995,), (0.999,), (0.5, 0.9, 0.99, 0.995, 0.999)])
def test_high_quantiles_are_monotone_and_conservative(quantiles: tuple[float, ...]) -> None:
    y, _ = bursty(days=2.0)
    model = SeasonalBlend(horizon=H).fit(y)
    fc = model.predict(3 * H, quantiles)
    levels = sorted(fc.quantiles)
    for lo, hi in itertools.pairwise(levels):
        assert (fc.quantiles[lo] <= fc.quantiles[hi]).all()
    alone = model.predict(3 * H, (quantiles[-1],))
    np.testing.assert_array_equal(alone.quantiles[quantiles[-1]], fc.quantiles[quantiles[-1]])
    assert (fc.quantiles[max(levels)] > fc.point).all()


@pytest.mark.parametrize(
    ("n", "beyond"),
    [(19, False), (20, True)],
    ids=["n19-capped-at-the-largest", "n20-extrapolated-past-it"],
)
def test_a_quantile_past_the_residuals_reads_their_tail_once_there_are_enough(
    n: int, beyond: bool
) -> None:
    residuals = np.arange(1.0, n + 1.0)[:, None]  # q = 0.999 needs rank n + 1
    table = plain(residuals).normalized((0.5, 0.999))
    assert bool(table[0.999][0, 0] > n) is beyond
    assert table[0.999][0, 0] >= n
    assert table[0.5][0, 0] == pytest.approx((n + 1) / 2)


def test_epoch_seconds_of_naive_and_aware_indexes_agree() -> None:
    naive = pd.date_range("2024-03-04", periods=3, freq="1min")
    aware = naive.tz_localize("UTC").as_unit("s")
    np.testing.assert_array_equal(epoch_seconds(naive), epoch_seconds(aware))
