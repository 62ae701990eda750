"""Prophet's trend and daily/weekly seasonality, re-anchored to the current level.

Prophet fits a smooth function of time (a piecewise-linear trend plus Fourier seasonalities) and
knows nothing about the last few minutes, so a few steps ahead it alone is worse than carrying
the last value forward. The forecast is therefore Prophet's curve plus a level correction: a
smoothed recent residual (observed minus curve) that decays over the horizon, its smoothing and
decay chosen by backtest.

Because the curve depends on time only, it is evaluated once at fit, over the history and a
stretch of future, on a coarse grid; `update` and `predict` interpolate it and never call
Prophet. Prophet is fitted on a downsampled history (bucket means) so a week of one-minute data
fits in a fraction of a second, and only on what lies before the first calibration origin, so
the conformal intervals come from out-of-sample errors.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from forecastscaler.models.base import Capabilities, FloatArray, NotFitted
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.calibration import IntArray, actuals, mae_at, origins
from forecastscaler.models.history import prepare, regularize

# Candidates for the level correction, chosen by backtest: how fast the residual is smoothed
# (1 = the last residual alone) and how much of it is left after each step ahead (0 = Prophet's
# curve alone, 1 = the curve shifted to the current level).
ALPHAS = (0.2, 0.5, 1.0)
DECAYS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 1.0)
DEFAULT_ALPHA, DEFAULT_DECAY = 0.5, 0.9  # when there are too few origins to tune on

MIN_TRAIN = 180  # steps Prophet needs before the first calibration origin
MIN_BUCKETS = 20  # non-empty downsampled points below which the curve is flat
MAX_BUCKET_SECONDS = 1800.0  # coarser buckets would blur a daily cycle
MAX_EVAL_POINTS = 4000  # Prophet.predict cost at fit; the curve in between is interpolated
DAY, WEEK = 86400.0, 604800.0
DAILY_ORDER, WEEKLY_ORDER = 4, 3  # Fourier orders (Prophet's defaults)
MIN_CYCLES = 2.0  # a seasonality only when the training stretch covers this many cycles

# Prophet's own use of pandas APIs deprecated in newer pandas: not ours to fix. Set once for
# the process (warnings.catch_warnings around each fit is not thread-safe, and fits run in a
# pool).
warnings.filterwarnings("ignore", module=r"prophet(\.|$)")


@contextmanager
def _quiet(levels: dict[str, int]) -> Iterator[None]:
    """Raise the given loggers' levels for the duration (Prophet and cmdstanpy log every fit at
    INFO, and Prophet's import complains at ERROR that plotly, which we never use, is absent)."""
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


def _prophet_class() -> Any:
    """Prophet, imported on first use: the import takes seconds and most processes never fit it."""
    with _quiet({"prophet.plot": logging.CRITICAL}):
        from prophet import Prophet
    from cmdstanpy.utils import get_logger

    # cmdstanpy sets its logger up (handler, level DEBUG) the first time it logs, which inside
    # `_quiet` would undo the quieting: set it up before.
    get_logger()
    return Prophet


def bucket_means(values: FloatArray, size: int) -> tuple[FloatArray, FloatArray]:
    """(mean, count of valid values) of consecutive buckets of `size` values, NaN-aware."""
    blocks = values.reshape(-1, size)
    ok = np.isfinite(blocks)
    counts = ok.sum(axis=1).astype(np.float64)
    sums = np.where(ok, blocks, 0.0).sum(axis=1)
    means = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
    return np.asarray(means, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def residual_states(residuals: FloatArray, alpha: float) -> tuple[FloatArray, IntArray]:
    """After each step: the exponentially smoothed residual (missing values skipped, 0 before
    the first observation) and how many steps ago the last observation was."""
    smoothed = pd.Series(residuals).ewm(alpha=alpha, adjust=False, ignore_na=True).mean()
    states = np.nan_to_num(smoothed.to_numpy(dtype=np.float64), nan=0.0)
    idx = np.arange(len(residuals), dtype=np.int64)
    last = np.maximum.accumulate(np.where(np.isfinite(residuals), idx, -1))
    since = np.where(last >= 0, idx - last, 0).astype(np.int64)
    return states, since


class ProphetForecaster(CalibratedForecaster):
    """Prophet's curve of time plus a decaying correction to the current level."""

    name: ClassVar[str] = "prophet"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(
        self,
        horizon: int = 5,
        max_points: int = 2000,
        changepoint_prior_scale: float = 0.05,
        future_days: float = 2.0,
        max_origins: int = 1500,
    ) -> None:
        super().__init__(horizon=horizon, max_origins=max_origins)
        if max_points < MIN_BUCKETS:
            raise ValueError(f"max_points must be at least {MIN_BUCKETS}")
        self.max_points = max_points
        self.changepoint_prior_scale = changepoint_prior_scale
        self.future_days = future_days

    def min_history(self) -> int:
        # Prophet's training stretch plus a quarter held out for calibration (and at least
        # enough origins there for the horizon).
        return MIN_TRAIN + max(60, 4 * self.horizon)

    def _warm(self) -> int:
        return MIN_TRAIN

    def _origin_budget(self, n: int) -> int:
        # Prophet learns from what lies before the first origin: keep three quarters for it.
        return min(self.max_origins, n // 4)

    def fit(self, y: pd.Series) -> Self:
        series, raw, values = prepare(y, self.name, self.min_history())
        self._remember_series(series)
        n = len(values)
        step = self.step_.total_seconds()
        start = self.calibration_start(n)
        self._fit_curve(raw[:start], step, n)
        times = np.arange(n, dtype=np.float64) * step
        curve = self._curve(times)
        residuals = raw - curve
        self._tune(raw, curve, residuals)
        states, since = residual_states(residuals, self.alpha_)
        self.history_curve_: FloatArray = curve
        self.history_level_: FloatArray = states
        self.history_since_: IntArray = since
        self.level_ = float(states[-1])
        self.since_ = int(since[-1])
        self.last_t_ = float(times[-1])
        self._calibrate(raw, values)
        return self

    # --- the curve ---------------------------------------------------------------------------

    def _fit_curve(self, train: FloatArray, step: float, n: int) -> None:
        """Fit Prophet on bucket means of the training stretch and cache its curve (in seconds
        since the first timestamp) over the history and `future_days` ahead."""
        m = len(train)
        size = max(1, min(math.ceil(m / self.max_points), int(MAX_BUCKET_SECONDS // step)))
        buckets = min(m // size, self.max_points)
        first = m - buckets * size  # older history beyond max_points buckets is not used
        means, counts = bucket_means(train[first:], size)
        centers = np.asarray(
            (first + np.arange(buckets) * size + (size - 1) / 2) * step, dtype=np.float64
        )
        ok = counts > 0
        covered = buckets * size * step
        # ... and when a cycle has more steps than its Fourier terms (else they are aliased).
        self.daily_ = covered >= MIN_CYCLES * DAY and DAY / step > 2 * DAILY_ORDER
        self.weekly_ = covered >= MIN_CYCLES * WEEK and WEEK / step > 2 * WEEKLY_ORDER
        period = WEEK if self.weekly_ else DAY if self.daily_ else 0.0
        self.period_ = period

        # Evaluation grid on the data's grid, from the training window to well past the end.
        future = max(self.future_days * DAY, period) + self.horizon * step
        last = (n - 1) + math.ceil(future / step)
        stride = max(size, math.ceil((last - first) / MAX_EVAL_POINTS))
        positions = np.arange(first, last + stride, stride, dtype=np.float64)
        self.curve_t_: FloatArray = positions * step

        observed = means[ok]
        spread = float(np.ptp(observed)) if len(observed) else 0.0
        level = float(np.mean(observed)) if len(observed) else 0.0
        reason = ""
        if np.count_nonzero(ok) < MIN_BUCKETS:
            reason = f"{np.count_nonzero(ok)} usable points"
        elif spread <= 1e-9 * max(1.0, abs(level)):
            reason = "constant"  # Prophet's optimizer can fail on a flat series
        else:
            try:
                curve, slope = self._prophet_curve(centers[ok], observed, self.curve_t_)
            except (RuntimeError, ValueError) as exc:  # cmdstan failed to optimize
                reason = f"prophet failed: {exc}"
            else:
                if np.isfinite(curve).all() and math.isfinite(slope):
                    self.curve_y_: FloatArray = curve
                    self.slope_ = slope
                    self.curve_source_ = "prophet"
                    return
                reason = "prophet returned non-finite values"
        self.curve_y_ = np.full(len(self.curve_t_), level)
        self.slope_ = 0.0
        self.period_ = 0.0
        self.daily_ = self.weekly_ = False
        self.curve_source_ = f"flat ({reason})"

    def _prophet_curve(
        self, at: FloatArray, observed: FloatArray, grid: FloatArray
    ) -> tuple[FloatArray, float]:
        """Prophet fitted on (seconds, value) pairs and evaluated on `grid`; with its trend's
        slope at the end (per second), which with the period extends the curve exactly."""
        prophet_class = _prophet_class()
        origin = self.index_[0]
        # Prophet wants naive timestamps; UTC is as good as local time, the Fourier terms fit
        # any phase.
        if origin.tz is not None:
            origin = origin.tz_convert("UTC").tz_localize(None)
        origin = pd.Timestamp(origin).as_unit("ns")
        frame = pd.DataFrame({"ds": origin + pd.to_timedelta(at, unit="s"), "y": observed})
        model = prophet_class(
            growth="linear",
            changepoint_prior_scale=self.changepoint_prior_scale,
            yearly_seasonality=False,
            weekly_seasonality=WEEKLY_ORDER if self.weekly_ else False,
            daily_seasonality=DAILY_ORDER if self.daily_ else False,
            uncertainty_samples=0,
        )
        with _quiet({"prophet": logging.WARNING, "cmdstanpy": logging.WARNING}):
            # cmdstan writes its results to files; in a directory of our own they go with it
            # (cmdstanpy's default leaves a directory per fit until the process exits).
            with tempfile.TemporaryDirectory(prefix="forecastscaler-prophet-") as scratch:
                model.fit(frame, output_dir=scratch)
            future = pd.DataFrame({"ds": origin + pd.to_timedelta(grid, unit="s")})
            predicted = model.predict(future)
        curve = predicted["yhat"].to_numpy(dtype=np.float64)
        trend = predicted["trend"].to_numpy(dtype=np.float64)
        slope = float((trend[-1] - trend[-2]) / (grid[-1] - grid[-2])) if len(grid) > 1 else 0.0
        return curve, slope

    def _curve(self, t: FloatArray) -> FloatArray:
        """The cached curve at times t (seconds since the first timestamp). Past the cache it
        repeats the last season moved along the trend, which is what Prophet would predict
        there (linear trend plus periodic terms), or follows the trend without a season."""
        t = np.asarray(t, dtype=np.float64)
        end = float(self.curve_t_[-1])
        if not len(t) or float(t.max()) <= end:
            return np.asarray(np.interp(t, self.curve_t_, self.curve_y_), dtype=np.float64)
        beyond = np.maximum(t - end, 0.0)
        shift = np.ceil(beyond / self.period_) * self.period_ if self.period_ else beyond
        base = np.interp(t - shift, self.curve_t_, self.curve_y_)
        return np.asarray(base + self.slope_ * shift, dtype=np.float64)

    # --- the level correction ---------------------------------------------------------------

    def _tune(self, raw: FloatArray, curve: FloatArray, residuals: FloatArray) -> None:
        """Choose the smoothing and decay by the error at the horizon over the calibration
        origins, where the curve is out of sample as it will be in use (tuned in-sample, on the
        training stretch, the curve looks better than it is and too little decay is chosen).
        Two constants out of a few candidates hardly bias the intervals calibrated there."""
        at = origins(len(raw), self.horizon, self._warm(), self._origin_budget(len(raw)))
        self.alpha_, self.decay_ = DEFAULT_ALPHA, DEFAULT_DECAY
        if len(at) < 20:
            return
        h = self.horizon
        truth = actuals(raw, at, h)[:, -1]
        ok = np.isfinite(truth)
        if not ok.any():
            return
        target = truth[ok] - curve[at[ok] + h]
        best = math.inf
        for alpha in ALPHAS:
            states, since = residual_states(residuals, alpha)
            level, ago = states[at[ok]], since[at[ok]] + h
            for decay in DECAYS:
                err = float(np.mean(np.abs(target - level * decay**ago)))
                if err < best - 1e-12:
                    best, self.alpha_, self.decay_ = err, alpha, decay

    def _backtest(self, values: FloatArray, at: IntArray) -> FloatArray:
        steps = np.arange(1, self.horizon + 1)
        ahead = at[:, None] + steps[None, :]
        ago = self.history_since_[at][:, None] + steps[None, :]
        level = self.history_level_[at][:, None] * self.decay_**ago
        return np.asarray(self.history_curve_[ahead] + level, dtype=np.float64)

    def _point(self, horizon: int) -> FloatArray:
        steps = np.arange(1, horizon + 1)
        times = self.last_t_ + self.step_.total_seconds() * steps.astype(np.float64)
        curve = self._curve(times)
        return np.asarray(curve + self.level_ * self.decay_ ** (self.since_ + steps))

    def update(self, y: pd.Series) -> Self:
        """Move the level correction over observations newer than the fit, keeping the curve,
        the tuned constants and the calibration (no Prophet call)."""
        if not hasattr(self, "index_"):
            raise NotFitted(f"{self.name} must be fitted before update")
        end = self.index_[-1]
        newer = y[y.index > end]
        if newer.empty:
            return self
        newer = regularize(newer, self.step_)
        step = self.step_
        count = round((newer.index[-1] - end) / step)
        if count < 1:
            return self
        grid = pd.date_range(end + step, periods=count, freq=step)
        fresh = newer.reindex(grid, method="nearest", tolerance=step / 2).to_numpy(np.float64)
        times = self.last_t_ + step.total_seconds() * np.arange(1, count + 1)
        residuals = fresh - self._curve(times)
        level, since, alpha = self.level_, self.since_, self.alpha_
        for r in residuals.tolist():
            if math.isfinite(r):
                level, since = alpha * r + (1 - alpha) * level, 0
            else:
                since += 1
        self.level_, self.since_, self.last_t_ = level, since, float(times[-1])
        self.index_ = pd.DatetimeIndex(self.index_[-15:].append(grid)[-16:])
        self.n_obs_ += int(np.count_nonzero(np.isfinite(fresh)))
        return self

    @property
    def summary(self) -> str:
        seasons = [s for s, on in (("daily", self.daily_), ("weekly", self.weekly_)) if on]
        return (
            f"curve {self.curve_source_}, seasons {'+'.join(seasons) or 'none'}, "
            f"alpha {self.alpha_:g}, decay {self.decay_:g}, "
            f"backtest MAE {mae_at(self.residuals_, self.horizon) or float('nan'):.4g}"
        )
