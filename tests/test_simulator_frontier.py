"""The cost/shortage frontier (`forecastscaler simulate --frontier`): the HPA over targets and
ForecastScaler over quantiles on one forecast run, the --max-short pick, its manifest lines,
the table, JSON and PNG. One small frontier (seasonalNaive: cheap fits) is shared by the tests;
the pick rules are checked on hand-made rows."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from forecastscaler.cli import main
from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.traces import Trace, bundled_trace_path
from forecastscaler.simulator import simulate
from forecastscaler.simulator.command import parse_share
from forecastscaler.simulator.frontier import (
    DEFAULT_HPA_TARGETS,
    DEFAULT_QUANTILES,
    Frontier,
    FrontierRow,
    cheapest,
    dominating,
    frontier,
    hpa_row,
    manifest_lines,
    plain_number,
    saving,
)

MANIFEST: dict[str, Any] = {"forecast": {"models": ["seasonalNaive"]}}
"""Cheap fits: the frontier's logic is under test here, not the models."""


def _trace(n: int = 480) -> Trace:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    values = 300 + 150 * np.sin(2 * np.pi * t / 120) + rng.normal(0, 20, n)
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    return Trace(name="small", load=pd.Series(values, index=index), step=pd.Timedelta(minutes=1))


def _csv(path: Path, n: int = 480) -> Path:
    trace = _trace(n)
    stamps = trace.load.index.astype("int64") // 10**9
    rows = [f"{s},{v:.3f}" for s, v in zip(stamps, trace.load, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def front() -> Frontier:
    return frontier(
        _trace(), scalers=[MANIFEST], capacity=40.0, fit_workers=0, clock=time.perf_counter
    )


def test_every_configuration_is_a_row(front: Frontier) -> None:
    assert [r.name for r in front.hpa] == [f"hpa@{100 * t:g}" for t in DEFAULT_HPA_TARGETS]
    assert [r.setting for r in front.forecast] == sorted(DEFAULT_QUANTILES)
    assert front.baseline.name == "hpa@80" and front.baseline.saving == 0.0
    assert [r.name for r in front.rows if r.default] == ["hpa@80", "forecast@p90"]
    assert front.default_quantile == 0.9
    # The HPA's AverageValue is its share of the capacity; ForecastScaler runs at capacity.
    assert hpa_row(front, 0.6).per_replica == pytest.approx(24.0)
    assert {r.per_replica for r in front.forecast} == {40.0}


def test_the_quantiles_come_from_one_forecast_run(front: Frontier) -> None:
    result = front.result
    # Only a ForecastPolicy is timed: the other quantiles are tracks on its recorded forecasts.
    assert set(result.timings) == {"forecast"}
    tracks = {n for n in result.scores if n.startswith("forecast@")}
    assert len(tracks) == len(DEFAULT_QUANTILES) - 1  # 0.9 is the policy itself
    calls = result.timings["forecast"]["calls"]
    # One forecast per sync of the one run, however many quantiles are swept.
    assert calls["fit"] >= 1 and calls["predict"] <= result.scores["forecast"]["syncs"]


def test_a_higher_hpa_target_is_cheaper_and_shorter_of_capacity(front: Frontier) -> None:
    hours = [r.replica_hours for r in front.hpa]
    shorts = [r.short for r in front.hpa]
    # Monotone-ish: the HPA's rounding and tolerance may wobble a little between neighbours.
    assert all(b <= a * 1.02 for a, b in itertools.pairwise(hours)), hours
    assert hours[-1] < 0.8 * hours[0]
    assert shorts[-1] > shorts[0]
    assert [r.saving is not None and r.saving > 0 for r in front.hpa] == [
        t > 0.8 for t in DEFAULT_HPA_TARGETS
    ]


def test_a_higher_quantile_costs_more(front: Frontier) -> None:
    hours = [r.replica_hours for r in front.forecast]
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(hours)), hours
    assert front.forecast[-1].short <= front.forecast[0].short


def _row(kind: str, setting: float, short: float, hours: float) -> FrontierRow:
    name = f"hpa@{100 * setting:g}" if kind == "hpa" else f"forecast@p{100 * setting:g}"
    return FrontierRow(
        kind=kind,  # type: ignore[arg-type]
        name=name,
        setting=setting,
        per_replica=10.0,
        short=short,
        short_steps=round(short * 1000),
        unmet=0.0,
        replica_hours=hours,
        cost_vs_oracle=hours / 50,
        saving=None,
        default=False,
    )


HPA_ROWS = (
    _row("hpa", 0.6, 0.0, 100.0),
    _row("hpa", 0.7, 0.002, 90.0),
    _row("hpa", 0.8, 0.010, 80.0),
    _row("hpa", 0.9, 0.050, 70.0),
)
FSC_ROWS = (
    _row("forecast", 0.9, 0.040, 60.0),
    _row("forecast", 0.99, 0.005, 70.0),
    _row("forecast", 0.995, 0.004, 70.0),  # the same cost: a tie goes to the safer
    _row("forecast", 0.999, 0.001, 75.0),
)


@pytest.mark.parametrize(
    ("max_short", "hpa", "forecast"),
    [
        pytest.param(0.005, "hpa@70", "forecast@p99.5", id="between-rows-tie-to-the-safer"),
        pytest.param(0.01, "hpa@80", "forecast@p99.5", id="exactly-on-the-budget-meets-it"),
        pytest.param(0.0045, "hpa@70", "forecast@p99.5", id="just-below-the-tie"),
        pytest.param(0.0015, "hpa@60", "forecast@p99.9", id="tight"),
        pytest.param(0.0, "hpa@60", None, id="only-the-hpa"),
        pytest.param(0.05, "hpa@90", "forecast@p90", id="loose"),
        pytest.param(1.0, "hpa@90", "forecast@p90", id="anything"),
    ],
)
def test_max_short_picks_the_cheapest_row_meeting_it(
    front: Frontier, max_short: float, hpa: str | None, forecast: str | None
) -> None:
    made = dataclasses.replace(front, hpa=HPA_ROWS, forecast=FSC_ROWS)
    pick = cheapest(made, max_short)
    assert (pick.hpa.name if pick.hpa else None) == hpa
    assert (pick.forecast.name if pick.forecast else None) == forecast
    if pick.hpa and pick.forecast:
        assert pick.saving == pytest.approx(
            1 - pick.forecast.replica_hours / pick.hpa.replica_hours
        )
    else:
        assert pick.saving is None


def test_neither_meets_an_impossible_budget(front: Frontier) -> None:
    made = dataclasses.replace(front, hpa=HPA_ROWS[1:], forecast=FSC_ROWS)
    pick = cheapest(made, 0.0)
    assert pick.hpa is None and pick.forecast is None
    from forecastscaler.simulator.report import pick_text

    text = pick_text(made, pick)
    assert "neither meets it" in text and "the least often short: hpa@70" in text


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_cheapest_refuses_a_budget_that_is_not_a_share(front: Frontier, bad: float) -> None:
    with pytest.raises(ValueError, match="share of steps"):
        cheapest(front, bad)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(0.6, None, id="never-short-hpa-no-quantile-is"),
        pytest.param(0.7, "forecast@p99.9", id="0.2pc"),
        pytest.param(0.8, "forecast@p99.5", id="1pc-tie-to-the-safer"),
        pytest.param(0.9, "forecast@p90", id="5pc"),
    ],
)
def test_dominating_is_the_cheapest_quantile_no_more_often_short(
    front: Frontier, target: float, expected: str | None
) -> None:
    made = dataclasses.replace(front, hpa=HPA_ROWS, forecast=FSC_ROWS)
    row = dominating(made, target)
    assert (row.name if row else None) == expected
    if row is not None:
        assert row.short <= hpa_row(made, target).short


def test_dominating_asks_for_a_swept_target(front: Frontier) -> None:
    with pytest.raises(KeyError, match="not replayed"):
        dominating(front, 0.42)


def test_dominating_on_a_real_run(front: Frontier) -> None:
    for hpa in front.hpa:
        row = dominating(front, hpa.setting)
        if row is not None:
            assert row.kind == "forecast" and row.short <= hpa.short
            cut = saving(row, hpa)
            assert cut is not None and cut > -1


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def test_the_forecastscaler_lines_are_a_valid_spec_fragment(front: Frontier) -> None:
    row = next(r for r in front.forecast if r.setting == 0.995)
    fragment = yaml.safe_load(manifest_lines(front, row))
    assert fragment["forecast"] == {"quantile": 0.995}
    base = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 50,
        "metric": {"query": "sum(rate(x[1m]))"},
    }
    spec = ForecastScalerSpec.model_validate(_merge(base, fragment))
    assert spec.forecast.quantile == 0.995
    assert spec.metric.capacity_per_replica == pytest.approx(40.0)
    assert spec.metric.target_per_replica == pytest.approx(32.0)


def test_the_hpa_lines_are_an_average_value_target(front: Frontier) -> None:
    row = hpa_row(front, 0.65)
    target = yaml.safe_load(manifest_lines(front, row))["target"]
    assert target["type"] == "AverageValue"
    assert isinstance(target["averageValue"], str)  # a Kubernetes quantity
    assert float(target["averageValue"]) == pytest.approx(26.0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(156800.0, "156800", id="integer"),
        pytest.param(125440.12345, "125440", id="six-digits"),
        pytest.param(0.35, "0.35", id="fraction"),
        pytest.param(1.5e-7, "0.00000015", id="tiny-no-exponent"),
        pytest.param(3.2e9, "3200000000", id="huge-no-exponent"),
    ],
)
def test_plain_number(value: float, text: str) -> None:
    assert plain_number(value) == text
    assert isinstance(yaml.safe_load(f"x: {text}")["x"], int | float)


def test_the_table_has_both_curves_and_the_oracle(front: Frontier) -> None:
    from forecastscaler.simulator.report import frontier_table

    text = frontier_table(front)
    for name in ("hpa@50", "hpa@80 *", "hpa@95", "forecast@p50", "forecast@p90 *", "oracle"):
        assert name in text
    assert "saving = replica-hours saved against hpa@80" in text


def test_the_png_is_written(front: Frontier, tmp_path: Path) -> None:
    from forecastscaler.simulator.plot import plot_frontier

    out = tmp_path / "frontier.png"
    plot_frontier(front, out, max_short=0.005)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_the_json_holds_the_simulation_and_the_rows(front: Frontier, tmp_path: Path) -> None:
    from forecastscaler.simulator.report import write_frontier_json

    out = tmp_path / "frontier.json"
    write_frontier_json(front, out, cheapest(front, 0.01))
    data = json.loads(out.read_text())
    assert {"trace", "scored_steps", "policies", "hpa_targets"} <= set(data)
    rows = data["frontier"]
    assert rows["baseline"] == "hpa@80" and rows["default_quantile"] == 0.9
    assert len(rows["hpa"]) == len(DEFAULT_HPA_TARGETS)
    assert rows["hpa"][0]["per_replica"] == pytest.approx(20.0)
    assert rows["max_short"]["max_short"] == 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"scalers": [MANIFEST, MANIFEST]}, "one ForecastScaler", id="two-manifests"),
        pytest.param({"hpa_targets": (0.5, 1.2)}, r"shares of capacity in \(0, 1\]", id="above-1"),
        pytest.param({"baseline_target": 0.0}, "shares of capacity", id="zero-baseline"),
    ],
)
def test_frontier_refuses(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        frontier(_trace(), **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0.5%", 0.005, id="percent"),
        pytest.param(" 0.5 % ", 0.005, id="spaces"),
        pytest.param("0.005", 0.005, id="fraction"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("100%", 1.0, id="all"),
        pytest.param("5e-3", 0.005, id="exponent"),
    ],
)
def test_a_share_is_a_percentage_or_a_fraction(text: str, expected: float) -> None:
    assert parse_share(text, "x") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--max-short", "abc"], "is not a share", id="not-a-number"),
        pytest.param(["--max-short", "5"], "for per cent write 5%", id="bare-5-is-ambiguous"),
        pytest.param(["--max-short", "150%"], "more than 100%", id="over-100pc"),
        pytest.param(["--max-short=-1%"], "is not a share", id="negative"),
        pytest.param(["--max-short", ""], "is not a share", id="empty"),
        pytest.param(["--hpa-target", "0"], "must be above 0", id="hpa-target-zero"),
        pytest.param(["--hpa-target", "80"], "for per cent write 80%", id="hpa-target-bare"),
        pytest.param(["--hpa-targets", ","], "no target given", id="hpa-targets-empty"),
    ],
)
def test_bad_values_are_argparse_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--trace", "t.csv", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and message in err, err


def test_hpa_target_moves_the_plain_simulation_baseline() -> None:
    trace = _trace(240)
    default = simulate(trace, policies=["hpa"], capacity=40.0)
    lower = simulate(trace, policies=["hpa"], capacity=40.0, hpa_target=0.6)
    assert default.hpa_targets == {"hpa": pytest.approx(32.0)} and not default.notes
    assert lower.hpa_targets == {"hpa": pytest.approx(24.0)}
    assert lower.notes == [
        "hpa: target 24 per replica, 60% of capacity (--hpa-target; the default is 80%)"
    ]
    assert lower.scores["hpa"]["replica_hours"] > default.scores["hpa"]["replica_hours"]
    assert lower.to_dict()["hpa_targets"] == {"hpa": pytest.approx(24.0)}


def test_the_frontier_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _csv(tmp_path / "small.csv", 360)
    scaler = tmp_path / "fsc.yaml"
    scaler.write_text(yaml.safe_dump({"kind": "ForecastScaler", "spec": MANIFEST}))
    out_json, out_png = tmp_path / "f.json", tmp_path / "f.png"
    argv = ["simulate", "--trace", str(trace), "--scaler", str(scaler), "--capacity", "40"]
    argv += ["--quantiles", "0.8,0.99", "--hpa-targets", "60%,0.9", "--max-short", "2%"]
    argv += ["--json", str(out_json), "--plot", str(out_png), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "hpa@60" in text and "hpa@90" in text and "hpa@80 *" in text  # the baseline too
    assert "forecast@p80" in text and "forecast@p99" in text and "forecast@p90 *" in text
    assert "--max-short 2.00%: the cheapest configuration" in text
    data = json.loads(out_json.read_text())
    assert [r["name"] for r in data["frontier"]["hpa"]] == ["hpa@60", "hpa@80", "hpa@90"]
    assert data["frontier"]["max_short"]["max_short"] == 0.02
    assert out_png.stat().st_size > 10_000


def test_the_frontier_replays_its_own_policies(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--trace", "t.csv", "--frontier", "--policies", "hpa"]
    assert main(argv) == 2
    assert "--frontier replays its own policies" in capsys.readouterr().err


@pytest.mark.slow
def test_the_frontier_on_the_bundled_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler = tmp_path / "fsc.yaml"
    scaler.write_text(yaml.safe_dump({"kind": "ForecastScaler", "spec": MANIFEST}))
    argv = ["simulate", "--trace", str(bundled_trace_path()), "--scaler", str(scaler)]
    assert main([*argv, "--frontier", "--max-short", "0.5%", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "trace wikipedia_requests_1h" in text and "--max-short 0.50%" in text
