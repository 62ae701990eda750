"""What one ForecastScaler costs the operator: fit, update, predict and decide.

Prints a table. The history is 7 days at a 1-minute step (the API's defaults), taken from the
shared Alibaba trace when it is there (interpolated from 30 s to 1 min) and generated
otherwise, so the benchmark also runs from a user's checkout.

    python benchmarks/bench_operator_path.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from forecastscaler.models.selection import BestOf, make_forecaster
from forecastscaler.operator.api import ForecastScalerSpec
from forecastscaler.operator.decision import ForecastPath, Observation, decide, initial_memory

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    y, source = history()
    horizon = 5
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fits = timed(lambda: make_forecaster(["ensemble"], horizon).fit(y), args.repeat)
    model = make_forecaster(["ensemble"], horizon).fit(y)
    assert isinstance(model, BestOf)
    newer = pd.concat(
        [y, pd.Series([float(y.iloc[-1])], index=[y.index[-1] + pd.Timedelta("1min")])]
    )
    updates = timed(lambda: model.update(newer), args.repeat)
    predicts = timed(lambda: model.predict(horizon + 1, (0.1, 0.5, 0.9)), args.repeat * 20)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

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

    print(f"history: {len(y)} points at 1 min from {source}; horizon {horizon} steps")
    print(
        f"chosen model: {model.chosen_.name}; backtest MAE by model: "
        + ", ".join(f"{k} {v:.3g}" for k, v in model.errors_.items())
    )
    print()
    print(f"{'operation':<38}{'median':>30}")
    print(f"{'fit default forecaster (7 d, 1 min)':<38}{ms(fits):>30}")
    print(f"{'update with one new point':<38}{ms(updates):>30}")
    print(f"{'predict 6 steps, 3 quantiles':<38}{ms(predicts):>30}")
    print(f"{'decide (pure core)':<38}{per_decision * 1e6:>24.1f} µs")
    print(f"{'peak RSS growth while fitting':<38}{(rss_after - rss_before) / 1024:>27.1f} MB")


if __name__ == "__main__":
    main()
