"""Conditional conformal intervals: residuals scaled by the level and the calendar.

Split conformal (calibration.py) gives one width per step ahead at all times. Real loads are not
like that: the noise of request counts grows with their level (Poisson-like), and cron jobs
make bursts at fixed minutes of the hour or hours of the day, predictable in when though not in
how much. One width everywhere then pays for a burst at :00 all hour long, and a high quantile,
which the autoscaler provisions, is expensive all day.

Normalized conformal: every backtest residual r is divided by a scale s known before the
target is seen, s = max(level, floor) ** b * m(calendar position of the target), and the
conformal quantile is taken of the scores r / s per step ahead; a forecast multiplies it back
by its own s. Because the quantile is still an order statistic of exchangeable scores, the
marginal coverage guarantee of split conformal holds whatever s is; s only decides where the
width goes.

- The level exponent b (0: constant noise, 0.5: Poisson, 1: proportional) is the slope of the
  mean absolute residual against the forecast level on log-log axes, over level bins, clipped
  to [0, 1]; levels are floored at a share of the typical level, so a forecast near zero keeps
  a width.
- The calendar multipliers m come from the scores grouped by the target's position in each
  calendar period the step allows (minute of the hour when the step is under an hour, hour of
  the day under a day, day of the week under a week), one period after another. Each position's
  mean absolute score is averaged over the cycles it was seen in (residuals within an hour are
  not independent), and a position keeps its own multiplier only when it stands out from the
  median position by more than the universal threshold sqrt(2 ln G) standard errors (G
  positions: few false alarms among many positions); the others share the pooled scale. A
  period needs MIN_CYCLES cycles in the backtest, so one unusual day is not learned as "every
  day".
- Short or degenerate backtests (fewer than MIN_NORMALIZED origins, no spread) keep b = 0 and
  no multipliers: plain split conformal, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecastscaler.models.base import FloatArray
from forecastscaler.models.calibration import IntArray, conformal_offsets
from forecastscaler.models.history import BoolArray

# Fewest backtest origins before residuals are normalized at all.
MIN_NORMALIZED = 100
# Level bins for the exponent, and the least spread of levels (top bin over bottom) that can
# tell noise that grows with the level from noise that does not.
LEVEL_BINS = 8
MIN_LEVEL_RATIO = 1.5
# Levels are floored at this share of the 90th percentile level (and at TINY).
FLOOR_SHARE = 0.05
TINY = 1e-9
# Cycles of a calendar period the backtest must span, and a position must be seen in, for the
# position to get its own multiplier.
MIN_CYCLES = 5
# No position's multiplier goes below this share of the pooled scale: a handful of quiet
# cycles must not collapse a width.
MIN_MULTIPLIER = 0.2

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class Partition:
    """Multipliers of the scale by the position of the target in a calendar period, per step
    ahead (a burst at :00 is three steps ahead of :57 and one step ahead of :59)."""

    period: float
    """Seconds in the period (an hour, a day, a week)."""
    resolution: float
    """Seconds per position (a minute, an hour, a day, or the step when coarser)."""
    multipliers: FloatArray
    """(steps, positions); 1 where a position does not stand out."""
    flagged: BoolArray
    """(steps, positions): the positions that stand out, calibrated on their own."""

    def positions(self, stamps: FloatArray) -> IntArray:
        """Position of each UTC epoch second in the period."""
        size = self.multipliers.shape[1]
        pos = np.floor((np.nan_to_num(stamps) % self.period) / self.resolution).astype(np.int64)
        return np.clip(pos, 0, size - 1)

    def at(self, stamps: FloatArray, steps: IntArray) -> FloatArray:
        """Multipliers for targets at `stamps`, `steps` (0-based) ahead, broadcast alike."""
        rows = np.minimum(steps, self.multipliers.shape[0] - 1)
        return np.asarray(self.multipliers[rows, self.positions(stamps)], dtype=np.float64)

    def standing_out(self, stamps: FloatArray, steps: IntArray) -> BoolArray:
        rows = np.minimum(steps, self.flagged.shape[0] - 1)
        return np.asarray(self.flagged[rows, self.positions(stamps)], dtype=np.bool_)


@dataclass(frozen=True)
class Conditional:
    """A fitted scale s(level, time) and the conformal quantiles of the scores r / s: pooled
    over the ordinary targets, and of their own (Mondrian) at each position that stands out."""

    exponent: float
    floor: float
    partitions: tuple[Partition, ...]
    scores: FloatArray
    """(origins, steps) residuals divided by their scale: what the quantiles are taken of."""
    groups: IntArray
    """(origins, steps) the group of each score: 0 pooled, else 1 + its position's number."""

    @property
    def plain(self) -> bool:
        """Whether this is plain split conformal (scale 1 everywhere, one group)."""
        return self.exponent == 0.0 and not self.partitions

    def scale(self, level: FloatArray, stamps: FloatArray, steps: IntArray) -> FloatArray:
        """The scale of forecasts at these levels for targets at these UTC epoch seconds."""
        safe = np.maximum(np.nan_to_num(np.asarray(level, dtype=np.float64), nan=0.0), 0.0)
        out = np.maximum(safe, self.floor) ** self.exponent
        for part in self.partitions:
            out = out * part.at(stamps, steps)
        return np.asarray(out, dtype=np.float64)

    def group_of(self, stamps: FloatArray, steps: IntArray) -> IntArray:
        """The calibration group of targets at `stamps`, `steps` ahead: the first partition's
        position that stands out, else 0 (pooled)."""
        out = np.zeros(np.shape(stamps), dtype=np.int64)
        base = 1
        for part in self.partitions:
            size = part.multipliers.shape[1]
            mine = (out == 0) & part.standing_out(stamps, steps)
            out = np.where(mine, base + part.positions(stamps), out)
            base += size
        return out

    def normalized(self, quantiles: Sequence[float]) -> dict[float, FloatArray]:
        """(steps, groups) conformal quantiles of the scores, the same for every forecast."""
        return group_quantiles(self.scores, self.groups, self.n_groups, quantiles)

    @property
    def n_groups(self) -> int:
        return 1 + sum(int(p.multipliers.shape[1]) for p in self.partitions)

    def offsets(
        self, normalized: dict[float, FloatArray], level: FloatArray, stamps: FloatArray
    ) -> dict[float, FloatArray]:
        """Offsets for one forecast: each level's quantile for the group of each target
        (widened like a random walk beyond the calibrated steps) times the forecast's own
        scale at each step."""
        horizon = len(level)
        steps = np.arange(horizon, dtype=np.int64)
        s = self.scale(level, stamps, steps)
        groups = self.group_of(stamps, steps)
        out: dict[float, FloatArray] = {}
        for q, table in normalized.items():
            calibrated = table.shape[0]
            if calibrated == 0:
                out[q] = np.zeros(horizon)
                continue
            rows = np.minimum(steps, calibrated - 1)
            widen = np.sqrt(np.maximum(steps + 1, calibrated) / calibrated)
            out[q] = table[rows, groups] * widen * s
        return out


def plain(residuals: FloatArray) -> Conditional:
    """Split conformal: scale 1 everywhere, one group."""
    return Conditional(0.0, 1.0, (), residuals, np.zeros(residuals.shape, dtype=np.int64))


# The quantiles the validation judges by: the provisioned range.
VALIDATION_QUANTILES = (0.9, 0.99)


def fit_conditional(
    residuals: FloatArray, levels: FloatArray, stamps: FloatArray, step_seconds: float
) -> Conditional:
    """The scale for backtest `residuals` (origins, steps) of forecasts at `levels` whose
    targets fall at `stamps` (UTC epoch seconds), on a grid of `step_seconds`; plain split
    conformal unless the scale, fitted on the earlier half of the origins, gives the later
    half a lower pinball loss at VALIDATION_QUANTILES than plain split conformal does (the
    scale is learned, so it has to earn its place out of sample)."""
    fitted = _fit(residuals, levels, stamps, step_seconds)
    if fitted.plain:
        return fitted
    half = residuals.shape[0] // 2
    early = _fit(residuals[:half], levels[:half], stamps[:half], step_seconds)
    late = (residuals[half:], levels[half:], stamps[half:])
    if _pinball(early, *late) < _pinball(plain(residuals[:half]), *late):
        return fitted
    return plain(residuals)


def _pinball(
    fitted: Conditional, residuals: FloatArray, levels: FloatArray, stamps: FloatArray
) -> float:
    """Mean pinball loss at VALIDATION_QUANTILES of `fitted` offsets on other residuals."""
    steps = np.broadcast_to(np.arange(residuals.shape[1], dtype=np.int64), residuals.shape)
    scale = fitted.scale(levels, stamps, steps)
    groups = fitted.group_of(stamps, steps)
    tables = fitted.normalized(VALIDATION_QUANTILES)
    ok = np.isfinite(residuals)
    total = 0.0
    for q, table in tables.items():
        diff = (residuals - table[steps, groups] * scale)[ok]
        total += float(np.mean(np.maximum(q * diff, (q - 1) * diff))) if diff.size else 0.0
    return total


def _fit(
    residuals: FloatArray, levels: FloatArray, stamps: FloatArray, step_seconds: float
) -> Conditional:
    """fit_conditional without the validation."""
    if (
        residuals.ndim != 2
        or residuals.shape[0] < MIN_NORMALIZED
        or residuals.shape != levels.shape
        or residuals.shape != stamps.shape
    ):
        return plain(residuals)
    per_step = _per_step_scale(residuals)
    if per_step is None:
        return plain(residuals)
    level = np.maximum(np.nan_to_num(levels, nan=0.0), 0.0)
    floor = max(FLOOR_SHARE * float(np.quantile(level, 0.9)), TINY)
    exponent = level_exponent(residuals / per_step, level, floor)
    scores = residuals / np.maximum(level, floor) ** exponent
    steps = np.broadcast_to(np.arange(residuals.shape[1], dtype=np.int64), residuals.shape)
    partitions: list[Partition] = []
    for period, resolution in calendar_periods(step_seconds):
        part = fit_partition(scores / per_step_of(scores), stamps, period, resolution)
        if part is not None:
            partitions.append(part)
            scores = scores / part.at(stamps, steps)
    out = Conditional(exponent, floor, tuple(partitions), scores, np.zeros(0, dtype=np.int64))
    return replace(out, groups=out.group_of(stamps, steps))


def group_quantiles(
    scores: FloatArray, groups: IntArray, n_groups: int, quantiles: Sequence[float]
) -> dict[float, FloatArray]:
    """(steps, groups) conformal quantile tables. Group 0 (the ordinary targets) is split
    conformal on its scores; every other group on its own scores, except where it has too few
    for the order statistic: then the pooled quantile, but never inside the group's own range
    (at least its largest score above the median, at most its smallest below). Each column is
    an order statistic whose rank rises with q, so the tables rise with q."""
    steps = scores.shape[1] if scores.ndim == 2 else 0
    levels = [float(q) for q in quantiles]
    out = {q: np.zeros((steps, n_groups)) for q in levels}
    for h in range(steps):
        col, grp = scores[:, h], groups[:, h]
        ok = np.isfinite(col)
        base = ok & (grp == 0)
        pooled = conformal_offsets(col[base if base.any() else ok][:, None], levels)
        for q in levels:
            out[q][h, :] = pooled[q][0]
        for g in np.unique(grp[ok & (grp > 0)]).tolist():
            _own_group(out, h, g, col[ok & (grp == g)], levels)
    return out


def _own_group(
    out: dict[float, FloatArray], h: int, g: int, mine: FloatArray, levels: list[float]
) -> None:
    """Fill group g's column at step h from its own scores (see group_quantiles)."""
    n = len(mine)
    own = conformal_offsets(mine[:, None], levels)
    for q in levels:
        pooled = out[q][h, g]
        if q > 0.5 and math.ceil((n + 1) * q - 1e-9) > n:
            out[q][h, g] = max(float(mine.max()), pooled)
        elif q < 0.5 and math.floor((n + 1) * q + 1e-9) < 1:
            out[q][h, g] = min(float(mine.min()), pooled)
        else:
            out[q][h, g] = own[q][0]


def _per_step_scale(residuals: FloatArray) -> FloatArray | None:
    """(1, steps) mean absolute residual per step, so steps can be pooled; None when some step
    has no spread (a constant series: nothing to scale)."""
    scale = per_step_of(residuals)
    return scale if bool(np.all(scale > 0)) else None


def per_step_of(values: FloatArray) -> FloatArray:
    """(1, steps) mean absolute finite value per column (0 for an empty column)."""
    a = np.abs(values)
    ok = np.isfinite(a)
    total = np.where(ok, a, 0.0).sum(axis=0)
    count = ok.sum(axis=0)
    return np.asarray(np.where(count > 0, total / np.maximum(count, 1), 0.0)[None, :])


def level_exponent(standardized: FloatArray, level: FloatArray, floor: float) -> float:
    """The slope b of log median |residual| on log level over level bins, in [0, 1]: how the
    noise grows with the level. Medians, so bursts at a few calendar positions (the
    multipliers' business) do not pass for noise that grows with the level; 0 when the levels
    hardly vary."""
    ok = np.isfinite(standardized)
    lev = np.maximum(level[ok], floor)
    err = np.abs(standardized[ok])
    if len(lev) < LEVEL_BINS * 10:
        return 0.0
    order = np.argsort(lev, kind="stable")
    bins = np.array_split(order, LEVEL_BINS)
    mean_lev = np.array([float(np.mean(lev[b])) for b in bins])
    mid_err = np.array([float(np.median(err[b])) for b in bins])
    if mean_lev.max() < MIN_LEVEL_RATIO * mean_lev.min() or not bool(np.all(mid_err > 0)):
        return 0.0
    slope = float(np.polyfit(np.log(mean_lev), np.log(mid_err), 1)[0])
    return float(np.clip(slope, 0.0, 1.0)) if math.isfinite(slope) else 0.0


def calendar_periods(step_seconds: float) -> list[tuple[float, float]]:
    """(period, resolution) of the calendar positions a step can resolve: minute of the hour
    under an hour, hour of the day under a day, day of the week under a week."""
    out: list[tuple[float, float]] = []
    for period, unit in ((HOUR, MINUTE), (DAY, HOUR), (WEEK, DAY)):
        if 0 < step_seconds < period:
            out.append((period, max(unit, step_seconds)))
    return out


def fit_partition(
    standardized: FloatArray, stamps: FloatArray, period: float, resolution: float
) -> Partition | None:
    """Per step ahead, multipliers of the positions that stand out in this period; None when
    none does (or the backtest spans too few cycles to tell)."""
    size = max(1, math.ceil(period / resolution - 1e-9))
    ok = np.isfinite(standardized) & np.isfinite(stamps)
    if not ok.any() or len(np.unique(np.floor(stamps[ok] / period))) < MIN_CYCLES:
        return None
    steps = standardized.shape[1]
    stats = [
        _position_stats(standardized[:, h], stamps[:, h], period, resolution, size)
        for h in range(steps)
    ]
    known = np.array([s[2] >= MIN_CYCLES for s in stats])
    if np.count_nonzero(known) < 2:
        return None
    threshold = max(2.0, math.sqrt(2 * math.log(np.count_nonzero(known))))
    multipliers = np.ones((steps, size))
    flagged = np.zeros((steps, size), dtype=np.bool_)
    for h, (means, errors, _, pooled_of) in enumerate(stats):
        center = float(np.median(means[known[h]])) if known[h].any() else 0.0
        flagged[h] = known[h] & (np.abs(means - center) > threshold * errors)
        pooled = pooled_of(flagged[h])
        if pooled > 0:
            multipliers[h] = np.where(flagged[h], np.maximum(means / pooled, MIN_MULTIPLIER), 1.0)
        else:
            flagged[h] = False
    if not flagged.any():
        return None
    return Partition(period, resolution, multipliers, flagged)


PositionStats = tuple[FloatArray, FloatArray, FloatArray, Callable[[BoolArray], float]]


def _position_stats(
    column: FloatArray, stamps: FloatArray, period: float, resolution: float, size: int
) -> PositionStats:
    """Per position of one step's targets: the mean over cycles of the cycle's mean |score|,
    its standard error across cycles and the number of cycles (each cycle one observation,
    since the residuals within a cycle are correlated); and the mean |score| over the
    positions not flagged, as a function of the flags."""
    ok = np.isfinite(column) & np.isfinite(stamps)
    a = np.abs(column[ok])
    t = stamps[ok]
    if len(a) == 0:
        zeros = np.zeros(size)
        return zeros, zeros, zeros, lambda _: 0.0
    pos = np.clip(np.floor((t % period) / resolution).astype(np.int64), 0, size - 1)
    cycle = np.floor(t / period).astype(np.int64)
    cycle -= cycle.min()
    cycles = int(cycle.max()) + 1
    cells, inverse = np.unique(pos * cycles + cycle, return_inverse=True)
    cell_mean = np.bincount(inverse, a) / np.bincount(inverse)
    cell_pos = cells // cycles
    counts = np.bincount(cell_pos, minlength=size).astype(np.float64)
    n = np.maximum(counts, 1.0)
    means = np.bincount(cell_pos, cell_mean, size) / n
    squares = np.bincount(cell_pos, cell_mean**2, size) / n
    var = np.maximum(squares - means**2, 0.0) * n / np.maximum(n - 1, 1.0)

    def pooled(flags: BoolArray) -> float:
        rest = ~flags[pos]
        return float(np.mean(a[rest])) if rest.any() else 0.0

    return means, np.sqrt(var / n), counts, pooled


def epoch_seconds(index: pd.DatetimeIndex) -> FloatArray:
    """UTC epoch seconds of each timestamp (naive timestamps are taken as UTC)."""
    nanos = np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    return np.asarray(nanos // 1_000_000_000, dtype=np.float64)
