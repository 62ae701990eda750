"""Rolling-origin backtests and conformal prediction intervals.

Every model forecasts from many past origins, compares with what happened, and turns the
residuals at each step ahead into quantile offsets (split conformal). Intervals therefore come
from the model's measured errors on this very series, not from distributional assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from forecastscaler.models.base import FloatArray

IntArray = npt.NDArray[np.int64]


def origins(n: int, horizon: int, warm: int, max_origins: int) -> IntArray:
    """Backtest origins t (forecasting t+1..t+horizon): the latest `max_origins` after `warm`."""
    last = n - 1 - horizon
    first = max(warm, last - max_origins + 1)
    if last < first:
        return np.arange(0, dtype=np.int64)
    return np.arange(first, last + 1, dtype=np.int64)


def actuals(raw: FloatArray, at: IntArray, horizon: int) -> FloatArray:
    """(origins, horizon) matrix of observed values after each origin, NaN where missing."""
    steps = np.arange(1, horizon + 1)
    return np.asarray(raw[at[:, None] + steps[None, :]], dtype=np.float64)


def conformal_offsets(residuals: FloatArray, quantiles: Sequence[float]) -> dict[float, FloatArray]:
    """Per-step residual quantiles, with the split-conformal finite-sample correction."""
    out: dict[float, FloatArray] = {}
    horizon = residuals.shape[1] if residuals.ndim == 2 else 0
    for q in quantiles:
        col = np.zeros(horizon)
        for h in range(horizon):
            r = residuals[:, h]
            r = r[np.isfinite(r)]
            if len(r) == 0:
                continue
            n = len(r)
            if q == 0.5:
                col[h] = float(np.median(r))
                continue
            # The k-th smallest residual, k = ceil((n + 1) q) above the median and
            # floor((n + 1) q) below it (at least the smallest, at most the largest). Taking the
            # order statistic itself, not a linear interpolation at k / n, which lies above it
            # and made the lower quantiles too high (too narrow below).
            scaled = (n + 1) * q
            k = math.ceil(scaled - 1e-9) if q > 0.5 else math.floor(scaled + 1e-9)
            ordered = np.sort(r)
            if 1 <= k <= n or n < TAIL_MIN:
                col[h] = float(ordered[min(n, max(1, k)) - 1])
            else:
                col[h] = beyond_sample(ordered, q)
        out[float(q)] = col
    return out


# Fewest residuals before a quantile past the sample is extrapolated from its tail rather than
# capped at the extreme residual; the share of the residuals that makes the tail.
TAIL_MIN = 20
TAIL_SHARE = 0.1
TAIL_LEAST = 5


def beyond_sample(ordered: FloatArray, q: float) -> float:
    """The q-quantile of sorted residuals where its rank is past the sample (q > n / (n + 1)
    or below 1 / (n + 1)), from an exponential tail fitted to the m most extreme residuals:
    P(r > u + x) = (m + 1) / (n + 1) * exp(-x / mean excess), u the (m + 1)-th most extreme.
    Capping at the largest residual made every high quantile one and the same (p99.5 and p99.9
    alike), so a budget below 1 / n bought nothing; never inside the sample."""
    n = len(ordered)
    m = min(n - 1, max(TAIL_LEAST, math.ceil(TAIL_SHARE * n)))
    upper = q > 0.5
    tail = 1.0 - q if upper else q
    if tail <= 0.0:
        return float(ordered[-1] if upper else ordered[0])
    if upper:
        u = float(ordered[n - m - 1])
        excess = float(np.mean(ordered[n - m :] - u))
    else:
        u = float(ordered[m])
        excess = float(np.mean(u - ordered[:m]))
    reach = excess * math.log((m + 1) / ((n + 1) * tail))
    if upper:
        return max(float(ordered[-1]), u + reach)
    return min(float(ordered[0]), u - reach)


def extend(offsets: FloatArray, horizon: int) -> FloatArray:
    """Offsets for `horizon` steps: beyond the calibrated steps, widen like a random walk."""
    calibrated = len(offsets)
    if horizon <= calibrated:
        return offsets[:horizon]
    if calibrated == 0:
        return np.zeros(horizon)
    extra = offsets[-1] * np.sqrt(np.arange(calibrated + 1, horizon + 1) / calibrated)
    return np.concatenate([offsets, extra])


def mae_at(residuals: FloatArray, step: int) -> float | None:
    """Mean absolute residual `step` steps ahead; None without data."""
    if residuals.ndim != 2 or residuals.shape[0] == 0 or step > residuals.shape[1]:
        return None
    col = residuals[:, step - 1]
    col = col[np.isfinite(col)]
    return float(np.mean(np.abs(col))) if len(col) else None


def quantile_paths(
    point: FloatArray, offsets: dict[float, FloatArray], quantiles: Sequence[float]
) -> dict[float, FloatArray]:
    """Point plus offsets, non-negative and non-crossing across levels."""
    horizon = len(point)
    levels = sorted(float(q) for q in quantiles)
    stacked = np.vstack(
        [np.maximum(point + extend(offsets.get(q, np.zeros(0)), horizon), 0.0) for q in levels]
    )
    stacked = np.sort(stacked, axis=0)
    return {q: stacked[i] for i, q in enumerate(levels)}
