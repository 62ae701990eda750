"""Conditional coverage of a backtest: the quantile's coverage per calendar bucket.

A quantile forecast can cover 90 % of all targets and still miss most of the bursts a cron job
makes at :00 and :30, or most of the daily peak hour. The backtest therefore also reports the
share of actuals at or below the quantile forecast per hour of the day (steps under a day) and
per minute of the hour (steps under an hour) of the target time, UTC: every bucket's figure in
the JSON, and the worst bucket and the spread (best minus worst) in the table. Buckets with
fewer than MIN_BUCKET scored targets are left out of the worst and the spread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# Scored targets a bucket needs to count in the worst bucket and the spread.
MIN_BUCKET = 10

BUCKET_COLUMNS = (
    "cov_hour_worst",
    "cov_hour_spread",
    "cov_minute_worst",
    "cov_minute_spread",
    "coverage_by_hour",
    "coverage_by_minute",
)


def bucket_coverage(
    target: pd.DatetimeIndex, actual: np.ndarray, value: np.ndarray, kind: str
) -> dict[int, float]:
    """Share of actuals at or below `value` per bucket ("hour" of the day or "minute" of the
    hour) of the target times, over the points with both."""
    ok = np.isfinite(actual) & np.isfinite(value)
    if not ok.any():
        return {}
    times = pd.DatetimeIndex(target)[ok]
    keys = np.asarray(times.hour if kind == "hour" else times.minute, dtype=np.int64)
    hits = (actual[ok] <= value[ok]).astype(np.float64)
    counts = np.bincount(keys)
    sums = np.bincount(keys, hits)
    return {int(k): float(sums[k] / counts[k]) for k in np.flatnonzero(counts >= MIN_BUCKET)}


def _worst_spread(buckets: dict[int, float]) -> tuple[float, float]:
    if not buckets:
        return math.nan, math.nan
    values = list(buckets.values())
    return min(values), max(values) - min(values)


def bucket_figures(
    target: pd.DatetimeIndex, actual: np.ndarray, value: np.ndarray, step_seconds: float
) -> dict[str, Any]:
    """The BUCKET_COLUMNS of one model: per-bucket coverage where the step resolves the
    bucket (hours under a day, minutes under an hour), else empty."""
    hours = bucket_coverage(target, actual, value, "hour") if step_seconds < 86400 else {}
    minutes = bucket_coverage(target, actual, value, "minute") if step_seconds < 3600 else {}
    hour_worst, hour_spread = _worst_spread(hours)
    minute_worst, minute_spread = _worst_spread(minutes)
    return {
        "cov_hour_worst": hour_worst,
        "cov_hour_spread": hour_spread,
        "cov_minute_worst": minute_worst,
        "cov_minute_spread": minute_spread,
        "coverage_by_hour": hours,
        "coverage_by_minute": minutes,
    }
