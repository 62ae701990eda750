"""Accuracy-gated trust: scoring past forecasts at the horizon against the last-value forecast,
in virtual time, and the gate's effect on the decision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import ForecastPath, Observation, Reason, decide
from forecastscaler.core.trust import (
    AccuracyTracker,
    judge,
    new_tracker,
    remember_forecast,
)

HORIZON = 300.0
INTERVAL = 30.0


def spec(**trust: object) -> ForecastScalerSpec:
    return ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 100,
            "metric": {"query": "load", "targetPerReplica": 10},
            "forecast": {"horizon": "5m", "trust": {"window": "1h", "minSamples": 10, **trust}},
            "interval": "30s",
        }
    )


def replay(
    load: Callable[[float], float],
    forecast: Callable[[float], float],
    seconds: float,
    s: ForecastScalerSpec | None = None,
) -> tuple[AccuracyTracker, list[bool]]:
    """Sync every interval: judge, then record the forecast made now for now + horizon."""
    s = s or spec()
    tracker = new_tracker(s)
    verdicts = []
    t = 0.0
    while t <= seconds:
        verdicts.append(judge(tracker, s, t, load(t)))
        f = forecast(t)
        tracker.record(t + HORIZON, (f * 1.2, f, f * 0.8, f * 1.2), load(t))
        t += INTERVAL
    return tracker, verdicts


def ramp(t: float) -> float:
    return 100.0 + t / 10.0  # +30 per horizon


@dataclass(frozen=True)
class Case:
    id: str
    forecast: Callable[[float], float]
    trusted_at_end: bool
    relative_below_one: bool


CASES = [
    Case("perfect foresight", lambda t: ramp(t + HORIZON), True, True),
    Case(
        "a little noise on foresight",
        lambda t: ramp(t + HORIZON) + (3 if t % 60 else -3),
        True,
        True,
    ),
    Case("forecast lags the ramp", lambda t: ramp(t - HORIZON), False, False),
    Case("wildly wrong", lambda t: 10.0 * ramp(t), False, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_trust_follows_the_error_against_last_value(case: Case) -> None:
    tracker, verdicts = replay(ramp, case.forecast, 3600)
    acc = tracker.accuracy()
    assert acc.samples >= 10
    assert acc.relative_error is not None
    assert (acc.relative_error < 1.0) == case.relative_below_one
    assert verdicts[-1] is case.trusted_at_end


def test_trusted_until_enough_forecasts_are_scored() -> None:
    _, verdicts = replay(ramp, lambda t: 10.0 * ramp(t), 600)
    # 600 s: forecasts settle from 300 s on, one per 30 s: 10 by 570 s, judged from then.
    assert all(verdicts[: int(560 / INTERVAL)])
    assert verdicts[-1] is False


def test_trust_is_earned_back_with_hysteresis() -> None:
    def forecast(t: float) -> float:
        return 10.0 * ramp(t) if t < 1800 else ramp(t + HORIZON)

    _, verdicts = replay(ramp, forecast, 3 * 3600)
    times = [i * INTERVAL for i in range(len(verdicts))]
    lost = next(t for t, v in zip(times, verdicts, strict=True) if not v)
    back = next(t for t, v in zip(times, verdicts, strict=True) if t > lost and v)
    assert lost < 1800 + HORIZON
    # The bad forecasts must leave the one-hour window (mostly) before trust returns.
    assert back > 1800 + HORIZON
    assert verdicts[-1] is True


def test_gaps_are_never_scored_as_zero_load() -> None:
    s = spec()
    tracker = new_tracker(s)
    tracker.record(300.0, (12.0, 10.0, 8.0, 12.0), 10.0)
    judge(tracker, s, 300.0, None)  # the load is missing when the forecast comes due
    judge(tracker, s, 330.0, 10.0)  # and a later load is too late for it
    assert tracker.accuracy().samples == 0
    assert not tracker.pending


def test_coverage_counts_loads_under_the_quantile_and_inside_the_interval() -> None:
    s = spec()
    tracker = new_tracker(s)
    for i, load in enumerate([5.0, 9.0, 11.0, 13.0]):
        tracker.record(300.0 + 30 * i, (12.0, 10.0, 8.0, 12.0), 10.0)
        judge(tracker, s, 300.0 + 30 * i, load)
    acc = tracker.accuracy()
    assert acc.samples == 4
    assert acc.coverage == pytest.approx(3 / 4)  # 5, 9, 11 ≤ 12
    assert acc.interval_coverage == pytest.approx(2 / 4)  # 9, 11 in [8, 12]
    assert acc.forecast_mae == pytest.approx((5 + 1 + 1 + 3) / 4)
    assert acc.naive_mae == acc.forecast_mae  # the last value was 10 too


def test_disabled_gate_always_trusts() -> None:
    s = spec(enabled=False)
    _, verdicts = replay(ramp, lambda t: 10.0 * ramp(t), 3600, s)
    assert all(verdicts)


def test_untrusted_forecast_leaves_the_decision_to_the_current_load() -> None:
    s = spec()
    path = ForecastPath(
        times=(0.0, 600.0),
        value=(500.0, 500.0),
        point=(450.0, 450.0),
        lower=(400.0, 400.0),
        upper=(500.0, 500.0),
        quantile=0.9,
        model="m",
    )
    base = Observation(now=0.0, current_replicas=10, load=100.0, forecast=path)
    trusted = decide(s, base)
    untrusted = decide(
        s,
        Observation(
            now=0.0, current_replicas=10, load=100.0, forecast=path, forecast_trusted=False
        ),
    )
    assert trusted.forecast_replicas == 50  # p90 500 / 10 per replica (then rate-limited)
    assert trusted.desired_replicas > 10
    assert untrusted.forecast_replicas is None
    assert untrusted.reason == Reason.REACTIVE
    assert untrusted.desired_replicas == 10
    assert "forecast not trusted" in untrusted.message
    # The untrusted forecast is still recorded, so it can earn trust back.
    tracker = new_tracker(s)
    remember_forecast(tracker, s, 0.0, untrusted)
    assert len(tracker.pending) == 1
    assert tracker.pending[0].naive == 100.0
