"""The HPA `behavior` arithmetic, checked against numbers worked out by hand.

Every expected value below is computed by hand from the Kubernetes documentation
("Horizontal Pod Autoscaling" → "Configurable scaling behavior") and from
pkg/controller/podautoscaler/horizontal.go (stabilizeRecommendationWithBehaviors,
convertDesiredReplicasWithBehaviorRate, calculateScaleUpLimitWithScalingRules,
calculateScaleDownLimitWithBehaviors, getReplicasChangePerPeriod). The arithmetic is written
next to each case so a reader can check it without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from forecastscaler.core.api import Behavior, ScalingPolicy
from forecastscaler.core.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Recommendation,
    Rules,
    ScaleEvent,
    limit_rate,
    longest_window,
    resolve,
    resolve_behavior,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)

NOW = 10_000.0

# The documentation's scale-down example: at most 4 pods or 10% per minute, whichever removes
# more (selectPolicy defaults to Max).
DOC_SCALE_DOWN: dict[str, Any] = {
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 60},
        {"type": "Percent", "value": 10, "periodSeconds": 60},
    ]
}


def rules(behavior: dict[str, Any] | None = None) -> tuple[Rules, Rules]:
    """(scaleUp, scaleDown) rules, with defaults, from a camelCase `behavior` dict."""
    return resolve_behavior(Behavior.model_validate(behavior or {}))


def events(*changes: tuple[float, int]) -> tuple[ScaleEvent, ...]:
    """Scale events given as (seconds ago, change)."""
    return tuple(ScaleEvent(NOW - ago, change) for ago, change in changes)


# ------------------------------------------------------------------------------------ defaults


def test_defaults_are_the_documented_hpa_defaults() -> None:
    up, down = rules()
    assert up.stabilization_window_seconds == 0
    assert up.select_policy == "Max"
    assert {(p.type, p.value, p.period_seconds) for p in up.policies} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }
    assert down.stabilization_window_seconds == 300
    assert down.select_policy == "Max"
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Percent", 100, 15)]
    assert (up, down) == (DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)


def test_partial_rules_are_merged_with_the_defaults_field_by_field() -> None:
    up, down = rules(
        {
            "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 60},
        }
    )
    # scaleUp: own policies, default window (0) and selectPolicy (Max).
    assert up.policies == (ScalingPolicy(type="Pods", value=1, period_seconds=60),)
    assert up.stabilization_window_seconds == 0
    assert up.select_policy == "Max"
    # scaleDown: own window, default policies (100% per 15 s) and selectPolicy (Max).
    assert down.stabilization_window_seconds == 60
    assert down.policies == DEFAULT_SCALE_DOWN.policies
    assert down.select_policy == "Max"


def test_resolve_without_rules_returns_the_default() -> None:
    assert resolve(None, DEFAULT_SCALE_DOWN) is DEFAULT_SCALE_DOWN


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        pytest.param({}, 300, id="default-down-window-300"),
        pytest.param(
            {"scaleDown": {"stabilizationWindowSeconds": 10}}, 15, id="default-periods-15"
        ),
        pytest.param(
            {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}},
            1800,
            id="long-policy-period",
        ),
        pytest.param({"scaleUp": {"stabilizationWindowSeconds": 900}}, 900, id="long-up-window"),
    ],
)
def test_longest_window(behavior: dict[str, Any], expected: int) -> None:
    assert longest_window(*rules(behavior)) == expected


# --------------------------------------------------------------------------------- rate limits


@dataclass(frozen=True)
class RateCase:
    behavior: dict[str, Any]
    current: int
    desired: int
    expected: int
    reason: str
    events: tuple[ScaleEvent, ...] = ()
    min_replicas: int = 1
    max_replicas: int = 1000


RATE_CASES = {
    # --- the documentation's scale-down example (Pods 4/60s + Percent 10/60s, Max) ----------
    # 80 replicas: Percent → int(80 x 0.9) = 72, Pods → 76; Max change → 72 (8 removed).
    "doc-80-first-step-removes-8": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 80, 10, 72, "ScaleDownLimit"
    ),
    # 72 replicas, previous step 61 s ago (outside the period): Percent → int(72 x 0.9) =
    # int(64.8) = 64 (7.2 "rounded up" to 8 removed), Pods → 68; Max change → 64.
    "doc-72-next-period-removes-8": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 72, 10, 64, "ScaleDownLimit", events((61, -8))
    ),
    # 72 replicas, previous -8 only 30 s ago: periodStartReplicas = 72 + 8 = 80, Percent → 72,
    # Pods → 76; the limit is the current count, so nothing more is removed in this period.
    "doc-72-same-period-blocked": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 72, 10, 72, "ScaleDownLimit", events((30, -8))
    ),
    # Exactly 60 s ago is outside the period (events count only if strictly newer).
    "event-exactly-one-period-old-ignored": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 72, 10, 64, "ScaleDownLimit", events((60, -8))
    ),
    # Below 40 the Pods policy removes more: 30 → Percent int(27.0) = 27, Pods 26 → 26.
    "doc-below-40-pods-policy": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 30, 1, 26, "ScaleDownLimit"
    ),
    # At 40 both policies agree: Percent 36, Pods 36.
    "doc-at-40-both-policies-agree": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 40, 1, 36, "ScaleDownLimit"
    ),
    # selectPolicy Min picks the smaller change: 80 → max(72, 76) = 76 (4 removed).
    "select-min-80-removes-4": RateCase(
        {"scaleDown": {**DOC_SCALE_DOWN, "selectPolicy": "Min"}}, 80, 10, 76, "ScaleDownLimit"
    ),
    # selectPolicy Min at 30: max(Percent 27, Pods 26) = 27 (3 removed).
    "select-min-30-removes-3": RateCase(
        {"scaleDown": {**DOC_SCALE_DOWN, "selectPolicy": "Min"}}, 30, 1, 27, "ScaleDownLimit"
    ),
    # The documentation's "10% or 5 pods per minute, Min": 100 → max(90, 95) = 95.
    "doc-10pct-or-5pods-min": RateCase(
        {
            "scaleDown": {
                "policies": [
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                    {"type": "Pods", "value": 5, "periodSeconds": 60},
                ],
                "selectPolicy": "Min",
            }
        },
        100,
        1,
        95,
        "ScaleDownLimit",
    ),
    # Percent scale-down truncates the result: 5 x 0.5 = 2.5 → 2 (3 removed).
    "percent-down-truncates": RateCase(
        {"scaleDown": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}},
        5,
        1,
        2,
        "ScaleDownLimit",
    ),
    # --- scale-up --------------------------------------------------------------------------
    # Percent 900 from 1: ceil(1 x 10) = 10.
    "percent-900-from-1": RateCase(
        {"scaleUp": {"policies": [{"type": "Percent", "value": 900, "periodSeconds": 60}]}},
        1,
        50,
        10,
        "ScaleUpLimit",
    ),
    # Percent scale-up rounds up: ceil(1 x 1.1) = 2, so a small workload can still grow.
    "percent-up-rounds-up-from-1": RateCase(
        {"scaleUp": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
        1,
        50,
        2,
        "ScaleUpLimit",
    ),
    # ceil(3 x 1.1) = ceil(3.3) = 4.
    "percent-up-rounds-up-from-3": RateCase(
        {"scaleUp": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
        3,
        50,
        4,
        "ScaleUpLimit",
    ),
    # Default scale-up from 1: max(ceil(1 x 2), 1 + 4) = 5.
    "default-up-from-1": RateCase({}, 1, 100, 5, "ScaleUpLimit"),
    # Default scale-up from 3: max(6, 7) = 7.
    "default-up-from-3": RateCase({}, 3, 100, 7, "ScaleUpLimit"),
    # Default scale-up from 10: max(20, 14) = 20.
    "default-up-from-10": RateCase({}, 10, 100, 20, "ScaleUpLimit"),
    # 1 → 5 happened 10 s ago: periodStartReplicas = 5 - 4 = 1 → max(2, 5) = 5 = current.
    "default-up-same-period-blocked": RateCase({}, 5, 100, 5, "ScaleUpLimit", events((10, 4))),
    # The same event 15 s ago is outside the 15 s period: max(10, 9) = 10.
    "default-up-next-period": RateCase({}, 5, 100, 10, "ScaleUpLimit", events((15, 4))),
    # Policies keep their own periods: +4 30 s ago counts for Pods 4/60s (start 4 → 8) but not
    # for Percent 100/15s (start 8 → 16); Max → 16.
    "policies-use-their-own-period": RateCase(
        {
            "scaleUp": {
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                ]
            }
        },
        8,
        100,
        16,
        "ScaleUpLimit",
        events((30, 4)),
    ),
    # selectPolicy Min for scale-up: from 10, min(Percent 20, Pods 14) = 14.
    "select-min-scale-up": RateCase(
        {"scaleUp": {"selectPolicy": "Min"}}, 10, 100, 14, "ScaleUpLimit"
    ),
    # A scale-down 30 s ago raises the scale-up base: periodStartReplicas = 6 - 0 + 4 = 10,
    # Pods 2/60s → 12.
    "previous-down-raises-up-base": RateCase(
        {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
        6,
        20,
        12,
        "ScaleUpLimit",
        events((30, -4)),
    ),
    # Symmetrically, a scale-up lowers the scale-down base: 10 - 4 + 0 = 6, Pods 2 → 4.
    "previous-up-lowers-down-base": RateCase(
        {"scaleDown": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
        10,
        1,
        4,
        "ScaleDownLimit",
        events((30, 4)),
    ),
    # +5 10 s ago with Pods 2/60s: start 5 → limit 7 < current 10 → held at current.
    "scale-up-limit-below-current-guard": RateCase(
        {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
        10,
        20,
        10,
        "ScaleUpLimit",
        events((10, 5)),
    ),
    # -5 10 s ago with Pods 2/60s: start 15 → limit 13 > current 10 → held at current.
    "scale-down-limit-above-current-guard": RateCase(
        {"scaleDown": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
        10,
        1,
        10,
        "ScaleDownLimit",
        events((10, -5)),
    ),
    # --- Disabled -----------------------------------------------------------------------------
    "scale-down-disabled-keeps-count": RateCase(
        {"scaleDown": {"selectPolicy": "Disabled"}}, 10, 2, 10, "ScaleDownLimit"
    ),
    "scale-up-disabled-keeps-count": RateCase(
        {"scaleUp": {"selectPolicy": "Disabled"}}, 10, 20, 10, "ScaleUpLimit"
    ),
    "scale-up-disabled-does-not-block-down": RateCase(
        {"scaleUp": {"selectPolicy": "Disabled"}}, 10, 2, 2, "DesiredWithinRange"
    ),
    # --- [min, max] ----------------------------------------------------------------------------
    # Default limit from 10 is 20, maxReplicas 15 is lower → TooManyReplicas.
    "too-many-replicas": RateCase({}, 10, 30, 15, "TooManyReplicas", max_replicas=15),
    # maxReplicas equal to the rate limit (20): the HPA reports TooManyReplicas.
    "max-equal-to-rate-limit": RateCase({}, 10, 30, 20, "TooManyReplicas", max_replicas=20),
    # maxReplicas 21 above the rate limit 20 → ScaleUpLimit.
    "rate-limit-below-max": RateCase({}, 10, 30, 20, "ScaleUpLimit", max_replicas=21),
    # Default scale-down allows 100%: limit 0, minReplicas 2 is higher → TooFewReplicas.
    "too-few-replicas": RateCase({}, 10, 0, 2, "TooFewReplicas", min_replicas=2),
    # The doc policy's limit from 80 is 72; minReplicas 75 is higher → TooFewReplicas.
    "min-above-rate-limit": RateCase(
        {"scaleDown": DOC_SCALE_DOWN}, 80, 10, 75, "TooFewReplicas", min_replicas=75
    ),
    # --- within range -----------------------------------------------------------------------
    "up-within-range": RateCase({}, 4, 6, 6, "DesiredWithinRange"),
    "down-within-range": RateCase({}, 10, 3, 3, "DesiredWithinRange"),
    "no-change": RateCase({}, 5, 5, 5, "DesiredWithinRange"),
    "desired-equals-max": RateCase({}, 10, 15, 15, "DesiredWithinRange", max_replicas=15),
}


@pytest.mark.parametrize("case", list(RATE_CASES.values()), ids=list(RATE_CASES))
def test_limit_rate(case: RateCase) -> None:
    up, down = rules(case.behavior)
    replicas, reason = limit_rate(
        NOW,
        case.current,
        case.desired,
        case.min_replicas,
        case.max_replicas,
        case.events,
        up,
        down,
    )
    assert (replicas, reason) == (case.expected, case.reason)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(80, 72, id="80-max-change-percent"),
        pytest.param(72, 64, id="72-max-change-percent"),
        pytest.param(39, 35, id="39-both-35"),
        pytest.param(30, 26, id="30-pods"),
        pytest.param(4, 0, id="4-pods-to-zero"),
    ],
)
def test_scale_down_limit_doc_policies(current: int, expected: int) -> None:
    _, down = rules({"scaleDown": DOC_SCALE_DOWN})
    assert scale_down_limit(NOW, current, (), down) == expected


def test_scale_up_limit_without_policies_is_current() -> None:
    # The API rejects an empty list (as upstream does); the arithmetic still must not move.
    up = Rules(stabilization_window_seconds=0, select_policy="Max", policies=())
    assert scale_up_limit(NOW, 7, (), up) == 7


def test_api_rejects_an_empty_policy_list() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        rules({"scaleUp": {"policies": []}})


def test_doc_scale_down_example_over_virtual_time() -> None:
    """80 replicas scaled down to 10 with the documentation's policies, one sync every 15 s.

    Each minute the larger of 4 pods and 10% (truncated) is removed; between those steps the
    period's earlier removal keeps the limit at the current count.
    """
    _, down = rules({"scaleDown": DOC_SCALE_DOWN})
    up, _ = rules()
    # Hand-computed: 80 -8→ 72 -8→ 64 -7→ 57 -6→ 51 -6→ 45 -5→ 40 -4→ 36 -4→ 32 -4→ 28 -4→ 24
    # -4→ 20 -4→ 16 -4→ 12 -2→ 10 (desired).
    per_minute = [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    expected_after_each_sync = [n for n in per_minute[1:] for _ in range(4)]
    current = 80
    history: list[ScaleEvent] = []
    seen: list[int] = []
    for tick in range(len(expected_after_each_sync)):
        now = tick * 15.0
        new, _ = limit_rate(now, current, 10, 1, 100, history, up, down)
        if new != current:
            history.append(ScaleEvent(now, new - current))
        current = new
        seen.append(current)
    assert seen == expected_after_each_sync


# ------------------------------------------------------------------------------- stabilization


@dataclass(frozen=True)
class StabilizeCase:
    current: int
    desired: int
    expected: int
    recommendations: tuple[tuple[float, int], ...] = ()
    """(seconds ago, replicas)."""
    behavior: dict[str, Any] = field(default_factory=dict)


STABILIZE_CASES = {
    # Default 300 s scale-down window: the highest of the last 5 minutes (9) is kept.
    "down-keeps-highest-of-window": StabilizeCase(10, 4, 9, ((200, 9), (100, 7))),
    # 9 was 301 s ago: forgotten, the highest left is 7.
    "down-forgets-older-than-window": StabilizeCase(10, 4, 7, ((301, 9), (100, 7))),
    # Exactly 300 s ago is outside the window (only strictly newer ones count).
    "down-window-boundary-excluded": StabilizeCase(10, 4, 4, ((300, 9),)),
    # Recommendations below the desired one do not lower it.
    "down-lower-history-ignored": StabilizeCase(10, 6, 6, ((100, 2), (50, 3))),
    # Stabilization never goes past the current count: history up to 12, current 10 → 10.
    "down-capped-at-current": StabilizeCase(10, 4, 10, ((100, 12),)),
    # No window for scale-up by default: 10 at once.
    "up-default-immediate": StabilizeCase(4, 10, 10, ((10, 5),)),
    # Scale-up window 60 s: the lowest of the window (6) is taken.
    "up-keeps-lowest-of-window": StabilizeCase(
        4, 10, 6, ((30, 6),), {"scaleUp": {"stabilizationWindowSeconds": 60}}
    ),
    "up-forgets-older-than-window": StabilizeCase(
        4, 10, 10, ((61, 6),), {"scaleUp": {"stabilizationWindowSeconds": 60}}
    ),
    # Exactly 60 s ago is outside a 60 s window.
    "up-window-boundary-excluded": StabilizeCase(
        4, 10, 10, ((60, 6),), {"scaleUp": {"stabilizationWindowSeconds": 60}}
    ),
    # Default scale-up window 0: even a recommendation made this instant is not considered.
    "up-window-zero-ignores-same-instant": StabilizeCase(4, 10, 10, ((0, 5),)),
    # Lowest of the up window (3) is below current: held at current.
    "up-floored-at-current": StabilizeCase(
        5, 10, 5, ((30, 3),), {"scaleUp": {"stabilizationWindowSeconds": 60}}
    ),
    # Recommendations on both sides: up limit min(7, 3, 8) = 3, down limit max(7, 3, 8) = 8;
    # current 5 lies between, so it is kept.
    "straddling-history-holds-current": StabilizeCase(
        5, 7, 5, ((30, 3), (20, 8)), {"scaleUp": {"stabilizationWindowSeconds": 60}}
    ),
    # Down window 0: nothing is remembered, not even a recommendation made this instant.
    "down-window-zero": StabilizeCase(
        10, 4, 4, ((0, 9), (1, 9)), {"scaleDown": {"stabilizationWindowSeconds": 0}}
    ),
    "no-history-passes-desired": StabilizeCase(10, 4, 4),
}


@pytest.mark.parametrize("case", list(STABILIZE_CASES.values()), ids=list(STABILIZE_CASES))
def test_stabilize(case: StabilizeCase) -> None:
    up, down = rules(case.behavior)
    recs = [Recommendation(NOW - ago, n) for ago, n in case.recommendations]
    assert stabilize(NOW, case.current, case.desired, recs, up, down) == case.expected


def test_stabilization_window_over_virtual_time() -> None:
    """A spike to 10 followed by 2s: the 300 s window keeps 10 for exactly 5 minutes."""
    up, down = rules()
    recs: list[Recommendation] = [Recommendation(0.0, 10)]
    results = {}
    for tick in range(1, 25):
        now = tick * 15.0
        results[now] = stabilize(now, 10, 2, recs, up, down)
        recs.append(Recommendation(now, 2))  # the unstabilized recommendation is recorded
    assert all(results[t] == 10 for t in results if t < 300)
    assert all(results[t] == 2 for t in results if t >= 300)
