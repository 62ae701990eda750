"""Pure parts of the sync: status merge patches, the forecast path, conditions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import ForecastPath, Observation, decide
from forecastscaler.core.model import path_from_model
from forecastscaler.core.status import headline, merge_patch, wanted_conditions
from forecastscaler.core.sync import Problem, Sync, SyncState
from forecastscaler.models.naive import LastValue

PATCHES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "equal-is-empty": ({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}, {}),
    "changed-scalar": ({"a": 1}, {"a": 2}, {"a": 2}),
    "dropped-key-is-nulled": ({"a": 1, "forecast": {"value": 3}}, {"a": 1}, {"forecast": None}),
    "nested-dropped-key": (
        {"lastDecision": {"reason": "Forecast", "forecastReplicas": 9}},
        {"lastDecision": {"reason": "Fallback"}},
        {"lastDecision": {"reason": "Fallback", "forecastReplicas": None}},
    ),
    "new-key": ({}, {"a": [1, 2]}, {"a": [1, 2]}),
    "list-replaced-whole": ({"c": [1, 2]}, {"c": [1]}, {"c": [1]}),
}


@pytest.mark.parametrize(("old", "new", "want"), PATCHES.values(), ids=PATCHES.keys())
def test_merge_patch(old: dict[str, Any], new: dict[str, Any], want: dict[str, Any]) -> None:
    assert merge_patch(old, new) == want


def _spec(horizon: str = "5m", step: str = "1m") -> ForecastScalerSpec:
    return ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 10,
            "metric": {"query": "q", "targetPerReplica": 1},
            "forecast": {"horizon": horizon, "step": step},
        }
    )


def _model() -> tuple[LastValue, float]:
    index = pd.date_range("2026-01-01", periods=200, freq="1min", tz="UTC")
    y = pd.Series(100 + np.random.default_rng(0).normal(0, 5, 200), index=index)
    return LastValue(horizon=5).fit(y), index[-1].timestamp()


@pytest.mark.parametrize("lag", [0.0, 10.0, 40.0, 59.0], ids=lambda s: f"lag-{s:g}s")
def test_path_covers_now_and_the_horizon(lag: float) -> None:
    model, end = _model()
    now = end + lag
    path = path_from_model(model, "lastValue", _spec(), now, end)
    assert path is not None
    assert path.at(now) is not None, "anomaly scoring needs an expectation for now"
    assert path.at(now + 300) is not None, "the decision needs the horizon"
    assert path.times[0] == end


def test_path_is_none_when_history_is_older_than_horizon_plus_step() -> None:
    model, end = _model()
    assert path_from_model(model, "lastValue", _spec(), end + 300 + 60 + 1, end) is None
    assert path_from_model(model, "lastValue", _spec(), end + 300 + 59, end) is not None


def test_fractional_steps_are_rejected() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        _spec(step="1500ms")


@pytest.mark.parametrize(
    ("problem", "status"),
    [
        pytest.param(("Fitting", "first fit on 100 points in progress"), "Unknown", id="fitting"),
        pytest.param(("InsufficientHistory", "needs 30 points"), "False", id="too-little"),
        pytest.param(("ForecastFailed", "ValueError: x"), "False", id="failed"),
    ],
)
def test_forecast_ready_is_unknown_only_while_the_first_fit_runs(
    problem: tuple[str, str], status: str
) -> None:
    """Waiting for a new object's first fit is not a failure (no Warning Event: only False
    is bad for ForecastReady); not being able to forecast is."""
    spec = ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            "metric": {"query": "q", "targetPerReplica": 10},
        }
    )
    out = Sync(spec, SyncState(), 0.0)
    out.forecast_problem = Problem(*problem)
    ready = {w.type: w for w in wanted_conditions(out)}["ForecastReady"]
    assert (ready.status, ready.reason) == (status, problem[0])


def test_a_held_scale_down_says_so_in_events_and_conditions() -> None:
    """A scale-down held for what the forecast needs within a long horizon: the Event's
    headline and AbleToScale give the hold, not the forecast at the horizon (which asks for
    fewer)."""
    spec = ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 20,
            "metric": {"query": "q", "targetPerReplica": 10},
            "forecast": {"horizon": "15m"},
        }
    )
    now = 10_000.0
    times = tuple(now + i for i in range(0, 1201, 60))
    values = tuple(80.0 if t == now + 600 else 30.0 for t in times)
    path = ForecastPath(times, values, values, values, values, 0.9, "test")
    d = decide(spec, Observation(now=now, current_replicas=10, load=30.0, forecast=path))
    assert (d.desired_replicas, d.held) == (8, True)
    assert headline(spec, d) == (
        "scale-down held at 8: the p90 forecast needs it within 15m, 10 per replica"
    )
    out = Sync(spec, SyncState(), now)
    out.decision, out.forecast, out.applied = d, path, True
    able = {w.type: w for w in wanted_conditions(out)}["AbleToScale"]
    assert (able.status, able.reason) == ("True", "ScaleDownStabilized")
    assert able.message == "the forecast within the 15m horizon needs more: holding at 8"
