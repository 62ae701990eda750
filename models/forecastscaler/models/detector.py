"""Streaming anomaly detection: an IsolationForest on windowed features and forecast-residual
scores, each calibrated to a tail probability on its own recent past, combined into one score
in [0, 1] per step. Every step is scored from that step and the ones before it, never later.

Per step t:

- *Forecast residuals.* A simple forecaster says what to expect at t from the past: the median
  of the same time in the last (up to) three seasons when that beats the rolling median level
  on the recent past (the season is the autocorrelation's, or the calendar day or week, re-chosen
  at every refit), else the rolling median of the last `level_window` values; or the caller's
  own forecast (`expected`, with `upper` its `quantile`). z = (value - expected) over the typical
  absolute residual of the `level_window` before. Two raw scores: |z| (a spike) and |median z|
  over the last `window` steps (a sustained shift, which no single step shows).
- *IsolationForest* on windowed features, each relative to a robust rolling level and scale
  (median and MAD, so past spikes do not mask the next one): the value, the median of the last
  `window` values, the first difference, the local against the long-run spread, the 80th
  percentile and the median of |z| and z over the last `regime_window` steps (a burst of
  spikes, a drift), the value against the training window's median and spread, and the
  deviation from the seasonal expectation when a season is used.
- *Refits* at step `min_train`, then at doubling steps, then every `refit_every` steps, on the
  last `train_window` steps: the season is chosen again; two forests (fixed `random_state`)
  are trained on alternate blocks of the steps NOT flagged as anomalous (surprise >=
  `flag_threshold`), so anomalies never become the normal they learn; the step's forest score
  is the mean of both. At most `max_excluded` of the window stays out: beyond that the flagged
  steps are the new normal (a level shift) and the forests must learn it.
- *Calibration.* Each raw score gets a tail model from its values on the training window (for
  the forest score, each row scored by the forest that did not train on it: a forest finds its
  own training rows more normal than new ones, which would make every new step look rare): the
  empirical upper tail up to its `tail_quantile`, an exponential fitted to the excesses beyond,
  so a value never seen before still gets a finite, ever smaller tail probability.
- *Combination.* Fisher's method turns the three tail probabilities into one, p (two moderately
  surprising parts count as much as one very surprising part), mapped to [0, 1] as
  log10(1/p) / `decades`: with the default 5, 0.6 is p = 1e-3 and 1.0 is p <= 1e-5. This is the
  step's *surprise*. Fisher takes the parts as independent and they are not (all three read the
  same deviation), so p overstates rarity: on clean seasonal noise the default `threshold` 0.9
  (p = 3e-5) is crossed about once per 4,000 steps. It ranks anomalies well, which is its job.
- *Alerting once per event.* The score is the surprise when it exceeds, by `margin`, every
  surprise of the last `rearm` steps weighted down linearly with their age, else 0: a lasting
  anomaly raises the score at its onset (and whenever it gets clearly worse), not at each of
  its steps, and the suppression fades over `rearm` steps so the next event is reported.

`score_series` computes whole blocks between refits at once, `score` one step; both run the
same code on the same past, so they give the same numbers. Histories are bounded: `score` keeps
only what a future step can look at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble import IsolationForest

from forecastscaler.models.base import FloatArray
from forecastscaler.models.detector_stats import (
    RANGE_FLOOR,
    TINY,
    TailModel,
    combine,
    tail_model,
    window_stat,
)
from forecastscaler.models.naive import calendar_periods
from forecastscaler.models.season import find_season

BoolArray = npt.NDArray[np.bool_]

SEASONS_BACK = 3  # the seasonal expectation is the median of up to this many past seasons
SEASON_GAIN = 0.9  # a season is used when it cuts the median absolute residual by 10 %
MIN_FIT_ROWS = 32  # fewer usable rows: no forest (the residual scores alone)
DEFAULT_THRESHOLD = 0.9  # p = 3e-5 at the default 5 decades

_BUFFERS = ("values_", "missing_", "stamps_", "expected_", "upper_", "surprise_", "scores_")


@dataclass(frozen=True)
class _Fit:
    """What a refit learned, used until the next one."""

    at: int
    season: int | None  # the season of the expectation, None for the rolling level
    forest: tuple[IsolationForest, IsolationForest] | None
    tail_if: TailModel
    tail_res: tuple[TailModel, ...]  # per residual column
    center: float  # median of the training window's values
    spread: float  # and their interquartile range
    floor: float  # RANGE_FLOOR of their range: the smallest scale


class StreamingDetector:
    """Anomaly score in [0, 1] per step from an IsolationForest and forecast residuals.

    Lengths are in steps. `window`: the short window (sustained shifts, local spread);
    `level_window`: the rolling robust level and scale; `regime_window`: bursts and drifts;
    `train_window`: the past a refit learns from; `refit_every`: how often it refits once warm;
    `min_train`: the first refit (scores are 0 before it); `season`: fixed season (None: chosen
    from the data at each refit, 0: never seasonal). A step with surprise >= `flag_threshold`
    is kept out of training; `threshold` is the score from which to alert (the default for
    callers that need a yes/no). See the module docstring for the method.
    """

    def __init__(
        self,
        *,
        window: int = 6,
        level_window: int = 100,
        regime_window: int = 30,
        train_window: int = 2000,
        refit_every: int = 250,
        min_train: int = 150,
        season: int | None = None,
        n_estimators: int = 100,
        max_samples: int = 256,
        tail_quantile: float = 0.9,
        decades: float = 5.0,
        flag_threshold: float = 0.6,
        threshold: float = DEFAULT_THRESHOLD,
        max_excluded: float = 0.05,
        rearm: int = 200,
        margin: float = 0.05,
        quantile: float = 0.9,
        random_state: int = 0,
    ) -> None:
        if window < 2 or level_window < 4 or regime_window < 2:
            raise ValueError("need window >= 2, level_window >= 4, regime_window >= 2")
        if min_train < level_window + MIN_FIT_ROWS:
            raise ValueError(f"min_train must be at least level_window + {MIN_FIT_ROWS}")
        if refit_every < 1 or train_window < min_train:
            raise ValueError("need refit_every >= 1 and train_window >= min_train")
        if not 0.5 <= tail_quantile < 1.0 or decades <= 0 or not 0.5 < quantile < 1.0:
            raise ValueError("need 0.5 <= tail_quantile < 1, decades > 0, 0.5 < quantile < 1")
        if rearm < 0 or not 0.0 <= max_excluded <= 1.0:
            raise ValueError("need rearm >= 0 and 0 <= max_excluded <= 1")
        self.window = window
        self.level_window = level_window
        self.regime_window = regime_window
        self.train_window = train_window
        self.refit_every = refit_every
        self.min_train = min_train
        self.season = season
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.tail_quantile = tail_quantile
        self.decades = decades
        self.flag_threshold = flag_threshold
        self.threshold = threshold
        self.max_excluded = max_excluded
        self.rearm = rearm
        self.margin = margin
        self.quantile = quantile
        self.random_state = random_state
        self.reset()

    # ---------------------------------------------------------------- public API

    def reset(self) -> None:
        """Forget every step seen (the hyper-parameters stay)."""
        self.offset_ = 0  # the step of the first buffered row
        self.n_ = 0  # steps seen
        self.values_ = np.zeros(0)  # gap-filled (a gap repeats the last value)
        self.missing_ = np.zeros(0, dtype=bool)
        self.stamps_ = np.zeros(0, dtype=np.int64)  # ns since the epoch, -1 when unknown
        self.expected_ = np.zeros(0)  # the caller's forecast, NaN where none
        self.upper_ = np.zeros(0)
        self.surprise_ = np.zeros(0)  # before alert suppression
        self.scores_ = np.zeros(0)
        self.fit_: _Fit | None = None
        self.excluded_ = np.zeros(0, dtype=np.int64)  # steps the last refit kept out
        self.last_value_ = math.nan

    def min_history(self) -> int:
        """Steps before the first non-zero score."""
        return self.min_train

    def score(
        self,
        value: float | None,
        timestamp: Any = None,
        expected: float | None = None,
        upper: float | None = None,
    ) -> float:
        """Score one new step: 0 for a gap (None or NaN) and before `min_train` steps.

        `expected` and `upper` are the caller's forecast for this step and its `quantile`;
        without them the detector's own expectation is used."""
        if value is None or not math.isfinite(float(value)):
            missing = True
            filled = self.last_value_ if math.isfinite(self.last_value_) else 0.0
        else:
            missing = False
            filled = float(value)
            if not math.isfinite(self.last_value_):  # a leading gap takes the first value
                self.values_[:] = filled
            self.last_value_ = filled
        stamp = -1 if timestamp is None else int(pd.Timestamp(timestamp).value)
        self._append(
            np.array([filled]),
            np.array([missing]),
            np.array([stamp], dtype=np.int64),
            np.array([math.nan if expected is None else float(expected)]),
            np.array([math.nan if upper is None else float(upper)]),
        )
        self._run(self.n_ - 1, self.n_)
        out = float(self.scores_[-1])
        self._trim()
        return out

    def score_series(
        self,
        series: pd.Series | FloatArray,
        expected: pd.Series | FloatArray | None = None,
        upper: pd.Series | FloatArray | None = None,
    ) -> FloatArray:
        """The score of every step of `series`, each from that step and the ones before it.

        Starts afresh: equal to `reset` then `score` on every step, computed a block at a time;
        `score` then goes on from the series' last step (warm up on history, then stream).
        """
        self.reset()
        raw = np.asarray(series, dtype=np.float64)
        n = len(raw)
        missing = ~np.isfinite(raw)
        filled = np.asarray(pd.Series(raw).ffill().to_numpy(), dtype=np.float64)
        if missing.all():
            filled[:] = 0.0
        elif missing[0]:  # a leading gap takes the first value (its steps score 0 anyway)
            first = int(np.argmax(~missing))
            filled[:first] = raw[first]
        stamps = np.full(n, -1, dtype=np.int64)
        if isinstance(series, pd.Series) and isinstance(series.index, pd.DatetimeIndex):
            stamps = series.index.as_unit("ns").asi8.astype(np.int64)
        exp = np.full(n, np.nan) if expected is None else np.asarray(expected, dtype=np.float64)
        up = np.full(n, np.nan) if upper is None else np.asarray(upper, dtype=np.float64)
        if len(exp) != n or len(up) != n:
            raise ValueError("expected and upper must be as long as the series")
        self._append(filled, missing, stamps, exp, up)
        if (~missing).any():
            self.last_value_ = float(filled[-1])
        start = 0
        for stop in [*self._refits_between(0, n), n]:
            if stop > start:
                self._run(start, stop)
            start = stop
        out = self.scores_.copy()
        self._trim()
        return out

    # ---------------------------------------------------------------- bookkeeping

    def _append(
        self,
        values: FloatArray,
        missing: BoolArray,
        stamps: npt.NDArray[np.int64],
        expected: FloatArray,
        upper: FloatArray,
    ) -> None:
        k = len(values)
        self.values_ = np.concatenate((self.values_, values))
        self.missing_ = np.concatenate((self.missing_, missing))
        self.stamps_ = np.concatenate((self.stamps_, stamps))
        self.expected_ = np.concatenate((self.expected_, expected))
        self.upper_ = np.concatenate((self.upper_, upper))
        self.surprise_ = np.concatenate((self.surprise_, np.zeros(k)))
        self.scores_ = np.concatenate((self.scores_, np.zeros(k)))
        self.n_ += k

    def _keep(self) -> int:
        """How far back any later computation looks: a refit's window, the features and
        residuals of its first row (level windows, short windows, up to SEASONS_BACK seasons
        of at most half the training window) and the alert suppression."""
        return (
            self.train_window
            + SEASONS_BACK * (self.train_window // 2)
            + 2 * (self.level_window + 1)
            + self.regime_window
            + self.window
            + self.rearm
            + 2
        )

    def _trim(self) -> None:
        keep = self._keep()
        excess = len(self.values_) - keep
        if excess > keep:  # amortised: drop in large chunks
            for name in _BUFFERS:
                setattr(self, name, getattr(self, name)[excess:])
            self.offset_ += excess

    def _refits_between(self, lo: int, hi: int) -> list[int]:
        """Steps in [lo, hi) before which the detector refits: `min_train`, then at doubling
        steps until the gap reaches `refit_every`, then every `refit_every`."""
        points: list[int] = []
        k = self.min_train
        while k < hi:
            if k >= lo:
                points.append(k)
            k += min(k, self.refit_every)
        return points

    def _at(self, name: str, lo: int, hi: int) -> Any:
        return getattr(self, name)[lo - self.offset_ : hi - self.offset_]

    # ---------------------------------------------------------------- scoring

    def _run(self, lo: int, hi: int) -> None:
        """Score steps [lo, hi), a block that never straddles a refit."""
        if self._refits_between(lo, lo + 1):
            self._refit(lo)
        fit = self.fit_
        if fit is None:
            return  # nothing learnt yet: the scores stay 0
        res = self._residual(lo, hi, fit)
        ps = [tail.p(res[:, c]) for c, tail in enumerate(fit.tail_res)]
        if fit.forest is not None:
            feats = self._features(lo, hi, fit)
            raw_if = -0.5 * (
                fit.forest[0].score_samples(feats) + fit.forest[1].score_samples(feats)
            )
            ps.append(fit.tail_if.p(raw_if))
        p = combine(ps)
        surprise = np.clip(np.log10(1.0 / np.maximum(p, TINY)) / self.decades, 0.0, 1.0)
        surprise[self._at("missing_", lo, hi)] = 0.0
        self._at("surprise_", lo, hi)[:] = surprise
        self._at("scores_", lo, hi)[:] = self._suppress(lo, hi, surprise)

    def _suppress(self, lo: int, hi: int, surprise: FloatArray) -> FloatArray:
        """The surprise where it beats the recent ones (weighted down linearly with age over
        `rearm` steps) by `margin`, else 0."""
        if self.rearm == 0:
            return surprise
        base = max(self.offset_, lo - self.rearm)
        before = self._at("surprise_", base, hi - 1)
        padded = np.concatenate((np.zeros(self.rearm - (lo - base)), before))
        weights = np.arange(1, self.rearm + 1, dtype=np.float64) / self.rearm  # oldest first
        recent = (sliding_window_view(padded, self.rearm) * weights).max(axis=1)
        return np.where(surprise > recent + self.margin, surprise, 0.0)

    # ---------------------------------------------------------------- learning

    def _refit(self, t: int) -> None:
        """Learn from steps [t - train_window, t): season, forest, tail models."""
        lo = max(self.offset_, t - self.train_window)
        first = max(lo, self.offset_ + self.level_window + 1)  # rows with a full level window
        present = ~self._at("missing_", first, t)
        surprise = self._at("surprise_", first, t)
        flagged = present & (surprise >= self.flag_threshold)
        cap = int(self.max_excluded * int(present.sum()))
        if int(flagged.sum()) > cap:  # only the most surprising `cap` stay out
            order = np.argsort(-np.where(flagged, surprise, -np.inf), kind="stable")
            flagged = np.zeros_like(flagged)
            flagged[order[:cap]] = True
        keep = present & ~flagged
        self.excluded_ = np.arange(first, t)[flagged]  # kept out of this refit's training
        x = self._at("values_", first, t)
        season = self._choose_season(lo, first, t, keep)
        kept = x[keep]
        if len(kept):
            center = float(np.median(kept))
            floor = RANGE_FLOOR * float(np.ptp(kept))
            spread = float(np.quantile(kept, 0.75) - np.quantile(kept, 0.25))
        else:
            center, floor, spread = 0.0, 0.0, 0.0
        spread = max(spread, floor, 1e-9)
        no_tail = tail_model(np.zeros(0), self.tail_quantile)
        fit = _Fit(t, season, None, no_tail, (), center, spread, floor)
        forest = None
        tail_if = no_tail
        rows = t - first
        block = max(1, min(self.regime_window, rows // 8))
        half = (np.arange(rows) // block) % 2 == 1
        if min(int((keep & half).sum()), int((keep & ~half).sum())) >= MIN_FIT_ROWS // 2:
            feats = self._features(first, t, fit)
            # Two forests, each on alternate blocks of the unflagged past: each row is then
            # calibrated by the forest that never saw it (a forest scores its own training
            # rows as more normal than new ones, which would make every new step look rare).
            forest = tuple(
                IsolationForest(
                    n_estimators=max(1, self.n_estimators // 2),
                    max_samples=min(self.max_samples, int((keep & side).sum())),
                    random_state=self.random_state + k,
                ).fit(feats[keep & side])
                for k, side in enumerate((~half, half))
            )
            own = [-f.score_samples(feats) for f in forest]
            raw = np.where(keep, np.where(half, own[0], own[1]), 0.5 * (own[0] + own[1]))
            # Calibrated on every present row, flagged too: how often such scores occur in this
            # series, anomalies included, is what a tail probability means.
            raw_if = raw[present]
            tail_if = tail_model(raw_if, self.tail_quantile)
        res = self._residual(first, t, fit)[present]
        tails = tuple(tail_model(res[:, c], self.tail_quantile) for c in range(res.shape[1]))
        self.fit_ = _Fit(t, season, forest, tail_if, tails, center, spread, floor)

    def _choose_season(self, lo: int, first: int, t: int, keep: BoolArray) -> int | None:
        """The candidate season whose expectation beats the rolling level the most on the
        unflagged past (by SEASON_GAIN at least), or None."""
        if self.season is not None and self.season <= 0:
            return None
        candidates = [self.season] if self.season is not None else self._candidates(lo, t)
        x = self._at("values_", first, t)
        level = np.abs(x - self._expected(first, t, None))
        best, chosen = SEASON_GAIN, None
        steps = np.arange(first, t)
        for season in candidates:
            sel = keep & (steps >= lo + season)  # a season back exists
            if int(sel.sum()) < MIN_FIT_ROWS:
                continue
            seasonal = np.abs(x - self._expected(first, t, season))[sel]
            ratio = float(np.median(seasonal)) / max(float(np.median(level[sel])), 1e-12)
            if ratio < best:
                best, chosen = ratio, season
        return chosen

    def _candidates(self, lo: int, t: int) -> list[int]:
        """The autocorrelation's season and the calendar's day and week (in steps, from the
        timestamps' median step), those with two seasons and a level window in [lo, t)."""
        values = self._at("values_", lo, t)
        stamps = self._at("stamps_", lo, t)
        if len(values) < 16 or float(np.ptp(values)) == 0.0:
            return []
        calendar: tuple[int, ...] = ()
        if len(stamps) > 1 and bool((stamps >= 0).all()):
            step = int(np.median(np.diff(stamps)))
            if step > 0:
                calendar = calendar_periods(pd.Timedelta(step, unit="ns"))
        found = find_season(values, calendar=calendar)
        candidates = {*([found] if found else []), *calendar}
        return sorted(c for c in candidates if 2 * c + self.level_window <= t - lo)

    # ---------------------------------------------------------------- features

    def _rolling(
        self, lo: int, hi: int, width: int, how: str, *, include: bool = False
    ) -> FloatArray:
        """For each step t in [lo, hi): `how` over the `width` values before t (ending at t
        when `include`)."""
        base = max(self.offset_, lo - width - 1)
        return window_stat(self._at("values_", base, hi), lo - base, width, how, include=include)

    def _seasonal_expected(self, lo: int, hi: int, season: int) -> FloatArray:
        """Median of the same time in the last (up to SEASONS_BACK) seasons; NaN without any."""
        t = np.arange(lo, hi)
        past = np.full((hi - lo, SEASONS_BACK), np.inf)
        for k in range(1, SEASONS_BACK + 1):
            idx = t - k * season
            ok = idx >= self.offset_
            past[ok, k - 1] = self.values_[idx[ok] - self.offset_]
        counts = np.isfinite(past).sum(axis=1)
        srt = np.sort(past, axis=1)  # the missing (inf) ones sort last
        out = np.full(hi - lo, np.nan)
        for c in range(1, SEASONS_BACK + 1):
            sel = counts == c
            if c % 2:
                out[sel] = srt[sel, c // 2]
            else:
                out[sel] = 0.5 * (srt[sel, c // 2 - 1] + srt[sel, c // 2])
        return out

    def _expected(self, lo: int, hi: int, season: int | None) -> FloatArray:
        """The simple forecaster's expectation for steps [lo, hi), from the past alone."""
        level = self._rolling(lo, hi, self.level_window, "median")
        if season is None:
            return level
        seasonal = self._seasonal_expected(lo, hi, season)
        return np.where(np.isfinite(seasonal), seasonal, level)

    def _features(self, lo: int, hi: int, fit: _Fit) -> FloatArray:
        """The forest's feature rows for steps [lo, hi)."""
        m = self.regime_window
        base = max(self.offset_, lo - m)
        x = self._at("values_", base, hi)
        level = self._rolling(base, hi, self.level_window, "median")
        floor = np.maximum(1e-9 * np.maximum(1.0, np.abs(level)), fit.floor)
        scale = np.maximum(self._rolling(base, hi, self.level_window, "scale"), floor)
        z = (x - level) / scale
        k = lo - base
        xk = x[k:]
        prev = self._rolling(lo, hi, 1, "median")
        dscale = np.maximum(self._rolling(lo, hi, self.level_window, "absdiff"), floor[k:])
        local = self._rolling(lo, hi, self.window, "absdiff", include=True)
        short = window_stat(x, k, self.window, "median", include=True)
        cols = [
            z[k:],
            window_stat(z, k, self.window, "median", include=True),
            (xk - prev) / dscale,
            np.log((local + floor[k:]) / dscale),
            window_stat(np.abs(z), k, m, "q80", include=True),
            window_stat(z, k, m, "median", include=True),
            (xk - fit.center) / fit.spread,
            (short - fit.center) / fit.spread,
        ]
        if fit.season is not None:
            cols.append((xk - self._expected(lo, hi, fit.season)) / scale[k:])
        return np.column_stack(cols)

    def _residual(self, lo: int, hi: int, fit: _Fit) -> FloatArray:
        """Two columns for steps [lo, hi): |z| of the step and |median z| of the last `window`
        steps, z = (value - expected) over the typical absolute residual of the `level_window`
        before (over the caller's interval scale where the caller gave expected and upper)."""
        zlo = max(self.offset_, lo - self.window)
        base = max(self.offset_, zlo - self.level_window)
        x = self._at("values_", base, hi)
        signed = x - self._expected(base, hi, fit.season)
        scale = window_stat(np.abs(signed), zlo - base, self.level_window, "rscale", include=False)
        xz = x[zlo - base :]
        scale = np.maximum(scale, np.maximum(1e-9 * np.maximum(1.0, np.abs(xz)), fit.floor))
        z = signed[zlo - base :] / scale
        given = self._at("expected_", zlo, hi)
        given_upper = self._at("upper_", zlo, hi)
        has = np.isfinite(given) & np.isfinite(given_upper)
        if has.any():
            z_q = NormalDist().inv_cdf(self.quantile)
            width = np.maximum((given_upper - given) / z_q, 1e-9 * np.maximum(1.0, np.abs(given)))
            z = np.where(has, (xz - given) / width, z)
        k = lo - zlo
        sustained = np.abs(window_stat(z, k, self.window, "median", include=True))
        return np.column_stack((np.abs(z[k:]), sustained))


__all__ = ["DEFAULT_THRESHOLD", "StreamingDetector"]
