"""`forecastscaler simulate` end to end on a small generated trace, its JSON and its plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forecastscaler.cli import main
from forecastscaler.core.traces import load_trace
from forecastscaler.simulator import simulate
from forecastscaler.simulator.api import build_world, make_policies, resolve_capacity
from forecastscaler.simulator.hpa import HpaPolicy
from forecastscaler.simulator.scalers import ScalerError, build_spec

POLICY_KEYS = {
    "underprovisioned_fraction",
    "unmet_fraction",
    "replica_hours",
    "cost_vs_oracle",
    "scaling_actions",
    "mean_utilisation",
}


@pytest.fixture
def trace_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 600
    t = np.arange(n)
    load = 300 + 150 * np.sin(2 * np.pi * t / 180) + rng.normal(0, 20, n)
    rows = [f"{1_700_000_000 + 60 * i},{v:.3f}" for i, v in enumerate(load)]
    rows[100] = f"{1_700_000_000 + 6000},"  # a gap
    path = tmp_path / "small.csv"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_simulate_command_end_to_end(
    trace_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    scaler = tmp_path / "fsc.yaml"
    scaler.write_text(
        "apiVersion: forecastscaler.io/v1alpha1\nkind: ForecastScaler\nmetadata: {name: web}\n"
        "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
        "  maxReplicas: 40\n  metric: {query: q, targetPerReplica: 24}\n"
        "  forecast: {quantile: 0.95}\n"
    )
    code = main(
        [
            "simulate",
            "--trace",
            str(trace_csv),
            "--scaler",
            str(scaler),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for name in ("forecast", "hpa", "oracle"):
        assert name in text
    # The manifest's targetPerReplica 24 sets the capacity (24 / 0.8), so the hpa targets 24.
    assert "note: capacity 30 per replica: the manifest's targetPerReplica 24" in text
    data = json.loads(out_json.read_text())
    assert data["capacity"] == pytest.approx(30) and data["target_per_replica"] == pytest.approx(24)
    assert data["notes"] and data["warnings"] == ["1 missing step(s) carried as gaps"]
    assert {"trace", "step_seconds", "scored_steps"} <= set(data)
    assert data["trace"] == "small" and data["step_seconds"] == 60 and data["scored_steps"] == 300
    assert set(data["policies"]) == {"forecast", "hpa", "oracle"}
    for figures in data["policies"].values():
        assert set(figures) >= POLICY_KEYS
    assert data["policies"]["oracle"]["underprovisioned_fraction"] == 0
    assert data["policies"]["oracle"]["cost_vs_oracle"] == 1
    assert data["specs"]["forecast"]["forecast"]["quantile"] == 0.95
    assert data["specs"]["forecast"]["forecast"]["step"] == "1m"
    png = out_png.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--policies", "hpa,magic"], "unknown policies", id="unknown-policy"),
        pytest.param(["--warmup", "150%"], "warmup", id="bad-warmup"),
        pytest.param(["--column", "nope"], "no 'nope' column", id="bad-column"),
    ],
)
def test_simulate_command_errors(
    trace_csv: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["simulate", "--trace", str(trace_csv), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err


def test_unparseable_trace_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n" + "".join(f"{i},x\n" for i in range(20)))
    assert main(["simulate", "--trace", str(bad), "--no-progress"]) == 2
    assert "is not a number" in capsys.readouterr().err


def test_python_api_frames_and_scores(trace_csv: Path) -> None:
    result = simulate(trace_csv, policies=["hpa", "oracle"])
    assert set(result.frames) == {"hpa", "oracle"}
    frame = result.frames["hpa"]
    assert {"load", "ready", "paid", "capacity", "short", "shortfall", "scored"} <= set(
        frame.columns
    )
    assert int(frame["scored"].sum()) == result.scored_steps
    assert result.scores["oracle"]["underprovisioned_fraction"] == 0
    assert len(result.actions("hpa")) > 0


def _manifest(target: float | None = None, **spec: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {"query": "q"}
    if target is not None:
        metric["targetPerReplica"] = target
    return {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "metric": metric, **spec}


# The small trace's median is about 300, so the default capacity is about 30 (target 24).
CAPACITY_CASES = {
    "no-manifest-median-over-ten": (None, [], None, None, []),
    "manifest-without-target": (None, [_manifest()], None, None, []),
    "manifest-target-sets-capacity": (None, [_manifest(100)], 125.0, "targetPerReplica 100", []),
    "agreeing-manifests": (None, [_manifest(40), _manifest(40.0)], 50.0, "at 80%", []),
    "disagreeing-manifests-keep-the-default": (
        None,
        [_manifest(20), _manifest(90)],
        None,
        None,
        ["forecast:1: targetPerReplica 20 is not", "forecast:2: targetPerReplica 90 is not"],
    ),
    "capacity-given-wins-and-warns": (
        50.0,
        [_manifest(100)],
        50.0,
        None,
        ["forecast: targetPerReplica 100 is not the hpa's target 40 (80% of capacity 50)"],
    ),
    "capacity-given-agrees": (125.0, [_manifest(100)], 125.0, None, []),
}


@pytest.mark.parametrize("name", list(CAPACITY_CASES))
def test_capacity_follows_the_manifest_target(trace_csv: Path, name: str) -> None:
    """One file, two uses: a manifest's targetPerReplica is what a replica serves at the 80 %
    target, so without --capacity the world (and with it the hpa's target) follows it."""
    given, scalers, capacity, note, warned = CAPACITY_CASES[name]
    trace = load_trace(trace_csv)
    got, got_note = resolve_capacity(trace, given, scalers)
    if capacity is None:
        median = float(np.nanmedian(trace.load.to_numpy()))
        assert got == pytest.approx(median / 10)
    else:
        assert got == pytest.approx(capacity)
    assert (got_note is None) == (note is None), got_note
    if note is not None:
        assert note in str(got_note)
    world = build_world(trace, got)
    _, _, warnings = make_policies(world, ["forecast", "hpa"], scalers)
    assert len(warnings) == len(warned), warnings
    for expected, warning in zip(warned, warnings, strict=True):
        assert expected in warning, warning
    # Without the hpa there is no target to differ from.
    assert make_policies(world, ["forecast", "oracle"], scalers)[2] == []


@pytest.mark.parametrize(
    ("scalers", "bounds"),
    [
        pytest.param([], None, id="defaults"),
        pytest.param([_manifest(24, minReplicas=2, maxReplicas=12)], (2, 12), id="manifest"),
        pytest.param(
            [_manifest(24, maxReplicas=12), _manifest(24, maxReplicas=12, minReplicas=1)],
            (1, 12),
            id="agreeing",
        ),
        pytest.param(
            [_manifest(24, maxReplicas=12), _manifest(24, maxReplicas=30)], None, id="disagreeing"
        ),
    ],
)
def test_hpa_takes_the_manifests_bounds(
    trace_csv: Path, scalers: list[dict[str, Any]], bounds: tuple[int, int] | None
) -> None:
    world = build_world(load_trace(trace_csv))
    for policies in (["forecast", "hpa"], ["hpa"]):
        chosen, _, _ = make_policies(world, policies, scalers)
        [hpa] = [p for p in chosen if isinstance(p, HpaPolicy)]
        default = make_policies(world, ["hpa"])[0][0]
        assert isinstance(default, HpaPolicy)
        want = bounds or (default.hpa.min_replicas, default.hpa.max_replicas)
        assert (hpa.hpa.min_replicas, hpa.hpa.max_replicas) == want


UNGUARDED = """
import json, sys
from forecastscaler.simulator import simulate

# No `if __name__ == "__main__":` guard: a spawned fitting worker imports this file.
spec = json.loads(sys.argv[2])
result = simulate(sys.argv[1], policies=["forecast"], scalers=[spec], fit_workers=1)
print("RESULT", json.dumps([result.scores["forecast"]["replica_hours"], result.warnings]))
"""


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_replayed_once(trace_csv: Path, tmp_path: Path) -> None:
    """A worker importing the script must not replay the whole simulation again (which ran
    it twice and made the caller wait for the copy); the replay fits in place and says why,
    with the same figures as fitting in place from the start."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    spec = {"forecast": {"models": ["seasonalBlend"]}}
    done = subprocess.run(
        [sys.executable, str(script), str(trace_csv), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, done.stdout
    hours, warnings = json.loads(lines[0].removeprefix("RESULT "))
    assert any("fitting worker stopped" in w and "__main__" in w for w in warnings), warnings
    assert "fit_workers=0" in done.stderr  # the worker's own error says what to do
    in_place = simulate(trace_csv, policies=["forecast"], scalers=[spec], fit_workers=0)
    assert hours == in_place.scores["forecast"]["replica_hours"]


@pytest.mark.parametrize(
    ("manifest", "step", "expected", "warns"),
    [
        pytest.param(None, 60.0, ("3m", "4m30s", 10.0), False, id="default-1m"),
        pytest.param(None, 300.0, ("5m", "10m30s", 10.0), False, id="default-5m-startup-and-step"),
        pytest.param(
            {"forecast": {"horizon": "10m"}}, 60.0, ("3m", "10m", 10.0), False, id="horizon"
        ),
        pytest.param(
            {"forecast": {"startup": "1m"}}, 60.0, ("1m", "2m30s", 10.0), True, id="own-startup"
        ),
        pytest.param(
            {"metric": {"capacityPerReplica": 9}}, 60.0, ("3m", "4m30s", 9.0), False, id="capacity"
        ),
    ],
)
def test_forecast_spec_defaults(
    manifest: dict[str, object] | None,
    step: float,
    expected: tuple[str, str, float],
    warns: bool,
) -> None:
    spec, warnings = build_spec(
        manifest, step=step, startup=max(180.0, step), target=8.0, max_replicas=50, capacity=10.0
    )
    got = (spec.forecast.startup, spec.forecast.horizon, spec.metric.capacity_per_replica)
    assert got == expected
    assert spec.metric.target_per_replica == 8.0
    assert bool(warnings) == warns, warnings


def test_a_horizon_shorter_than_the_window_is_refused() -> None:
    with pytest.raises(ScalerError, match=r"shorter than forecast\.startup plus interval"):
        build_spec({"forecast": {"horizon": "2m"}}, step=60, startup=180, target=8, max_replicas=10)


def test_forecast_step_must_be_a_multiple_of_the_trace_step() -> None:
    with pytest.raises(ScalerError, match="multiple"):
        build_spec({"forecast": {"step": "90s"}}, step=60, startup=180, target=1, max_replicas=10)
