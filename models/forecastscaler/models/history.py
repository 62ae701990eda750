"""Cleaning metric histories into what the models expect.

Real metrics have gaps, duplicated or unsorted samples, negative values from counter resets and
NaN. Every model goes through the same cleaning so they all see the same series.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecastscaler.models.base import FloatArray, InsufficientHistory

BoolArray = npt.NDArray[np.bool_]


def infer_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The series' step: the most common spacing between samples (at any datetime unit), or
    when gaps make that ambiguous, the spacing every other one is a multiple of. Timestamps
    jittered by up to a quarter step (scrape jitter) give the step they jitter around, rounded
    to whole seconds."""
    if len(index) < 2:
        raise ValueError("cannot infer a step from fewer than two timestamps")
    deltas = pd.Series(index[1:] - index[:-1])
    deltas = deltas[deltas > pd.Timedelta(0)]
    if deltas.empty:
        raise ValueError("all timestamps are equal")
    mode = pd.Timedelta(deltas.mode().iloc[0])
    if (deltas == mode).mean() >= 0.5:
        return mode
    # A clean grid with many gaps: every spacing is a multiple of the step.
    nanos = deltas.to_numpy().astype("timedelta64[ns]").astype(np.int64)
    common = int(np.gcd.reduce(nanos))
    if common >= 0.1 * mode.value and 2 * common >= int(nanos.min()):
        return pd.Timedelta(common, unit="ns")
    # Jittered scrape timestamps: hardly any two spacings are equal, so the mode is an
    # arbitrary (the smallest) spacing. Estimate the step roughly from the spacings near the
    # typical one, count how many steps each spacing spans (gaps span several), and divide
    # the whole span by the number of steps; whole seconds when the step is a second or more.
    # (In float seconds: Timedelta arithmetic truncates at the index's unit, e.g. whole seconds.)
    seconds = deltas.dt.total_seconds().to_numpy(dtype=np.float64)
    rough = float(np.median(seconds[seconds <= 1.5 * np.quantile(seconds, 0.25)]))
    spans = np.round(seconds / rough)  # a stray sample between two grid points spans 0
    step = pd.Timedelta(seconds=float(seconds.sum() / max(1.0, float(spans.sum()))))
    return step.round("1s") if step >= pd.Timedelta("1s") else step.round("1us")


def regularize(y: pd.Series, step: pd.Timedelta | None = None) -> pd.Series:
    """Sorted, de-duplicated, on a regular grid of `step`, with NaN for every gap and for
    values that cannot be load (negative, infinite)."""
    if not isinstance(y.index, pd.DatetimeIndex):
        raise TypeError("history must have a DatetimeIndex")
    s = pd.to_numeric(y, errors="coerce").astype("float64")
    s = s[~s.index.duplicated(keep="last")].sort_index()
    values = s.to_numpy(copy=True)
    values[~np.isfinite(values) | (values < 0)] = np.nan
    s = pd.Series(values, index=s.index)
    if len(s) < 2:
        return s
    step = step or infer_step(pd.DatetimeIndex(s.index))
    # Up to the grid point nearest the last sample: a last stamp jittered early must not
    # fall off the end of the grid.
    periods = round((s.index[-1] - s.index[0]) / step) + 1
    grid = pd.date_range(s.index[0], periods=periods, freq=step)
    # Snap samples to the grid (tolerating scrape jitter) instead of requiring exact stamps.
    return s.reindex(grid, method="nearest", tolerance=step / 2)


def fill_gaps(values: FloatArray) -> FloatArray:
    """Linear interpolation inside gaps, carried flat at the ends. All-NaN stays all-NaN."""
    out = np.asarray(values, dtype=np.float64).copy()
    ok = np.isfinite(out)
    if ok.all() or not ok.any():
        return out
    idx = np.arange(len(out))
    out[~ok] = np.interp(idx[~ok], idx[ok], out[ok])
    return out


def valid_count(y: pd.Series) -> int:
    """Observations that are usable load values."""
    values = y.to_numpy(dtype=np.float64)
    return int(np.count_nonzero(np.isfinite(values) & (values >= 0)))


def future_index(index: pd.DatetimeIndex, horizon: int, step: pd.Timedelta) -> pd.DatetimeIndex:
    """Timestamps of the `horizon` steps after the end of `index`."""
    return pd.date_range(index[-1] + step, periods=horizon, freq=step)


def _side_median(frames: FloatArray) -> FloatArray:
    out = np.full(len(frames), np.nan)
    some = np.isfinite(frames).any(axis=1)
    if some.any():
        out[some] = np.nanmedian(frames[some], axis=1)
    return out


def spikes(
    values: FloatArray, window: int = 5, k: float = 10.0, relative: float = 0.5
) -> BoolArray:
    """Isolated spikes: points far from both the median of the `window` values before them and
    the median of the (up to `window`) values after them, in the same direction, by more than
    `k` robust scales of the series' step-to-step changes and by more than `relative` of the
    local level. That is what `rate()` across a counter reset or a scrape glitch leaves behind:
    one or two absurd samples between ordinary ones. A level shift is not a spike (its points
    sit close to one side), and neither is the newest sample (nothing after it says whether it
    is a glitch or the start of a surge, so it is believed)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    flagged = np.zeros(n, dtype=bool)
    finite = np.isfinite(x)
    if n < 3 or finite.sum() < 3:
        return flagged
    diffs = np.abs(np.diff(x[finite]))
    level = float(np.median(np.abs(x[finite])))
    scale = max(1.4826 * float(np.median(diffs)), 0.01 * level, 1e-9)
    padded = np.concatenate([np.full(window, np.nan), x, np.full(window, np.nan)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1)
    before, after = frames[:, :window], frames[:, window + 1 :]
    # All-NaN sides are not judged. They are left out of nanmedian rather than silenced with
    # warnings.catch_warnings, which is not thread-safe (models fit in a pool).
    left, right = _side_median(before), _side_median(after)
    with np.errstate(all="ignore"):
        up = np.minimum(x - left, x - right)
        down = np.minimum(left - x, right - x)
        ref = np.abs(0.5 * (left + right))
        jump = np.maximum(up, down)
        flagged = (
            finite
            & np.isfinite(left)
            & np.isfinite(right)
            & (jump > k * scale)
            & (jump > relative * ref)
        )
    flagged[-1] = False
    return np.asarray(flagged, dtype=bool)


# A spike is a cron job's burst, not a glitch, when it recurs at the same calendar position
# (minute of the hour, time of day) at least this often and in at least this share of the
# cycles that position was observed in. Counter resets and scrape glitches fall at random times.
RECUR_MIN = 3
RECUR_SHARE = 0.25
RECUR_PERIODS = (3600.0, 86400.0)


def recurring(flags: BoolArray, index: pd.DatetimeIndex) -> BoolArray:
    """The flagged points that sit at a calendar position where flags recur (see RECUR_MIN)."""
    out = np.zeros(len(flags), dtype=bool)
    if int(np.count_nonzero(flags)) < RECUR_MIN or len(index) < 2:
        return out
    nanos = np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    step = int(nanos[1] - nanos[0])
    for period in RECUR_PERIODS:
        span = int(period * 1e9)
        if step <= 0 or step >= span:
            continue
        pos = (nanos % span) // step
        seen = np.bincount(pos, minlength=int(pos.max()) + 1)
        hits = np.bincount(pos[flags], minlength=len(seen))
        recur = (hits >= RECUR_MIN) & (hits >= RECUR_SHARE * seen)
        out |= flags & recur[pos]
    return out


def glitches(series: pd.Series) -> BoolArray:
    """Spikes of a regular series that are glitches: isolated, and not recurring at a fixed
    minute of the hour or time of day (those are load: a cron job's burst that the models must
    learn and the intervals must cover, not drop)."""
    raw = series.to_numpy(dtype=np.float64)
    flags = spikes(raw)
    if not flags.any():
        return flags
    return np.asarray(flags & ~recurring(flags, pd.DatetimeIndex(series.index)), dtype=bool)


def prepare(y: pd.Series, model: str, needed: int) -> tuple[pd.Series, FloatArray, FloatArray]:
    """(regular series, raw values with NaN, gap-filled values); raises InsufficientHistory
    when fewer than `needed` observations are usable. Isolated spikes (counter resets, scrape
    glitches) become gaps, so no model trains or calibrates on them; spikes that recur at a
    fixed minute of the hour or time of day are kept (`glitches`)."""
    series = regularize(y)
    raw = series.to_numpy(dtype=np.float64, copy=True)
    raw[glitches(series)] = np.nan
    series = pd.Series(raw, index=series.index)
    got = valid_count(series)
    if got < needed or len(series) < 2:
        raise InsufficientHistory(model, max(needed, 2), got)
    return series, raw, fill_gaps(raw)


def newer_steps(
    y: pd.Series, last: pd.Timestamp, step: pd.Timedelta
) -> tuple[pd.DatetimeIndex, FloatArray]:
    """The grid steps after `last` up to y's newest sample, and y's values on them (snapped
    within half a step, NaN where missing or not a load), cleaned as `regularize` cleans them.
    What a fitted model's cheap `update` needs: only the new part of a long history."""
    if not isinstance(y.index, pd.DatetimeIndex):
        raise TypeError("history must have a DatetimeIndex")
    index = y.index
    after = last + step / 2
    if index.is_monotonic_increasing:  # the usual case: only look at the newest few samples
        tail = y.iloc[int(index.searchsorted(after, side="right")) :]
    else:
        tail = y[index > after]
    if tail.empty:
        return pd.DatetimeIndex([]), np.zeros(0)
    tail = pd.to_numeric(tail, errors="coerce").astype("float64")
    if not (tail.index.is_unique and tail.index.is_monotonic_increasing):
        tail = tail[~tail.index.duplicated(keep="last")].sort_index()
    periods = max(1, round((tail.index[-1] - last) / step))
    grid = pd.date_range(last + step, periods=periods, freq=step)
    # Each grid step takes the nearest sample within half a step (ties: the later one, as
    # pandas' nearest reindex does).
    at = grid.as_unit("ns").asi8
    times = pd.DatetimeIndex(tail.index).as_unit("ns").asi8
    values = tail.to_numpy(dtype=np.float64)
    right = np.searchsorted(times, at, side="left").clip(0, len(times) - 1)
    left = (right - 1).clip(0, len(times) - 1)
    d_right = np.abs(times[right] - at)
    d_left = np.abs(at - times[left])
    pick = np.where(d_left < d_right, left, right)
    near = np.minimum(d_left, d_right)
    fresh: FloatArray = np.where(near <= step.value / 2, values[pick], np.nan)
    fresh[~np.isfinite(fresh) | (fresh < 0)] = np.nan
    return grid, fresh
