"""The streaming anomaly detector: scores in [0, 1] from the past only, the same step by step
as in blocks, anomalies flagged and kept out of training, clean seasonal load left alone."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecastscaler.evaluation.detect_command import run_detect
from forecastscaler.models.detector import StreamingDetector

N = 1200
PERIOD = 48  # a day of 30-minute steps
SMALL = {  # a detector small enough to run step by step in a test
    "level_window": 20,
    "min_train": 60,
    "train_window": 120,
    "refit_every": 50,
    "regime_window": 10,
    "rearm": 20,
    "n_estimators": 20,
}


def seasonal(n: int = N, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 100 + 30 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 2, n)
    index = pd.date_range("2024-01-01", periods=n, freq="30min", tz="UTC")
    return pd.Series(values, index=index)


def with_anomaly(kind: str, at: int = 900) -> pd.Series:
    y = seasonal()
    if kind == "spike":
        y.iloc[at] += 40
    elif kind == "dip":
        y.iloc[at] -= 40
    elif kind == "level-shift":
        y.iloc[at:] += 40
    elif kind == "flat":  # the daily cycle stops
        y.iloc[at : at + PERIOD] = float(y.iloc[at])
    return y


@pytest.mark.parametrize(
    ("kind", "within"),
    [("spike", 1), ("dip", 1), ("level-shift", 3), ("flat", PERIOD // 2)],
    ids=["spike", "dip", "level-shift", "flat"],  # a flat stretch only shows as the cycle moves on
)
def test_flags_an_injected_anomaly_and_nothing_before(kind: str, within: int) -> None:
    detector = StreamingDetector()
    scores = detector.score_series(with_anomaly(kind))
    assert scores[900 : 900 + within].max() >= detector.threshold
    assert scores[:900].max() < detector.threshold


@pytest.mark.parametrize(
    "values",
    [
        100 + 30 * np.sin(2 * np.pi * np.arange(N) / PERIOD),
        np.where((np.arange(N) // 24) % 2 == 0, 20.0, 80.0),  # square wave
        100 + 30 * np.sin(2 * np.pi * np.arange(N) / PERIOD) + 0.05 * np.arange(N),
    ],
    ids=["sine", "square-wave", "sine-on-a-trend"],
)
def test_clean_periodic_series_are_never_flagged(values: np.ndarray) -> None:
    detector = StreamingDetector()
    y = pd.Series(values, index=seasonal().index)
    assert detector.score_series(y).max() < detector.threshold


def test_clean_seasonal_noise_rarely_crosses_the_threshold() -> None:
    """Fisher's combination overstates rarity (its parts are dependent): about one alarm per
    4,000 clean steps at the default threshold. Far more would mean a broken calibration."""
    detector = StreamingDetector()
    alarms = sum(
        int((detector.score_series(seasonal(seed=seed)) >= detector.threshold).sum())
        for seed in range(4)
    )
    assert alarms <= 4 * N // 2000


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(np.full(400, 45.0)),
        pd.Series(np.where(np.arange(600) % 100 == 0, 20.0, 0.0)),  # regular spikes
        pd.Series(np.random.default_rng(3).normal(10, 3, 600)),
        with_anomaly("spike"),
    ],
    ids=["flatline", "regular-spikes", "noise", "spike"],
)
def test_scores_are_in_unit_interval_and_zero_before_min_train(series: pd.Series) -> None:
    detector = StreamingDetector()
    scores = detector.score_series(series)
    assert scores.shape == (len(series),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert not scores[: detector.min_history()].any()


def test_flatline_scores_zero() -> None:
    assert not StreamingDetector().score_series(pd.Series(np.full(400, 45.0))).any()


@pytest.mark.parametrize("k", [61, 333, 700], ids=["first-refit", "mid-block", "late"])
def test_no_look_ahead(k: int) -> None:
    """Scores before step k are identical however the series goes on after k."""
    y = with_anomaly("spike", at=650).iloc[:800]
    rng = np.random.default_rng(k)
    other = y.copy()
    other.iloc[k:] = rng.normal(500, 200, len(y) - k)  # a wholly different future
    base = StreamingDetector(**SMALL).score_series(y)
    changed = StreamingDetector(**SMALL).score_series(other)
    truncated = StreamingDetector(**SMALL).score_series(y.iloc[:k])
    np.testing.assert_array_equal(base[:k], changed[:k])
    np.testing.assert_array_equal(base[:k], truncated)


@pytest.mark.slow
def test_step_by_step_equals_the_batch() -> None:
    y = with_anomaly("level-shift", at=500).iloc[:800].copy()  # longer than twice the buffer
    y.iloc[300:305] = np.nan  # a gap
    batch = StreamingDetector(**SMALL).score_series(y)
    detector = StreamingDetector(**SMALL)
    steps = np.array([detector.score(v, ts) for ts, v in y.items()])
    np.testing.assert_array_equal(batch, steps)
    assert detector.offset_ > 0  # the buffers were trimmed along the way
    assert not steps[300:305].any()  # gaps score 0


def test_deterministic() -> None:
    y = with_anomaly("spike", at=600).iloc[:700]
    a = StreamingDetector().score_series(y)
    b = StreamingDetector().score_series(y)
    np.testing.assert_array_equal(a, b)


def test_anomalies_are_kept_out_of_training() -> None:
    detector = StreamingDetector(**SMALL)
    y = with_anomaly("spike", at=620)
    detector.score_series(y.iloc[:671])  # refits at 620 and 670
    assert detector.surprise_[620] >= detector.flag_threshold
    assert 620 in detector.excluded_
    assert 0 < len(detector.excluded_) <= detector.max_excluded * detector.train_window


def test_a_level_shift_becomes_the_new_normal() -> None:
    """Beyond `max_excluded` of the window, flagged steps are learnt: a permanent shift is
    reported once, at its onset, and is the normal from the next refit on."""
    detector = StreamingDetector()
    scores = detector.score_series(with_anomaly("level-shift", at=600))
    assert scores[600:603].max() >= detector.threshold
    assert scores[603:].max() < detector.threshold
    assert 0 < len(detector.excluded_) <= detector.max_excluded * detector.train_window


def test_the_callers_forecast_is_the_expectation() -> None:
    """A value the detector finds normal is surprising against a caller's forecast that
    expected something else, and the other way round."""
    y = seasonal()
    expected = y.to_numpy().copy()
    upper = expected + 1.28 * 2.0  # a 0.9 quantile for noise of sd 2
    expected[900] += 60.0
    upper[900] += 60.0
    detector = StreamingDetector()
    own = detector.score_series(y)
    theirs = detector.score_series(y, expected=expected, upper=upper)
    assert own[900] < detector.threshold <= theirs[900]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 1},
        {"min_train": 50},
        {"train_window": 100},
        {"refit_every": 0},
        {"tail_quantile": 1.0},
        {"rearm": -1},
    ],
    ids=["window", "min-train", "train-window", "refit-every", "tail-quantile", "rearm"],
)
def test_rejects_bad_hyper_parameters(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(ValueError, match=r"need|must"):
        StreamingDetector(**kwargs)  # type: ignore[arg-type]


def _args(**kwargs: object) -> argparse.Namespace:
    return argparse.Namespace(**{"column": "value", "threshold": None, **kwargs})


def test_detect_command_writes_a_score_per_step(tmp_path: Path) -> None:
    y = with_anomaly("spike").iloc[:1000]
    lines = [f"{ts:%Y-%m-%dT%H:%M:%SZ},{v!r}" for ts, v in y.items()]
    lines[500] = lines[500].split(",")[0] + ","  # a gap
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    out = tmp_path / "scores.csv"
    assert run_detect(_args(trace=str(trace), out=str(out))) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["timestamp", "value", "anomaly_score"]
    assert len(frame) == len(y)
    assert frame["timestamp"].iloc[0] == "2024-01-01T00:00:00Z"
    assert np.isnan(frame["value"].iloc[500])
    assert frame["anomaly_score"].iloc[500] == 0.0
    assert frame["anomaly_score"].iloc[900] >= StreamingDetector().threshold
    assert frame["anomaly_score"].between(0.0, 1.0).all()


def test_detect_command_reports_a_bad_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    assert run_detect(_args(trace=str(tmp_path / "missing.csv"), out=str(out))) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()
