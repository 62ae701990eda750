"""Finding a series' season from the data.

Load on a service is usually daily (and weekly) periodic, but the step, compressed replays and
batch schedules make the period in steps unknowable in advance. The season is the strongest
autocorrelation peak after the first trough, snapped to a calendar period when it is close.
"""

from __future__ import annotations

import numpy as np

from forecastscaler.models.base import FloatArray


def autocorrelation(values: FloatArray) -> FloatArray:
    """Autocorrelation at every lag of a linearly detrended, gap-free series (via FFT)."""
    n = len(values)
    t = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(t, values, 1) if n >= 2 else (0.0, float(values.mean()))
    x = values - (slope * t + intercept)
    denom = float(np.dot(x, x))
    if denom <= 1e-12 * max(1.0, float(np.dot(values, values))):
        return np.zeros(n)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return np.asarray(acf / denom, dtype=np.float64)


def find_season(
    values: FloatArray,
    *,
    min_lag: int = 4,
    min_acf: float = 0.3,
    calendar: tuple[int, ...] = (),
    max_cycles: float = 2.0,
) -> int | None:
    """Season length in steps, or None when the series shows no periodicity.

    Needs at least `max_cycles` full seasons. `calendar` lists periods (day, week in steps)
    that a detected season within 2 % of is snapped to.
    """
    n = len(values)
    max_lag = int(n / max_cycles)
    if max_lag <= min_lag + 1:
        return None
    acf = autocorrelation(values)
    # Skip the initial decay: the search starts at the first lag where ACF dips below zero
    # (or its first local minimum), so smoothness alone is never mistaken for a season.
    start = min_lag
    below = np.nonzero(acf[min_lag:max_lag] <= 0)[0]
    if len(below):
        start = min_lag + int(below[0])
    else:
        diffs = np.diff(acf[min_lag:max_lag])
        rising = np.nonzero(diffs > 0)[0]
        if not len(rising):
            return None
        start = min_lag + int(rising[0])
    window = acf[start : max_lag + 1]
    if len(window) < 3:
        return None
    peak = start + int(np.argmax(window))
    if acf[peak] < min_acf or peak >= max_lag:
        return None
    for period in calendar:
        if period > 0 and abs(peak - period) <= 0.02 * period:
            return period
    return peak
