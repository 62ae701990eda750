"""Perfect foresight: the cheapest schedule that is never short of capacity.

At time t the oracle asks for the replicas that the highest load of the steps overlapping
``[t, t + startup]`` needs at full capacity. Replicas asked for at t are ready at t + startup,
and a replica ready at any instant of that window must already exist at t (it was asked for by
then, and removal is permanent), so no schedule that is never short can pay for fewer replicas
at t; and with newest-first removal the replicas ready at an instant u are at least the fewest
asked for over ``[u - startup, u]``, each of which covers u's load, so the oracle is never
short. Its count changes only when a step enters the window (``t = T_j - startup``) or leaves
it (``t = T_{j+1}``), so it decides exactly at those instants.

This is the one policy that reads the future, by definition; it is scored as the lower bound
on cost at zero shortage (``cost_vs_oracle``).

``target-oracle`` is the same schedule with each replica serving the target instead of its
capacity (80 % by default, the hpa's target): the cheapest schedule that never runs a replica
above the target. Provisioning the load at ``targetPerReplica`` on time, as the forecast policy
sets out to, cannot cost less; a policy that costs less runs replicas above the target (the
hpa does, by being late and through its tolerance).
"""

from __future__ import annotations

import math

import numpy as np

from forecastscaler.simulator.world import EPS, FloatArray, PastView, World


def oracle_plan(world: World, times: FloatArray, per_replica: float | None = None) -> np.ndarray:
    """Replicas the oracle asks for at each time (at least 1), each serving `per_replica`
    (default: the capacity). Gaps count as no load."""
    load = np.where(np.isfinite(world.load), world.load, 0.0)
    n = len(load)
    lo = np.clip(np.floor((times - world.t0) / world.step + EPS).astype(np.int64), 0, n - 1)
    hi = np.floor((times + world.startup - world.t0) / world.step + EPS).astype(np.int64)
    hi = np.clip(hi, 0, n - 1)
    width = int((hi - lo).max()) + 1 if len(times) else 1
    padded = np.concatenate([load, np.zeros(width)])
    # Running maxima of every width up to `width`, starting at each step.
    span = hi - lo
    running = padded[:n].copy()
    windows = [running.copy()]
    for w in range(1, width):
        running = np.maximum(running, padded[w : w + n])
        windows.append(running.copy())
    stacked = np.stack(windows)  # stacked[w, j] = max(load[j .. j+w])
    best = stacked[span, lo]
    need = np.ceil(best / (per_replica or world.capacity) - EPS).astype(np.int64)
    return np.asarray(np.maximum(need, 1), dtype=np.int64)


class OraclePolicy:
    """The oracle as a replay policy (it ignores the past view: it knows the future).
    `per_replica` is the load one replica may serve (default: its capacity)."""

    def __init__(
        self, world: World, *, name: str = "oracle", per_replica: float | None = None
    ) -> None:
        if per_replica is not None and not (0 < per_replica <= world.capacity):
            raise ValueError(
                f"per_replica must be in (0, capacity {world.capacity:g}], not {per_replica}"
            )
        self.name = name
        self.per_replica = per_replica
        self._times = self.tick_times(world)
        self._plan = oracle_plan(world, self._times, per_replica)
        self._i = 0

    def tick_times(self, world: World) -> np.ndarray:
        steps = world.t0 + world.step * np.arange(world.n + 1, dtype=np.float64)
        enter = steps - world.startup
        times = np.unique(np.concatenate([steps, enter]))
        return times[(times >= world.start_time) & (times < world.end_time)]

    def initial_replicas(self, world: World) -> int:
        return int(oracle_plan(world, np.array([world.start_time]), self.per_replica)[0])

    def decide(self, now: float, past: PastView, current: int) -> int:
        i = int(np.searchsorted(self._times, now - 1e-6))
        if i >= len(self._times) or not math.isclose(self._times[i], now, abs_tol=1e-6):
            return current
        return int(self._plan[i])
