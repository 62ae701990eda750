"""The Numenta Anomaly Benchmark (NAB) score, computed the way numenta/NAB computes it.

A corpus is a folder of `timestamp,value` CSV files plus `windows.json`, which maps each file's
path relative to the folder to its labelled anomaly windows `[start, end]` (timestamps). Rows
are scored in file order, as NAB does (row index, not wall time, is the distance unit):

- a file's first `min(floor(0.15 n), 0.15 * 5000)` rows are a probation period, never scored;
- inside a window, only the earliest detection counts, rewarded `A_TP * S(p) / S(-1)` where
  `p = -(end - i + 1) / length` is its relative position and `S(x) = 2 sigmoid(-5x) - 1` (so
  the window's first row earns `A_TP`, its last row about 0.1 A_TP); a window with no detection
  costs `A_FN`;
- a detection outside every window costs `A_FP`, weighted by `S` of its distance after the
  closest preceding window relative to that window's length (`-S` shrinks to 0 right after a
  window), or the full `A_FP` when no window precedes it;
- the corpus total is normalised so that the null detector (never detects: `-A_FN` per window)
  scores 0 and the perfect one (detects every window at its first row: `A_TP` per window) 100.

NAB picks one threshold per detector for the whole corpus, the one that maximises the total;
`sweep` finds it exactly by evaluating the total at every distinct anomaly score (NAB's own
optimiser hill-climbs the same objective, so it can only do as well).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = 5000  # NAB caps probation at 15 % of 5000 rows


class CorpusError(ValueError):
    """The folder is not a usable NAB corpus; the message says why."""


@dataclass(frozen=True)
class CostMatrix:
    """A NAB application profile: the weights of true positives, false positives and misses."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD = CostMatrix()
PROFILES: dict[str, CostMatrix] = {
    "standard": STANDARD,
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True)
class NabFile:
    """One data file of the corpus with its windows as inclusive row ranges."""

    name: str  # path relative to the corpus folder, e.g. "realKnownCause/nyc_taxi.csv"
    timestamps: pd.DatetimeIndex
    values: FloatArray
    windows: tuple[tuple[int, int], ...]

    @property
    def folder(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else "."

    def __len__(self) -> int:
        return len(self.values)

    def series(self) -> pd.Series:
        return pd.Series(self.values, index=self.timestamps, dtype="float64")


def scaled_sigmoid(position: float) -> float:
    """NAB's S(x) = 2 sigmoid(-5x) - 1: 0.987 at -1 (window start), 0 at 0, -1 from 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are never scored (NAB's `getProbationPeriod`)."""
    return int(min(math.floor(percent * n), percent * PROBATION_CAP_ROWS))


def _window_rows(timestamps: pd.DatetimeIndex, start: str, end: str) -> tuple[int, int] | None:
    """First and last row with start <= timestamp <= end, as NAB's Window selects them (None
    if no row is in the window). A mask, not a search: a few NAB files step back in time."""
    t = timestamps.as_unit("ns").asi8
    inside = np.nonzero((t >= pd.Timestamp(start).value) & (t <= pd.Timestamp(end).value))[0]
    return (int(inside[0]), int(inside[-1])) if len(inside) else None


def read_nab_csv(path: Path, name: str) -> tuple[pd.DatetimeIndex, FloatArray]:
    """A NAB data file: rows in file order (NAB's unit of distance; steps may be irregular)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: not a readable CSV: {exc}") from exc
    for column in ("timestamp", "value"):
        if column not in frame.columns:
            raise CorpusError(f"{path}: no {column!r} column (columns: {list(frame.columns)})")
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
    except (ValueError, TypeError) as exc:
        raise CorpusError(f"{path}: unparseable timestamps: {exc}") from exc
    if stamps.tz is not None:
        stamps = stamps.tz_convert("UTC").tz_localize(None)
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not len(values):
        raise CorpusError(f"{path}: no rows")
    return stamps, values


def load_corpus(folder: str | Path, windows_file: str | Path | None = None) -> list[NabFile]:
    """Every file `windows.json` labels (NAB scores only labelled files), in sorted order."""
    root = Path(folder)
    labels_path = Path(windows_file) if windows_file is not None else root / "windows.json"
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder")
    try:
        labels = json.loads(labels_path.read_text())
    except FileNotFoundError as exc:
        raise CorpusError(f"{labels_path}: no windows file") from exc
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{labels_path}: not JSON: {exc}") from exc
    if not isinstance(labels, dict) or not labels:
        raise CorpusError(f"{labels_path}: expected an object mapping files to windows")
    files: list[NabFile] = []
    for name in sorted(labels):
        path = root / name
        if not path.is_file():
            raise CorpusError(f"{labels_path}: labels {name!r}, but {path} does not exist")
        stamps, values = read_nab_csv(path, name)
        rows: list[tuple[int, int]] = []
        for pair in labels[name]:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise CorpusError(f"{labels_path}: {name}: a window must be [start, end]")
            limits = _window_rows(stamps, str(pair[0]), str(pair[1]))
            if limits is not None:
                rows.append(limits)
        files.append(NabFile(name, stamps, values, tuple(sorted(rows))))
    return files


@dataclass(frozen=True)
class PointWeights:
    """What detecting each row is worth: its window (or -1) and its signed reward."""

    window: IntArray  # index into the file's windows, -1 outside every window
    weight: FloatArray  # TP reward inside a window, (negative) FP cost outside
    scored: npt.NDArray[np.bool_]  # False in the probation period


def point_weights(
    n: int,
    windows: Sequence[tuple[int, int]],
    cost: CostMatrix = STANDARD,
    probation_percent: float = PROBATION_PERCENT,
) -> PointWeights:
    """Per-row reward of a detection, as NAB's Sweeper.calcSweepScore computes it."""
    window = np.full(n, -1, dtype=np.int64)
    weight = np.full(n, -cost.fp, dtype=np.float64)  # no preceding window: the full FP cost
    max_tp = scaled_sigmoid(-1.0)
    for k, (lo, hi) in enumerate(windows):
        length = hi - lo + 1
        rows = np.arange(lo, hi + 1)
        window[lo : hi + 1] = k
        weight[lo : hi + 1] = [
            scaled_sigmoid(-(hi - i + 1) / length) * cost.tp / max_tp for i in rows
        ]
        following = windows[k + 1][0] if k + 1 < len(windows) else n
        after = np.arange(hi + 1, following)
        if length > 1:
            weight[hi + 1 : following] = [
                scaled_sigmoid((i - hi) / (length - 1)) * cost.fp for i in after
            ]
        else:  # NAB's Scorer: a one-row window counts as distance 2 for what follows
            weight[hi + 1 : following] = scaled_sigmoid(2.0) * cost.fp
    scored = np.arange(n) >= probation_length(n, probation_percent)
    return PointWeights(window, weight, scored)


@dataclass(frozen=True)
class FileScore:
    """One file's NAB result at one threshold."""

    name: str
    score: float
    windows: int  # scored windows (with at least one row after probation)
    detected: int  # windows with a detection
    false_positives: int  # rows detected outside every window (after probation)
    first_detection: tuple[float | None, ...]  # per window: relative position, -1 = start


def score_file(
    scores: FloatArray,
    windows: Sequence[tuple[int, int]],
    threshold: float,
    cost: CostMatrix = STANDARD,
    *,
    name: str = "",
    probation_percent: float = PROBATION_PERCENT,
) -> FileScore:
    """NAB score of one file at `threshold` (a row is a detection when score >= threshold)."""
    scores = np.asarray(scores, dtype=np.float64)
    w = point_weights(len(scores), windows, cost, probation_percent)
    detected = (scores >= threshold) & w.scored
    fp_rows = detected & (w.window < 0)
    total = float(w.weight[fp_rows].sum())
    n_windows = 0
    n_detected = 0
    firsts: list[float | None] = []
    for k, (lo, hi) in enumerate(windows):
        in_window = np.nonzero(w.scored & (w.window == k))[0]
        if not len(in_window):
            continue  # entirely in probation: NAB's sweeper leaves it out
        n_windows += 1
        hits = in_window[detected[in_window]]
        if len(hits):
            n_detected += 1
            total += float(w.weight[hits[0]])
            firsts.append(-(hi - int(hits[0]) + 1) / (hi - lo + 1))
        else:
            total -= cost.fn
            firsts.append(None)
    return FileScore(name, total, n_windows, n_detected, int(fp_rows.sum()), tuple(firsts))


@dataclass(frozen=True)
class Sweep:
    """The corpus total at every candidate threshold, and the best one."""

    thresholds: FloatArray  # descending; the first is above every score (nothing detected)
    totals: FloatArray
    best_threshold: float
    best_total: float


def sweep(
    results: Sequence[tuple[FloatArray, Sequence[tuple[int, int]]]],
    cost: CostMatrix = STANDARD,
    probation_percent: float = PROBATION_PERCENT,
) -> Sweep:
    """Corpus total at every distinct score used as the threshold (NAB's optimiser, exactly).

    Lowering the threshold past a row's score adds that row as a detection: outside a window it
    adds its FP cost; inside one it raises the window's value to the best (earliest) detection
    so far. Cumulative sums over the rows sorted by score give every threshold's total at once.
    """
    all_scores: list[FloatArray] = []
    all_weights: list[FloatArray] = []
    all_windows: list[IntArray] = []
    offset = 0
    for scores, windows in results:
        s = np.asarray(scores, dtype=np.float64)
        w = point_weights(len(s), windows, cost, probation_percent)
        keep = w.scored
        gid = np.where(w.window >= 0, w.window + offset, -1)[keep]
        offset += len(windows)
        all_scores.append(s[keep])
        all_weights.append(w.weight[keep])
        all_windows.append(gid)
    score = np.concatenate(all_scores) if all_scores else np.zeros(0)
    weight = np.concatenate(all_weights) if all_weights else np.zeros(0)
    window = np.concatenate(all_windows) if all_windows else np.zeros(0, dtype=np.int64)
    score = np.where(np.isfinite(score), score, -np.inf)  # NaN never reaches a threshold
    order = np.argsort(-score, kind="stable")
    score, weight, window = score[order], weight[order], window[order]
    gain = np.where(window < 0, weight, 0.0)
    present = np.unique(window[window >= 0])
    for g in present:  # a window's value is the best detection so far (-A_FN before any)
        idx = np.nonzero(window == g)[0]
        best = np.maximum.accumulate(np.concatenate(([-cost.fn], weight[idx])))
        gain[idx] = np.diff(best)
    base = -cost.fn * len(present)
    running = base + np.cumsum(gain)
    last_of_group = np.ones(len(score), dtype=bool)
    last_of_group[:-1] = score[1:] != score[:-1]
    last_of_group &= np.isfinite(score)
    top = float(score[0]) if len(score) and np.isfinite(score[0]) else 1.0
    thresholds = np.concatenate(([np.nextafter(max(top, 1.0), np.inf)], score[last_of_group]))
    totals = np.concatenate(([base], running[last_of_group]))
    k = int(np.argmax(totals))  # ties: the highest threshold (fewest detections)
    return Sweep(thresholds, totals, float(thresholds[k]), float(totals[k]))


def normalised(total: float, n_windows: int, cost: CostMatrix = STANDARD) -> float | None:
    """100 (total - null) / (perfect - null): 0 = never detect, 100 = every window at its start."""
    null = -cost.fn * n_windows
    perfect = cost.tp * n_windows
    if perfect == null:
        return None
    return 100.0 * (total - null) / (perfect - null)


Detector = Callable[[NabFile], FloatArray]


def run_detector(
    files: Sequence[NabFile], detector: Detector, progress: Callable[[str], None] | None = None
) -> tuple[list[FloatArray], list[float]]:
    """Anomaly scores of every file, and the seconds each took."""
    out: list[FloatArray] = []
    seconds: list[float] = []
    for f in files:
        started = time.perf_counter()
        scores = np.asarray(detector(f), dtype=np.float64)
        seconds.append(time.perf_counter() - started)
        if scores.shape != (len(f),):
            raise ValueError(f"{f.name}: detector returned {scores.shape}, expected ({len(f)},)")
        out.append(scores)
        if progress is not None:
            progress(f.name)
    return out, seconds


@dataclass
class NabReport:
    """A detector's NAB results over a corpus at the swept and at a fixed threshold."""

    profile: str
    best_threshold: float
    best_score: float | None
    default_threshold: float
    default_score: float | None
    windows: int
    files: list[FileScore] = field(default_factory=list)  # at the best threshold
    files_default: list[FileScore] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def folders(self, *, default: bool = False) -> dict[str, tuple[float, int, float | None]]:
        """Per folder: raw total, windows, normalised score (None without windows)."""
        rows = self.files_default if default else self.files
        cost = PROFILES[self.profile]
        out: dict[str, tuple[float, int, float | None]] = {}
        for folder in sorted({r.name.split("/", 1)[0] for r in rows}):
            mine = [r for r in rows if r.name.split("/", 1)[0] == folder]
            total = sum(r.score for r in mine)
            n = sum(r.windows for r in mine)
            out[folder] = (total, n, normalised(total, n, cost))
        return out

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[FileScore]) -> list[dict[str, Any]]:
            return [
                {
                    "file": r.name,
                    "score": r.score,
                    "windows": r.windows,
                    "detected": r.detected,
                    "false_positives": r.false_positives,
                    "first_detection": list(r.first_detection),
                }
                for r in items
            ]

        return {
            "profile": self.profile,
            "windows": self.windows,
            "best": {"threshold": self.best_threshold, "score": self.best_score},
            "default": {"threshold": self.default_threshold, "score": self.default_score},
            "folders": {
                k: {"raw": v[0], "windows": v[1], "score": v[2]} for k, v in self.folders().items()
            },
            "files": rows(self.files),
            "files_default_threshold": rows(self.files_default),
            "seconds": float(sum(self.seconds)),
        }


def evaluate(
    files: Sequence[NabFile],
    scores: Sequence[FloatArray],
    *,
    default_threshold: float,
    profile: str = "standard",
    seconds: Sequence[float] = (),
) -> NabReport:
    """Score a corpus: the best single threshold (swept) and a fixed one, per file and total."""
    cost = PROFILES[profile]
    pairs = [(s, f.windows) for s, f in zip(scores, files, strict=True)]
    best = sweep(pairs, cost)

    def at(threshold: float) -> list[FileScore]:
        return [
            score_file(s, f.windows, threshold, cost, name=f.name)
            for s, f in zip(scores, files, strict=True)
        ]

    files_best = at(best.best_threshold)
    files_default = at(default_threshold)
    n_windows = sum(r.windows for r in files_best)
    return NabReport(
        profile=profile,
        best_threshold=best.best_threshold,
        best_score=normalised(sum(r.score for r in files_best), n_windows, cost),
        default_threshold=default_threshold,
        default_score=normalised(sum(r.score for r in files_default), n_windows, cost),
        windows=n_windows,
        files=files_best,
        files_default=files_default,
        seconds=list(seconds),
    )


def table(report: NabReport) -> str:
    """Per file, per folder and total, at the best threshold and at the default one."""
    lines = [
        f"NAB {report.profile} profile: {len(report.files)} files, {report.windows} windows",
        "",
        f"{'file':<58} {'win':>3} {'det':>3} {'FP':>4} {'raw':>7} | {'det':>3} {'FP':>4} "
        f"{'raw':>7} {'sec':>6}",
    ]
    secs = report.seconds or [math.nan] * len(report.files)
    for best, fixed, sec in zip(report.files, report.files_default, secs, strict=True):
        lines.append(
            f"{best.name:<58} {best.windows:>3} {best.detected:>3} {best.false_positives:>4} "
            f"{best.score:>7.2f} | {fixed.detected:>3} {fixed.false_positives:>4} "
            f"{fixed.score:>7.2f} {sec:>6.2f}"
        )
    lines.append("")
    folders_best = report.folders()
    folders_fixed = report.folders(default=True)
    for name, (raw, n, norm) in folders_best.items():
        raw_d, _, norm_d = folders_fixed[name]
        lines.append(
            f"{name:<24} windows {n:>3}: raw {raw:>7.2f} score {_fmt(norm):>6} | "
            f"raw {raw_d:>7.2f} score {_fmt(norm_d):>6}"
        )
    lines.append("")
    lines.append(
        f"NAB score at the best threshold ({report.best_threshold:.4g}): {_fmt(report.best_score)}"
    )
    lines.append(
        f"NAB score at the default threshold ({report.default_threshold:.4g}): "
        f"{_fmt(report.default_score)}"
    )
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"
