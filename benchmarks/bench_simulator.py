"""How long the simulator takes to replay 30 days of 1-minute load (43,200 steps), per policy,
with the forecast policy's time split into fit / update / predict / decide.

The load is the Alibaba 2018 CPU trace from ../shared/traces as 1-minute means, repeated to
37 days: the first 7 are history (the default forecast.history), the 30 after are replayed.
Without ../shared, a synthetic daily pattern with noise is used.

    python benchmarks/bench_simulator.py [--days 30] [--quantiles 0.6,0.75]

--quantiles also replays the forecast policy at those quantiles on the same run's forecasts
(`simulate --quantiles`) and times each track; the forecast policy's own `predict` then also
gives the tracked quantiles' paths.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecastscaler.core.traces import Trace, load_trace
from forecastscaler.simulator.api import build_world, make_policies
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.forecast_policy import (
    ForecastPolicy,
    QuantileTrack,
    parse_quantiles,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces" / "alibaba2018_cpu_30s.csv"
HISTORY_DAYS = 7


def make_trace(days: int) -> tuple[Trace, str]:
    steps = (days + HISTORY_DAYS) * 1440
    if SHARED.is_file():
        source = load_trace(SHARED).load.resample("1min").mean().interpolate(limit=5)
        values = np.resize(source.to_numpy(), steps)
        origin = f"{SHARED.name} (1-min means, repeated)"
    else:
        rng = np.random.default_rng(0)
        t = np.arange(steps)
        values = 50 + 20 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 3, steps)
        origin = "synthetic daily pattern"
    index = pd.date_range("2024-01-01", periods=steps, freq="1min", tz="UTC")
    load = pd.Series(values, index=index, dtype="float64")
    return Trace(name="bench", load=load, step=pd.Timedelta(minutes=1)), origin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--fit-workers",
        type=int,
        default=1,
        help="processes fitting the next refit during the replay (0: fit in place)",
    )
    parser.add_argument("--quantiles", default="", help="comma-separated quantile tracks")
    args = parser.parse_args()
    quantiles = parse_quantiles(args.quantiles)
    trace, origin = make_trace(args.days)
    warmup = HISTORY_DAYS / (args.days + HISTORY_DAYS)
    world = build_world(trace, warmup=warmup)
    print(
        f"trace: {origin}; {world.n} steps at 1 min, replayed from step {world.first_replayed} "
        f"({world.n - world.first_replayed} steps, {world.n - world.first_scored} scored); "
        "startup 3m"
    )
    rows: list[tuple[str, str]] = []
    policies = []
    for kind in ("oracle", "hpa", "forecast"):
        made, _, _ = make_policies(
            world,
            [kind],
            clock=time.perf_counter,
            fit_workers=args.fit_workers,
            quantiles=quantiles,
        )
        policies.extend(made)
    for policy in policies:
        started = time.perf_counter()
        try:
            rep = replay(world, policy)
        finally:
            if isinstance(policy, ForecastPolicy):
                policy.close()
        total = time.perf_counter() - started
        what = "track" if isinstance(policy, QuantileTrack) else "policy"
        rows.append((f"{policy.name} {what} ({rep.syncs} syncs)", f"{total:8.2f} s"))
        if isinstance(policy, ForecastPolicy):
            timed = 0.0
            for phase in ("fit", "update", "predict", "decide"):
                sec, calls = policy.timings.seconds[phase], policy.timings.calls[phase]
                timed += sec
                per = f"{1e3 * sec / calls:.2f} ms each" if calls else ""
                rows.append((f"  {phase} ({calls} calls, {per})", f"{sec:8.2f} s"))
            rows.append(
                ("  replay engine, history slicing, bookkeeping", f"{total - timed:8.2f} s")
            )
            ahead = policy.fit_ahead
            if ahead is not None:
                rows.append(
                    (
                        f"  (fit = waiting for {ahead.hits} fits made ahead in a worker, "
                        f"{ahead.worker_seconds:.1f} s of its time; {ahead.misses} missed)",
                        "",
                    )
                )
    width = max(len(name) for name, _ in rows) + 2
    print()
    print(f"{'what':<{width}}{'time':>10}")
    for name, value in rows:
        print(f"{name:<{width}}{value:>10}")


if __name__ == "__main__":
    main()
