"""The simulator's quality bars (issue 13): every trace in ../shared/traces, startup 3m, capacity
median/10, through the HPA at targets 50-95 %, ForecastScaler over a quantile sweep (one
forecast run: the quantile tracks), the oracle and `perfect` (the same decisions fed the exact
future), and the bars:

1. frontier: for every HPA target in {50, 60, 70, 80, 90} %, some ForecastScaler quantile is no
   more often short and at least 15 % cheaper, on at least 8 of the traces (of 10);
2. the defaults beat the HPA at 80 % on both axes (less often short, fewer replica-hours) on at
   least 8 of 10, and on the minute-level traces are under 0.5 % short at no more than 1.15x
   the oracle;
3. `perfect` at capacity: never short, at most 1.05x the oracle, on every trace.

The forecast's own bars (ensemble vs last value and seasonal naive, p90 coverage) are
benchmarks/bench_forecast.py's; the operator path's (fit, predict) bench_operator_path.py's.

    python benchmarks/bench_quality.py [--traces DIR] [--jobs 2] [--json out.json]
        [--scaler fsc.yaml] [--quantiles 0.5,...,0.999] [--report out.json]

The default quantile is the manifest's (--scaler) or ForecastScaler's; its row is the sweep's
row at that quantile (a track replays exactly what a separate replay at its quantile does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from forecastscaler.simulator.forecast_policy import parse_quantiles
from forecastscaler.simulator.frontier import DEFAULT_QUANTILES

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "traces"
POLICIES = ("forecast", "oracle", "perfect")
HPA_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
BAR_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)
CHEAPER = 0.15
"""Bar 1: at least this share cheaper than the HPA it is no more often short than."""
MIN_TRACES = 8
MINUTE_SHORT, MINUTE_COST = 0.005, 1.15
PERFECT_COST = 1.05
SLACK = 1e-12


def run_one(path: str, scaler: str | None, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """One trace's frontier, perfect and oracle, as JSON-ready figures."""
    from forecastscaler.simulator.api import simulate
    from forecastscaler.simulator.frontier import from_result
    from forecastscaler.simulator.scalers import read_manifest

    started = time.perf_counter()
    scalers = [read_manifest(scaler)] if scaler else []
    result = simulate(
        path,
        policies=POLICIES,
        scalers=scalers,
        fit_workers=0,  # traces run in parallel jobs already
        quantiles=quantiles,
        hpa_targets=HPA_TARGETS,
    )
    front = from_result(result, HPA_TARGETS, 0.8)
    own = result.scores["forecast"]
    return {
        "trace": result.world.name,
        "step_seconds": result.world.step,
        "capacity": result.world.capacity,
        "default_quantile": front.default_quantile,
        "hpa": [asdict(r) for r in front.hpa],
        "forecast": [asdict(r) for r in front.forecast],
        "perfect": dict(result.scores["perfect"]),
        "accuracy": {
            k: own.get(k) for k in ("forecast_wape", "interval_coverage", "quantile_coverage")
        },
        "warnings": list(result.warnings),
        "seconds": time.perf_counter() - started,
    }


def best_against(res: dict[str, Any], target: float) -> dict[str, Any] | None:
    """The cheapest ForecastScaler quantile no more often short than the HPA at `target`."""
    hpa = next(r for r in res["hpa"] if abs(r["setting"] - target) < 1e-9)
    ok = [r for r in res["forecast"] if r["short"] <= hpa["short"] + SLACK]
    return min(ok, key=lambda r: (r["replica_hours"], r["short"])) if ok else None


def _saving(row: dict[str, Any] | None, hpa: dict[str, Any]) -> float | None:
    return None if row is None else 1.0 - row["replica_hours"] / hpa["replica_hours"]


def frontier_table(results: list[dict[str, Any]]) -> int:
    """Bar 1, per trace and HPA target: the saving of the cheapest quantile that is no more
    often short (and which one); returns on how many traces every target is met."""
    head = f"{'trace':<24}" + "".join(f" {f'hpa@{round(100 * t)}':>17}" for t in BAR_TARGETS)
    print("bar 1: saving of the cheapest quantile no more often short than the HPA at each target")
    print(head)
    print("-" * len(head))
    met = 0
    for res in results:
        cells, all_ok = [], True
        for t in BAR_TARGETS:
            hpa = next(r for r in res["hpa"] if abs(r["setting"] - t) < 1e-9)
            row = best_against(res, t)
            s = _saving(row, hpa)
            ok = s is not None and s >= CHEAPER - SLACK
            all_ok &= ok
            cell = (
                "none" if row is None or s is None else f"{100 * s:+.1f}% p{100 * row['setting']:g}"
            )
            cells.append(cell + ("*" if ok else " "))
        met += all_ok
        print(f"{res['trace']:<24}" + "".join(f" {c:>17}" for c in cells))
    print(f"(* at least {100 * CHEAPER:g} % cheaper) every target met on {met} of {len(results)}")
    return met


def defaults_table(results: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Bar 2: the default quantile against the HPA at 80 %; returns (both axes, minute-level
    met, minute-level traces)."""
    print()
    print("bar 2: the defaults against the HPA at 80 %")
    head = (
        f"{'trace':<24} {'step':>6} {'q':>6} {'short %':>8} {'hpa short %':>11} "
        f"{'vs oracle':>9} {'hpa':>7} {'saving':>7}  verdict"
    )
    print(head)
    print("-" * len(head))
    both = minute_ok = minute = 0
    for res in results:
        own = next(r for r in res["forecast"] if r["default"])
        hpa = next(r for r in res["hpa"] if r["default"])
        axes = own["short"] <= hpa["short"] + SLACK and own["replica_hours"] <= hpa["replica_hours"]
        both += axes
        verdict = "both axes" if axes else "fail (" + _why(own, hpa) + ")"
        if res["step_seconds"] <= 60:
            minute += 1
            fine = own["short"] < MINUTE_SHORT and own["cost_vs_oracle"] <= MINUTE_COST + SLACK
            minute_ok += fine
            verdict += "; minute bar " + ("met" if fine else "missed")
        print(
            f"{res['trace']:<24} {res['step_seconds']:>5g}s {own['setting']:>6g} "
            f"{100 * own['short']:>8.2f} {100 * hpa['short']:>11.2f} "
            f"{own['cost_vs_oracle']:>8.3f}x {hpa['cost_vs_oracle']:>6.3f}x "
            f"{100 * (_saving(own, hpa) or 0):>+6.1f}%  {verdict}"
        )
    print(f"both axes on {both} of {len(results)}; minute-level bar on {minute_ok} of {minute}")
    return both, minute_ok, minute


def _why(own: dict[str, Any], hpa: dict[str, Any]) -> str:
    why = []
    if own["short"] > hpa["short"] + SLACK:
        why.append("short")
    if own["replica_hours"] > hpa["replica_hours"]:
        why.append("cost")
    return ", ".join(why)


def perfect_table(results: list[dict[str, Any]]) -> int:
    """Bar 3: `perfect` at capacity never short and near the oracle."""
    print()
    print("bar 3: perfect (the exact future as the forecast) at capacity")
    met = 0
    for res in results:
        p = res["perfect"]
        ok = p["short_steps"] == 0 and p["cost_vs_oracle"] <= PERFECT_COST + SLACK
        met += ok
        print(
            f"{res['trace']:<24} short steps {p['short_steps']:>4}, "
            f"{p['cost_vs_oracle']:.3f}x the oracle  {'met' if ok else 'MISSED'}"
        )
    print(f"met on {met} of {len(results)}")
    return met


def sweep_table(results: list[dict[str, Any]]) -> None:
    """Every quantile of the sweep: short % and saving against the HPA at 80 %, and the
    provisioned quantile's coverage of the default."""
    print()
    quantiles = [r["setting"] for r in results[0]["forecast"]]
    print("the sweep: short % / saving against the HPA at 80 %")
    print(f"{'trace':<24}" + "".join(f" {f'p{100 * q:g}':>14}" for q in quantiles))
    for res in results:
        hpa = next(r for r in res["hpa"] if r["default"])
        cells = [
            f"{100 * r['short']:.2f} {100 * (_saving(r, hpa) or 0):+.1f}%" for r in res["forecast"]
        ]
        print(f"{res['trace']:<24}" + "".join(f" {c:>14}" for c in cells))
    for res in results:
        a = res["accuracy"]
        if a.get("quantile_coverage") is not None:
            print(
                f"{res['trace']:<24} default: WAPE {100 * a['forecast_wape']:.1f}%, 80% interval "
                f"coverage {100 * a['interval_coverage']:.1f}%, provisioned-quantile coverage "
                f"{100 * a['quantile_coverage']:.2f}% ({res['seconds']:.0f}s)"
            )


def report(results: list[dict[str, Any]], elapsed: str) -> None:
    n = len(results)
    one = frontier_table(results)
    both, minute_ok, minute = defaults_table(results)
    three = perfect_table(results)
    sweep_table(results)
    print()
    print(f"bar 1 (frontier): {one} of {n} traces (need {MIN_TRACES})")
    print(
        f"bar 2 (defaults vs hpa@80): both axes on {both} of {n} (need {MIN_TRACES}); "
        f"minute-level under {100 * MINUTE_SHORT:g} % short at <= {MINUTE_COST}x the oracle on "
        f"{minute_ok} of {minute}"
    )
    print(f"bar 3 (perfect): {three} of {n} (need all); {elapsed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--scaler", help="ForecastScaler manifest for the forecast policy")
    parser.add_argument(
        "--quantiles",
        default=",".join(f"{q:g}" for q in DEFAULT_QUANTILES),
        help="the quantile sweep (comma-separated)",
    )
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json run")
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()), f"figures from {args.report}")
        return 0
    quantiles = parse_quantiles(args.quantiles)
    paths = sorted(str(p) for p in args.traces.glob("*.csv")) if args.traces.is_dir() else []
    if not paths:
        print(f"no traces (*.csv) in {args.traces}: skipped")
        return 0
    started = time.perf_counter()
    n = len(paths)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, paths, [args.scaler] * n, [quantiles] * n))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    report(results, f"{time.perf_counter() - started:.0f}s with {args.jobs} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
