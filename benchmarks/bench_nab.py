"""The anomaly detector's NAB standard-profile score over ../shared/anomaly (a 25-file, 39-window
subset of the Numenta Anomaly Benchmark), per folder and in total, at the best single threshold
(NAB's optimiser) and at the detector's default threshold, next to the published scores.

The published scores are over NAB's whole corpus (58 files, 116 windows); this subset is
easier or harder in its own way, so they are also given on the same files: NAB's per-file
results for HTM and Random Cut Forest (their raw scores at their own corpus-wide thresholds),
normalised over this corpus's windows. Several seeds show how much the forests' randomness
moves the score.

    python benchmarks/bench_nab.py [--data DIR] [--seeds 0,1,2] [--files]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "anomaly"

# NAB README, standard profile, whole corpus.
PUBLISHED = {
    "Numenta HTM": 70.5,
    "CAD OSE": 69.9,
    "Random Cut Forest": 51.7,
    "Twitter ADVec": 47.1,
    "windowed Gaussian": 39.6,
    "random": 11.0,
}

# Raw standard-profile score per file at each detector's own optimised threshold, from
# numenta/NAB results/numenta/numenta_standard_scores.csv (a results version whose whole-corpus
# total normalises to 70.1) and results/randomCutForest/randomCutForest_standard_scores.csv
# (51.7). MIT licence, Copyright Numenta.
PER_FILE: dict[str, dict[str, float]] = {
    "Numenta HTM": {
        "artificialNoAnomaly/art_daily_no_noise.csv": -0.22,
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv": 0.0,
        "artificialNoAnomaly/art_daily_small_noise.csv": -0.22,
        "artificialNoAnomaly/art_flatline.csv": 0.0,
        "artificialNoAnomaly/art_noisy.csv": 0.0,
        "artificialWithAnomaly/art_daily_flatmiddle.csv": 0.499996314723,
        "artificialWithAnomaly/art_daily_jumpsdown.csv": 0.748908670438,
        "artificialWithAnomaly/art_daily_jumpsup.csv": 0.86067182427,
        "artificialWithAnomaly/art_daily_nojump.csv": -1.27835146592,
        "artificialWithAnomaly/art_increase_spike_density.csv": 0.86067182427,
        "artificialWithAnomaly/art_load_balancer_spikes.csv": 0.734788146524,
        "realKnownCause/ambient_temperature_system_failure.csv": -0.758599859273,
        "realKnownCause/cpu_utilization_asg_misconfiguration.csv": -0.255718003788,
        "realKnownCause/ec2_request_latency_system_failure.csv": 1.70586905384,
        "realKnownCause/machine_temperature_system_failure.csv": 1.36013273774,
        "realKnownCause/nyc_taxi.csv": 2.43572773247,
        "realKnownCause/rogue_agent_key_hold.csv": -1.11370102385,
        "realKnownCause/rogue_agent_key_updown.csv": -1.29575982814,
        "realTraffic/TravelTime_387.csv": 0.371826726451,
        "realTraffic/TravelTime_451.csv": 0.55193672851,
        "realTraffic/occupancy_6005.csv": 0.861272490375,
        "realTraffic/occupancy_t4013.csv": 1.6260251845,
        "realTraffic/speed_6005.csv": 0.512622001756,
        "realTraffic/speed_7578.csv": 3.19572468045,
        "realTraffic/speed_t4013.csv": 1.98462491465,
    },
    "Random Cut Forest": {
        "artificialNoAnomaly/art_daily_no_noise.csv": 0.0,
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv": 0.0,
        "artificialNoAnomaly/art_daily_small_noise.csv": 0.0,
        "artificialNoAnomaly/art_flatline.csv": 0.0,
        "artificialNoAnomaly/art_noisy.csv": 0.0,
        "artificialWithAnomaly/art_daily_flatmiddle.csv": -1.0,
        "artificialWithAnomaly/art_daily_jumpsdown.csv": -1.0,
        "artificialWithAnomaly/art_daily_jumpsup.csv": 0.86067182427,
        "artificialWithAnomaly/art_daily_nojump.csv": -1.0,
        "artificialWithAnomaly/art_increase_spike_density.csv": -1.0,
        "artificialWithAnomaly/art_load_balancer_spikes.csv": -1.0,
        "realKnownCause/ambient_temperature_system_failure.csv": 1.76216856994,
        "realKnownCause/cpu_utilization_asg_misconfiguration.csv": 0.666433666253,
        "realKnownCause/ec2_request_latency_system_failure.csv": 1.84632452799,
        "realKnownCause/machine_temperature_system_failure.csv": -2.1185689822,
        "realKnownCause/nyc_taxi.csv": -3.1846309122,
        "realKnownCause/rogue_agent_key_hold.csv": -1.52739941276,
        "realKnownCause/rogue_agent_key_updown.csv": -0.0742083677309,
        "realTraffic/TravelTime_387.csv": -1.79598133079,
        "realTraffic/TravelTime_451.csv": -1.0,
        "realTraffic/occupancy_6005.csv": 0.861272490375,
        "realTraffic/occupancy_t4013.csv": 1.7360251845,
        "realTraffic/speed_6005.csv": 0.842622001756,
        "realTraffic/speed_7578.csv": 1.47082197457,
        "realTraffic/speed_t4013.csv": 1.75691291901,
    },
}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(DEFAULT_DIR), help="NAB corpus folder")
    parser.add_argument("--seeds", default="0", help="comma-separated random_state values")
    parser.add_argument("--files", action="store_true", help="also print the per-file table")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "windows.json").is_file():
        print(f"skipped: no NAB corpus at {data} (needs ../shared/anomaly/windows.json)")
        return 0

    from forecastscaler.evaluation.nab import (
        STANDARD,
        FloatArray,
        NabFile,
        NabReport,
        evaluate,
        load_corpus,
        normalised,
        run_detector,
        table,
    )
    from forecastscaler.models.detector import StreamingDetector

    files = load_corpus(data)
    names = [f.name for f in files]
    print(
        f"NAB standard profile over {data}: {len(files)} files, "
        f"{sum(len(f.windows) for f in files)} windows, {sum(len(f) for f in files)} rows"
    )
    reports: list[tuple[int, NabReport, float]] = []
    for seed in (int(s) for s in args.seeds.split(",")):

        def detector(f: NabFile, seed: int = seed) -> FloatArray:
            return StreamingDetector(random_state=seed).score_series(f.series())

        started = time.perf_counter()
        scores, seconds = run_detector(files, detector)
        elapsed = time.perf_counter() - started
        report = evaluate(
            files, scores, default_threshold=StreamingDetector().threshold, seconds=seconds
        )
        reports.append((seed, report, elapsed))
        if args.files:
            print()
            print(table(report))

    seed, report, elapsed = reports[0]
    best, fixed = report.folders(), report.folders(default=True)
    refs = {
        name: {f: v for f, v in per.items() if f in names}
        for name, per in PER_FILE.items()
        if all(n in per for n in names)
    }
    header = f"{'folder':<24}{'windows':>8}{'best':>8}{'default':>9}"
    header += "".join(f"{name:>20}" for name in refs)
    print()
    print(
        f"StreamingDetector (random_state={seed}): score at the best threshold "
        f"({report.best_threshold:.3g}) and at the default ({report.default_threshold:g})"
    )
    print(header)
    for folder, (raw_best, n, norm) in best.items():
        if n == 0:  # nothing to normalise by: the raw total (false positives only)
            row = f"{folder:<24}{n:>8}{raw_best:>8.2f}{fixed[folder][0]:>9.2f}"
        else:
            row = f"{folder:<24}{n:>8}{_fmt(norm):>8}{_fmt(fixed[folder][2]):>9}"
        for per in refs.values():
            raw = sum(v for f, v in per.items() if f.split("/", 1)[0] == folder)
            row += f"{raw:>20.2f}" if n == 0 else f"{_fmt(normalised(raw, n, STANDARD)):>20}"
        print(row)
    total = f"{'total':<24}{report.windows:>8}{_fmt(report.best_score):>8}"
    total += f"{_fmt(report.default_score):>9}"
    for per in refs.values():
        total += f"{_fmt(normalised(sum(per.values()), report.windows, STANDARD)):>20}"
    print(total)
    print("(a folder without windows shows its raw total: the false positives' cost)")
    print(f"(scored in {elapsed:.1f}s, {1e6 * elapsed / sum(len(f) for f in files):.0f} us/row)")

    if len(reports) > 1:
        _print_seeds(reports)
    _print_published(bool(refs))
    return 0


def _print_seeds(reports: Sequence[tuple[int, Any, float]]) -> None:
    """One row per random_state (report, seconds) and their mean: the detector's spread."""
    print()
    print(f"{'random_state':>12}{'best':>8}{'default':>9}{'seconds':>9}")
    for seed, rep, sec in reports:
        print(f"{seed:>12}{_fmt(rep.best_score):>8}{_fmt(rep.default_score):>9}{sec:>9.1f}")
    bests = [r.best_score for _, r, _ in reports if r.best_score is not None]
    fixeds = [r.default_score for _, r, _ in reports if r.default_score is not None]
    print(f"{'mean':>12}{statistics.mean(bests):>8.1f}{statistics.mean(fixeds):>9.1f}")


def _print_published(with_refs: bool) -> None:
    print()
    print("published, whole NAB corpus (58 files, 116 windows), standard profile:")
    print("  " + ", ".join(f"{name} {score}" for name, score in PUBLISHED.items()))
    if with_refs:
        print(
            "on these files (columns above): NAB's per-file results of those detectors at their "
            "own whole-corpus thresholds, normalised over this corpus's windows"
        )


if __name__ == "__main__":
    sys.exit(main())
