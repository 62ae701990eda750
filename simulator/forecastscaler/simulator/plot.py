"""Pictures a person reads at a glance: a replay (the load, each policy's ready capacity, the
steps where it was short, shaded, and its scaling actions, ticks) and the cost/shortage
frontier."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from forecastscaler.simulator.api import SimulationResult
from forecastscaler.simulator.frontier import Frontier, FrontierRow

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


def plot(result: SimulationResult, path: str | Path, max_days: float | None = None) -> None:
    """Write a PNG: one panel per policy over the scored part (the last `max_days` of it)."""
    names = list(result.frames)
    fig, axes = plt.subplots(
        len(names), 1, figsize=(14, 2.6 * len(names) + 0.8), sharex=True, sharey=True, squeeze=False
    )
    w = result.world
    for ax, name, color in zip(axes[:, 0], names, itertools.cycle(COLORS), strict=False):
        frame = result.frames[name]
        frame = frame[frame["scored"]]
        if max_days is not None:
            frame = frame[frame.index >= frame.index[-1] - pd.Timedelta(days=max_days)]
        ax.step(frame.index, frame["load"], where="post", color="black", lw=0.8, label="load")
        ax.step(
            frame.index,
            frame["capacity"],
            where="post",
            color=color,
            lw=1.0,
            label="ready capacity",
        )
        ax.fill_between(
            frame.index,
            0,
            frame["load"].max(skipna=True),
            where=frame["short"].to_numpy(),
            step="post",
            color="red",
            alpha=0.25,
            lw=0,
            label="short",
        )
        actions = result.actions(name)
        actions = actions[actions["time"] >= frame.index[0]]
        ax.plot(
            actions["time"],
            [0] * len(actions),
            "|",
            color=color,
            ms=8,
            alpha=0.6,
            label="scaling action",
        )
        s = result.scores[name]
        ratio = s["cost_vs_oracle"]
        ax.set_title(
            f"{name}: short {100 * s['underprovisioned_fraction']:.2f}% of steps, "
            f"unmet {100 * s['unmet_fraction']:.2f}%, {s['replica_hours']:.0f} replica-h"
            + (f" ({ratio:.2f}x oracle)" if ratio else "")
            + f", {s['scaling_actions']} actions",
            fontsize=10,
            loc="left",
        )
        ax.set_ylabel("load")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=4)
    fig.suptitle(
        f"{w.name}: step {w.step:g}s, capacity {w.capacity:.4g}/replica, startup {w.startup:g}s",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def zero_floor(front: Frontier) -> float:
    """Where a never-short configuration goes on the log axis: half of one scored step, below
    the least shortage a replay can show."""
    return 0.5 / max(front.scored_steps, 1)


def _setting(row: FrontierRow) -> str:
    return f"{100 * row.setting:g}%" if row.kind == "hpa" else f"p{100 * row.setting:g}"


def _labels(rows: Sequence[FrontierRow], xs: Sequence[float]) -> list[tuple[float, float, str]]:
    """One label per distinct point: settings that did exactly the same share one (p99.5-p99.9)
    instead of printing over each other."""
    out: list[tuple[float, float, str]] = []
    group: list[FrontierRow] = []
    for i, row in enumerate(rows):
        group.append(row)
        last = i + 1 == len(rows)
        if last or (xs[i + 1], rows[i + 1].cost_vs_oracle) != (xs[i], row.cost_vs_oracle):
            text = _setting(group[0])
            if len(group) > 1:
                text += f"-{_setting(group[-1]).lstrip('p')}"
            out.append((xs[i], row.cost_vs_oracle or float("nan"), text))
            group = []
    return out


def _curve(ax: Axes, rows: Sequence[FrontierRow], floor: float, color: str, label: str) -> None:
    """One curve, its points labelled with their setting, the default ringed."""
    xs = [max(r.short, floor) for r in rows]
    ys = [r.cost_vs_oracle or float("nan") for r in rows]
    ax.plot(xs, ys, "o-", color=color, lw=1.4, ms=5, label=label)
    for x, y, text in _labels(rows, xs):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    for row, x, y in zip(rows, xs, ys, strict=True):
        if row.default:
            ax.plot([x], [y], "o", ms=13, mfc="none", mec=color, mew=2.0)
            ax.annotate(
                "default",
                (x, y),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
                color=color,
                weight="bold",
            )


def _floor_line(ax: Axes, floor: float) -> None:
    """The floor never-short points sit on: a log axis has no zero."""
    ax.axvline(floor, color="grey", ls=":", lw=1)
    ax.annotate(
        "never short (0 steps)",
        (floor, 0),
        xycoords=("data", "axes fraction"),
        xytext=(-10, 6),
        textcoords="offset points",
        fontsize=8,
        color="grey",
        rotation=90,
    )


def plot_frontier(front: Frontier, path: str | Path, max_short: float | None = None) -> None:
    """Write a PNG of the frontier: share of short steps (log) against cost vs the oracle, the
    HPA curve over targets and ForecastScaler's over quantiles; lower-left is better. Never-short
    points sit on a floor line (log axes have no zero), and the shortage budget is a line."""
    floor = zero_floor(front)
    fig, ax = plt.subplots(figsize=(9, 6))
    _curve(ax, front.hpa, floor, COLORS[1], "HPA (target share of capacity)")
    _curve(ax, front.forecast, floor, COLORS[0], "ForecastScaler (forecast.quantile)")
    ax.set_xscale("log")
    if any(r.short == 0 for r in front.rows):
        _floor_line(ax, floor)
    if max_short is not None and max_short > 0:
        ax.axvline(max_short, color="red", ls="--", lw=1, label=f"--max-short {100 * max_short:g}%")
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    ax.set_xlabel(f"share of short steps (log; {front.scored_steps} scored steps)")
    ax.set_ylabel("cost vs oracle (replica-hours)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    w = front.result.world
    ax.set_title(
        f"{w.name}: cost/shortage frontier (step {w.step:g}s, capacity {w.capacity:.4g}/replica, "
        f"startup {w.startup:g}s)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
