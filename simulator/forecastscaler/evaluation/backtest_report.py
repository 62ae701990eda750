"""The backtest's table: the protocol, one line per model, then the notes (skips, failures,
member weights, conditional coverage)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from forecastscaler.evaluation.backtest import BacktestResult


def _num(x: float, spec: str) -> str:
    return "-" if not math.isfinite(x) else format(x, spec)


def _bucket_note(name: str, m: pd.Series, q: float) -> list[str]:
    """The conditional coverage of one model: the worst hour-of-day and minute-of-hour bucket
    of the target time, and the spread between the best and the worst."""
    parts = [
        f"by {kind} worst {_num(m[f'cov_{kind}_worst'], '.3f')} "
        f"(spread {_num(m[f'cov_{kind}_spread'], '.3f')})"
        for kind in ("hour", "minute")
        if math.isfinite(m.get(f"cov_{kind}_worst", math.nan))
    ]
    return [f"{name}: cov {q:g} {', '.join(parts)}"] if parts else []


def format_table(result: BacktestResult) -> str:
    """The protocol, one line per model, then what was skipped or failed and why."""
    q = result.protocol.quantile
    lines = [
        result.protocol.describe(),
        "",
        f"{'model':<16} {'scored':>6} {'MAE':>10} {'vs last':>8} {'sMAPE %':>8} "
        f"{f'pinball {q:g}':>12} {f'cov {q:g}':>8} {'cov 80%':>8} {'width':>6} "
        f"{'fit s':>7} {'step ms':>8}",
    ]
    notes: list[str] = []
    for name, m in result.metrics.iterrows():
        if m["status"] == "skipped":
            lines.append(f"{name!s:<16} {'skipped':>6}")
            notes.append(f"{name} skipped: {m['reason']}")
            continue
        lines.append(
            f"{name!s:<16} {m['scored']:>6} {_num(m['mae'], '.4g'):>10} "
            f"{_num(m['mae_vs_last'], '.3f'):>8} {_num(m['smape_pct'], '.2f'):>8} "
            f"{_num(m['pinball'], '.4g'):>12} {_num(m['quantile_coverage'], '.3f'):>8} "
            f"{_num(m['interval_coverage'], '.3f'):>8} "
            f"{_num(m['interval_width_rel'], '.3f'):>6} {_num(m['fit_s'], '.3f'):>7} "
            f"{_num(m['step_ms'], '.2f'):>8}"
        )
        if m["failures"]:
            notes.append(
                f"{name}: no forecast at {m['origins'] - m['forecasts']} of {m['origins']} "
                f"origins ({m['failed_refits']} of {m['refits']} refits failed); first: "
                f"{m['reason']}"
            )
        if m["weights"]:
            notes.append(f"{name}: mean member weight over its refits: {m['weights']}")
        notes.extend(_bucket_note(str(name), m, q))
    lines.append("")
    lines.append(
        "vs last: MAE / MAE of the last value on the same points (< 1 beats naive); "
        f"cov {q:g}: share at or below the {q:g} quantile; cov 80%: inside 0.1-0.9; "
        "width: its mean width / mean load; step ms: update + predict"
    )
    lines.extend(notes)
    lines.extend(f"warning: {w}" for w in result.warnings)
    return "\n".join(lines)
