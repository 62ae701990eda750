"""`forecastscaler detect` (score every step of a trace for anomalies) and `forecastscaler nab`
(the detector's Numenta Anomaly Benchmark score on a corpus folder)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecastscaler.core.traces import TraceError, load_trace
from forecastscaler.evaluation.nab import (
    PROFILES,
    CorpusError,
    FloatArray,
    NabFile,
    evaluate,
    load_corpus,
    run_detector,
    table,
)
from forecastscaler.models.detector import DEFAULT_THRESHOLD, StreamingDetector


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="CSV: timestamp and value columns")
    parser.add_argument("--out", required=True, help="CSV to write: timestamp,value,anomaly_score")
    parser.add_argument("--column", default="value", help="value column (default: value)")
    parser.add_argument(
        "--threshold",
        type=float,
        help=f"score counted as an anomaly in the summary (default {DEFAULT_THRESHOLD})",
    )


def run_detect(args: argparse.Namespace) -> int:
    """Score a trace step by step (each from its past only) and write the scores."""
    try:
        trace = load_trace(args.trace, column=args.column)
    except TraceError as exc:
        print(f"forecastscaler detect: {exc}", file=sys.stderr)
        return 2
    for warning in trace.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    detector = StreamingDetector()
    threshold = detector.threshold if args.threshold is None else args.threshold
    started = time.perf_counter()
    scores = detector.score_series(trace.load)
    index = pd.DatetimeIndex(trace.load.index)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if (index.microsecond != 0).any() else "%Y-%m-%dT%H:%M:%SZ"
    frame = pd.DataFrame(
        {
            "timestamp": index.tz_convert("UTC").strftime(fmt)
            if index.tz is not None
            else index.strftime(fmt),
            "value": trace.load.to_numpy(),
            "anomaly_score": np.round(scores, 6),
        }
    )
    out = Path(args.out)
    try:
        frame.to_csv(out, index=False, na_rep="")
    except OSError as exc:
        print(f"forecastscaler detect: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    flagged = np.nonzero(scores >= threshold)[0]
    first = f", first at {frame['timestamp'].iloc[flagged[0]]}" if len(flagged) else ""
    print(
        f"{trace.name}: {len(scores)} steps of {trace.step_seconds:g}s, {len(flagged)} scored >= "
        f"{threshold:g}{first} (no score before step {detector.min_history()}); wrote {out} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


def add_nab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help="corpus folder: CSV files and windows.json (NAB's layout)"
    )
    parser.add_argument("--windows", help="windows file (default: DATA/windows.json)")
    parser.add_argument(
        "--profile", default="standard", choices=sorted(PROFILES), help="NAB cost profile"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="fixed threshold reported next to the swept one "
        f"(default: the detector's, {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--json", help="write every figure to this JSON file")


def _default_detector(f: NabFile) -> FloatArray:
    return StreamingDetector().score_series(f.series())


def run_nab(args: argparse.Namespace) -> int:
    """Run the detector over every labelled file and print NAB's score, per file and total."""
    try:
        files = load_corpus(args.data, args.windows)
    except CorpusError as exc:
        print(f"forecastscaler nab: {exc}", file=sys.stderr)
        return 2
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    started = time.perf_counter()
    done = [0]

    def progress(name: str) -> None:
        done[0] += 1
        if sys.stderr.isatty():
            print(f"\r[{done[0]}/{len(files)}] {name:<70}", end="", file=sys.stderr, flush=True)

    scores, seconds = run_detector(files, _default_detector, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    report = evaluate(
        files, scores, default_threshold=threshold, profile=args.profile, seconds=seconds
    )
    print(table(report))
    print(f"({len(files)} files scored in {time.perf_counter() - started:.1f}s)")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            print(f"forecastscaler nab: cannot write {args.json}: {exc}", file=sys.stderr)
            return 2
    return 0
