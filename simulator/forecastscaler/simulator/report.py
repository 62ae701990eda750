"""The results for people (a table) and for programs (JSON), of a simulation and of the
cost/shortage frontier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forecastscaler.simulator.api import SimulationResult
from forecastscaler.simulator.frontier import (
    Frontier,
    FrontierRow,
    Pick,
    dominating,
    manifest_lines,
    saving,
)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def table(result: SimulationResult) -> str:
    """One line per policy, then the forecast policies' accuracy and the warnings."""
    w = result.world
    lines = [
        f"trace {w.name}: {w.n} steps of {w.step:g}s, scored {result.scored_steps} steps; "
        f"capacity {w.capacity:.4g} per replica (target {w.target:.4g}), "
        f"startup {w.startup:g}s",
        *(f"note: {text}" for text in result.notes),
        "",
        f"{'policy':<20} {'short':>8} {'unmet':>8} {'replica-h':>11} {'vs oracle':>9} "
        f"{'actions':>8} {'util':>7}",
    ]
    for name, s in result.scores.items():
        ratio = s["cost_vs_oracle"]
        lines.append(
            f"{name:<20} {_pct(s['underprovisioned_fraction']):>8} "
            f"{_pct(s['unmet_fraction']):>8} {s['replica_hours']:>11.1f} "
            f"{'-' if ratio is None else f'{ratio:.3f}x':>9} {s['scaling_actions']:>8} "
            f"{_pct(s['mean_utilisation']):>7}"
        )
    for name, s in result.scores.items():
        if "@" in name and s.get("forecast_points"):  # a quantile track: only this differs
            lines.append(f"{name}: quantile coverage {_pct(s['quantile_coverage'])}")
        elif "forecast_mae" in s and s.get("forecast_points"):
            lines.append(
                f"{name}: forecast at the horizon: MAE {s['forecast_mae']:.4g}, "
                f"WAPE {_pct(s['forecast_wape'])}, 80% interval coverage "
                f"{_pct(s['interval_coverage'])}, quantile coverage "
                f"{_pct(s['quantile_coverage'])} ({s['forecast_points']} forecasts)"
            )
    lines.extend(f"warning: {text}" for text in result.warnings)
    return "\n".join(lines)


def write_json(result: SimulationResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n")


def _frontier_head(front: Frontier) -> list[str]:
    w = front.result.world
    return [
        f"trace {w.name}: {w.n} steps of {w.step:g}s, scored {front.scored_steps} steps; "
        f"capacity {w.capacity:.4g} per replica, startup {w.startup:g}s",
        *(f"note: {text}" for text in front.result.notes),
        "",
        f"the cost/shortage frontier: saving = replica-hours saved against {front.baseline.name}; "
        "* = the default",
        f"{'config':<18} {'short':>7} {'unmet':>7} {'replica-h':>10} {'vs oracle':>9} "
        f"{'saving':>8}  cheapest ForecastScaler no more often short",
    ]


def _frontier_line(front: Frontier, row: FrontierRow) -> str:
    ratio = row.cost_vs_oracle
    line = (
        f"{row.name + (' *' if row.default else ''):<18} {_pct(row.short):>7} "
        f"{_pct(row.unmet):>7} {row.replica_hours:>10.1f} "
        f"{'-' if ratio is None else f'{ratio:.3f}x':>9} {_signed(row.saving):>8}"
    )
    if row.kind != "hpa":
        return line
    better = dominating(front, row.setting)
    if better is None:
        return f"{line}  none"
    cut = saving(better, row)
    word = "cheaper" if cut is None or cut >= 0 else "dearer"
    return f"{line}  {better.name}: {_pct(abs(cut or 0.0))} {word}"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def frontier_table(front: Frontier) -> str:
    """Both curves, HPA by target then ForecastScaler by quantile, and the oracle; each HPA
    row names the cheapest quantile that is no more often short (the product's promise,
    checked at every target rather than at one)."""
    lines = _frontier_head(front)
    lines.extend(_frontier_line(front, r) for r in front.hpa)
    lines.extend(_frontier_line(front, r) for r in front.forecast)
    oracle = front.result.scores["oracle"]
    lines.append(
        f"{'oracle':<18} {_pct(oracle['underprovisioned_fraction']):>7} "
        f"{_pct(oracle['unmet_fraction']):>7} {oracle['replica_hours']:>10.1f} {'1.000x':>9}"
    )
    lines.extend(f"warning: {text}" for text in front.result.warnings)
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _choice(front: Frontier, row: FrontierRow | None, what: str, where: str) -> list[str]:
    """One kind's pick: the row and the manifest lines that set it, or why there is none."""
    if row is None:
        pool = front.hpa if what == "HPA" else front.forecast
        safest = min(pool, key=lambda r: (r.short, r.replica_hours))
        return [
            f"{what}: no configuration swept meets it (the least often short: {safest.name}, "
            f"short {_pct(safest.short)})"
        ]
    ratio = "-" if row.cost_vs_oracle is None else f"{row.cost_vs_oracle:.3f}x oracle"
    return [
        f"{what}: {row.name} (short {_pct(row.short)}, {row.replica_hours:.1f} replica-h, "
        f"{ratio}); {where}:",
        _indent(manifest_lines(front, row)),
    ]


def _savings(front: Frontier, pick: Pick) -> list[str]:
    """What ForecastScaler's pick saves, against the HPA meeting the same budget and the
    baseline HPA."""
    fsc = pick.forecast
    if fsc is None:
        return []
    base = front.baseline
    against = [(pick.hpa, "the cheapest HPA that meets the same budget")] if pick.hpa else []
    if pick.hpa is None or pick.hpa.name != base.name:
        against.append((base, "the HPA at its default target"))
    lines = []
    for hpa, why in against:
        hours = hpa.replica_hours - fsc.replica_hours
        cut = saving(fsc, hpa)
        verb = "saves" if hours >= 0 else "costs"
        lines.append(
            f"ForecastScaler {verb} {abs(hours):.1f} replica-h ({_pct(abs(cut or 0.0))}) against "
            f"{hpa.name}, {why} (short {_pct(hpa.short)})"
        )
    return lines


def pick_text(front: Frontier, pick: Pick) -> str:
    """What to set for a shortage budget, for each of the two, and what it saves; says
    plainly when neither or only one meets the budget."""
    step = 1 / front.scored_steps if front.scored_steps else 0.0
    lines = [
        f"--max-short {_pct(pick.max_short)}: the cheapest configuration short on at most "
        f"{_pct(pick.max_short)} of the {front.scored_steps} scored steps (one step is "
        f"{_pct(step)})",
        *_choice(front, pick.forecast, "ForecastScaler", "in its manifest's spec"),
        *_choice(front, pick.hpa, "HPA", "its autoscaling/v2 metric's target"),
    ]
    if pick.forecast is None and pick.hpa is None:
        lines.append("neither meets it: raise --max-short, or sweep higher quantiles/lower targets")
    elif pick.forecast is None or pick.hpa is None:
        only = "ForecastScaler" if pick.forecast else "the HPA"
        lines.append(f"only {only} meets it")
    lines.extend(_savings(front, pick))
    return "\n".join(lines)


def write_frontier_json(front: Frontier, path: str | Path, pick: Pick | None = None) -> None:
    """The simulation's figures as `simulate --json` writes them, plus the frontier's rows and
    the --max-short pick."""
    data = front.to_dict()
    if pick is not None:
        data["frontier"]["max_short"] = pick.to_dict()
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
