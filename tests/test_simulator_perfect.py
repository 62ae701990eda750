"""The `perfect` yardstick: the forecast policy's decisions fed the true future as forecast."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecastscaler.simulator import simulate
from forecastscaler.simulator.api import make_policies
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.perfect import PerfectForecastPolicy
from forecastscaler.simulator.scores import step_frame
from forecastscaler.simulator.world import World


def _world(step: float = 60.0, n: int = 900, period: int = 240) -> World:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    values = 300 + 200 * np.sin(2 * np.pi * t / period) + rng.normal(0, 5, n)
    values[500:504] = np.nan  # an outage: no current load, so no forecast either
    index = pd.date_range("2024-01-01", periods=n, freq=pd.Timedelta(seconds=step), tz="UTC")
    return World.build("t", pd.Series(values, index=index), step, 30.0, 180.0, 0.5)


def _perfect(world: World) -> PerfectForecastPolicy:
    [policy], _, _ = make_policies(world, ["perfect"])
    assert isinstance(policy, PerfectForecastPolicy)
    return policy


@pytest.mark.parametrize("step", [60.0, 300.0, 3600.0], ids=["1m", "5m", "1h"])
def test_the_path_is_the_truth_labelled_like_a_model(step: float) -> None:
    """End labels as the model's history has them: the value at T_{j+1} is step j's load, the
    first value also stands at the end of the last known step, and the path reaches the
    horizon; on a label the horizon reads the step the forecast scores compare it with."""
    world = _world(step)
    policy = _perfect(world)
    horizon = policy.horizon
    for known in (world.first_replayed, world.first_replayed + 7, world.n - 2):
        for offset in (0.0, 30.0, step - 30.0):
            now = world.time(known) + min(offset, step - 1.0)
            path = policy.path(now, known)
            assert path.times[0] == world.time(known)
            assert path.times[-1] >= now + horizon
            assert path.value[0] == path.value[1]
            for i, (t, v) in enumerate(zip(path.times[1:], path.value[1:], strict=True)):
                j = min(known + i, world.n - 1)
                assert t == world.time(known + i + 1)
                assert v == world.load[j] or not math.isfinite(world.load[j])
            assert path.point == path.value == path.lower == path.upper
    now = world.time(world.first_replayed)
    label = now + horizon
    if abs((label - world.t0) / step - round((label - world.t0) / step)) < 1e-9:
        at = policy.path(now, world.first_replayed).at(label)
        j = math.ceil((label - world.t0) / world.step - 1e-9) - 1
        assert at is not None and at[0] == world.load[j]


def _csv(world: World, path: Path) -> Path:
    rows = [
        f"{int(world.t0 + i * world.step)},{v:.6f}"
        if math.isfinite(v)
        else f"{int(world.t0 + i * world.step)},"
        for i, v in enumerate(world.load)
    ]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def test_a_replay_holds_through_an_outage_and_is_never_short_where_the_hpa_is(
    tmp_path: Path,
) -> None:
    world = _world(period=40)  # rises of 10 % a minute: the hpa's lag is short of capacity
    policy = _perfect(world)
    rep = replay(world, policy)
    assert len(rep.actions) > 0
    frame = policy.sync_frame()
    assert set(frame["model"]) == {"perfect"}
    # The outage: a failed read is no forecast, so the syncs hold, then fall back (holding).
    outage = frame[frame["load"].isna()]
    assert len(outage) > 0 and set(outage["reason"]) == {"NoData", "Fallback"}
    assert (outage["desired"] == outage["current"]).all()
    result = simulate(_csv(world, tmp_path / "t.csv"), policies=["perfect", "hpa"])
    assert result.scores["perfect"]["underprovisioned_fraction"] == 0
    assert result.scores["hpa"]["underprovisioned_fraction"] > 0


@pytest.mark.parametrize("step", [300.0, 900.0, 3600.0], ids=["5m", "15m", "1h"])
def test_an_exact_forecast_is_never_short_on_coarse_steps_with_peaks(step: float) -> None:
    """One-step peaks on coarse steps, where the horizon (startup + interval + step) is longer
    than the scale-down window: a scale-down must keep what a peak within the horizon needs,
    since a replica removed now cannot be back before it."""
    world = _world(step, n=600, period=48)
    rng = np.random.default_rng(11)
    load = world.load.copy()
    peaks = rng.choice(np.arange(world.first_replayed, world.n), size=40, replace=False)
    load[peaks] *= 1.6
    load.setflags(write=False)
    world = replace(world, load=load)
    policy = _perfect(world)
    frame = step_frame(world, replay(world, policy))
    scored = frame[frame["scored"]]
    assert not scored["short"].any(), scored[scored["short"]].index[:5]
    held = policy.sync_frame()["held"]
    assert held.dtype == bool and (held.any() or step == 300.0)  # the log says when it held


@pytest.mark.slow
def test_perfect_runs_each_manifest_as_the_forecast_policy_does(tmp_path: Path) -> None:
    trace = _csv(_world(), tmp_path / "t.csv")
    one = simulate(
        trace,
        policies=["forecast", "perfect"],
        scalers=[{"forecast": {"models": ["seasonalBlend"]}}],
    )
    assert one.specs["perfect"] == one.specs["forecast"]
    assert "perfect" in one.syncs and "forecast_mae" not in one.scores["perfect"]
    two = simulate(
        trace,
        policies=["perfect"],
        scalers=[{"forecast": {"quantile": 0.6}}, {"forecast": {"quantile": 0.95}}],
    )
    assert set(two.scores) == {"perfect:1", "perfect:2"}
    assert two.specs["perfect:2"]["forecast"]["quantile"] == 0.95


def test_yardsticks_are_not_replayed_unless_asked(tmp_path: Path) -> None:
    trace = _csv(_world(), tmp_path / "t.csv")
    assert not {"perfect", "target-oracle"} & set(simulate(trace, policies=["hpa"]).scores)
    with pytest.raises(ValueError, match="known: forecast, hpa, oracle, perfect, target-oracle"):
        simulate(trace, policies=["hpa", "magic"])


def test_target_oracle_is_the_oracle_at_the_hpas_target(tmp_path: Path) -> None:
    """Perfect foresight that never runs a replica above the hpa's target (80 % of capacity):
    never short, at most the target's utilisation, and dearer than the oracle by about 1/0.8
    (whole replicas round both up, so not exactly)."""
    trace = _csv(_world(), tmp_path / "t.csv")
    result = simulate(trace, policies=["hpa", "target-oracle"], capacity=30.0)
    s = result.scores["target-oracle"]
    assert s["underprovisioned_fraction"] == 0
    assert s["mean_utilisation"] <= 0.8
    assert 1.15 < s["cost_vs_oracle"] < 1.4
    frame = result.frames["target-oracle"]
    scored = frame[frame["scored"] & frame["load"].notna()]
    assert (scored["ready"] * 24.0 >= scored["load"] - 1e-9).all()


def test_a_coarser_forecast_step_samples_its_grid_as_the_range_query_does() -> None:
    """forecast.step 5m on a 1-minute trace: the model's history holds the labels that are
    multiples of 5 minutes, so the path starts at the last of them and steps by 5 minutes."""
    world = _world()
    [policy], _, _ = make_policies(world, ["perfect"], [{"forecast": {"step": "5m"}}])
    assert isinstance(policy, PerfectForecastPolicy)
    for known in range(world.first_replayed, world.first_replayed + 12):
        now = world.time(known) + 30.0
        path = policy.path(now, known)
        end = path.times[0]
        assert end % 300 == 0 and end <= world.time(known) < end + 300
        assert all(b - a == 300 for a, b in zip(path.times, path.times[1:], strict=False))
        assert path.times[-1] >= now + policy.horizon  # with a step to spare, as a model's
        for t, v in zip(path.times[1:], path.value[1:], strict=True):
            j = round((t - world.t0) / world.step) - 1
            assert v == world.load[j] or not math.isfinite(world.load[j])


def _shaped(kind: str, step: float, n: int = 720) -> pd.Series:
    """Short synthetic loads whose shape is what `kind` says."""
    rng = np.random.default_rng(7)
    t = np.arange(n, dtype=np.float64)
    base = 200 + 100 * np.sin(2 * np.pi * t / 180)
    if kind == "one-step-peaks":
        base[rng.choice(np.arange(n // 2, n), size=30, replace=False)] *= 3.0
    elif kind == "slow-ramps":
        base = 50 + 400 * np.abs(((t / 240) % 2) - 1)
    elif kind == "jumps-beyond-the-rate-limit":
        base = np.where((t // 37) % 2 == 0, 40.0, 900.0)
    elif kind == "poisson-counts":
        base = rng.poisson(np.maximum(base, 1.0)).astype(np.float64)
    index = pd.date_range("2024-01-01", periods=n, freq=pd.Timedelta(seconds=step), tz="UTC")
    return pd.Series(base, index=index)


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        pytest.param("one-step-peaks", 60.0, id="one-step-peaks-1m"),
        pytest.param("one-step-peaks", 900.0, id="one-step-peaks-15m"),
        pytest.param("slow-ramps", 60.0, id="slow-ramps-1m"),
        pytest.param("jumps-beyond-the-rate-limit", 60.0, id="jumps-x22-1m"),
        pytest.param("jumps-beyond-the-rate-limit", 3600.0, id="jumps-x22-1h"),
        pytest.param("poisson-counts", 30.0, id="poisson-30s"),
    ],
)
def test_an_exact_forecast_at_capacity_is_never_short_and_near_the_oracle(
    kind: str, step: float
) -> None:
    """Issue 13's rule check: fed the exact future, the decision provisions the peak of the
    window each sync serves at capacity, starts jumps early enough for the rate limits, and so
    is never short, at most 5 % above the cheapest schedule that is never short."""
    from forecastscaler.simulator.oracle import OraclePolicy
    from forecastscaler.simulator.scores import score

    world = World.build(kind, _shaped(kind, step), step, 10.0, 180.0, 0.5)
    oracle = score(world, replay(world, OraclePolicy(world)))
    policy = _perfect(world)
    assert policy.spec.metric.capacity_per_replica == world.capacity
    got = score(world, replay(world, policy), oracle["replica_hours"])
    assert got["short_steps"] == 0
    assert got["cost_vs_oracle"] <= 1.05, got
