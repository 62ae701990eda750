"""The rolling-origin backtest: its metrics on hand-computed cases, its schedule, that no model
sees past its origin, and `forecastscaler backtest` on a small CSV."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import pytest

from forecastscaler.evaluation.backtest import (
    ENSEMBLE,
    METRIC_COLUMNS,
    BacktestError,
    ModelFactory,
    backtest,
    default_models,
    make_schedule,
)
from forecastscaler.evaluation.backtest_buckets import BUCKET_COLUMNS, bucket_figures
from forecastscaler.evaluation.backtest_cli import add_backtest_arguments, run_backtest
from forecastscaler.evaluation.scores import coverage, interval_coverage, mae, pinball, smape
from forecastscaler.models import selection
from forecastscaler.models.base import (
    DEFAULT_QUANTILES,
    Capabilities,
    Forecast,
    Forecaster,
    InsufficientHistory,
)
from forecastscaler.models.history import future_index
from forecastscaler.models.naive import LastValue, SeasonalNaive

NAN = math.nan


def _series(values: Sequence[float] | np.ndarray, step: str = "1min") -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq=step, tz="UTC")
    return pd.Series(np.asarray(values, dtype=np.float64), index=index)


def _a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # The gap's forecast (100) would dominate if the gap were scored as a zero load.
        pytest.param(lambda: mae(_a(1, 2, NAN, 4), _a(2, 2, 100, 2)), 1.0, id="mae-gap-skipped"),
        pytest.param(lambda: mae(_a(1, 2, 3), _a(1, NAN, 5)), 1.0, id="mae-missing-forecast"),
        # 2*50/150 and 0/0 (a perfect 0): mean 1/3, in percent.
        pytest.param(lambda: smape(_a(100, 0, NAN), _a(50, 0, 5)), 100 / 3, id="smape"),
        pytest.param(lambda: smape(_a(10), _a(0)), 200.0, id="smape-max"),
        # Under by 2 costs 0.9 * 2; over by 3 costs 0.1 * 3: mean (1.8 + 0.3) / 2.
        pytest.param(lambda: pinball(_a(10, 10, NAN), _a(8, 13, 0), 0.9), 1.05, id="pinball-0.9"),
        pytest.param(lambda: pinball(_a(10, 10), _a(8, 13), 0.5), 1.25, id="pinball-median"),
        pytest.param(lambda: coverage(_a(1, 2, 3, NAN), _a(2, 2, 2, 0)), 2 / 3, id="coverage"),
        pytest.param(
            lambda: interval_coverage(_a(1, 5, 3, NAN), _a(0, 0, 4, 0), _a(2, 4, 6, 0)),
            1 / 3,
            id="interval-coverage",
        ),
    ],
)
def test_metrics_by_hand(metric: Callable[[], float], expected: float) -> None:
    assert metric() == pytest.approx(expected)


@pytest.mark.parametrize(
    "metric",
    [
        pytest.param(lambda: mae(_a(NAN, NAN), _a(1, 2)), id="mae"),
        pytest.param(lambda: smape(_a(NAN), _a(1)), id="smape"),
        pytest.param(lambda: pinball(_a(NAN), _a(1), 0.9), id="pinball"),
        pytest.param(lambda: coverage(_a(NAN), _a(1)), id="coverage"),
        pytest.param(lambda: interval_coverage(_a(NAN), _a(0), _a(1)), id="interval"),
    ],
)
def test_metrics_of_nothing_are_nan_not_zero(metric: Callable[[], float]) -> None:
    assert math.isnan(metric())


# ---------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("max_origins", "retrain", "max_refits", "origins", "refits", "period"),
    [
        pytest.param(1000, 10, 100, list(range(50, 95)), [50, 60, 70, 80, 90], 10, id="hourly"),
        # 45 origins strided by 3; a refit at the first origin at least 10 steps after the last.
        pytest.param(15, 10, 100, list(range(50, 95, 3)), [50, 62, 74, 86], 10, id="strided"),
        # Two refits at most over 45 steps: the period grows to ceil(45 / 2) = 23.
        pytest.param(1000, 10, 2, list(range(50, 95)), [50, 73], 23, id="coarsened"),
        pytest.param(1000, 1, 100, list(range(50, 95)), list(range(50, 95)), 1, id="every-step"),
    ],
)
def test_schedule(
    max_origins: int,
    retrain: int,
    max_refits: int,
    origins: list[int],
    refits: list[int],
    period: int,
) -> None:
    s = make_schedule(
        100, 5, 50, max_origins=max_origins, retrain_steps=retrain, max_refits=max_refits
    )
    assert s.origins.tolist() == origins
    assert s.origins[s.refit].tolist() == refits
    assert s.retrain_steps == period
    assert s.coarsened == (period > retrain)
    assert len(refits) <= max_refits


def test_schedule_too_short_says_why() -> None:
    with pytest.raises(BacktestError, match=r"20 steps leave 5 origins .* at least 10"):
        make_schedule(20, 5, 10, max_origins=100, retrain_steps=1, max_refits=10)


# ------------------------------------------------------------------- no look-ahead, spies


class Spy(Forecaster):
    """Forecasts the last value and logs every history it is given."""

    name: ClassVar[str] = "spy"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(self, log: list[tuple[str, pd.Timestamp, int]], fail_first: bool = False):
        self.log = log
        self.fail_first = fail_first

    def min_history(self) -> int:
        return 2

    def _see(self, what: str, y: pd.Series) -> None:
        self.log.append((what, pd.Timestamp(y.index[-1]), len(y)))
        self.index_ = pd.DatetimeIndex(y.index)
        self.last_ = float(y.dropna().iloc[-1])

    def fit(self, y: pd.Series) -> Self:
        if self.fail_first and not self.log:
            self.log.append(("failed", pd.Timestamp(y.index[-1]), len(y)))
            raise InsufficientHistory(self.name, 10**6, len(y))
        self._see("fit", y)
        return self

    def update(self, y: pd.Series) -> Self:
        self._see("update", y)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        point = np.full(horizon, self.last_)
        step = self.index_[1] - self.index_[0]
        return Forecast(
            index=future_index(self.index_, horizon, step),
            point=point,
            quantiles={q: point + (q - 0.5) for q in quantiles},
            model=self.name,
        )


def test_each_call_sees_the_window_up_to_its_origin_and_no_further() -> None:
    log: list[tuple[str, pd.Timestamp, int]] = []
    values = np.arange(300, dtype=np.float64)
    values[[200, 250, 251]] = np.nan  # gaps, at an origin and at targets
    result = backtest(_series(values), {"spy": lambda h: Spy(log)}, 3, history="1h", retrain="20m")
    origins = pd.DatetimeIndex(result.forecasts["origin"])
    assert [when for _, when, _ in log] == list(origins)  # one call per origin, ending there
    assert max(size for _, _, size in log) == 60  # the history window, never more
    fits = [when for what, when, _ in log if what == "fit"]
    assert fits == list(origins[::20])  # refit every 20 steps (min), update in between
    assert len(origins) == 300 - 150 - 3


@pytest.mark.parametrize("models", [["lastValue"], ["seasonalBlend"]])
def test_forecasts_before_k_ignore_what_comes_after(models: list[str]) -> None:
    rng = np.random.default_rng(3)
    n = 900
    t = np.arange(n)
    base = 200 + 100 * np.sin(2 * np.pi * t / 120) + rng.normal(0, 15, n)
    k = 700
    changed = base.copy()
    changed[k:] = rng.normal(900, 300, n - k).clip(0)
    changed[k + 5 : k + 9] = np.nan

    def forecasts(values: np.ndarray) -> pd.DataFrame:
        f = backtest(_series(values), models, 5, retrain="30m", max_origins=200).forecasts
        return f.set_index("origin")[["point", "value", "lower", "upper"]]

    a, b = forecasts(base), forecasts(changed)
    cutoff = _series(base).index[k]
    before = a.index < cutoff
    assert before.sum() > 50
    pd.testing.assert_frame_equal(a[before], b[b.index < cutoff])
    # ...and the future does matter afterwards, so a leak would show.
    assert not np.allclose(a[~before].to_numpy(), b[b.index >= cutoff].to_numpy())


# ------------------------------------------------------------------------ engine figures


def test_last_value_on_a_ramp_is_off_by_the_horizon() -> None:
    values = np.arange(400, dtype=np.float64)
    values[[300, 320, 340]] = np.nan  # targets without an actual (not scored), then origins
    result = backtest(_series(values), ["lastValue"], 4, retrain="30m")
    m = result.metrics.loc["lastValue"]
    assert m["status"] == "ok"
    assert m["origins"] == 400 - 200 - 4
    assert m["scored"] == m["origins"] - 3
    # Four steps of the ramp, five from the origins that are gaps (the value before is held).
    assert m["mae"] == pytest.approx(4 + 3 / m["scored"])
    assert m["mae_vs_last"] == pytest.approx(1.0)
    assert m["refits"] == math.ceil(result.protocol.origins / 30)


def test_seasonal_naive_on_a_pure_cycle_is_exact() -> None:
    values = np.tile(_a(5, 9, 20, 30, 12, 7, 3, 1, 4, 15, 25, 8), 60)
    result = backtest(_series(values), ["seasonalNaive", "lastValue"], 3)
    m = result.metrics
    assert m.loc["seasonalNaive", "mae"] == pytest.approx(0.0)
    assert m.loc["seasonalNaive", "mae_vs_last"] == pytest.approx(0.0)
    assert m.loc["lastValue", "mae_vs_last"] == pytest.approx(1.0)
    assert result.compare("seasonalNaive", "lastValue") == pytest.approx(0.0)
    assert math.isinf(result.compare("lastValue", "seasonalNaive"))


def _never(h: int) -> Forecaster:
    return SeasonalNaive(horizon=h, season=10**6)  # needs two million observations


@pytest.mark.parametrize(
    ("factory", "status", "reason"),
    [
        pytest.param(_never, "skipped", "needs at least 2000000", id="never-fits"),
        pytest.param(None, "partial", "needs at least 1000000", id="first-refit-fails"),
    ],
)
def test_models_that_cannot_fit_are_reported(
    factory: ModelFactory | None, status: str, reason: str
) -> None:
    log: list[tuple[str, pd.Timestamp, int]] = []
    models: dict[str, ModelFactory] = {
        "m": factory or (lambda h: Spy(log, fail_first=True)),
        "lastValue": lambda h: LastValue(horizon=h),
    }
    result = backtest(_series(np.arange(300.0)), models, 2, retrain="20m")
    m = result.metrics.loc["m"]
    assert m["status"] == status
    assert reason in m["reason"]
    assert m["failed_refits"] == (m["refits"] if status == "skipped" else 1)
    assert m["forecasts"] == (0 if status == "skipped" else m["origins"] - 20)
    assert (status == "skipped") == ("m" in result.skipped)
    assert result.metrics.loc["lastValue", "status"] == "ok"


def test_default_models_are_every_member_then_the_ensemble() -> None:
    names = default_models()
    assert names[-1] == ENSEMBLE
    assert set(names[:-1]) == set(selection.MODEL_FACTORIES) - {ENSEMBLE}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"models": ["nope"]}, "unknown model 'nope'", id="unknown-model"),
        pytest.param({"quantile": 1.5}, "quantile", id="quantile"),
        pytest.param({"horizon_steps": 0}, "horizon", id="horizon"),
        pytest.param({"warmup": "150%"}, "warmup", id="warmup"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"models": ["lastValue"], "horizon_steps": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        backtest(_series(np.arange(100.0)), **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ command line


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    return run_backtest(parser.parse_args(argv))


@pytest.fixture
def trace_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 432  # three days of 10 minutes
    t = np.arange(n)
    load = 300 + 150 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 20, n)  # an 8h cycle
    rows = [f"{1_700_000_000 + 600 * i},{v:.3f}" for i, v in enumerate(load)]
    rows[269] = f"{1_700_000_000 + 600 * 269},"  # a gap: the target of origin 266
    path = tmp_path / "small.csv"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def test_backtest_command_writes_every_figure(
    trace_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    argv = ["--trace", str(trace_csv), "--horizon", "30m", "--models", "lastValue,seasonalNaive"]
    code = _cli([*argv, "--max-origins", "50", "--no-progress", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "lastValue" in text and "seasonalNaive" in text and "every 5 steps" in text
    data = json.loads(out.read_text())
    assert set(data) == {"trace", "protocol", "models", "skipped", "warnings"}
    assert data["trace"] == "small"
    protocol = data["protocol"]
    assert protocol["horizon_steps"] == 3 and protocol["step_seconds"] == 600
    assert protocol["origins"] == 43 and protocol["stride"] == 5
    assert {"history_steps", "retrain_steps", "retrain_coarsened", "quantile"} <= set(protocol)
    assert list(data["models"]) == ["lastValue", "seasonalNaive"]
    for figures in data["models"].values():
        assert set(figures) == set(METRIC_COLUMNS) | set(BUCKET_COLUMNS)
        assert figures["status"] == "ok" and figures["scored"] == 42  # one target is the gap
        # 10-minute steps: coverage per hour of the day (buckets of >= 10 targets), no minutes
        assert figures["coverage_by_minute"] == {}
        assert all(0 <= c <= 1 for c in figures["coverage_by_hour"].values())
    assert data["models"]["lastValue"]["mae_vs_last"] == pytest.approx(1.0)
    assert data["models"]["seasonalNaive"]["mae_vs_last"] < 0.7  # it knows the cycle


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        pytest.param(15, [], "needs at least 10", id="too-short"),
        pytest.param(200, ["--models", "lastValue,nope"], "unknown model 'nope'", id="model"),
        pytest.param(200, ["--horizon", "soon"], "invalid duration", id="horizon"),
    ],
)
def test_backtest_command_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: int,
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / "t.csv"
    lines = [f"{1_700_000_000 + 60 * i},{100 + i % 7}" for i in range(rows)]
    path.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    ahead = [] if "--horizon" in extra else ["--steps", "3"]
    assert _cli(["--trace", str(path), *ahead, "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("forecastscaler backtest: ") and message in err


def test_bucket_coverage_finds_the_missed_minutes() -> None:
    """A quantile that covers every target but those at :00 shows a worst minute of 0."""
    target = pd.date_range("2024-03-04", periods=24 * 60, freq="1min")
    actual = np.where(target.minute == 0, 10.0, 1.0)
    value = np.full(len(target), 5.0)
    figures = bucket_figures(target, actual, value, 60.0)
    assert figures["coverage_by_minute"][0] == 0.0
    assert figures["coverage_by_minute"][1] == 1.0
    assert figures["cov_minute_worst"] == 0.0 and figures["cov_minute_spread"] == 1.0
    # every hour has one miss in 60
    assert figures["cov_hour_worst"] == pytest.approx(59 / 60)
    assert figures["cov_hour_spread"] == pytest.approx(0.0)
    hourly = bucket_figures(target[::60], actual[::60], value[::60], 3600.0)
    assert hourly["coverage_by_minute"] == {} and math.isnan(hourly["cov_minute_worst"])
