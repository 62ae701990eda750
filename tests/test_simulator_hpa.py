"""The HPA baseline against the Kubernetes documentation's worked examples
(https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/), and against the
operator's decision core with no forecast."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.core.api import Behavior, ForecastScalerSpec
from forecastscaler.core.behavior import replicas_for_average_value
from forecastscaler.core.decision import Observation, decide, initial_memory, remember
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.hpa import Hpa, HpaPolicy, hpa_curve, hpa_name
from forecastscaler.simulator.world import World


@pytest.mark.parametrize(
    ("load", "current", "expected"),
    [
        # "if the current metric value is 200m, and the desired value is 100m, the number of
        # replicas will be doubled"
        pytest.param(200 * 4, 4, 8, id="doc-ratio-2-doubles"),
        # "If the current value is instead 50m, you'll halve the number of replicas"
        pytest.param(50 * 4, 4, 2, id="doc-ratio-0.5-halves"),
        # "skips any scaling action if the ratio is sufficiently close to 1.0 (tolerance 0.1)"
        pytest.param(109 * 4, 4, 4, id="doc-within-tolerance-up"),
        pytest.param(91 * 4, 4, 4, id="doc-within-tolerance-down"),
        pytest.param(111 * 4, 4, 5, id="just-outside-tolerance-rounds-up"),
        pytest.param(0.0, 4, 0, id="no-load"),
    ],
)
def test_replica_calculation_average_value(load: float, current: int, expected: int) -> None:
    assert replicas_for_average_value(load, 100.0, current, 0.1) == expected


def _sync_series(hpa: Hpa, loads: list[float], current: int, period: float = 15.0) -> list[int]:
    out = []
    for i, load in enumerate(loads):
        current = hpa.sync(i * period, current, load)
        out.append(current)
    return out


def test_default_scale_up_cadence_every_15s() -> None:
    # Default scaleUp: max(100%, 4 pods) per 15 s, no window: 1 → 5 → 10 → 20 → 40 → 50.
    hpa = Hpa(target=100.0, max_replicas=100)
    assert _sync_series(hpa, [5000.0] * 6, 1) == [5, 10, 20, 40, 50, 50]


def test_default_scale_down_waits_for_the_300s_window() -> None:
    hpa = Hpa(target=100.0, max_replicas=100)
    loads = [1000.0] + [100.0] * 25  # needs 10, then 1
    replicas = _sync_series(hpa, loads, 10)
    # Recommendations of 10 from t=-0 (seed) and t=0 stay in the window until t > 300.
    assert replicas[:20] == [10] * 20
    assert replicas[21] == 1  # t = 315: the window holds only recommendations of 1


def test_doc_scale_down_policies_80_replicas() -> None:
    # "scaleDown: policies Pods 4 / 60s and Percent 10 / 60s": 80 → 72 (10%), then 72 → 64
    # (7.2 rounded up to 8), ... below 40 the Pods policy allows 4.
    behavior = Behavior.model_validate(
        {
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                ],
            }
        }
    )
    hpa = Hpa(target=100.0, max_replicas=100, behavior=behavior)
    replicas = _sync_series(hpa, [1000.0] * 12, 80, period=60.0)
    assert replicas[:3] == [72, 64, 57]
    assert [replicas[i] - replicas[i + 1] for i in range(7, 10)] == [4, 4, 4]


def test_doc_disable_scale_down() -> None:
    behavior = Behavior.model_validate({"scaleDown": {"selectPolicy": "Disabled"}})
    hpa = Hpa(target=100.0, behavior=behavior)
    assert _sync_series(hpa, [100.0] * 30, 10) == [10] * 30


def test_doc_limit_scale_up_to_pods_per_minute() -> None:
    behavior = Behavior.model_validate(
        {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]}}
    )
    hpa = Hpa(target=100.0, max_replicas=100, behavior=behavior)
    replicas = _sync_series(hpa, [3000.0] * 9, 2)
    assert replicas == [6, 6, 6, 6, 10, 10, 10, 10, 14]


def test_missing_metric_holds_and_remembers_nothing() -> None:
    hpa = Hpa(target=100.0)
    assert hpa.sync(0.0, 5, None) == 5
    assert [r.replicas for r in hpa.recommendations] == [5]


def test_step_load_in_the_world_follows_the_15s_cadence() -> None:
    # A 1-minute trace stepping from 100 to 5000 at target 100: the HPA sees it a step late
    # and then scales 1 → 5 → 10 → 20 → 40 → 50 in four 15 s syncs.
    load = [100.0] * 10 + [5000.0] * 10
    index = pd.date_range("2024-01-01", periods=20, freq="1min", tz="UTC")
    world = World.build("step", pd.Series(load, index=index), 60, 125.0, 180, 0.5, lead_in=0)
    rep = replay(world, HpaPolicy(world, max_replicas=100))
    after = [a.after for a in rep.actions]
    assert after[:5] == [5, 10, 20, 40, 50]
    times = [a.time - world.time(11) for a in rep.actions[:5]]
    assert times == [0, 15, 30, 45, 60]


def test_hpa_is_decide_without_forecast() -> None:
    """The HPA module and the decision core agree sync by sync on a random load with data at
    every sync. (On syncs without data they differ on purpose: the HPA forgets, the core
    remembers a hold so a long outage cannot release a scale-down; see the next test.)"""
    rng = np.random.default_rng(7)
    spec = ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "minReplicas": 1,
            "maxReplicas": 60,
            "metric": {"query": "q", "targetPerReplica": 100},
            "anomaly": {"enabled": False},
        }
    )
    hpa = Hpa(target=100.0, min_replicas=1, max_replicas=60)
    cur_a = cur_b = 3
    memory = initial_memory(0.0, cur_b)
    for i in range(2000):
        now = 15.0 * i
        load = float(rng.gamma(2.0, 800.0))
        cur_a = hpa.sync(now, cur_a, load)
        d = decide(spec, Observation(now=now, current_replicas=cur_b, load=load, memory=memory))
        memory = remember(spec, memory, d, now, d.changes_scale)
        cur_b = d.desired_replicas
        assert cur_a == cur_b, f"sync {i}"


def test_missing_data_holds_in_both_but_only_the_core_remembers_it() -> None:
    spec = ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "maxReplicas": 60,
            "metric": {"query": "q", "targetPerReplica": 100},
        }
    )
    hpa = Hpa(target=100.0, min_replicas=1, max_replicas=60)
    memory = initial_memory(0.0, 10)
    assert hpa.sync(0.0, 10, 1000.0) == 10
    for i in range(1, 41):  # ten minutes without data
        now = 15.0 * i
        assert hpa.sync(now, 10, None) == 10
        d = decide(spec, Observation(now=now, current_replicas=10, load=None, memory=memory))
        assert d.desired_replicas == 10
        memory = remember(spec, memory, d, now, False)
    back = 15.0 * 41
    assert hpa.sync(back, 10, 100.0) == 1, "the HPA's window emptied during the outage"
    d = decide(spec, Observation(now=back, current_replicas=10, load=100.0, memory=memory))
    assert d.desired_replicas == 10, "the core still holds"


def _world_for_targets() -> World:
    index = pd.date_range("2024-01-01", periods=120, freq="1min", tz="UTC")
    return World.build("t", pd.Series(np.full(120, 400.0), index=index), 60.0, 100.0, 60.0, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "target", "name"),
    [
        pytest.param({}, 80.0, "hpa", id="default-world-target"),
        pytest.param({"utilisation": 0.6}, 60.0, "hpa", id="utilisation-share"),
        pytest.param({"target": 55.0, "name": "mine"}, 55.0, "mine", id="per-replica-load"),
    ],
)
def test_hpa_policy_target(kwargs: dict[str, Any], target: float, name: str) -> None:
    world = _world_for_targets()
    policy = HpaPolicy(world, **kwargs)
    assert (policy.target, policy.hpa.target, policy.name) == (target, target, name)
    # Steady load 400: the HPA settles on ceil(400 / target) replicas.
    assert replay(world, policy).ready[-1] == math.ceil(400 / target)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"target": 50.0, "utilisation": 0.5}, id="both"),
        pytest.param({"utilisation": 0.0}, id="zero"),
        pytest.param({"target": float("nan")}, id="nan"),
    ],
)
def test_hpa_policy_refuses_a_bad_target(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="target"):
        HpaPolicy(_world_for_targets(), **kwargs)


def test_hpa_curve_names_each_share_once() -> None:
    world = _world_for_targets()
    curve = hpa_curve(world, (0.5, 0.825, 0.5), 1, 20)
    assert [(p.name, p.target) for p in curve] == [("hpa@50", 50.0), ("hpa@82.5", 82.5)]
    assert hpa_name(0.95) == "hpa@95"
    assert all(p.hpa.max_replicas == 20 for p in curve)
