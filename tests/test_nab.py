"""The NAB scorer: NAB's standard profile on hand-built files whose scores are computed by hand,
the threshold sweep against a plain loop over NAB's rules, and corpus loading."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecastscaler.evaluation.detect_command import run_nab
from forecastscaler.evaluation.nab import (
    STANDARD,
    CorpusError,
    CostMatrix,
    NabFile,
    evaluate,
    load_corpus,
    normalised,
    probation_length,
    scaled_sigmoid,
    score_file,
    sweep,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "anomaly"

N = 1000  # rows; probation = 150
WINDOW = (400, 499)  # 100 rows
MAX_TP = 2 / (1 + math.exp(-5)) - 1  # S(-1), the reward of a window's first row


def s_of(x: float) -> float:
    """NAB's scaled sigmoid, written out for the expected values."""
    return 2 / (1 + math.exp(5 * x)) - 1


def detections(*rows: int, n: int = N) -> np.ndarray:
    scores = np.zeros(n)
    scores[list(rows)] = 1.0
    return scores


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (-1.0, 0.9866142981514305),
        (-0.5, 0.8482836399575131),
        (0.0, 0.0),
        (1.0, -0.98661),
        (3.0, -1.0),
    ],
    ids=["window-start", "window-middle", "window-end", "one-window-after", "far-after"],
)
def test_scaled_sigmoid(x: float, expected: float) -> None:
    assert scaled_sigmoid(x) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1000, 150), (1127, 169), (4032, 604), (5000, 750), (22695, 750)],
    ids=["1000-rows", "floored", "nab-artificial", "at-cap", "capped"],
)
def test_probation_is_15_percent_capped_at_750(n: int, expected: int) -> None:
    assert probation_length(n) == expected


@pytest.mark.parametrize(
    ("scores", "windows", "expected", "detected", "fps"),
    [
        pytest.param(detections(), [WINDOW], -1.0, 0, 0, id="null-detector-misses"),
        pytest.param(detections(400), [WINDOW], 1.0, 1, 0, id="at-window-start-earns-A_TP"),
        pytest.param(detections(450), [WINDOW], s_of(-0.5) / MAX_TP, 1, 0, id="window-middle"),
        pytest.param(
            detections(499), [WINDOW], s_of(-0.01) / MAX_TP, 1, 0, id="window-end-earns-little"
        ),
        pytest.param(
            detections(420, 480), [WINDOW], s_of(-0.8) / MAX_TP, 1, 0, id="only-first-counts"
        ),
        pytest.param(detections(300), [WINDOW], -1.0 - 0.11, 0, 1, id="fp-before-window-full"),
        pytest.param(
            detections(500),
            [WINDOW],
            -1.0 + 0.11 * s_of(1 / 99),
            0,
            1,
            id="fp-just-after-window-nearly-free",
        ),
        pytest.param(
            detections(598), [WINDOW], -1.0 + 0.11 * s_of(1.0), 0, 1, id="fp-one-window-after"
        ),
        pytest.param(detections(900), [WINDOW], -1.0 - 0.11, 0, 1, id="fp-far-after-full"),
        pytest.param(detections(100), [WINDOW], -1.0, 0, 0, id="probation-not-scored"),
        pytest.param(detections(149, 150), [WINDOW], -1.0 - 0.11, 0, 1, id="probation-edge"),
        pytest.param(
            detections(200), [(10, 50)], -0.11 * 1.0, 0, 1, id="window-in-probation-ignored"
        ),
        pytest.param(
            detections(400, 700, 720),
            [WINDOW, (700, 799)],
            1.0 + s_of(-1.0) / MAX_TP,
            2,
            0,
            id="two-windows-both-at-start",
        ),
        pytest.param(
            detections(650),
            [WINDOW, (700, 799)],
            -2.0 + 0.11 * s_of(151 / 99),
            0,
            1,
            id="fp-between-windows-weighed-by-previous",
        ),
    ],
)
def test_score_file_hand_computed(
    scores: np.ndarray,
    windows: list[tuple[int, int]],
    expected: float,
    detected: int,
    fps: int,
) -> None:
    result = score_file(scores, windows, 0.5)
    assert result.score == pytest.approx(expected, abs=1e-9)
    assert result.detected == detected
    assert result.false_positives == fps


def test_fp_cost_follows_the_profile() -> None:
    heavy = CostMatrix(tp=1.0, fp=0.22, fn=2.0)
    result = score_file(detections(300), [WINDOW], 0.5, heavy)
    assert result.score == pytest.approx(-2.0 - 0.22)


def _files(n_files: int = 3) -> list[NabFile]:
    index = pd.date_range("2024-01-01", periods=N, freq="5min")
    windows = [((400, 499),), ((300, 349), (700, 799)), ()]
    return [
        NabFile(f"f/{k}.csv", index, np.zeros(N), windows[k % len(windows)]) for k in range(n_files)
    ]


def test_perfect_detector_scores_100_and_null_0() -> None:
    files = _files()
    perfect = []
    for f in files:
        s = np.zeros(N)
        s[[lo for lo, _ in f.windows]] = 1.0
        perfect.append(s)
    null = [np.zeros(N) for _ in files]
    assert evaluate(files, perfect, default_threshold=0.5).best_score == pytest.approx(100.0)
    assert evaluate(files, perfect, default_threshold=0.5).default_score == pytest.approx(100.0)
    report = evaluate(files, null, default_threshold=0.5)
    assert report.best_score == pytest.approx(0.0)
    assert report.windows == 3


def test_normalised_is_none_without_windows() -> None:
    assert normalised(-0.33, 0) is None
    assert normalised(3.0, 3) == pytest.approx(100.0)
    assert normalised(-3.0, 3) == pytest.approx(0.0)


def _loop_score(scores: np.ndarray, windows: list[tuple[int, int]], threshold: float) -> float:
    """NAB's rules as a plain loop over rows (independent of the vectorised scorer)."""
    n = len(scores)
    probation = probation_length(n)
    total = 0.0
    for lo, hi in windows:
        length = hi - lo + 1
        hits = [i for i in range(max(lo, probation), hi + 1) if scores[i] >= threshold]
        if hi < probation:
            continue
        if hits:
            total += s_of(-(hi - hits[0] + 1) / length) / MAX_TP
        else:
            total -= 1.0
    for i in range(probation, n):
        if scores[i] < threshold or any(lo <= i <= hi for lo, hi in windows):
            continue
        before = [(lo, hi) for lo, hi in windows if hi < i]
        if not before:
            total -= 0.11
        else:
            lo, hi = before[-1]
            x = (i - hi) / (hi - lo)
            total += 0.11 * (-1.0 if x >= 3 else s_of(x))
    return total


def test_sweep_matches_a_loop_over_every_threshold() -> None:
    rng = np.random.default_rng(7)
    cases = []
    for n, windows in [(600, [(200, 259)]), (800, [(100, 179), (400, 479)]), (500, [])]:
        scores = np.round(rng.random(n) ** 8, 2)  # few high scores, many ties
        cases.append((scores, windows))
    result = sweep(cases)
    for threshold, total in zip(result.thresholds, result.totals, strict=True):
        expected = sum(_loop_score(s, w, threshold) for s, w in cases)
        assert total == pytest.approx(expected, abs=1e-9), threshold
    assert result.best_total == pytest.approx(max(result.totals))
    # the best single threshold is no worse than a few arbitrary ones
    for threshold in (0.05, 0.3, 0.9):
        assert result.best_total >= sum(_loop_score(s, w, threshold) for s, w in cases) - 1e-9


def _write_corpus(root: Path) -> None:
    (root / "a").mkdir()
    index = pd.date_range("2014-04-01", periods=N, freq="5min")
    frame = pd.DataFrame({"timestamp": index.strftime("%Y-%m-%d %H:%M:%S"), "value": 1.0})
    frame.to_csv(root / "a" / "x.csv", index=False)
    start = index[400].strftime("%Y-%m-%d %H:%M:%S.%f")
    end = index[499].strftime("%Y-%m-%d %H:%M:%S.%f")
    (root / "windows.json").write_text(json.dumps({"a/x.csv": [[start, end]]}))


def test_load_corpus_maps_window_timestamps_to_rows(tmp_path: Path) -> None:
    _write_corpus(tmp_path)
    [f] = load_corpus(tmp_path)
    assert f.name == "a/x.csv"
    assert f.folder == "a"
    assert f.windows == (WINDOW,)
    assert len(f) == N


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-windows", "no windows file"),
        ("bad-json", "not JSON"),
        ("missing-file", "does not exist"),
        ("no-value-column", "no 'value' column"),
    ],
)
def test_load_corpus_errors(tmp_path: Path, damage: str, message: str) -> None:
    _write_corpus(tmp_path)
    if damage == "no-windows":
        (tmp_path / "windows.json").unlink()
    elif damage == "bad-json":
        (tmp_path / "windows.json").write_text("{")
    elif damage == "missing-file":
        (tmp_path / "a" / "x.csv").unlink()
    else:
        (tmp_path / "a" / "x.csv").write_text("timestamp,load\n2014-04-01 00:00:00,1\n")
    with pytest.raises(CorpusError, match=message):
        load_corpus(tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/anomaly is absent")
def test_shared_corpus_windows_all_map_to_rows() -> None:
    labels = json.loads((SHARED / "windows.json").read_text())
    files = load_corpus(SHARED)
    assert len(files) == len(labels)
    assert sum(len(f.windows) for f in files) == sum(len(w) for w in labels.values())
    for f in files:
        assert all(probation_length(len(f)) <= lo <= hi < len(f) for lo, hi in f.windows)


def test_standard_profile_is_nabs() -> None:
    assert (STANDARD.tp, STANDARD.fp, STANDARD.fn) == (1.0, 0.11, 1.0)


def test_nab_command_prints_the_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_corpus(tmp_path)
    out = tmp_path / "nab.json"
    args = argparse.Namespace(
        data=str(tmp_path), windows=None, profile="standard", threshold=None, json=str(out)
    )
    assert run_nab(args) == 0
    printed = capsys.readouterr().out
    assert "a/x.csv" in printed
    assert "NAB score at the best threshold" in printed
    report = json.loads(out.read_text())
    assert report["windows"] == 1
    assert report["best"]["score"] == pytest.approx(0.0)  # a constant series: nothing to find
    assert [row["file"] for row in report["files"]] == ["a/x.csv"]


def test_nab_command_reports_a_bad_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        data=str(tmp_path), windows=None, profile="standard", threshold=None, json=None
    )
    assert run_nab(args) == 2
    assert "no windows file" in capsys.readouterr().err
