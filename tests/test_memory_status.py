"""The autoscaler's memory in status (core/memory.py): written, read back, and resumed from.

The promise: an operator that restarts between two syncs, reading its memory back from status,
decides exactly what one that never stopped decides (the same replicas, reason and message,
sync after sync), keeps the Fallback count, and ignores whatever in status does not validate.

Unless a case says otherwise the spec is: targetPerReplica 10, minReplicas 1, maxReplicas 20,
the HPA's default behavior (scale-down window 300 s; 100 % or 4 pods per 15 s up, 100 % per
15 s down), interval 30 s, fallback after 3 failures. So a load of 50 asks for 5 replicas.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.behavior import (
    Recommendation,
    ScaleEvent,
    resolve_behavior,
    stabilize,
)
from forecastscaler.core.decision import (
    Decision,
    ForecastPath,
    Memory,
    Observation,
    Reason,
    decide,
    initial_memory,
    remember,
)
from forecastscaler.core.memory import (
    RECOMMENDATION_LIMIT,
    SCALE_EVENT_LIMIT,
    MemoryStatus,
    compact,
    memory_status,
    parse_time,
    resume,
    rfc3339_micro,
)
from forecastscaler.operator.crd import crd

NOW = 1_700_000_000.0

BASE_SPEC: dict[str, Any] = {
    "scaleTargetRef": {"kind": "Deployment", "name": "web"},
    "minReplicas": 1,
    "maxReplicas": 20,
    "metric": {"query": 'sum(rate(http_requests_total{app="web"}[1m]))', "targetPerReplica": 10},
}


def make_spec(overrides: Mapping[str, Any] | None = None) -> ForecastScalerSpec:
    return ForecastScalerSpec.model_validate({**BASE_SPEC, **(overrides or {})})


def flat_path(now: float, value: float, reach: float = 600.0, step: float = 60.0) -> ForecastPath:
    n = int(reach // step) + 1
    values = (value,) * n
    return ForecastPath(
        times=tuple(now + i * step for i in range(n)),
        value=values,
        point=values,
        lower=values,
        upper=values,
        quantile=0.9,
        model="test",
    )


# ------------------------------------------------------------------------- a run of syncs

Load = Callable[[int], float | None]
"""The load at sync i; None: the metric could not be read."""


@dataclass(frozen=True)
class Run:
    load: Load
    syncs: int = 60
    interval: float = 30.0
    start: int = 5
    spec: dict[str, Any] = field(default_factory=dict)
    forecast: Callable[[int], float | None] | None = None
    """The forecast's flat value at sync i (None: no forecast)."""
    t0: float = NOW


@dataclass
class Trace:
    decisions: list[Decision]
    failures: list[int]
    statuses: list[dict[str, Any]]
    """The memory status written after each sync."""


def simulate(run: Run, restarts: Callable[[int], bool] = lambda i: False) -> Trace:
    """Syncs as the operator runs them (the decision applied each time). Before sync i with
    restarts(i), the process 'restarts': all it keeps is the status the last sync wrote."""
    spec = make_spec({"interval": f"{run.interval:g}s", **run.spec})
    memory: Memory | None = None
    failures, current = 0, run.start
    trace = Trace([], [], [])
    for i in range(run.syncs):
        now = run.t0 + i * run.interval
        if i > 0 and restarts(i):
            memory, failures = resume(trace.statuses[-1], spec, now, current=current)
        load = run.load(i)
        failures = failures + 1 if load is None else 0
        if memory is None:
            memory = initial_memory(now, current)
        value = run.forecast(i) if run.forecast is not None else None
        d = decide(
            spec,
            Observation(
                now=now,
                current_replicas=current,
                load=load,
                forecast=flat_path(now, value) if value is not None else None,
                consecutive_failures=failures,
                memory=memory,
            ),
        )
        memory = remember(spec, memory, d, now, applied=True)
        current = d.desired_replicas
        trace.decisions.append(d)
        trace.failures.append(failures)
        trace.statuses.append(memory_status(memory, failures, now, spec))
    return trace


def steps(*parts: tuple[int, float | None]) -> Load:
    """A load of `value` for `n` syncs, part after part (the last part goes on)."""
    table: list[float | None] = []
    for n, value in parts:
        table += [value] * n

    def load(i: int) -> float | None:
        return table[min(i, len(table) - 1)]

    return load


def noisy(seed: int, low: float, high: float) -> Load:
    rng = random.Random(seed)
    table = [rng.uniform(low, high) for _ in range(400)]
    return lambda i: table[i % len(table)]


ROUND_TRIPS = {
    # A spike and a drop: the drop is held for the 300 s window, then stepped down.
    "spike-and-drop": Run(steps((5, 50), (6, 180), (40, 20))),
    # The drop comes while the window still holds the spike's recommendations.
    "drop-inside-the-window": Run(steps((3, 50), (2, 190), (4, 120), (40, 10))),
    # A slow decline: every sync recommends a little less (a long scale-down chain).
    "slow-decline": Run(lambda i: max(200.0 - 4.0 * i, 10.0), syncs=80, start=20),
    "noise": Run(noisy(1, 20, 180), syncs=120),
    # Scale-up stabilization and Pods policies with their own periods.
    "custom-behavior": Run(
        noisy(2, 10, 200),
        syncs=120,
        interval=15,
        spec={
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 60,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 90}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 120,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    "selectPolicy": "Min",
                },
            }
        },
    ),
    # Rate policies longer than the windows: the scale events carry the restart alone.
    "long-policy-periods": Run(
        steps((4, 30), (10, 200), (30, 30), (10, 200), (30, 30)),
        interval=20,
        spec={
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 3, "periodSeconds": 600}]},
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 20, "periodSeconds": 900}],
                },
            }
        },
    ),
    # Metric failures up to Fallback and back: the count survives every restart.
    "failures-to-fallback": Run(
        steps((4, 80), (5, None), (3, 30), (2, None), (40, 30)), spec={"fallback": {}}
    ),
    "fallback-floor": Run(
        steps((4, 30), (6, None), (30, 20)),
        spec={"fallback": {"failureThreshold": 2, "replicas": 9}},
    ),
    # The forecast's look-ahead window (reach) and its hold on scale-down.
    "forecast-look-ahead": Run(
        steps((5, 150), (40, 30)),
        forecast=lambda i: 150.0 if i < 9 else 40.0,
    ),
    # A real clock: odd intervals at fractional epoch seconds (the times go through RFC 3339).
    "fractional-times": Run(
        noisy(3, 10, 190), syncs=150, interval=3.7, t0=NOW + 0.123456789, spec={}
    ),
    # A window shorter than the sync interval: nothing is held across syncs, before or after.
    "window-shorter-than-interval": Run(
        noisy(4, 10, 190),
        spec={"behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}},
    ),
}

RESTARTS: dict[str, Callable[[int], bool]] = {
    "every-sync": lambda i: True,
    "every-seventh": lambda i: i % 7 == 3,
}


@pytest.mark.parametrize("when", RESTARTS.values(), ids=RESTARTS.keys())
@pytest.mark.parametrize("run", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_a_restart_from_status_decides_what_an_unstopped_operator_decides(
    run: Run, when: Callable[[int], bool]
) -> None:
    unstopped = simulate(run)
    restarted = simulate(run, when)
    for i, (a, b) in enumerate(zip(unstopped.decisions, restarted.decisions, strict=True)):
        assert a == b, f"sync {i}: {a} != {b}"
    assert restarted.failures == unstopped.failures
    assert restarted.statuses == unstopped.statuses
    # Each scenario exercises something worth resuming.
    assert any(s.get("recommendations") or s.get("scaleEvents") for s in unstopped.statuses)


def test_the_scenarios_cover_held_scale_downs_rate_limits_and_fallback() -> None:
    reasons = {d.reason for run in ROUND_TRIPS.values() for d in simulate(run).decisions}
    for reason in (Reason.STABILIZED, Reason.RATE_LIMITED, Reason.FALLBACK, Reason.FORECAST):
        assert reason in reasons, reason


def test_resuming_holds_the_window_from_the_recorded_recommendations_not_from_the_restart() -> None:
    """After a drop, the operator restarts halfway through the scale-down window. Resumed from
    status, it scales down when the window counted from the spike's recommendations has passed
    (as an operator that never stopped does); seeded afresh (the HPA's way, `initial_memory`),
    it would wait a whole window from the restart."""
    run = Run(steps((5, 180), (40, 20)), start=18)
    unstopped = simulate(run)
    restarted = simulate(run, lambda i: i == 10)
    fresh_spec = make_spec({"interval": "30s"})

    def first_down(decisions: list[Decision]) -> int:
        return next(i for i, d in enumerate(decisions) if d.desired_replicas < 18)

    # The last 18 was recommended at sync 4, so the window lets go at sync 4 + 300/30.
    assert first_down(unstopped.decisions) == 14
    assert first_down(restarted.decisions) == 14
    # What a fresh seed at the restart would do instead: hold until sync 10 + 300/30.
    memory = initial_memory(NOW + 10 * 30, 18)
    held = 0
    for i in range(10, 30):
        now = NOW + i * 30
        d = decide(fresh_spec, Observation(now=now, current_replicas=18, load=20.0, memory=memory))
        memory = remember(fresh_spec, memory, d, now, applied=False)
        if d.desired_replicas < 18:
            break
        held += 1
    assert 10 + held == 20


def test_a_resumed_fallback_count_reaches_the_threshold_without_starting_over() -> None:
    spec = make_spec({"fallback": {"failureThreshold": 3}})
    status = memory_status(initial_memory(NOW, 6), 2, NOW, spec)
    assert status["health"] == {"consecutiveFailures": 2, "status": "Failing"}
    memory, failures = resume(status, spec, NOW + 30)
    assert failures == 2 and memory is not None
    # The first sync after the restart fails too: the third in a row, so Fallback.
    d = decide(
        spec,
        Observation(
            now=NOW + 30,
            current_replicas=6,
            load=None,
            consecutive_failures=failures + 1,
            memory=memory,
        ),
    )
    assert d.reason == Reason.FALLBACK


# ------------------------------------------------------------------------ resume, entry by entry


def recs(*items: tuple[float, int]) -> list[dict[str, Any]]:
    return [{"time": rfc3339_micro(NOW + t), "replicas": r} for t, r in items]


def evts(*items: tuple[float, int]) -> list[dict[str, Any]]:
    return [{"time": rfc3339_micro(NOW + t), "change": c} for t, c in items]


GOOD = {"time": rfc3339_micro(NOW - 10), "replicas": 7}


@dataclass(frozen=True)
class Resume:
    status: Any
    recommendations: tuple[tuple[float, int], ...] | None
    """Expected (time - NOW, replicas); None: no memory."""
    scale_events: tuple[tuple[float, int], ...] = ()
    failures: int = 0
    now: float = NOW
    spec: dict[str, Any] = field(default_factory=dict)
    current: int | None = None


RESUMES = {
    # Nothing to resume from: the caller seeds like a new object.
    "no-status": Resume(None, None),
    "empty-status": Resume({}, None),
    "an-older-operator's-status": Resume(
        {"currentReplicas": 4, "conditions": [{"type": "Ready", "status": "True"}]}, None
    ),
    "not-a-mapping": Resume(["recommendations"], None),
    "lists-that-are-not-lists": Resume({"recommendations": "7", "scaleEvents": {"a": 1}}, None),
    # Garbled entries are skipped, the rest kept.
    "garbled-recommendations": Resume(
        {
            "recommendations": [
                GOOD,
                "7",
                None,
                {},
                {"time": "yesterday", "replicas": 3},
                {"time": "2023-11-14", "replicas": 3},  # no time of day, no zone
                {"time": "2023-11-14T22:13:10", "replicas": 3},  # no zone
                {"time": 1_699_999_990, "replicas": 3},
                {"time": rfc3339_micro(NOW - 5), "replicas": -1},
                {"time": rfc3339_micro(NOW - 5), "replicas": True},
                {"time": rfc3339_micro(NOW - 5), "replicas": "3"},
                {"time": rfc3339_micro(NOW - 5), "replicas": 3.5},
                {"time": rfc3339_micro(NOW - 5)},
                {"time": "99999-01-01T00:00:00Z", "replicas": 3},
            ],
            "scaleEvents": [],
        },
        ((-10, 7),),
    ),
    "garbled-events": Resume(
        {
            "recommendations": [GOOD],
            "scaleEvents": [
                *evts((-5, 2)),
                {"time": rfc3339_micro(NOW - 4), "change": 0},
                {"time": rfc3339_micro(NOW - 4), "change": "2"},
                {"time": rfc3339_micro(NOW - 4)},
                {"change": 3},
                7,
            ],
        },
        ((-10, 7),),
        scale_events=((-5, 2),),
    ),
    "unknown-keys-of-a-later-version-are-ignored": Resume(
        {"recommendations": [{**GOOD, "source": "forecast"}], "scaleEvents": []},
        ((-10, 7),),
    ),
    "other-zones-and-precisions": Resume(
        {
            "recommendations": [
                {"time": "2023-11-14T23:13:10+01:00", "replicas": 4},  # NOW - 10
                {"time": "2023-11-14T22:13:15.5Z", "replicas": 3},  # NOW - 4.5
            ],
        },
        ((-10, 4), (-4.5, 3)),
    ),
    # Times from a clock ahead of this one are taken as now: a far-future entry cannot pin
    # the replicas forever.
    "future-times-are-now": Resume(
        {
            "recommendations": [
                {"time": "2099-01-01T00:00:00Z", "replicas": 9},
                *recs((-20, 5)),
            ],
            "scaleEvents": [{"time": "2099-01-01T00:00:00Z", "change": 4}],
        },
        ((0, 9),),  # the 5 before it can no longer be a window's highest
        scale_events=((0, 4),),
    ),
    # Old entries are pruned: recommendations outside the windows, events outside the periods.
    "old-entries-pruned": Resume(
        {
            "recommendations": recs((-400, 12), (-300, 11), (-299, 10), (-30, 4)),
            "scaleEvents": evts((-20, 3), (-15, -1), (-14, -2)),
        },
        ((-299, 10), (-30, 4)),
        scale_events=((-14, -2),),
    ),
    # Only what can still be a window's highest is kept (scale-up window 0: no lowest).
    "dominated-recommendations-compacted": Resume(
        {"recommendations": recs((-200, 3), (-150, 8), (-100, 5), (-90, 8), (-60, 6), (-30, 2))},
        ((-90, 8), (-60, 6), (-30, 2)),
    ),
    "scale-up-window-keeps-the-lowest-too": Resume(
        {"recommendations": recs((-100, 5), (-50, 2), (-40, 9), (-20, 6), (-10, 7))},
        # (-100, 5) is outside the 60 s scale-up window and below a later 9 for scale-down.
        ((-50, 2), (-40, 9), (-20, 6), (-10, 7)),
        spec={"behavior": {"scaleUp": {"stabilizationWindowSeconds": 60}}},
    ),
    # A current record with nothing left in reach: an empty memory (nothing holds), not a seed.
    "current-but-nothing-in-reach": Resume(
        {"recommendations": recs((-30, 9)), "scaleEvents": []},
        (),
        spec={"behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}},
        current=9,
    ),
    # A stale record (older than the window and two intervals): seeded like a new object.
    "stale-and-nothing-in-reach": Resume(
        {"recommendations": recs((-400, 9)), "scaleEvents": evts((-400, 2))}, None, current=9
    ),
    "stale-with-events-in-reach-gets-a-seed": Resume(
        {"recommendations": recs((-700, 9)), "scaleEvents": evts((-700, -2))},
        ((0, 6),),
        scale_events=((-700, -2),),
        spec={
            "behavior": {
                "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}
            }
        },
        current=6,
    ),
    # Failures.
    "failures-restored": Resume(
        {"health": {"consecutiveFailures": 4, "status": "Failing"}}, None, failures=4
    ),
    "failures-without-the-status-word": Resume(
        {"health": {"consecutiveFailures": 2}}, None, failures=2
    ),
    "garbled-failures-are-zero": Resume({"health": {"consecutiveFailures": "4"}}, None),
    "negative-failures-are-zero": Resume({"health": {"consecutiveFailures": -1}}, None),
    "boolean-failures-are-zero": Resume({"health": {"consecutiveFailures": True}}, None),
    "health-not-a-mapping": Resume({"health": 3}, None),
    "keda-style-health-keyed-by-metric-is-not-ours": Resume(
        {"health": {"metric": {"numberOfFailures": 3, "status": "Failing"}}}, None
    ),
}


@pytest.mark.parametrize("case", RESUMES.values(), ids=RESUMES.keys())
def test_resume(case: Resume) -> None:
    memory, failures = resume(case.status, make_spec(case.spec), case.now, current=case.current)
    assert failures == case.failures
    if case.recommendations is None:
        assert memory is None
        return
    assert memory is not None
    got = [(round(r.time - NOW, 3), r.replicas) for r in memory.recommendations]
    assert got == [(float(t), r) for t, r in case.recommendations]
    events = [(round(e.time - NOW, 3), e.change) for e in memory.scale_events]
    assert events == [(float(t), c) for t, c in case.scale_events]


def test_memory_status_layout() -> None:
    spec = make_spec()
    memory = Memory(
        recommendations=(Recommendation(NOW - 30, 11), Recommendation(NOW, 4)),
        scale_events=(ScaleEvent(NOW - 40, 2), ScaleEvent(NOW - 10, 4)),
    )
    assert memory_status(memory, 0, NOW, spec) == {
        "health": {"consecutiveFailures": 0, "status": "Happy"},
        "recommendations": [
            {"time": "2023-11-14T22:12:50.000000Z", "replicas": 11},
            {"time": "2023-11-14T22:13:20.000000Z", "replicas": 4},
        ],
        # The +2 is older than every policy period (15 s): it can no longer limit a change.
        "scaleEvents": [{"time": "2023-11-14T22:13:10.000000Z", "change": 4}],
    }
    # Without a memory (no decision yet, or the target unreadable) only health is written.
    assert memory_status(None, 3, NOW, spec) == {
        "health": {"consecutiveFailures": 3, "status": "Failing"}
    }
    # What it writes is what the CRD's status schema declares.
    MemoryStatus.model_validate(memory_status(memory, 1, NOW, spec))


def test_times_round_trip_to_the_microsecond() -> None:
    rng = random.Random(5)
    for _ in range(1000):
        t = NOW + rng.uniform(0, 10**6)
        assert abs(parse_time(rfc3339_micro(t)) - t) <= 1e-6


def test_whole_seconds_would_change_a_decision_microseconds_do_not() -> None:
    """A recommendation 0.4 s past a second is still in the window 300.2 s later; rounded to
    the second it would have left it, and the scale-down would come a sync early."""
    spec = make_spec()
    rec = Recommendation(NOW + 0.4, 9)
    now = NOW + 300.2
    up, down = resolve_behavior(spec.behavior)

    def held(recommendation: Recommendation) -> int:
        return stabilize(now, 9, 3, [recommendation], up, down)

    restored, _ = resume(memory_status(Memory((rec,)), 0, NOW + 0.4, spec), spec, now)
    assert restored is not None
    assert held(restored.recommendations[0]) == held(rec) == 9
    assert held(Recommendation(math.floor(rec.time), 9)) == 3


# ---------------------------------------------------------------------- compaction and caps


def random_memory(rng: random.Random, n: int, span: float) -> Memory:
    times = sorted(NOW - rng.uniform(0, span) for _ in range(n))
    return Memory(
        recommendations=tuple(Recommendation(t, rng.randint(1, 20)) for t in times),
        scale_events=tuple(
            ScaleEvent(t, rng.choice([-3, -2, -1, 1, 2, 4])) for t in times if rng.random() < 0.3
        ),
    )


BEHAVIORS = {
    "defaults": {},
    "both-windows": {
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 120},
            "scaleDown": {"stabilizationWindowSeconds": 600},
        }
    },
    "zero-windows": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
}


@pytest.mark.parametrize("overrides", BEHAVIORS.values(), ids=BEHAVIORS.keys())
def test_compaction_gives_every_later_stabilization_the_same_answer(
    overrides: dict[str, Any],
) -> None:
    """Uncapped, the compacted recommendations answer any stabilize() from now on (with the
    forecast's look-ahead reach too) exactly as the full list does."""
    spec = make_spec(overrides)
    up, down = resolve_behavior(spec.behavior)
    rng = random.Random(7)
    for _ in range(200):
        full = random_memory(rng, rng.randint(0, 25), 900)
        small = compact(full, spec, NOW)
        assert set(small.recommendations) <= set(full.recommendations)
        for _ in range(10):
            later = NOW + rng.uniform(0, 700)
            reach = rng.choice([0.0, rng.uniform(0, 600)])
            cur, want = rng.randint(1, 20), rng.randint(1, 20)
            args = (later, cur, want)
            assert stabilize(*args, small.recommendations, up, down, reach=reach) == stabilize(
                *args, full.recommendations, up, down, reach=reach
            )


def test_compaction_is_idempotent() -> None:
    spec = make_spec(BEHAVIORS["both-windows"])
    rng = random.Random(8)
    for _ in range(100):
        once = compact(random_memory(rng, 30, 900), spec, NOW)
        assert compact(once, spec, NOW) == once


def test_a_long_decline_is_capped_and_never_scales_down_earlier() -> None:
    """A window that saw more distinct counts than the cap: the status stays small, and a
    decision from the capped memory never asks for fewer replicas than the full one."""
    spec = make_spec(
        {
            "maxReplicas": 200,
            "interval": "5s",
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        }
    )
    # 120 syncs 5 s apart, each recommending one replica less: 120 distinct counts.
    full = Memory(
        recommendations=tuple(Recommendation(NOW - 5 * i, 30 + i) for i in range(120)),
        scale_events=tuple(ScaleEvent(NOW - 5 * i, -1 if i % 3 else 2) for i in range(120)),
    )
    status = memory_status(full, 0, NOW, spec)
    assert len(status["recommendations"]) <= 2 * RECOMMENDATION_LIMIT
    assert len(status["scaleEvents"]) <= SCALE_EVENT_LIMIT
    capped, _ = resume(status, spec, NOW)
    assert capped is not None
    # The newest, and the window's highest, are still there.
    assert capped.recommendations[-1] == Recommendation(NOW, 30)
    assert max(r.replicas for r in capped.recommendations) == 30 + 119
    rng = random.Random(9)
    for _ in range(500):
        now = NOW + rng.uniform(0, 650)
        current = rng.randint(1, 200)
        load = rng.uniform(0, 2000)

        def desired(
            memory: Memory, now: float = now, current: int = current, load: float = load
        ) -> int:
            obs = Observation(now=now, current_replicas=current, load=load, memory=memory)
            return decide(spec, obs).desired_replicas

        assert desired(capped) >= desired(full)


def test_many_scale_events_are_capped_on_the_side_of_capacity() -> None:
    spec = make_spec(
        {
            "maxReplicas": 200,
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1800}]},
                "scaleDown": {"policies": [{"type": "Pods", "value": 3, "periodSeconds": 1800}]},
            },
        }
    )
    rng = random.Random(10)
    for _ in range(50):
        full = Memory(
            scale_events=tuple(
                ScaleEvent(NOW - 1700 + 10 * i, rng.choice([-2, -1, 1, 3])) for i in range(170)
            )
        )
        capped = compact(full, spec, NOW)
        assert len(capped.scale_events) <= SCALE_EVENT_LIMIT
        for _ in range(20):
            obs = Observation(
                now=NOW + rng.uniform(0, 200),
                current_replicas=rng.randint(20, 150),
                load=rng.uniform(0, 2000),
            )
            small = decide(spec, replace(obs, memory=capped)).desired_replicas
            assert small >= decide(spec, replace(obs, memory=full)).desired_replicas


def test_all_scale_downs_are_merged_not_dropped() -> None:
    spec = make_spec(
        {
            "behavior": {
                "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}
            }
        }
    )
    full = Memory(scale_events=tuple(ScaleEvent(NOW - 1000 + i, -1) for i in range(100)))
    capped = compact(full, spec, NOW)
    assert len(capped.scale_events) == SCALE_EVENT_LIMIT
    assert sum(e.change for e in capped.scale_events) == -100


# ------------------------------------------------------------------------------------- CRD


def test_the_crd_declares_the_memory_for_kubectl_explain() -> None:
    version = crd()["spec"]["versions"][0]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    health = status["health"]
    assert health["type"] == "object" and "KEDA" in health["description"]
    assert set(health["properties"]) == {"consecutiveFailures", "status"}
    assert health["properties"]["status"]["enum"] == ["Happy", "Failing"]
    for name, keys in (
        ("recommendations", {"time", "replicas"}),
        ("scaleEvents", {"time", "change"}),
    ):
        schema = status[name]
        assert schema["type"] == "array" and schema["description"]
        assert set(schema["items"]["properties"]) == keys
        assert "maxItems" not in schema  # too long a list must never make the API refuse status
    for prop in (
        *health["properties"].values(),
        *status["recommendations"]["items"]["properties"].values(),
        *status["scaleEvents"]["items"]["properties"].values(),
    ):
        assert prop["description"] and "default" not in prop
