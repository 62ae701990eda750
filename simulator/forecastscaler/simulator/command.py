"""`forecastscaler simulate`: the command line of the simulator. With `--frontier` (or
`--max-short`) it sweeps the HPA's target and ForecastScaler's quantile instead: what would it
save, and what should be set (frontier.py)."""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable

from forecastscaler.core.traces import TraceError
from forecastscaler.simulator.api import POLICY_KINDS, simulate
from forecastscaler.simulator.forecast_policy import parse_quantiles
from forecastscaler.simulator.frontier import (
    BASELINE_TARGET,
    DEFAULT_HPA_TARGETS,
    DEFAULT_QUANTILES,
    cheapest,
    frontier,
)
from forecastscaler.simulator.scalers import ScalerError

# Replays estimated longer than this many syncs get a progress bar (on a terminal).
PROGRESS_MIN_STEPS = 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="CSV: timestamp and value columns")
    parser.add_argument("--column", default="value", help="value column (default: value)")
    parser.add_argument(
        "--scaler",
        action="append",
        default=[],
        help="ForecastScaler manifest (the file you apply); repeat to compare configurations",
    )
    parser.add_argument(
        "--policies",
        default=",".join(POLICY_KINDS),
        help="comma-separated: forecast,hpa,oracle (the default); yardsticks: perfect (the "
        "forecast policy fed the true future, for models) and target-oracle (perfect foresight "
        "that never runs a replica above the hpa's target, for cost)",
    )
    parser.add_argument(
        "--capacity",
        type=float,
        help="load one replica serves (default: the manifests' targetPerReplica / 0.8 when they "
        "agree, else median load / 10)",
    )
    parser.add_argument("--startup", default="3m", help="replica start-up time (default 3m)")
    parser.add_argument("--warmup", default="50%", help="share of the trace used as history")
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--plot", help="write a PNG of load, capacity and shortage")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument(
        "--quantiles",
        type=_quantiles,
        default=(),
        help="also replay each forecast policy at these forecast.quantile values, e.g. "
        "0.6,0.75 (policies forecast@p60, forecast@p75; its own quantile is the policy itself) "
        "on the same run's forecasts: the models run once, so the trade-off comes almost free",
    )
    parser.add_argument(
        "--hpa-target",
        type=_hpa_share,
        help="the hpa's target utilisation, e.g. 70%% or 0.7 (default 80%%: AverageValue 0.8 x "
        "capacity); with --frontier, the hpa the savings are measured against",
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="the cost/shortage frontier: the hpa over --hpa-targets and the forecast policy "
        "over --quantiles (default "
        + ",".join(f"{q:g}" for q in DEFAULT_QUANTILES)
        + ") on one forecast run; --plot draws it, --json writes its rows",
    )
    parser.add_argument(
        "--hpa-targets",
        type=_hpa_shares,
        help="with --frontier: the hpa targets swept (default "
        + ",".join(f"{100 * t:g}%%" for t in DEFAULT_HPA_TARGETS)
        + ")",
    )
    parser.add_argument(
        "--max-short",
        type=_max_short,
        help="a shortage budget, e.g. 0.5%% or 0.005 of the scored steps: print the cheapest "
        "hpa and ForecastScaler meeting it, their manifest lines and the saving (implies "
        "--frontier)",
    )
    parser.add_argument(
        "--fit-workers",
        type=int,
        help="processes fitting the next refit while the replay goes on; the results are the "
        "same (default: 1 with more than one CPU, else 0)",
    )


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        return parse_quantiles(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_share(text: str, what: str) -> float:
    """A share as a person writes it: `0.5%` or `0.005`. A bare number above 1 is refused, not
    guessed at: `5` could mean 5 % or 500 %."""
    match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*", text)
    if match is None:
        raise ValueError(f"{what}: {text!r} is not a share (write e.g. 0.5% or 0.005)")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {text!r} is not a share between 0 and 1")
    if value > 1:
        hint = "" if match.group(2) else f" (for per cent write {match.group(1)}%)"
        raise ValueError(f"{what}: {text!r} is more than 100%{hint}")
    return value


def _max_short(text: str) -> float:
    try:
        return parse_share(text, "--max-short")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _hpa_share(text: str) -> float:
    try:
        value = parse_share(text, "hpa target")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value == 0:
        raise argparse.ArgumentTypeError(f"hpa target {text!r}: must be above 0")
    return value


def _hpa_shares(text: str) -> tuple[float, ...]:
    shares = tuple(_hpa_share(part) for part in text.split(",") if part.strip())
    if not shares:
        raise argparse.ArgumentTypeError("--hpa-targets: no target given (e.g. 60%,70%,80%)")
    return shares


def _progress(enabled: bool) -> Callable[[str, int], Callable[[int], None] | None] | None:
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    def make(policy: str, steps: int) -> Callable[[int], None] | None:
        if steps < PROGRESS_MIN_STEPS and policy != "forecast":
            return None
        bar = tqdm(total=steps, desc=policy, unit="step", delay=2.0, leave=False, file=sys.stderr)
        done = [0]

        def on_step(_k: int) -> None:
            done[0] += 1
            if done[0] % 200 == 0 or done[0] == steps:
                bar.update(done[0] - bar.n)
                if done[0] == steps:
                    bar.close()

        return on_step

    return make


def run(args: argparse.Namespace) -> int:
    if args.frontier or args.max_short is not None or args.hpa_targets is not None:
        return run_frontier(args)
    started = time.perf_counter()
    try:
        result = simulate(
            args.trace,
            policies=args.policies.split(","),
            scalers=args.scaler,
            capacity=args.capacity,
            startup=args.startup,
            warmup=args.warmup,
            column=args.column,
            progress=_progress(not args.no_progress),
            fit_workers=args.fit_workers,
            quantiles=args.quantiles,
            hpa_target=args.hpa_target,
        )
    except (TraceError, ScalerError, ValueError) as exc:
        print(f"forecastscaler simulate: {exc}", file=sys.stderr)
        return 2
    from forecastscaler.simulator.report import table, write_json

    print(table(result))
    print(f"(replayed in {time.perf_counter() - started:.1f}s)")
    if args.json:
        write_json(result, args.json)
    if args.plot:
        from forecastscaler.simulator.plot import plot

        plot(result, args.plot)
    return 0


def run_frontier(args: argparse.Namespace) -> int:
    """`simulate --frontier`: both curves in a table, the --max-short pick, JSON and PNG."""
    started = time.perf_counter()
    if args.policies != ",".join(POLICY_KINDS):
        print("forecastscaler simulate: --frontier replays its own policies", file=sys.stderr)
        return 2
    try:
        front = frontier(
            args.trace,
            hpa_targets=args.hpa_targets or DEFAULT_HPA_TARGETS,
            quantiles=args.quantiles or DEFAULT_QUANTILES,
            scalers=args.scaler,
            baseline_target=args.hpa_target or BASELINE_TARGET,
            capacity=args.capacity,
            startup=args.startup,
            warmup=args.warmup,
            column=args.column,
            progress=_progress(not args.no_progress),
            fit_workers=args.fit_workers,
        )
    except (TraceError, ScalerError, ValueError) as exc:
        print(f"forecastscaler simulate: {exc}", file=sys.stderr)
        return 2
    from forecastscaler.simulator.report import frontier_table, pick_text, write_frontier_json

    pick = cheapest(front, args.max_short) if args.max_short is not None else None
    print(frontier_table(front))
    if pick is not None:
        print()
        print(pick_text(front, pick))
    print(f"(replayed in {time.perf_counter() - started:.1f}s)")
    if args.json:
        write_frontier_json(front, args.json, pick)
    if args.plot:
        from forecastscaler.simulator.plot import plot_frontier

        plot_frontier(front, args.plot, args.max_short)
    return 0
