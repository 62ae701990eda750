"""The scores of a forecast against what happened: point error (MAE, sMAPE), quantile loss
(pinball) and coverage. Every score skips the points without an actual or a forecast."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from forecastscaler.models.base import FloatArray

BoolArray = npt.NDArray[np.bool_]


def finite_mask(actual: FloatArray, *forecasts: FloatArray) -> BoolArray:
    """Where the actual and every forecast are finite."""
    ok = np.isfinite(actual)
    for f in forecasts:
        ok &= np.isfinite(f)
    return ok


def mae(actual: FloatArray, point: FloatArray) -> float:
    """Mean absolute error over the points with an actual and a forecast (NaN if none)."""
    ok = finite_mask(actual, point)
    return float(np.mean(np.abs(actual[ok] - point[ok]))) if ok.any() else math.nan


def smape(actual: FloatArray, point: FloatArray) -> float:
    """Symmetric MAPE in percent (0 to 200); a point where both are 0 is a perfect 0."""
    ok = finite_mask(actual, point)
    if not ok.any():
        return math.nan
    a, p = actual[ok], point[ok]
    scale = np.abs(a) + np.abs(p)
    ratio = np.divide(2 * np.abs(a - p), scale, out=np.zeros_like(a), where=scale > 0)
    return float(100 * np.mean(ratio))


def pinball(actual: FloatArray, value: FloatArray, q: float) -> float:
    """Mean pinball (quantile) loss of forecasts of quantile q: q * under + (1 - q) * over."""
    ok = finite_mask(actual, value)
    if not ok.any():
        return math.nan
    diff = actual[ok] - value[ok]
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def coverage(actual: FloatArray, upper: FloatArray) -> float:
    """Share of actuals at or below the forecast (a quantile forecast's coverage)."""
    ok = finite_mask(actual, upper)
    return float(np.mean(actual[ok] <= upper[ok])) if ok.any() else math.nan


def interval_coverage(actual: FloatArray, lower: FloatArray, upper: FloatArray) -> float:
    """Share of actuals inside [lower, upper]."""
    ok = finite_mask(actual, lower, upper)
    if not ok.any():
        return math.nan
    a = actual[ok]
    return float(np.mean((a >= lower[ok]) & (a <= upper[ok])))
