"""Accuracy-gated trust: the autoscaler scores its own past forecasts against what happened.

Every sync that has a forecast at the horizon leaves a pending prediction for now + horizon,
together with the last-value forecast for the same time (the load now). When that time comes,
the observed load settles both. Over a rolling window, the mean absolute error of the forecast
is compared with the last-value forecast's: while the forecast does worse than "nothing will
change", it is not trusted and the decision follows the current load only; it is trusted again
once it does clearly better (hysteresis, so trust does not flap on a tie).

No I/O and no clock: the caller passes `now`, so the operator and the simulator share it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import Decision

# Trust is withdrawn above this ratio of forecast to last-value error, and given back below
# the second one.
DISTRUST_ABOVE = 1.0
TRUST_BELOW = 0.95


@dataclass(frozen=True)
class Pending:
    """A forecast waiting for its time to come."""

    target: float
    value: float
    """The provisioned quantile."""
    point: float
    lower: float
    upper: float
    naive: float
    """The last-value forecast: the load when the forecast was made."""


@dataclass(frozen=True)
class Settled:
    time: float
    error: float
    naive_error: float
    below_value: bool
    inside_interval: bool


@dataclass(frozen=True)
class Accuracy:
    """The rolling scores at the horizon."""

    samples: int
    forecast_mae: float | None
    naive_mae: float | None
    coverage: float | None
    """Fraction of loads at or below the provisioned quantile (target: the quantile)."""
    interval_coverage: float | None
    """Fraction of loads inside the 80% interval (target 0.8)."""

    @property
    def relative_error(self) -> float | None:
        """Forecast MAE over last-value MAE: below 1 the forecast beats doing nothing."""
        if self.forecast_mae is None or self.naive_mae is None:
            return None
        if self.naive_mae <= 0.0:
            return 1.0 if self.forecast_mae <= 0.0 else math.inf
        return self.forecast_mae / self.naive_mae


class AccuracyTracker:
    """Pending forecasts and the settled ones inside the window, for one ForecastScaler."""

    def __init__(self, window_seconds: float, min_samples: int, tolerance_seconds: float) -> None:
        self.window_seconds = window_seconds
        self.min_samples = min_samples
        self.tolerance_seconds = tolerance_seconds
        """A pending forecast is settled by a load seen within this much of its time."""
        self.pending: deque[Pending] = deque()
        self.settled: deque[Settled] = deque()
        self.trusted = True

    def configure(self, window_seconds: float, min_samples: int, tolerance_seconds: float) -> None:
        """Follow a changed spec without forgetting what was measured."""
        self.window_seconds = window_seconds
        self.min_samples = min_samples
        self.tolerance_seconds = tolerance_seconds

    def reset(self) -> None:
        """Forget everything (a new model or a new query: old scores say nothing about it)."""
        self.pending.clear()
        self.settled.clear()
        self.trusted = True

    def record(
        self, target: float, at_target: tuple[float, float, float, float], load_now: float
    ) -> None:
        """Remember the forecast (value, point, lower, upper) made for `target`."""
        if not all(math.isfinite(x) for x in (*at_target, load_now, target)):
            return
        value, point, lower, upper = at_target
        self.pending.append(Pending(target, value, point, lower, upper, load_now))

    def observe(self, now: float, load: float | None) -> None:
        """Settle the forecasts whose time has come with the load seen now; forecasts whose
        time passed without a load (an outage) are dropped, never scored as zero."""
        while self.pending and self.pending[0].target <= now + self.tolerance_seconds:
            p = self.pending.popleft()
            if load is None or not math.isfinite(load) or now - p.target > self.tolerance_seconds:
                continue
            self.settled.append(
                Settled(
                    time=now,
                    error=abs(p.point - load),
                    naive_error=abs(p.naive - load),
                    below_value=load <= p.value,
                    inside_interval=p.lower <= load <= p.upper,
                )
            )
        while self.settled and self.settled[0].time < now - self.window_seconds:
            self.settled.popleft()
        self._update_trust()

    def accuracy(self) -> Accuracy:
        n = len(self.settled)
        if n == 0:
            return Accuracy(0, None, None, None, None)
        return Accuracy(
            samples=n,
            forecast_mae=sum(s.error for s in self.settled) / n,
            naive_mae=sum(s.naive_error for s in self.settled) / n,
            coverage=sum(s.below_value for s in self.settled) / n,
            interval_coverage=sum(s.inside_interval for s in self.settled) / n,
        )

    @property
    def scored(self) -> bool:
        """Whether enough forecasts have settled to judge them."""
        return len(self.settled) >= self.min_samples

    def _update_trust(self) -> None:
        if not self.scored:
            return  # too few to judge: keep the current verdict (trusted from the start)
        ratio = self.accuracy().relative_error
        if ratio is None:
            return
        if self.trusted and ratio > DISTRUST_ABOVE:
            self.trusted = False
        elif not self.trusted and ratio < TRUST_BELOW:
            self.trusted = True


def new_tracker(spec: ForecastScalerSpec) -> AccuracyTracker:
    tracker = AccuracyTracker(0.0, 1, 0.0)
    _configure(tracker, spec)
    return tracker


def _configure(tracker: AccuracyTracker, spec: ForecastScalerSpec) -> None:
    trust = spec.forecast.trust
    # The window spans at least minSamples steps of the metric: on coarse metrics (hourly,
    # say) two hours hold two observations, too few to judge a forecast by.
    step = max(spec.forecast.step_seconds, spec.interval_seconds)
    window = max(trust.window_seconds, trust.min_samples * step)
    # Syncs come every interval: a forecast is settled by the sync nearest its time.
    tracker.configure(window, trust.min_samples, spec.interval_seconds / 2)


def judge(
    tracker: AccuracyTracker, spec: ForecastScalerSpec, now: float, load: float | None
) -> bool:
    """Settle what the load seen now settles, and say whether the decision may act on the
    forecast (always, when the gate is off)."""
    _configure(tracker, spec)
    tracker.observe(now, load)
    return tracker.trusted or not spec.forecast.trust.enabled


def remember_forecast(
    tracker: AccuracyTracker, spec: ForecastScalerSpec, now: float, decision: Decision
) -> None:
    """Keep the decision's forecast at the horizon (trusted or not: an untrusted forecast must
    be able to earn trust back) with the load now, the last-value forecast it is measured
    against."""
    if decision.forecast_at_horizon is None or decision.load is None:
        return
    target = now + spec.forecast.horizon_seconds
    tracker.record(target, decision.forecast_at_horizon, decision.load)
