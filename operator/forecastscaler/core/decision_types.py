"""The values a replica decision reads and returns, apart from the spec.

`Observation` (with the `ForecastPath` and the autoscaler's `Memory`) is what `decide` looks at;
`Decision`, with its `Reason`, is what it answers. Plain frozen dataclasses, shared by the
operator and the simulator; `forecastscaler.core.decision` re-exports them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from enum import StrEnum

from forecastscaler.core.behavior import (
    LimitReason,
    Recommendation,
    ScaleEvent,
    replicas_to_cover,
)


class Reason(StrEnum):
    """Which signal decided the replica count."""

    FORECAST = "Forecast"
    REACTIVE = "Reactive"
    TOLERANCE = "Tolerance"
    MIN_REPLICAS = "MinReplicas"
    MAX_REPLICAS = "MaxReplicas"
    STABILIZED = "Stabilized"
    RATE_LIMITED = "RateLimited"
    FALLBACK = "Fallback"
    ANOMALY = "Anomaly"
    NO_DATA = "NoData"
    SCALING_DISABLED = "ScalingDisabled"


@dataclass(frozen=True)
class ForecastPath:
    """A forecast as the decision needs it: absolute times and the quantile paths."""

    times: tuple[float, ...]
    """Epoch seconds of each forecast step, increasing."""
    value: tuple[float, ...]
    """The provisioned quantile at each time."""
    point: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    quantile: float
    model: str

    def at(self, t: float) -> tuple[float, float, float, float] | None:
        """(value, point, lower, upper) at time t, linearly interpolated; None when t is
        outside the path (a forecast that does not reach t says nothing about it)."""
        times = self.times
        if not times or t < times[0] - 1e-9 or t > times[-1] + 1e-9:
            return None
        i = bisect.bisect_left(times, t)
        if i == len(times) or abs(times[i] - t) < 1e-9 or i == 0:
            # On a step, before the first by at most 1e-9, or after the last by at most 1e-9.
            j = min(i, len(times) - 1)
            return self.value[j], self.point[j], self.lower[j], self.upper[j]
        t0, t1 = times[i - 1], times[i]
        w = (t - t0) / (t1 - t0)

        def lerp(seq: tuple[float, ...]) -> float:
            return seq[i - 1] + w * (seq[i] - seq[i - 1])

        return lerp(self.value), lerp(self.point), lerp(self.lower), lerp(self.upper)

    def peak(self, start: float, end: float, step: float) -> float | None:
        """The highest provisioned value for the load of [start, end]: a value describes the
        time since the one before it, so the window is described by the first value after
        `start` and every later one before `end + step` (the steps overlapping the window, on
        the forecast's step). None when no finite value lies there (the path does not reach)."""
        best: float | None = None
        first = True
        for t, value in zip(self.times, self.value, strict=True):
            if t <= start + 1e-9:
                continue
            if t >= end + step - 1e-9 and not first:
                break
            first = False
            if math.isfinite(value) and value >= 0:
                best = value if best is None else max(best, value)
        return best

    def most_needed(self, now: float, horizon: float, per: float, cur: int, tol: float) -> int:
        """The most replicas the provisioned quantile needs over (now, now + horizon] (0 when
        no point of the path lies there; points that are not a number are skipped)."""
        most = 0
        for t, value in zip(self.times, self.value, strict=True):
            if t <= now:
                continue
            if t > now + horizon:
                break
            if math.isfinite(value) and value >= 0:
                most = max(most, replicas_to_cover(value, per, cur, tol))
        return most

    def look_ahead(
        self, now: float, window: int, per: float, cur: int, tol: float
    ) -> tuple[tuple[Recommendation, ...], float]:
        """The recommendations over the next scale-down window, and how far they reach (0 when
        the window is empty, the path ends before now or has a value that is not a number:
        then the HPA's backward window applies)."""
        ahead: list[Recommendation] = []
        for t, value in zip(self.times, self.value, strict=True):
            if t <= now:
                continue
            if t > now + window:
                break
            if not math.isfinite(value) or value < 0:
                return (), 0.0
            ahead.append(Recommendation(t, replicas_to_cover(value, per, cur, tol)))
        if not ahead or window <= 0:
            return (), 0.0
        return tuple(ahead), min(float(window), ahead[-1].time - now)


@dataclass(frozen=True)
class Memory:
    """What the autoscaler remembers between decisions (the HPA keeps the same in memory)."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()


@dataclass(frozen=True)
class Observation:
    """Everything a decision looks at, besides the spec."""

    now: float
    current_replicas: int
    load: float | None
    """Current load; None when missing, stale or not a number."""
    forecast: ForecastPath | None = None
    forecast_trusted: bool = True
    anomaly_score: float | None = None
    consecutive_failures: int = 0
    """Syncs in a row in which the metric could not be read."""
    memory: Memory = field(default_factory=Memory)


@dataclass(frozen=True)
class Decision:
    """The desired replica count and its provenance."""

    desired_replicas: int
    reason: Reason
    message: str
    current_replicas: int
    recommendation: int | None = None
    """Unstabilized recommendation to remember; None when the sync had no usable data."""
    forecast_replicas: int | None = None
    reactive_replicas: int | None = None
    forecast_value: float | None = None
    """The peak of the provisioned quantile over the window the decision serves
    ([now + startup, now + startup + interval])."""
    forecast_at_horizon: tuple[float, float, float, float] | None = None
    """(value, point, lower, upper) at now + horizon."""
    load: float | None = None
    limit_reason: LimitReason = "DesiredWithinRange"
    stabilized: bool = False
    looked_ahead: bool = False
    """The scale-down window looked ahead on the forecast (forecast.lookAheadScaleDown)."""
    held: bool = False
    """A scale-down was held for what the trusted forecast needs within the horizon."""
    fallback: bool = False
    anomalous: bool = False

    @property
    def scaling_limited(self) -> bool:
        return self.limit_reason != "DesiredWithinRange"

    @property
    def changes_scale(self) -> bool:
        return self.desired_replicas != self.current_replicas
