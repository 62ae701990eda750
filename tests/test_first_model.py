"""A new object's first detector pass and fit (the operator runs them in the background)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecastscaler.core.model import AnomalyState, training_history
from forecastscaler.models.selection import make_forecaster
from forecastscaler.operator.forecasting import first_model


def _history(n: int = 3000) -> pd.Series:
    rng = np.random.default_rng(1)
    t = np.arange(n)
    values = 200 + 60 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 4, n)
    values[2500:2510] = 2000.0  # a burst the detector flags
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    return pd.Series(values, index=index)


def test_the_detector_runs_first_and_its_flags_stay_out_of_the_fit() -> None:
    history = _history()
    anomaly, score, model, seconds = first_model(
        AnomalyState(), history, 0.9, ("seasonalBlend", "lastValue"), 5
    )
    assert anomaly is not None and anomaly.flagged, "the burst was not flagged"
    assert score is not None and 0.0 <= score <= 1.0
    assert seconds > 0
    assert len(model.predict(5).point) == 5
    # What the model was fitted on is what a refit would fit on: the flagged steps left out.
    cleaned = training_history(history, anomaly.flagged)
    assert cleaned.isna().sum() >= len(anomaly.flagged) > 0
    direct = make_forecaster(["seasonalBlend", "lastValue"], 5).fit(cleaned)
    np.testing.assert_array_equal(model.predict(5).point, direct.predict(5).point)
    on_raw = make_forecaster(["seasonalBlend", "lastValue"], 5).fit(history)
    assert not np.array_equal(model.predict(5).point, on_raw.predict(5).point)


def test_without_anomaly_detection_it_only_fits() -> None:
    anomaly, score, model, _ = first_model(None, _history(), 0.9, ("lastValue",), 5)
    assert anomaly is None and score is None
    assert len(model.predict(3).point) == 3
