"""World mechanics and scoring on tiny hand-computed cases, and the oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from forecastscaler.simulator.engine import Replay, replay
from forecastscaler.simulator.oracle import OraclePolicy, oracle_plan
from forecastscaler.simulator.scores import score, step_frame
from forecastscaler.simulator.world import PastView, PodPool, World


def _world(
    load: list[float],
    step: float = 60,
    startup: float = 120,
    warmup: float = 0.5,
    capacity: float = 10,
    lead_in: float = 0,
) -> World:
    index = pd.date_range(
        "2024-01-01", periods=len(load), freq=pd.Timedelta(seconds=step), tz="UTC"
    )
    return World.build(
        "t",
        pd.Series(load, index=index, dtype="float64"),
        step,
        capacity,
        startup,
        warmup,
        lead_in=lead_in,
    )


@dataclass
class Scripted:
    """A policy that asks for given counts at given offsets from the first replayed step."""

    plan: dict[float, int]
    start: int
    name: str = "scripted"
    seen: list[tuple[float, int]] = field(default_factory=list)

    def tick_times(self, world: World) -> np.ndarray:
        return np.array(sorted(world.start_time + t for t in self.plan))

    def initial_replicas(self, world: World) -> int:
        return self.start

    def decide(self, now: float, past: PastView, current: int) -> int:
        self.seen.append((now, past.completed))
        return self.plan[round(now - self._origin)]

    _origin: float = 0.0


def _run(world: World, plan: dict[float, int], start: int) -> tuple[pd.DataFrame, Scripted]:
    policy = Scripted(plan, start)
    policy._origin = world.start_time
    rep = replay(world, policy)
    return step_frame(world, rep), policy


def test_pool_startup_delay_and_immediate_newest_first_removal() -> None:
    pool = PodPool(startup=100, ready=2)
    pool.scale_to(10, 5)  # three start, ready at 110
    assert (pool.total, pool.ready(109), pool.ready(110)) == (5, 2, 5)
    pool.scale_to(50, 3)  # the two newest (still starting) go first
    assert (pool.total, pool.ready(50), pool.ready(110)) == (3, 2, 3)
    pool.scale_to(60, 1)  # then a ready one
    assert (pool.total, pool.ready(60), pool.ready(200)) == (1, 1, 1)


def test_scale_up_counts_from_the_first_step_that_starts_after_startup() -> None:
    # Steps of 60 s, startup 120 s; at +30 s of the first replayed step ask 1 → 3.
    world = _world([10.0] * 4 + [25.0] * 6, lead_in=0, warmup=0.4)
    frame, _ = _run(world, {30: 3}, start=1)
    # Asked at T+30, ready at T+150: in the middle of the third replayed step (not counted),
    # so the first step with 3 ready is the fourth.
    assert frame["ready"].tolist() == [1, 1, 1, 3, 3, 3]
    assert frame["paid"].tolist()[:2] == [1 + 2 * 30 / 60, 3]


def test_removal_is_immediate_and_counts_for_the_whole_step() -> None:
    world = _world([5.0] * 4 + [15.0] * 6, warmup=0.4)
    frame, _ = _run(world, {90: 1}, start=2)
    # Removed at +90 s (the middle of the second step): that step is already short.
    assert frame["ready"].tolist() == [2, 1, 1, 1, 1, 1]
    assert frame["short"].tolist() == [False, True, True, True, True, True]
    assert frame["shortfall"].tolist()[1] == pytest.approx(5.0)


def test_scores_hand_computed() -> None:
    # Scored steps 2..5 with loads 10, 30, 10, 10; capacity 10; 2 replicas throughout.
    world = _world([10, 10, 10, 30, 10, 10], warmup=0.34, lead_in=120)
    assert world.first_scored == 2 and world.first_replayed == 1
    policy = Scripted({}, 2)
    rep = replay(world, policy)
    s = score(world, rep, oracle_hours=None)
    assert s["underprovisioned_fraction"] == pytest.approx(1 / 4)
    assert s["unmet_fraction"] == pytest.approx(10 / 60)
    assert s["replica_hours"] == pytest.approx(2 * 4 * 60 / 3600)
    assert s["mean_utilisation"] == pytest.approx((10 + 20 + 10 + 10) / 80)
    assert s["scaling_actions"] == 0


def test_decisions_see_only_completed_steps() -> None:
    world = _world([1.0] * 10, warmup=0.5, lead_in=0)
    _, policy = _run(world, {0: 1, 59: 1, 60: 1}, start=1)
    assert [k for _, k in policy.seen] == [5, 5, 6]


def test_gap_steps_are_not_scored_for_shortage_but_paid() -> None:
    world = _world([10, 10, 10, math.nan, 30, 10], warmup=0.34, lead_in=0)
    rep = replay(world, Scripted({}, 1))
    s = score(world, rep)
    assert s["underprovisioned_fraction"] == pytest.approx(1 / 3)
    assert s["replica_hours"] == pytest.approx(4 * 60 / 3600)


@pytest.mark.parametrize(
    ("step", "startup", "seed"),
    [
        pytest.param(60, 180, 0, id="1m-step-3m-startup"),
        pytest.param(30, 180, 1, id="30s-step"),
        pytest.param(300, 300, 2, id="startup-one-step"),
        pytest.param(60, 150, 3, id="startup-not-a-multiple"),
        pytest.param(60, 180, 4, id="gappy"),
    ],
)
def test_oracle_is_never_short_and_minimal(step: float, startup: float, seed: int) -> None:
    _check_oracle(step, startup, seed, per_replica=None)


@pytest.mark.parametrize(
    ("step", "startup", "seed"),
    [
        pytest.param(60, 180, 0, id="1m-step-3m-startup"),
        pytest.param(300, 300, 2, id="startup-one-step"),
        pytest.param(60, 180, 4, id="gappy"),
    ],
)
def test_target_oracle_never_runs_a_replica_above_the_target(
    step: float, startup: float, seed: int
) -> None:
    """The same schedule with each replica serving the target (8 of capacity 10): ready
    replicas times the target cover every step's load, and it pays for no more."""
    world, rep = _check_oracle(step, startup, seed, per_replica=8.0)
    frame = step_frame(world, rep)
    scored = frame[frame["scored"] & frame["load"].notna()]
    assert (scored["ready"] * 8.0 >= scored["load"] - 1e-9).all()
    assert (scored["ready"] * 8.0 < scored["load"] + 8.0).any()  # tight somewhere
    assert (
        score(world, rep)["replica_hours"]
        > score(world, replay(world, OraclePolicy(world)))["replica_hours"]
    )


@pytest.mark.parametrize("per_replica", [0.0, -1.0, 10.5])
def test_target_oracle_refuses_a_target_outside_the_capacity(per_replica: float) -> None:
    world = _world([50.0] * 20, step=60, startup=180, capacity=10)
    with pytest.raises(ValueError, match="per_replica must be in"):
        OraclePolicy(world, per_replica=per_replica)


def _check_oracle(
    step: float, startup: float, seed: int, per_replica: float | None
) -> tuple[World, Replay]:
    rng = np.random.default_rng(seed)
    load = np.abs(rng.normal(50, 25, 400)) * (1 + (rng.random(400) < 0.05) * 3)
    if seed == 4:
        load[rng.random(400) < 0.1] = np.nan
    world = _world(load.tolist(), step=step, startup=startup, capacity=10)
    policy = OraclePolicy(world, per_replica=per_replica)
    rep = replay(world, policy)
    frame = step_frame(world, rep)
    assert not frame["short"].any()
    # Minimal: at every decision it pays for exactly what some instant within the next
    # `startup` needs (a replica ready then must exist now), never more.
    per = per_replica or 10
    times = policy.tick_times(world)
    plan = oracle_plan(world, times, per_replica)
    filled = np.where(np.isfinite(world.load), world.load, 0.0)
    for t, asked in zip(times, plan, strict=True):
        lo = int((t - world.t0) // step)
        hi = min(world.n - 1, int((t + world.startup - world.t0) // step))
        need = max(1, math.ceil(filled[lo : hi + 1].max() / per - 1e-9))
        assert asked == need
    assert score(world, rep)["cost_vs_oracle"] is None
    return world, rep
