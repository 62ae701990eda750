"""The replica decision: one pure function shared by the operator and the simulator.

`decide` takes the spec, what was observed, the forecast and the autoscaler's memory, and returns
the replicas to ask for with the signal that won and the numbers behind it. No I/O, no clock
reads, no globals: the caller passes `now`, so the simulator can replay it in virtual time and
the operator gets exactly the same answer the simulator promised.

Order of work, mirroring the HPA controller: target at zero → scaling disabled; outside
[min, max] → clamp; no data → hold or fall back; otherwise the forecast and reactive proposals
(each with the HPA tolerance), the anomaly action, the stabilization windows, the forecast's
hold on scale-down, the rate policies and [min, max].
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from forecastscaler.core.api import ForecastScalerSpec, format_duration, parse_duration
from forecastscaler.core.behavior import (
    LimitReason,
    Recommendation,
    ScaleEvent,
    limit_rate,
    longest_window,
    replicas_for_average_value,
    resolve_behavior,
    stabilize,
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
    """The provisioned quantile of the load at the horizon."""
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


def initial_memory(now: float, current_replicas: int) -> Memory:
    """Memory for an object seen for the first time. Like the HPA, it is seeded with the current
    count, so a restarted operator waits a full scale-down window before removing replicas."""
    return Memory(recommendations=(Recommendation(now, current_replicas),))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def decide(spec: ForecastScalerSpec, obs: Observation) -> Decision:
    """The replicas to ask for now, and why."""
    cur = obs.current_replicas
    lo, hi = spec.min_replicas, spec.max_replicas
    base = Decision(desired_replicas=cur, reason=Reason.NO_DATA, message="", current_replicas=cur)

    if cur == 0:
        return replace(
            base,
            reason=Reason.SCALING_DISABLED,
            message="the target has 0 replicas: scaling is disabled until it is scaled up by hand",
        )
    if cur > hi:
        return replace(
            base,
            desired_replicas=hi,
            reason=Reason.MAX_REPLICAS,
            message=f"current replicas {cur} are above maxReplicas {hi}",
            limit_reason="TooManyReplicas",
        )
    if cur < lo:
        return replace(
            base,
            desired_replicas=lo,
            reason=Reason.MIN_REPLICAS,
            message=f"current replicas {cur} are below minReplicas {lo}",
            limit_reason="TooFewReplicas",
        )

    load = obs.load if obs.load is not None and math.isfinite(obs.load) else None
    if load is not None and load < 0:
        load = None
    if load is None:
        threshold = spec.fallback.failure_threshold
        if obs.consecutive_failures >= threshold:
            floor = spec.fallback.replicas if spec.fallback.replicas is not None else cur
            desired = min(max(cur, floor, lo), hi)
            return replace(
                base,
                desired_replicas=desired,
                recommendation=desired,
                reason=Reason.FALLBACK,
                fallback=True,
                message=(
                    f"metric unavailable for {obs.consecutive_failures} syncs "
                    f"(failureThreshold {threshold}): holding {desired} replicas, "
                    "never scaling down without data"
                ),
            )
        # A hold is remembered like a recommendation: after an outage longer than the
        # scale-down window, the first sample must not be free to remove replicas at once.
        return replace(
            base,
            recommendation=cur,
            message="no current load (missing, stale or not a number): holding replicas",
        )

    per = spec.metric.target_per_replica
    tol = spec.behavior.tolerance
    horizon = parse_duration(spec.forecast.horizon)
    q_pct = round(spec.forecast.quantile * 100)

    anomalous = (
        spec.anomaly.enabled
        and obs.anomaly_score is not None
        and obs.anomaly_score >= spec.anomaly.threshold
    )
    use_forecast = obs.forecast is not None and obs.forecast_trusted
    if anomalous and spec.anomaly.action == "ReactiveOnly":
        use_forecast = False

    reactive = replicas_for_average_value(load, per, cur, tol)
    parts = [f"current load {_fmt(load)} / {_fmt(per)} per replica → {reactive}"]
    at_horizon = obs.forecast.at(obs.now + horizon) if obs.forecast is not None else None
    finite = at_horizon is None or all(math.isfinite(x) for x in at_horizon)
    if not finite:
        # A forecast that is not a number says nothing; like a missing one, it is not acted on.
        at_horizon = None
    forecast_reps: int | None = None
    forecast_value: float | None = None
    if use_forecast and at_horizon is not None:
        forecast_value = at_horizon[0]
        forecast_reps = replicas_for_average_value(forecast_value, per, cur, tol)
        parts.insert(
            0,
            f"p{q_pct} forecast {_fmt(forecast_value)} in {format_duration(horizon)} → "
            f"{forecast_reps}",
        )
    elif obs.forecast is None:
        parts.append("no forecast yet")
    elif not obs.forecast_trusted:
        parts.append("forecast not trusted")
    elif anomalous and spec.anomaly.action == "ReactiveOnly":
        parts.append("forecast ignored during anomaly")
    elif not finite:
        parts.append("forecast is not a number at the horizon")
    else:
        parts.append("forecast does not reach the horizon")

    if forecast_reps is not None and forecast_value is not None and forecast_reps > reactive:
        rec, reason, winner = forecast_reps, Reason.FORECAST, forecast_value
    else:
        rec, reason, winner = reactive, Reason.REACTIVE, load
    if rec == cur and replicas_for_average_value(winner, per, cur, 0.0) != cur:
        reason = Reason.TOLERANCE
        parts.append(f"within tolerance {tol:g} of {cur} replicas")

    if anomalous and spec.anomaly.action == "FreezeScaleDown" and rec < cur:
        rec, reason = cur, Reason.ANOMALY
        parts.append(f"anomaly score {obs.anomaly_score:.2f}: scale-down frozen")
    elif anomalous:
        parts.append(f"anomaly score {obs.anomaly_score:.2f}")

    up, down = resolve_behavior(spec.behavior)
    ahead: tuple[Recommendation, ...] = ()
    reach = 0.0
    if (
        forecast_reps is not None
        and obs.forecast is not None
        and spec.forecast.look_ahead_scale_down
        and rec < cur
    ):
        ahead, reach = _look_ahead(
            obs.forecast, obs.now, down.stabilization_window_seconds, per, cur, tol
        )
    stabilized = stabilize(
        obs.now, cur, rec, obs.memory.recommendations, up, down, ahead=ahead, reach=reach
    )
    if stabilized != rec:
        direction = "down" if rec < cur else "up"
        window = (down if direction == "down" else up).stabilization_window_seconds
        reason = Reason.STABILIZED
        if reach > 0:
            ahead_s = round(reach)  # whole seconds read better; the window itself is exact
            where = f"the forecast's next {format_duration(ahead_s)}"
            if ahead_s < window:
                where += f" and the last {format_duration(window - ahead_s)}"
            parts.append(f"scale-down stabilized over {where}: {rec} → {stabilized}")
        else:
            parts.append(f"scale-{direction} stabilized over {window}s: {rec} → {stabilized}")
    elif reach > 0 and rec < cur:
        parts.append(f"the forecast stays low for the next {format_duration(round(reach))}")
    held = False
    if forecast_reps is not None and obs.forecast is not None and stabilized < cur:
        # A replica removed now cannot be back before a new one starts, which the horizon
        # covers: never remove what the trusted forecast needs before then. (With the
        # defaults the look-ahead window already reaches the horizon; a horizon longer than
        # the scale-down window, for slow start-ups, is where this holds more.)
        need = min(cur, _most_needed(obs.forecast, obs.now, horizon, per, cur, tol))
        if need > stabilized:
            parts.append(
                f"scale-down held at {need}: the p{q_pct} forecast needs {need} within "
                f"{format_duration(horizon)}, before a replica removed now could be back"
            )
            stabilized, reason, held = need, Reason.FORECAST, True
    desired, limit_reason = limit_rate(
        obs.now, cur, stabilized, lo, hi, obs.memory.scale_events, up, down
    )
    if desired != stabilized:
        reason = {
            "TooManyReplicas": Reason.MAX_REPLICAS,
            "TooFewReplicas": Reason.MIN_REPLICAS,
        }.get(limit_reason, Reason.RATE_LIMITED)
        parts.append(f"{limit_reason}: {stabilized} → {desired}")

    return Decision(
        desired_replicas=desired,
        reason=reason,
        message="; ".join(parts),
        current_replicas=cur,
        recommendation=rec,
        forecast_replicas=forecast_reps,
        reactive_replicas=reactive,
        forecast_value=forecast_value,
        forecast_at_horizon=at_horizon,
        load=load,
        limit_reason=limit_reason,
        stabilized=stabilized != rec and not held,
        looked_ahead=reach > 0,
        held=held,
        anomalous=anomalous,
    )


def _most_needed(
    forecast: ForecastPath, now: float, horizon: float, per: float, cur: int, tol: float
) -> int:
    """The most replicas the forecast's provisioned quantile needs over (now, now + horizon]
    (0 when no point of the path lies there; points that are not a number are skipped)."""
    most = 0
    for t, value in zip(forecast.times, forecast.value, strict=True):
        if t <= now:
            continue
        if t > now + horizon:
            break
        if math.isfinite(value) and value >= 0:
            most = max(most, replicas_for_average_value(value, per, cur, tol))
    return most


def _look_ahead(
    forecast: ForecastPath, now: float, window: int, per: float, cur: int, tol: float
) -> tuple[tuple[Recommendation, ...], float]:
    """The forecast's recommendations over the next scale-down window, and how far they reach
    (0 when the window is empty, the path ends before now or has a value that is not a
    number: then the HPA's backward window applies)."""
    ahead: list[Recommendation] = []
    for t, value in zip(forecast.times, forecast.value, strict=True):
        if t <= now:
            continue
        if t > now + window:
            break
        if not math.isfinite(value) or value < 0:
            return (), 0.0
        ahead.append(Recommendation(t, replicas_for_average_value(value, per, cur, tol)))
    if not ahead or window <= 0:
        return (), 0.0
    return tuple(ahead), min(float(window), ahead[-1].time - now)


def remember(
    spec: ForecastScalerSpec, memory: Memory, decision: Decision, now: float, applied: bool
) -> Memory:
    """Memory after a decision: its recommendation, and the scale event if it was applied.
    Entries older than the longest window are dropped, so memory stays bounded."""
    up, down = resolve_behavior(spec.behavior)
    cutoff = now - longest_window(up, down)
    recs: Sequence[Recommendation] = memory.recommendations
    if decision.recommendation is not None:
        recs = (*recs, Recommendation(now, decision.recommendation))
    events: Sequence[ScaleEvent] = memory.scale_events
    change = decision.desired_replicas - decision.current_replicas
    if applied and change:
        events = (*events, ScaleEvent(now, change))
    return Memory(
        recommendations=tuple(r for r in recs if r.time > cutoff),
        scale_events=tuple(e for e in events if e.time > cutoff),
    )
