"""The forecast-quality bar: every trace in ../shared/traces backtested 5 steps ahead for every
member and the ensemble (`forecastscaler.evaluation.backtest`, defaults: history 7d, refit every
1h lengthened to at most 24 refits, origins over the last half, at most 3000 of them).

The bar, per trace: the ensemble's MAE below the last value's and below seasonal naive's (on
the points both forecast), and the share of actuals at or below its 0.9 quantile forecast in
[0.85, 0.95]; on most traces, its MAE at most that of its best member (among the members
backtested). The 0.1-0.9 interval's coverage (target 0.8) is shown alongside. Seasonal naive is
the seasonalNaive member; on traces where it finds no season in some windows, the load at the
same time the day before stands in for it (marked *), so every trace gets a verdict.

    python benchmarks/bench_forecast.py [--traces NAME_OR_PATH ...] [--models a,b,...]
        [--max-origins 3000] [--max-refits 24] [--jobs 1] [--json out.json]

Without ../shared (and no --traces), it prints that it skipped and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecastscaler.core.traces import load_trace
from forecastscaler.evaluation.backtest import (
    DEFAULT_MAX_ORIGINS,
    DEFAULT_MAX_REFITS,
    ENSEMBLE,
    BacktestResult,
    backtest,
    ensemble_members,
)
from forecastscaler.evaluation.scores import mae

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "traces"
STEPS = 5
QUANTILE = 0.9
COVERAGE = (0.85, 0.95)
SEASONAL_NAIVE = "seasonalNaive"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def daily_naive_ratio(result: BacktestResult, load: pd.Series) -> float:
    """Ensemble MAE over the MAE of the load one day before each target, on the points both
    have (NaN when the horizon reaches past a day, where that would look ahead)."""
    day = pd.Timedelta(days=1)
    f = result.forecasts[result.forecasts["model"] == ENSEMBLE]
    if not len(f) or (f["target"] - f["origin"]).max() > day:
        return math.nan
    reference = load.reindex(pd.DatetimeIndex(f["target"]) - day).to_numpy(np.float64)
    actual = f["actual"].to_numpy(np.float64)
    ok = np.isfinite(reference) & np.isfinite(actual)
    theirs = mae(actual[ok], reference[ok])
    return mae(actual[ok], f["point"].to_numpy(np.float64)[ok]) / theirs if theirs > 0 else math.nan


def bar(result: BacktestResult, load: pd.Series) -> dict[str, Any]:
    """The bar's figures and checks for one trace (None where a model has no forecasts)."""
    m: dict[str, dict[str, Any]] = result.to_dict()["models"]
    usable = [name for name, row in m.items() if row["status"] != "skipped"]
    if ENSEMBLE not in usable:
        why = m[ENSEMBLE]["reason"] if ENSEMBLE in m else "not backtested"
        return {"verdict": f"no ensemble ({why})", "passed": False, "as_good_as_best": False}
    ens = m[ENSEMBLE]
    vs_last = ens["mae_vs_last"] if ens["mae_vs_last"] is not None else math.inf
    # Seasonal naive is the member when it forecasts at every origin; where it finds no season
    # (some windows or all), the same time yesterday stands in for it.
    if SEASONAL_NAIVE in m and m[SEASONAL_NAIVE]["status"] == "ok":
        vs_snaive, snaive = result.compare(ENSEMBLE, SEASONAL_NAIVE), SEASONAL_NAIVE
    else:
        vs_snaive, snaive = daily_naive_ratio(result, load), "same time yesterday"
    ratios = {name: result.compare(ENSEMBLE, name) for name in ensemble_members() if name in usable}
    ratios = {k: v for k, v in ratios.items() if math.isfinite(v)}
    # The best member is the one the ensemble fares worst against on their common points.
    best = max(ratios, key=lambda k: ratios[k]) if ratios else None
    cov = ens["quantile_coverage"] if ens["quantile_coverage"] is not None else math.nan
    checks = {
        "beats_last": vs_last < 1,
        "beats_seasonal_naive": vs_snaive < 1 if math.isfinite(vs_snaive) else None,
        "coverage_in_range": COVERAGE[0] <= cov <= COVERAGE[1],
    }
    failed = [k for k, ok in checks.items() if ok is False]
    return {
        "mae_vs_last": _finite(vs_last),
        "mae_vs_seasonal_naive": _finite(vs_snaive),
        "seasonal_naive": snaive,
        "best_member": best,
        "mae_vs_best_member": ratios[best] if best else None,
        "quantile_coverage": _finite(cov),
        "interval_coverage": ens["interval_coverage"],
        **checks,
        "as_good_as_best": best is not None and ratios[best] <= 1,
        "passed": not failed,
        "verdict": "PASS" if not failed else "fail (" + ", ".join(failed) + ")",
    }


def run_one(
    path: str, models: list[str] | None, max_origins: int, max_refits: int
) -> dict[str, Any]:
    started = time.perf_counter()
    trace = load_trace(path)
    result = backtest(
        trace,
        models,
        STEPS,
        quantile=QUANTILE,
        max_origins=max_origins,
        max_refits=max_refits,
    )
    return {
        "trace": result.protocol.trace,
        "seconds": time.perf_counter() - started,
        "table": result.table(),
        "bar": bar(result, trace.load),
        "result": result.to_dict(),
    }


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"  # JSON-ready figures: None when undefined


def summary(runs: list[dict[str, Any]]) -> tuple[str, bool]:
    header = (
        f"{'trace':<26} {'vs last':>8} {'vs sNaive':>9} {'vs best member':>28} "
        f"{'cov 0.9':>8} {'cov 80%':>8} {'<= best':>7}  verdict"
    )
    lines = [header, "-" * len(header)]
    passed = as_good = 0
    for run in runs:
        b = run["bar"]
        passed += bool(b["passed"])
        as_good += bool(b["as_good_as_best"])
        if "mae_vs_last" not in b:
            lines.append(f"{run['trace']:<26} {b['verdict']}")
            continue
        best = f"{_ratio(b['mae_vs_best_member'])} ({b['best_member']})"
        snaive = _ratio(b["mae_vs_seasonal_naive"])
        if b["seasonal_naive"] != SEASONAL_NAIVE:
            snaive += "*"
        lines.append(
            f"{run['trace']:<26} {_ratio(b['mae_vs_last']):>8} {snaive:>9} {best:>28} "
            f"{_ratio(b['quantile_coverage']):>8} {_ratio(b['interval_coverage']):>8} "
            f"{'yes' if b['as_good_as_best'] else 'no':>7}  {b['verdict']}"
        )
    n = len(runs)
    met = passed == n and as_good > n / 2
    lines.append("-" * len(header))
    lines.append(
        f"per-trace bar (beats last and seasonal naive, 0.9 coverage in "
        f"[{COVERAGE[0]}, {COVERAGE[1]}]) met on {passed} of {n}; as good as the best member on "
        f"{as_good} of {n} (needs more than half): {'BAR MET' if met else 'BAR NOT MET'}"
    )
    lines.append(
        "ratios are ensemble MAE / other MAE on the points both forecast (< 1: the ensemble "
        "is better); *: seasonalNaive found no season in some windows, so the load one day "
        "before each target stands in for it"
    )
    return "\n".join(lines), met


def trace_paths(names: list[str] | None, directory: Path) -> list[Path]:
    """The traces asked for (paths, or stems/names in the directory), else every CSV there."""
    if not names:
        return sorted(directory.glob("*.csv"))
    out = []
    for name in names:
        path = Path(name)
        if not path.is_file():
            path = directory / (name if name.endswith(".csv") else f"{name}.csv")
        if not path.is_file():
            raise SystemExit(f"no trace {name!r} (looked in {directory})")
        out.append(path)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", nargs="+", help="trace files or names in --dir (default all)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the traces are")
    parser.add_argument("--models", help="comma-separated (default: every member and ensemble)")
    parser.add_argument(
        "--max-origins",
        type=int,
        default=DEFAULT_MAX_ORIGINS,
        help="origins per trace (fewer: faster, coarser)",
    )
    parser.add_argument("--max-refits", type=int, default=DEFAULT_MAX_REFITS)
    parser.add_argument("--jobs", type=int, default=1, help="traces in parallel (default 1)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    if not args.traces and not args.dir.is_dir():
        print(f"no traces at {args.dir}: skipped")
        return 0
    paths = [str(p) for p in trace_paths(args.traces, args.dir)]
    models = args.models.split(",") if args.models else None
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    jobs = [(p, models, args.max_origins, args.max_refits) for p in paths]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for run in pool.map(run_one, *zip(*jobs, strict=True)):
                print(run["table"], f"({run['seconds']:.0f}s)", "", sep="\n", flush=True)
                runs.append(run)
    else:
        for job in jobs:
            run = run_one(*job)
            print(run["table"], f"({run['seconds']:.0f}s)", "", sep="\n", flush=True)
            runs.append(run)
    text, met = summary(runs)
    print(text)
    print(f"{time.perf_counter() - started:.0f}s for {len(runs)} traces with {args.jobs} job(s)")
    if args.json:
        out = {
            "steps": STEPS,
            "quantile": QUANTILE,
            "coverage_range": list(COVERAGE),
            "bar_met": met,
            "traces": {
                r["trace"]: {"seconds": r["seconds"], "bar": r["bar"], **r["result"]} for r in runs
            },
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
