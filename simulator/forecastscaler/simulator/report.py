"""The results for people (a table) and for programs (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forecastscaler.simulator.api import SimulationResult


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
