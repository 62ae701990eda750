"""What one ForecastScaler costs the operator: fit, update, predict, decide, and memory.

Prints a table and the issue's bars (default ensemble on 7 days of 1-minute history: fit within
5 s on one core, predict within 50 ms, under 300 MB per fitted object). The process is pinned
to one core and every library to one thread. The history is 7 days at a 1-minute step (the
API's defaults), taken from the shared Alibaba trace when it is there (30 s averaged to 1 min)
and generated otherwise, so the benchmark also runs from a user's checkout.

    python benchmarks/bench_operator_path.py [--repeat 5] [--keep 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.decision import ForecastPath, Observation, decide, initial_memory
from forecastscaler.models.ensemble import Ensemble
from forecastscaler.models.selection import make_forecaster

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces" / "alibaba2018_cpu_30s.csv"
STEPS = 7 * 24 * 60


def history() -> tuple[pd.Series, str]:
    if SHARED.exists():
        raw = pd.read_csv(SHARED, parse_dates=["timestamp"], index_col="timestamp")["value"]
        minute = raw.resample("1min").mean().dropna()
        return minute.iloc[:STEPS], f"{SHARED.name} (1-min means)"
    rng = np.random.default_rng(0)
    t = np.arange(STEPS)
    values = 500 + 300 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 30, STEPS)
    index = pd.date_range("2026-01-01", periods=STEPS, freq="1min", tz="UTC")
    return pd.Series(np.maximum(values, 0), index=index), "synthetic daily sine"


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def rss_mb() -> float:
    """Resident memory of this process now (not the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_core() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        return "not pinned"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    return "pinned to one core, one thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=int, default=5, help="fitted objects kept for memory")
    args = parser.parse_args()

    pinning = one_core()
    y, source = history()
    horizon = 5
    first = timed(lambda: make_forecaster(["ensemble"], horizon).fit(y), 1)  # with imports
    fits = timed(lambda: make_forecaster(["ensemble"], horizon).fit(y), args.repeat)
    gc.collect()
    rss_before = rss_mb()
    kept = [make_forecaster(["ensemble"], horizon).fit(y) for _ in range(args.keep)]
    gc.collect()
    per_object = (rss_mb() - rss_before) / len(kept)
    model = kept[0]
    assert isinstance(model, Ensemble)
    # As the operator runs: every minute one new point (update), then a predict at each of
    # the step's syncs; the first after an update computes, the next is served from the cache.
    updates: list[float] = []
    predicts: list[float] = []
    cached: list[float] = []
    grown = y
    for i in range(args.repeat * 20):
        value = float(y.iloc[-(i % 60) - 1])
        grown = pd.concat(
            [grown, pd.Series([value], index=[grown.index[-1] + pd.Timedelta("1min")])]
        )
        updates += timed(lambda g=grown: model.update(g), 1)  # type: ignore[misc]
        predicts += timed(lambda: model.predict(horizon + 1, (0.1, 0.5, 0.9)), 1)
        cached += timed(lambda: model.predict(horizon + 2, (0.1, 0.5, 0.9)), 1)

    spec = ForecastScalerSpec.model_validate(
        {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 50,
            "metric": {"query": "q", "targetPerReplica": 10},
        }
    )
    path = ForecastPath(
        times=tuple(float(i * 60) for i in range(10)),
        value=(500.0,) * 10,
        point=(450.0,) * 10,
        lower=(400.0,) * 10,
        upper=(500.0,) * 10,
        quantile=0.9,
        model="x",
    )
    obs = Observation(
        now=0.0, current_replicas=40, load=420.0, forecast=path, memory=initial_memory(0.0, 40)
    )
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        decide(spec, obs)
    per_decision = (time.perf_counter() - start) / n

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:8.1f} ms (max {max(xs) * 1000:.1f})"

    print(f"history: {len(y)} points at 1 min from {source}; horizon {horizon} steps; {pinning}")
    print(f"ensemble ({model.scheme_}): {model.summary}")
    print("backtest MAE by member: " + ", ".join(f"{k} {v:.3g}" for k, v in model.errors_.items()))
    if model.skipped_:
        print("skipped: " + "; ".join(f"{k}: {v}" for k, v in model.skipped_.items()))
    print()
    print(f"{'operation':<42}{'median':>30}")
    print(f"{'first fit in the process (with imports)':<42}{ms(first):>30}")
    print(f"{'fit default ensemble (7 d, 1 min)':<42}{ms(fits):>30}")
    print(f"{'update with one new point':<42}{ms(updates):>30}")
    print(f"{'predict 6 steps, 3 quantiles, after update':<42}{ms(predicts):>30}")
    print(f"{'predict again before the next update':<42}{ms(cached):>30}")
    print(f"{'decide (pure core)':<42}{per_decision * 1e6:>24.1f} µs")
    print(f"{'memory per fitted object (RSS growth)':<42}{per_object:>27.1f} MB")
    print()
    bars = [
        ("fit within 5 s on one core", statistics.median(fits) <= 5.0),
        ("predict within 50 ms", statistics.median(predicts) <= 0.050),
        ("under 300 MB per fitted object", per_object < 300.0),
    ]
    for name, ok in bars:
        print(f"{name:<42}{'met' if ok else 'NOT met':>30}")


if __name__ == "__main__":
    main()
