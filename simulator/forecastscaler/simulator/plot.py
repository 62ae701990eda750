"""A picture of a replay a person reads at a glance: the load, each policy's ready capacity,
the steps where it was short (shaded) and its scaling actions (ticks)."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from forecastscaler.simulator.api import SimulationResult

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
