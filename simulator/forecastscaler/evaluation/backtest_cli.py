"""`forecastscaler backtest`: the command line over evaluation.backtest."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from forecastscaler.core.traces import TraceError, load_trace
from forecastscaler.evaluation.backtest import (
    DEFAULT_HORIZON,
    DEFAULT_MAX_ORIGINS,
    DEFAULT_MAX_REFITS,
    DEFAULT_QUANTILE,
    DEFAULT_RETRAIN,
    backtest,
    horizon_to_steps,
)


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="CSV: timestamp and value columns")
    parser.add_argument("--column", default="value", help="value column (default: value)")
    ahead = parser.add_mutually_exclusive_group()
    ahead.add_argument("--horizon", help=f"how far ahead, a duration (default {DEFAULT_HORIZON})")
    ahead.add_argument("--steps", type=int, help="how far ahead, in trace steps")
    parser.add_argument(
        "--models",
        help="comma-separated model names (default: every registered member and ensemble)",
    )
    parser.add_argument(
        "--history",
        help="window each fit sees (default 7d, or 720 steps when longer, as the simulator)",
    )
    parser.add_argument(
        "--retrain", default=DEFAULT_RETRAIN, help="trace time between refits (default 1h)"
    )
    parser.add_argument(
        "--max-refits",
        type=int,
        default=DEFAULT_MAX_REFITS,
        help=f"lengthen the retrain period to stay within this (default {DEFAULT_MAX_REFITS})",
    )
    parser.add_argument(
        "--warmup", default="50%", help="share of the trace before the first origin (50%%)"
    )
    parser.add_argument(
        "--max-origins",
        type=int,
        default=DEFAULT_MAX_ORIGINS,
        help=f"stride the origins down to this many (default {DEFAULT_MAX_ORIGINS})",
    )
    parser.add_argument(
        "--quantile",
        type=float,
        default=DEFAULT_QUANTILE,
        help="quantile to score by pinball loss and coverage (default 0.9)",
    )
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(desc="backtest", unit="forecast", delay=2.0, leave=False, file=sys.stderr)

    def on_progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            bar.total = total
            bar.update(done - bar.n)

    return on_progress, bar.close


def run_backtest(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    on_progress, close = _progress_bar(not args.no_progress)
    try:
        trace = load_trace(args.trace, column=args.column)
        steps = (
            args.steps
            if args.steps is not None
            else horizon_to_steps(args.horizon or DEFAULT_HORIZON, trace.step)
        )
        result = backtest(
            trace,
            args.models.split(",") if args.models else None,
            steps,
            history=args.history,
            retrain=args.retrain,
            max_refits=args.max_refits,
            warmup=args.warmup,
            max_origins=args.max_origins,
            quantile=args.quantile,
            progress=on_progress,
        )
    except (TraceError, ValueError) as exc:  # BacktestError is a ValueError
        print(f"forecastscaler backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        close()
    print(result.table())
    print(f"(backtested in {time.perf_counter() - started:.1f}s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0
