"""Scores of a replay over the scored part of the trace (steps ``first_scored ..``).

- ``underprovisioned_fraction``: share of scored steps (with a known load) whose ready
  capacity is below the load;
- ``unmet_fraction``: the shortfall summed over those steps over the load summed;
- ``replica_hours``: replicas paid (ready or starting), integrated over the scored time;
- ``cost_vs_oracle``: replica_hours over the oracle's;
- ``scaling_actions``: changes of the replica count in the scored time;
- ``mean_utilisation``: load served over capacity paid, over steps with a known load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecastscaler.simulator.engine import Replay
from forecastscaler.simulator.world import EPS, World


def step_frame(world: World, rep: Replay) -> pd.DataFrame:
    """The replay per step, from the first replayed step, with the scored flag."""
    first = rep.first_step
    load = world.load[first:]
    capacity = rep.ready * world.capacity
    short = np.isfinite(load) & (load - capacity > EPS * world.capacity)
    shortfall = np.where(short, load - capacity, 0.0)
    index = pd.date_range(
        pd.Timestamp(world.time(first), unit="s", tz="UTC"),
        periods=len(load),
        freq=pd.Timedelta(seconds=world.step),
        name="time",
    )
    return pd.DataFrame(
        {
            "load": load,
            "ready": rep.ready,
            "paid": rep.paid,
            "requested": rep.requested,
            "capacity": capacity,
            "short": short,
            "shortfall": shortfall,
            "scored": np.arange(first, world.n) >= world.first_scored,
        },
        index=index,
    )


def score(world: World, rep: Replay, oracle_hours: float | None = None) -> dict[str, Any]:
    """The figures of one replay (see the module docstring)."""
    frame = step_frame(world, rep)
    scored = frame[frame["scored"]]
    known = scored[np.isfinite(scored["load"])]
    load_sum = float(known["load"].sum())
    served = np.minimum(known["load"], known["capacity"]).sum()
    paid_capacity = float(known["paid"].sum()) * world.capacity
    hours = float(scored["paid"].sum()) * world.step / 3600.0
    scored_from = world.time(world.first_scored)
    return {
        "underprovisioned_fraction": float(known["short"].mean()) if len(known) else 0.0,
        "unmet_fraction": float(known["shortfall"].sum()) / load_sum if load_sum > 0 else 0.0,
        "replica_hours": hours,
        "cost_vs_oracle": (hours / oracle_hours) if oracle_hours else None,
        "scaling_actions": sum(1 for a in rep.actions if a.time >= scored_from),
        "mean_utilisation": float(served) / paid_capacity if paid_capacity > 0 else 0.0,
        "short_steps": int(known["short"].sum()),
        "syncs": rep.syncs,
    }
