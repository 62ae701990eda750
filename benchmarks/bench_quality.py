"""The simulator's quality table: every trace in ../shared/traces through the forecast, hpa and
oracle policies with the defaults (startup 3m, warmup 50%), and the issue's bar per trace:
the forecast policy short at most half as often as the hpa, at no more replica-hours.

    python benchmarks/bench_quality.py [--traces DIR] [--jobs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "traces"


def run_one(path: str) -> dict[str, Any]:
    from forecastscaler.simulator.api import simulate

    started = time.perf_counter()
    result = simulate(path)
    out = result.to_dict()
    out["seconds"] = time.perf_counter() - started
    return out


def verdict(policies: dict[str, dict[str, Any]]) -> str:
    f, h = policies["forecast"], policies["hpa"]
    fewer_short = f["underprovisioned_fraction"] <= 0.5 * h["underprovisioned_fraction"]
    cheaper = f["replica_hours"] <= h["replica_hours"]
    if fewer_short and cheaper:
        return "PASS"
    why = []
    if not fewer_short:
        why.append("short")
    if not cheaper:
        why.append("cost")
    return "fail (" + ", ".join(why) + ")"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.traces.is_dir():
        print(f"no traces at {args.traces}: skipped")
        return 0
    paths = sorted(str(p) for p in args.traces.glob("*.csv"))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, paths))
    header = (
        f"{'trace':<24} {'policy':<9} {'short %':>8} {'unmet %':>8} {'replica-h':>11} "
        f"{'vs oracle':>9} {'actions':>8}  verdict"
    )
    print(header)
    print("-" * len(header))
    passes = 0
    for res in results:
        pol = res["policies"]
        v = verdict(pol)
        passes += v == "PASS"
        for name in ("forecast", "hpa", "oracle"):
            s = pol[name]
            print(
                f"{res['trace']:<24} {name:<9} {100 * s['underprovisioned_fraction']:>8.2f} "
                f"{100 * s['unmet_fraction']:>8.2f} {s['replica_hours']:>11.1f} "
                f"{s['cost_vs_oracle']:>8.3f}x {s['scaling_actions']:>8}"
                + (f"  {v}" if name == "forecast" else "")
            )
    print("-" * len(header))
    print(
        f"bar met on {passes} of {len(results)} traces; "
        f"{time.perf_counter() - started:.0f}s with {args.jobs} jobs"
    )
    for res in results:
        f = res["policies"]["forecast"]
        if f.get("forecast_points"):
            print(
                f"{res['trace']:<24} forecast WAPE {100 * f['forecast_wape']:.1f}%, "
                f"80% interval coverage {100 * f['interval_coverage']:.1f}%, "
                f"p90 coverage {100 * f['quantile_coverage']:.1f}%, "
                f"step {res['step_seconds']:g}s, startup {res['startup_seconds']:g}s "
                f"({res['seconds']:.0f}s)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
