"""`forecastscaler simulate`: the command line of the simulator."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from forecastscaler.core.traces import TraceError
from forecastscaler.simulator.api import POLICY_KINDS, simulate
from forecastscaler.simulator.forecast_policy import parse_quantiles
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
