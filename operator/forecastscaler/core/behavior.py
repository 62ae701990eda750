"""HPA autoscaling/v2 `behavior`: defaults, stabilization windows and rate policies.

A line-by-line port of the HPA controller's arithmetic (pkg/controller/podautoscaler/
horizontal.go: stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate,
calculateScaleUpLimitWithScalingRules, calculateScaleDownLimitWithBehaviors), so that users who
know the HPA get exactly the behaviour they expect. Pure functions of their arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from forecastscaler.core.api import Behavior, ScalingPolicy, ScalingRules

SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class Rules:
    """ScalingRules with every default filled in."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]


DEFAULT_SCALE_UP = Rules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(
        ScalingPolicy(type="Percent", value=100, period_seconds=15),
        ScalingPolicy(type="Pods", value=4, period_seconds=15),
    ),
)
DEFAULT_SCALE_DOWN = Rules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=(ScalingPolicy(type="Percent", value=100, period_seconds=15),),
)


def replicas_for_average_value(
    load: float, per_replica: float, current: int, tolerance: float
) -> int:
    """The HPA's replica count for an AverageValue target: ceil(load / per_replica), or the
    current count while load / (per_replica x current) is within 1 ± tolerance."""
    if current > 0:
        ratio = load / (per_replica * current)
        if abs(ratio - 1.0) <= tolerance:
            return current
    # The small epsilon absorbs float noise; the HPA computes in exact milli-units.
    return max(0, math.ceil(load / per_replica - 1e-9))


def replicas_to_cover(load: float, per_replica: float, current: int, tolerance: float) -> int:
    """Replicas that serve `load` at `per_replica` each: ceil(load / per_replica), but the current
    count while it covers the load and load / (per_replica x current) is within the tolerance.
    Unlike the HPA's rule, the tolerance may keep more replicas than the load needs, never
    fewer: the forecast path's quantile is the margin, and a tolerance that kept fewer would
    spend it."""
    need = max(0, math.ceil(load / per_replica - 1e-9))
    if 0 < need <= current and load / (per_replica * current) >= 1.0 - tolerance:
        return current
    return need


def resolve(rules: ScalingRules | None, default: Rules) -> Rules:
    """Fill unset fields from the HPA's defaults for that direction."""
    if rules is None:
        return default
    return Rules(
        stabilization_window_seconds=(
            default.stabilization_window_seconds
            if rules.stabilization_window_seconds is None
            else rules.stabilization_window_seconds
        ),
        select_policy=default.select_policy if rules.select_policy is None else rules.select_policy,
        policies=default.policies if rules.policies is None else tuple(rules.policies),
    )


def resolve_behavior(behavior: Behavior) -> tuple[Rules, Rules]:
    """(scaleUp, scaleDown) rules with defaults applied."""
    return resolve(behavior.scale_up, DEFAULT_SCALE_UP), resolve(
        behavior.scale_down, DEFAULT_SCALE_DOWN
    )


@dataclass(frozen=True)
class Recommendation:
    """An unstabilized recommendation, kept for the stabilization windows."""

    time: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    """A change the autoscaler made: positive up, negative down."""

    time: float
    change: int


def stabilize(
    now: float,
    current: int,
    desired: int,
    recommendations: Sequence[Recommendation],
    up: Rules,
    down: Rules,
    ahead: Sequence[Recommendation] = (),
    reach: float = 0.0,
) -> int:
    """Scale-up takes the lowest recommendation of its window, scale-down the highest.

    With `reach` > 0 the scale-down window is moved that far into the future (never further
    than its own length): it covers the past recommendations newer than
    ``now - window + reach`` and the forecast's recommendations `ahead` up to ``now + reach``.
    With no reach it is the HPA's window exactly."""
    reach = min(max(reach, 0.0), float(down.stabilization_window_seconds))
    up_cutoff = now - up.stabilization_window_seconds
    down_cutoff = now - down.stabilization_window_seconds + reach
    up_rec = desired
    down_rec = desired
    for rec in recommendations:
        if rec.time > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.time > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
    if reach > 0:
        for rec in ahead:
            if now < rec.time <= now + reach:
                down_rec = max(rec.replicas, down_rec)
    result = current
    result = max(result, up_rec)
    result = min(result, down_rec)
    return result


def _change_in_period(now: float, period_seconds: int, events: Sequence[ScaleEvent]) -> int:
    cutoff = now - period_seconds
    return sum(abs(e.change) for e in events if e.time > cutoff)


def scale_up_limit(now: float, current: int, events: Sequence[ScaleEvent], rules: Rules) -> int:
    """Most replicas the scale-up policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    ups = [e for e in events if e.change > 0]
    downs = [e for e in events if e.change < 0]
    proposals: list[int] = []
    for policy in rules.policies:
        added = _change_in_period(now, policy.period_seconds, ups)
        deleted = _change_in_period(now, policy.period_seconds, downs)
        start = current - added + deleted
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:
            # Rounded up, or a small workload could never grow.
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(now: float, current: int, events: Sequence[ScaleEvent], rules: Rules) -> int:
    """Fewest replicas the scale-down policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    ups = [e for e in events if e.change > 0]
    downs = [e for e in events if e.change < 0]
    proposals: list[int] = []
    for policy in rules.policies:
        added = _change_in_period(now, policy.period_seconds, ups)
        deleted = _change_in_period(now, policy.period_seconds, downs)
        start = current - added + deleted
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            # Truncated like the HPA's int32 conversion: the change is rounded up.
            proposals.append(int(start * (1 - policy.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def fewest_to_reach(need: int, periods: int, rules: Rules) -> int:
    """Fewest replicas now from which the scale-up policies still reach `need` in `periods`
    more fresh periods (each sync in a new period may add what the policies allow): how early a
    forecast jump must start. `need` itself when scale-up is disabled or no period is left."""
    if rules.select_policy == "Disabled" or not rules.policies:
        return need
    target = need
    for _ in range(max(0, periods)):
        lo, hi = 1, target  # the fewest c with scale_up_limit(c) >= target
        while lo < hi:
            mid = (lo + hi) // 2
            if scale_up_limit(0.0, mid, (), rules) >= target:
                hi = mid
            else:
                lo = mid + 1
        if lo == target:
            break
        target = lo
    return target


def fresh_period(interval: float, rules: Rules) -> float:
    """How far apart syncs can each add a full scale-up allowance: the sync interval, or the
    longest policy period when that is longer (syncs within one period share it)."""
    return max([interval, *(float(p.period_seconds) for p in rules.policies)])


LimitReason = Literal[
    "DesiredWithinRange", "ScaleUpLimit", "TooManyReplicas", "ScaleDownLimit", "TooFewReplicas"
]


def limit_rate(
    now: float,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    events: Sequence[ScaleEvent],
    up: Rules,
    down: Rules,
) -> tuple[int, LimitReason]:
    """Apply the rate policies and [min, max], returning the HPA's ScalingLimited reason."""
    if desired > current:
        limit = max(scale_up_limit(now, current, events, up), current)
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason  # type: ignore[return-value]
    elif desired < current:
        limit = min(scale_down_limit(now, current, events, down), current)
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason  # type: ignore[return-value]
    return desired, "DesiredWithinRange"


def longest_window(up: Rules, down: Rules) -> int:
    """How long recommendations and events must be remembered."""
    periods = [p.period_seconds for p in (*up.policies, *down.policies)]
    return max([up.stabilization_window_seconds, down.stabilization_window_seconds, *periods])
