"""The statistics under the streaming detector: the exponential upper tail of a score's
past, Fisher's combination of tail probabilities, and rolling order statistics that give the
same number for a row whatever else is in the array (blocks and single steps agree)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecastscaler.models.base import FloatArray

MAD_TO_SIGMA = 1.4826
RANGE_FLOOR = 0.02  # no scale below 2 % of the range: flat and spiky series stay finite
REGIME_QUANTILE = 0.8
TINY = 1e-300


@dataclass(frozen=True)
class TailModel:
    """Upper tail of a raw score's past: empirical up to `u`, exponential beyond it."""

    sorted_: FloatArray
    u: float
    mean_excess: float
    q: float

    def p(self, raw: FloatArray) -> FloatArray:
        """P(past raw score >= raw), with the exponential tail beyond `u`."""
        n = len(self.sorted_)
        if n == 0:
            return np.ones(len(raw))
        above = n - np.searchsorted(self.sorted_, raw, side="left")
        empirical = (above + 1.0) / (n + 1.0)
        tail = (1.0 - self.q) * np.exp(-np.maximum(raw - self.u, 0.0) / self.mean_excess)
        p = np.where(raw > self.u, tail, empirical)
        return np.asarray(np.where(np.isfinite(raw), p, 1.0), dtype=np.float64)


def tail_model(history: FloatArray, q: float) -> TailModel:
    h = np.sort(history[np.isfinite(history)])
    if len(h) == 0:
        return TailModel(h, math.inf, 1.0, q)
    u = float(np.quantile(h, q))
    excess = h[h > u] - u
    spread = float(np.quantile(h, 0.75) - np.quantile(h, 0.25))
    mean_excess = float(excess.mean()) if len(excess) else 0.0
    mean_excess = max(mean_excess, 0.1 * spread, 1e-6 * max(1.0, abs(u)), 1e-12)
    return TailModel(h, u, mean_excess, q)


def combine(ps: list[FloatArray]) -> FloatArray:
    """Fisher's method: P(chi-square(2k) >= -2 sum log p) for k tail probabilities. It takes
    the parts as independent; they are not (all read the same deviation), so the combined p
    overstates how rare a step is. That is what the score's scale means, not a calibrated
    probability (Brown's correction, per series or fixed, ranked NAB's anomalies worse)."""
    x = -2.0 * np.log(np.maximum(np.vstack(ps), TINY)).sum(axis=0)
    return chi2_sf(x, 2 * len(ps))


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def chi2_sf(x: FloatArray, dof: int) -> FloatArray:
    """P(chi-square(dof) >= x): the regularised upper incomplete gamma Q(dof/2, x/2), by its
    recurrence Q(a + 1, y) = Q(a, y) + y^a e^-y / Gamma(a + 1) from Q(1/2) or Q(1)."""
    y = np.maximum(x, 0.0) / 2.0
    if dof % 2:
        a = 0.5
        q = np.asarray(_ERFC(np.sqrt(y)), dtype=np.float64)
    else:
        a = 1.0
        q = np.exp(-y)
    while a < dof / 2.0:
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
            term = np.exp(a * np.log(y) - y - math.lgamma(a + 1.0))
        q = q + np.where(y > 0.0, term, 0.0)
        a += 1.0
    return np.asarray(np.clip(q, 0.0, 1.0), dtype=np.float64)


def window_stat(a: FloatArray, first: int, width: int, how: str, *, include: bool) -> FloatArray:
    """For each i in [first, len(a)): `how` over a[i - width : i] (a[i - width + 1 : i + 1] when
    `include`), over fewer values near the start of `a`, and a[0] where there are none."""
    shift = 1 if include else 0
    n = len(a) - first
    if n <= 0:
        return np.zeros(0)
    out = np.empty(n)
    short = min(n, max(0, width - shift - first))  # rows whose window starts before a[0]
    for j in range(short):
        i = first + j
        seg = a[max(0, i - width + shift) : i + shift]
        out[j] = float(reduce_rows(seg[None, :], how)[0]) if len(seg) else a[0]
    if short < n:
        i0 = first + short
        view = sliding_window_view(a[i0 - width + shift : len(a) - 1 + shift], width)
        out[short:] = reduce_rows(view, how)
    return out


def reduce_rows(view: FloatArray, how: str) -> FloatArray:
    """Row-wise statistic. Order statistics only: a row's result is exactly the same whatever
    else is in the array, which is what makes blocks and single steps agree."""
    if how == "median":
        out = np.median(view, axis=1)
    elif how == "q80":
        out = np.quantile(view, REGIME_QUANTILE, axis=1)
    elif how == "scale":  # MAD as a standard deviation, at least RANGE_FLOOR of the range
        med = np.median(view, axis=1)
        mad = MAD_TO_SIGMA * np.median(np.abs(view - med[:, None]), axis=1)
        out = np.maximum(mad, RANGE_FLOOR * np.ptp(view, axis=1))
    elif how == "rscale":  # the same for absolute residuals (centred on 0)
        out = np.maximum(MAD_TO_SIGMA * np.median(view, axis=1), RANGE_FLOOR * view.max(axis=1))
    elif how == "absdiff":
        if view.shape[1] < 2:
            return np.zeros(view.shape[0])
        out = np.median(np.abs(np.diff(view, axis=1)), axis=1)
    else:
        raise ValueError(f"unknown statistic {how!r}")
    return np.asarray(out, dtype=np.float64)
