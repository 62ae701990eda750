"""Anomaly score from forecast residuals: the forecast said what to expect, and a large surprise
relative to the forecast's own interval is an anomaly."""

from __future__ import annotations

import math
from statistics import NormalDist


def residual_score(
    observed: float, expected: float, upper: float, *, quantile: float = 0.9, onset: float = 3.0
) -> float:
    """Score in [0, 1]: 0 up to `onset` interval-scales from the expectation, rising to 1 at
    twice that. `upper` is the forecast's `quantile` (default 0.9) for the same time."""
    if not all(math.isfinite(v) for v in (observed, expected, upper)):
        return 0.0
    z_q = NormalDist().inv_cdf(quantile) if 0.5 < quantile < 1.0 else 0.0
    if z_q <= 0.0:  # the median (or below) spans no interval to measure a surprise against
        return 0.0
    scale = max((upper - expected) / z_q, 1e-9, 1e-3 * abs(expected))
    z = abs(observed - expected) / scale
    return float(min(1.0, max(0.0, (z - onset) / onset)))
