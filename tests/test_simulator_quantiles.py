"""Quantile tracks: one forecast run replayed at other provisioned quantiles gives exactly what
separate replays at those quantiles give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.cli import main
from forecastscaler.simulator import simulate
from forecastscaler.simulator.api import make_policies
from forecastscaler.simulator.engine import Replay, replay
from forecastscaler.simulator.forecast_policy import ForecastPolicy, QuantileTrack
from forecastscaler.simulator.world import World


def _world() -> World:
    rng = np.random.default_rng(11)
    n = 1400
    t = np.arange(n)
    values = 300 + 150 * np.sin(2 * np.pi * t / 240) + rng.normal(0, 25, n)
    values[rng.random(n) < 0.01] *= 2.5  # bursts the forecast does not see coming
    # A level that wanders like a random walk: the last value beats the forecast there, so the
    # accuracy gate withdraws trust for a while.
    values[850:1000] = (300 + np.cumsum(rng.normal(0, 40, 150))).clip(10)
    values[1000:1006] = np.nan  # an outage: failed reads, no forecast, fallback counting
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    return World.build("t", pd.Series(values, index=index), 60.0, 30.0, 180.0, 0.5)


def _run(world: World, policies: list[Any]) -> dict[str, tuple[Replay, Any]]:
    out = {}
    try:
        for policy in policies:
            out[policy.name] = (replay(world, policy), policy)
    finally:
        for policy in policies:
            if isinstance(policy, ForecastPolicy):
                policy.close()
    return out


def _actions(rep: Replay) -> list[tuple[float, int, int]]:
    return [(a.time, a.before, a.after) for a in rep.actions]


@pytest.mark.parametrize(
    "models",
    [
        pytest.param(["seasonalBlend"], id="seasonal-blend", marks=pytest.mark.slow),
        # Trust and the anomaly score must not depend on the quantile for the default either.
        pytest.param(["ensemble"], id="ensemble", marks=pytest.mark.slow),
    ],
)
def test_tracks_equal_separate_replays(models: list[str]) -> None:
    world = _world()
    manifest: dict[str, Any] = {"forecast": {"models": models}}
    policies, specs, _ = make_policies(world, ["forecast"], [manifest], quantiles=(0.6, 0.75, 0.9))
    # The policy's own quantile (0.9) is not tracked again.
    assert [p.name for p in policies] == ["forecast", "forecast@p60", "forecast@p75"]
    assert specs["forecast@p60"]["forecast"]["quantile"] == 0.6
    tracked = _run(world, policies)
    for q, name in ((0.6, "forecast@p60"), (0.75, "forecast@p75"), (0.9, "forecast")):
        alone = {"forecast": {"models": models, "quantile": q}}
        [policy], _, _ = make_policies(world, ["forecast"], [alone])
        rep, pol = _run(world, [policy])["forecast"]
        track_rep, track = tracked[name]
        assert _actions(track_rep) == _actions(rep), name
        np.testing.assert_array_equal(track_rep.ready, rep.ready)
        np.testing.assert_array_equal(track_rep.paid, rep.paid)
        pd.testing.assert_frame_equal(track.sync_frame(), pol.sync_frame())
        assert track.forecast_scores(world) == pol.forecast_scores(world)
    # Trust was withdrawn and anomalies flagged in this world, so a quantile dependence in
    # either would have shown...
    frame = tracked["forecast"][1].sync_frame()
    assert (~frame["trusted"]).any() and frame["anomalous"].any()
    # ...and the quantile matters here, so the comparison could fail.
    p60, p90 = tracked["forecast@p60"][0], tracked["forecast"][0]
    assert p60.paid.sum() < p90.paid.sum()


def test_a_track_needs_its_base_replayed_first() -> None:
    world = _world()
    policies, _, _ = make_policies(world, ["forecast"], [{}], quantiles=(0.7,))
    base, track = policies
    assert isinstance(base, ForecastPolicy) and isinstance(track, QuantileTrack)
    with pytest.raises(RuntimeError, match="replay forecast first"):
        replay(world, track)
    base.close()


def _small_trace(tmp_path: Path) -> Path:
    trace = tmp_path / "t.csv"
    rows = "".join(f"{1_700_000_000 + 60 * i},{100 + i % 7}\n" for i in range(300))
    trace.write_text("timestamp,value\n" + rows)
    return trace


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        pytest.param("0.3", "forecast.quantile must be between 0.5 and 0.999", id="too-low"),
        pytest.param("0.6,1.2", "forecast.quantile must be between 0.5 and 0.999", id="too-high"),
        pytest.param("0.6,high", "'high' is not a number", id="not-a-number"),
    ],
)
def test_bad_quantiles_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quantiles: str, message: str
) -> None:
    args = ["simulate", "--trace", str(_small_trace(tmp_path)), "--quantiles", quantiles]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--no-progress"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_python_api_checks_quantiles_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"between 0\.5 and 0\.999"):
        simulate(_small_trace(tmp_path), quantiles=[0.9995])
    result = simulate(_small_trace(tmp_path), policies=["hpa"], quantiles=[0.6])
    assert "quantiles ignored: no forecast policy is replayed" in result.warnings


def test_near_equal_quantiles_are_one_track() -> None:
    world = _world()
    policies, _, _ = make_policies(world, ["forecast"], [{}], quantiles=(0.6, 0.60000001, 0.9))
    assert [p.name for p in policies] == ["forecast", "forecast@p60"]


@pytest.mark.slow
def test_quantiles_in_the_python_api_and_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 500
    load = 300 + 120 * np.sin(2 * np.pi * np.arange(n) / 120) + rng.normal(0, 20, n)
    trace = tmp_path / "t.csv"
    trace.write_text(
        "timestamp,value\n"
        + "".join(f"{1_700_000_000 + 60 * i},{v:.3f}\n" for i, v in enumerate(load))
    )
    result = simulate(trace, scalers=[{"forecast": {"models": ["seasonalBlend"]}}], quantiles=[0.5])
    assert list(result.scores) == ["forecast", "forecast@p50", "hpa", "oracle"]
    assert result.syncs["forecast@p50"]["forecast_value"].notna().any()
    out = tmp_path / "out.json"
    code = main(
        [
            "simulate",
            "--trace",
            str(trace),
            "--no-progress",
            "--quantiles",
            "0.5",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["specs"]["forecast@p50"]["forecast"]["quantile"] == 0.5
    assert data["policies"]["forecast@p50"]["quantile_coverage"] is not None
