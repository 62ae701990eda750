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

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from forecastscaler.core.api import ForecastScalerSpec, format_duration
from forecastscaler.core.behavior import (
    LimitReason,
    Recommendation,
    Rules,
    ScaleEvent,
    fewest_to_reach,
    fresh_period,
    limit_rate,
    longest_window,
    replicas_for_average_value,
    replicas_to_cover,
    resolve_behavior,
    stabilize,
)
from forecastscaler.core.decision_types import Decision, ForecastPath, Memory, Observation, Reason

__all__ = [
    "Decision",
    "ForecastPath",
    "Memory",
    "Observation",
    "Reason",
    "decide",
    "initial_memory",
    "remember",
]


def initial_memory(now: float, current_replicas: int) -> Memory:
    """Memory for an object seen for the first time. Like the HPA, it is seeded with the current
    count, so a restarted operator waits a full scale-down window before removing replicas."""
    return Memory(recommendations=(Recommendation(now, current_replicas),))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def decide(spec: ForecastScalerSpec, obs: Observation) -> Decision:
    """The replicas to ask for now, and why.

    The HPA controller's steps in its order: the guard, the proposals, the anomaly action, the
    stabilization windows (looking ahead on the forecast), the forecast's hold on scale-down and
    the rate limits. Each step returns its replicas and its notes; the message joins them."""
    guarded = _guard(spec, obs.current_replicas)
    if guarded is not None:
        return guarded
    load = _usable_load(obs.load)
    if load is None:
        return _no_data(spec, obs)
    inp = _inputs(spec, obs, load)
    props, proposed = _proposals(inp)
    anomaly = _anomaly(inp, proposed)
    stabilized, reach = _stabilize(inp, props, anomaly)
    held, was_held = _hold(inp, props, stabilized)
    limited, limit_reason = _rate_limit(inp, held)
    steps = (proposed, anomaly, stabilized, held, limited)
    return Decision(
        desired_replicas=limited.replicas,
        reason=limited.reason,
        message="; ".join(note for step in steps for note in step.notes),
        current_replicas=obs.current_replicas,
        recommendation=anomaly.replicas,
        forecast_replicas=props.forecast_replicas,
        reactive_replicas=props.reactive,
        forecast_value=props.forecast_value,
        forecast_at_horizon=props.at_horizon,
        load=load,
        limit_reason=limit_reason,
        stabilized=stabilized.replicas != anomaly.replicas and not was_held,
        looked_ahead=reach > 0,
        held=was_held,
        anomalous=inp.anomalous,
    )


@dataclass(frozen=True)
class _Step:
    """What one step of the decision leaves: the replicas, the reason that stands for them, and
    the notes the step adds to the message."""

    replicas: int
    reason: Reason
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Inputs:
    """What the steps after the guard read: the spec, the observation and what follows from
    them (the usable load, the resolved behavior, whether the load is anomalous)."""

    spec: ForecastScalerSpec
    obs: Observation
    cur: int
    load: float
    per: float
    """The load per replica the HPA path aims at (targetPerReplica)."""
    fper: float
    """The load per replica the forecast path provisions at: capacityPerReplica when set."""
    tol: float
    horizon: float
    window: tuple[float, float]
    """The window this decision's replicas serve: [now + startup, now + startup + interval]."""
    step: float
    q_pct: str
    up: Rules
    down: Rules
    anomalous: bool


def _inputs(spec: ForecastScalerSpec, obs: Observation, load: float) -> _Inputs:
    anomalous = (
        spec.anomaly.enabled
        and obs.anomaly_score is not None
        and obs.anomaly_score >= spec.anomaly.threshold
    )
    up, down = resolve_behavior(spec.behavior)
    start = obs.now + spec.forecast.startup_seconds
    return _Inputs(
        spec=spec,
        obs=obs,
        cur=obs.current_replicas,
        load=load,
        per=spec.metric.target_per_replica,
        fper=spec.metric.capacity_per_replica or spec.metric.target_per_replica,
        tol=spec.behavior.tolerance,
        horizon=spec.forecast.horizon_seconds,
        window=(start, start + spec.interval_seconds),
        step=spec.forecast.step_seconds,
        q_pct=f"{spec.forecast.quantile * 100:.4g}",
        up=up,
        down=down,
        anomalous=anomalous,
    )


# ------------------------------------------------------------------------------ 1. the guard


def _guard(spec: ForecastScalerSpec, cur: int) -> Decision | None:
    """A target at zero replicas is left alone (scaling disabled) and one outside [min, max] is
    brought back inside, before any metric is looked at; None when neither applies."""
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
    return None


def _usable_load(load: float | None) -> float | None:
    """The current load, or None when it is missing, not a number or negative."""
    if load is None or not math.isfinite(load) or load < 0:
        return None
    return load


def _no_data(spec: ForecastScalerSpec, obs: Observation) -> Decision:
    """Without a usable load: hold the current count, and after failureThreshold syncs in a row
    hold at least the fallback replicas (never scaling down without data)."""
    cur = obs.current_replicas
    base = Decision(desired_replicas=cur, reason=Reason.NO_DATA, message="", current_replicas=cur)
    threshold = spec.fallback.failure_threshold
    if obs.consecutive_failures >= threshold:
        floor = spec.fallback.replicas if spec.fallback.replicas is not None else cur
        desired = min(max(cur, floor, spec.min_replicas), spec.max_replicas)
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


# -------------------------------------------------------------------------- 2. the proposals


@dataclass(frozen=True)
class _Proposals:
    """The replicas the current load and the forecast at the horizon each ask for."""

    reactive: int
    forecast_replicas: int | None = None
    """None when the forecast is not acted on."""
    forecast_value: float | None = None
    at_horizon: tuple[float, float, float, float] | None = None
    """(value, point, lower, upper) at now + horizon; None when missing or not a number."""
    reactive_load: float | None = None
    """The load the reactive proposal is for, when not the current load (the floor's)."""


def _proposals(inp: _Inputs) -> tuple[_Proposals, _Step]:
    """Each signal's replicas (the forecast's only when it is acted on), and the
    recommendation: the larger of them.

    The forecast provisions the peak of its quantile over the window this decision serves, at
    capacityPerReplica when set; while it is acted on the floor is what the current load needs
    at that capacity. Otherwise the current load is followed like the HPA, at the target."""
    forecast = inp.obs.forecast
    raw = forecast.at(inp.obs.now + inp.horizon) if forecast is not None else None
    # A forecast that is not a number says nothing; like a missing one, it is not acted on.
    finite = raw is None or all(math.isfinite(x) for x in raw)
    at_horizon = raw if finite else None
    peak = forecast.peak(*inp.window, inp.step) if forecast is not None and finite else None
    if forecast is not None and _acts_on_forecast(inp) and peak is not None:
        now_load = _load_now(inp, forecast)
        reactive = replicas_to_cover(now_load, inp.fper, inp.cur, inp.tol)
        reps = replicas_to_cover(peak, inp.fper, inp.cur, inp.tol)
        start, end = (t - inp.obs.now for t in inp.window)
        notes = [
            f"p{inp.q_pct} forecast peak {_fmt(peak)} {format_duration(start)}–"
            f"{format_duration(end)} ahead / {_fmt(inp.fper)} per replica{_at(inp)} → {reps}",
        ]
        early = _ramp(inp, forecast)
        if early is not None and early[0] > reps:
            reps = early[0]
            notes.append(
                f"scaling up early to {reps}: the p{inp.q_pct} forecast needs {early[1]} "
                f"{format_duration(round(early[2]))} ahead, which the scale-up policies reach "
                f"only from {reps} now"
            )
        lower = f" (the forecast for the step in progress: {_fmt(now_load)})"
        notes.append(
            f"current load {_fmt(inp.load)}{lower if now_load < inp.load else ''} / "
            f"{_fmt(inp.fper)} per replica → {reactive}"
        )
        props = _Proposals(reactive, reps, peak, at_horizon, now_load)
        return props, _recommend(inp, props, tuple(notes))
    reactive = replicas_for_average_value(inp.load, inp.per, inp.cur, inp.tol)
    load_note = f"current load {_fmt(inp.load)} / {_fmt(inp.per)} per replica → {reactive}"
    props = _Proposals(reactive, at_horizon=at_horizon)
    return props, _recommend(inp, props, (load_note, _why_not_forecast(inp, finite)))


def _load_now(inp: _Inputs, forecast: ForecastPath) -> float:
    """The load the floor provisions for while the forecast is acted on: the current load, or
    the forecast's provisioned quantile for the step in progress when that is lower. The last
    sample describes a step that has ended; the forecast for the step in progress is
    conditioned on it and is the better estimate of the load now. On a coarse metric (15m,
    1h) a floor on the ended step would keep its replicas a whole step longer, and re-add them
    after every scale-down at a step's start."""
    values = [v for t, v in zip(forecast.times, forecast.value, strict=True) if t > inp.obs.now]
    if not values or not math.isfinite(values[0]) or values[0] < 0:
        return inp.load
    return min(inp.load, values[0])


def _ramp(inp: _Inputs, forecast: ForecastPath) -> tuple[int, int, float] | None:
    """The replicas needed now so that the scale-up policies still reach, in time, what the
    forecast needs after the window (a later sync is in time for a step while its replicas
    are ready when the step starts): (replicas now, replicas needed, seconds ahead), for the
    step that asks most now; None when none asks for more than the current count."""
    now, startup = inp.obs.now, inp.spec.forecast.startup_seconds
    fresh = fresh_period(inp.spec.interval_seconds, inp.up)
    best: tuple[int, int, float] | None = None
    for t, value in zip(forecast.times, forecast.value, strict=True):
        begins = t - inp.step  # the step labelled t starts then
        if begins < inp.window[1] - 1e-9 or not math.isfinite(value) or value < 0:
            continue
        need = min(replicas_to_cover(value, inp.fper, inp.cur, inp.tol), inp.spec.max_replicas)
        if need <= inp.cur:
            continue
        periods = math.floor((begins - startup - now) / fresh + 1e-9)
        now_needed = fewest_to_reach(need, periods, inp.up)
        if best is None or now_needed > best[0]:
            best = (now_needed, need, begins - now)
    return best


def _at(inp: _Inputs) -> str:
    """Which per-replica load the forecast is provisioned at, for the message."""
    return " (capacity)" if inp.spec.metric.capacity_per_replica is not None else " (target)"


def _acts_on_forecast(inp: _Inputs) -> bool:
    """A trusted forecast is acted on, unless an anomaly's action is ReactiveOnly."""
    if inp.anomalous and inp.spec.anomaly.action == "ReactiveOnly":
        return False
    return inp.obs.forecast is not None and inp.obs.forecast_trusted


def _why_not_forecast(inp: _Inputs, finite: bool) -> str:
    """Why the forecast was not acted on."""
    if inp.obs.forecast is None:
        return "no forecast yet"
    if not inp.obs.forecast_trusted:
        return "forecast not trusted"
    if inp.anomalous and inp.spec.anomaly.action == "ReactiveOnly":
        return "forecast ignored during anomaly"
    if not finite:
        return "forecast is not a number at the horizon"
    return "forecast does not reach the horizon"


def _recommend(inp: _Inputs, props: _Proposals, notes: tuple[str, ...]) -> _Step:
    """The larger proposal (the reactive one on a tie), or Tolerance when it keeps the current
    count only because the load is within the tolerance."""
    reps, value = props.forecast_replicas, props.forecast_value
    acted = reps is not None and value is not None
    per = inp.fper if acted else inp.per
    if reps is not None and value is not None and reps > props.reactive:
        rec, reason, winner = reps, Reason.FORECAST, value
    else:
        winner = inp.load if props.reactive_load is None else props.reactive_load
        rec, reason = props.reactive, Reason.REACTIVE
    cur = inp.cur
    if rec == cur and replicas_for_average_value(winner, per, cur, 0.0) != cur:
        return _Step(
            rec, Reason.TOLERANCE, (*notes, f"within tolerance {inp.tol:g} of {cur} replicas")
        )
    return _Step(rec, reason, notes)


# ---------------------------------------------------------------------- 3. the anomaly action


def _anomaly(inp: _Inputs, proposed: _Step) -> _Step:
    """While the load is anomalous, FreezeScaleDown keeps the current count instead of a
    scale-down; the score is noted whatever the action."""
    if not inp.anomalous:
        return _Step(proposed.replicas, proposed.reason)
    score = f"anomaly score {inp.obs.anomaly_score:.2f}"
    if inp.spec.anomaly.action == "FreezeScaleDown" and proposed.replicas < inp.cur:
        return _Step(inp.cur, Reason.ANOMALY, (f"{score}: scale-down frozen",))
    return _Step(proposed.replicas, proposed.reason, (score,))


# ------------------------------------------------------------------ 4. the stabilization windows


def _stabilize(inp: _Inputs, props: _Proposals, rec: _Step) -> tuple[_Step, float]:
    """The HPA's stabilization windows over the remembered recommendations, the scale-down one
    moved ahead onto the forecast where it reaches; also returns that reach (0: not moved)."""
    ahead, reach = _ahead(inp, props, rec.replicas)
    recs = inp.obs.memory.recommendations
    stabilized = stabilize(
        inp.obs.now, inp.cur, rec.replicas, recs, inp.up, inp.down, ahead=ahead, reach=reach
    )
    if stabilized != rec.replicas:
        note = _stabilized_note(inp, rec.replicas, stabilized, reach)
        return _Step(stabilized, Reason.STABILIZED, (note,)), reach
    if reach > 0 and rec.replicas < inp.cur:
        note = f"the forecast stays low for the next {format_duration(round(reach))}"
        return _Step(stabilized, rec.reason, (note,)), reach
    return _Step(stabilized, rec.reason), reach


def _ahead(inp: _Inputs, props: _Proposals, rec: int) -> tuple[tuple[Recommendation, ...], float]:
    """The look-ahead (forecast.lookAheadScaleDown): the acted-on forecast's recommendations
    over the next scale-down window and their reach, for a scale-down only."""
    forecast = inp.obs.forecast
    if (
        props.forecast_replicas is None
        or forecast is None
        or not inp.spec.forecast.look_ahead_scale_down
        or rec >= inp.cur
    ):
        return (), 0.0
    window = inp.down.stabilization_window_seconds
    return forecast.look_ahead(inp.obs.now, window, inp.fper, inp.cur, inp.tol)


def _stabilized_note(inp: _Inputs, rec: int, stabilized: int, reach: float) -> str:
    """Which window stabilized the recommendation, the look-ahead's part of it included."""
    direction = "down" if rec < inp.cur else "up"
    window = (inp.down if direction == "down" else inp.up).stabilization_window_seconds
    if reach > 0:
        ahead_s = round(reach)  # whole seconds read better; the window itself is exact
        where = f"the forecast's next {format_duration(ahead_s)}"
        if ahead_s < window:
            where += f" and the last {format_duration(window - ahead_s)}"
        return f"scale-down stabilized over {where}: {rec} → {stabilized}"
    return f"scale-{direction} stabilized over {window}s: {rec} → {stabilized}"


# -------------------------------------------------------------------- 5. the forecast's hold


def _hold(inp: _Inputs, props: _Proposals, stabilized: _Step) -> tuple[_Step, bool]:
    """A scale-down keeps what the acted-on forecast needs within the horizon; also returns
    whether it held any replicas."""
    forecast = inp.obs.forecast
    kept = _Step(stabilized.replicas, stabilized.reason)
    if props.forecast_replicas is None or forecast is None or stabilized.replicas >= inp.cur:
        return kept, False
    # A replica removed now cannot be back before a new one starts, which the horizon
    # covers: never remove what the trusted forecast needs before then. (With the
    # defaults the look-ahead window already reaches the horizon; a horizon longer than
    # the scale-down window, for slow start-ups, is where this holds more.)
    need = min(inp.cur, forecast.most_needed(inp.obs.now, inp.horizon, inp.fper, inp.cur, inp.tol))
    if need <= stabilized.replicas:
        return kept, False
    note = (
        f"scale-down held at {need}: the p{inp.q_pct} forecast needs {need} within "
        f"{format_duration(inp.horizon)}, before a replica removed now could be back"
    )
    return _Step(need, Reason.FORECAST, (note,)), True


# ------------------------------------------------------------------------ 6. the rate limits


def _rate_limit(inp: _Inputs, held: _Step) -> tuple[_Step, LimitReason]:
    """The rate policies and [min, max]; also returns the HPA's ScalingLimited reason."""
    lo, hi, events = inp.spec.min_replicas, inp.spec.max_replicas, inp.obs.memory.scale_events
    desired, limit_reason = limit_rate(
        inp.obs.now, inp.cur, held.replicas, lo, hi, events, inp.up, inp.down
    )
    if desired == held.replicas:
        return _Step(desired, held.reason), limit_reason
    reason = {
        "TooManyReplicas": Reason.MAX_REPLICAS,
        "TooFewReplicas": Reason.MIN_REPLICAS,
    }.get(limit_reason, Reason.RATE_LIMITED)
    return _Step(desired, reason, (f"{limit_reason}: {held.replicas} → {desired}",)), limit_reason


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
