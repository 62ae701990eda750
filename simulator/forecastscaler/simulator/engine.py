"""The replay engine: one policy through one world, step by step, sync by sync.

No I/O and no clock: a policy's decisions are driven by its own sync times (``tick_times``),
each given only a :class:`~forecastscaler.simulator.world.PastView` of the steps completed by
then, and the engine turns the replica counts asked for into ready and paid capacity per step
(see the conventions in `forecastscaler.simulator.world`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from forecastscaler.simulator.world import FloatArray, PastView, PodPool, World

IntArray = npt.NDArray[np.int64]


class Policy(Protocol):
    """What the engine needs from a scaler."""

    name: str

    def tick_times(self, world: World) -> FloatArray:
        """When the policy syncs (epoch seconds, increasing, within the replay)."""
        ...

    def initial_replicas(self, world: World) -> int:
        """Ready replicas when the replay starts."""
        ...

    def decide(self, now: float, past: PastView, current: int) -> int:
        """The replica count to ask for at `now`, seeing only `past`."""
        ...


@dataclass(frozen=True)
class Action:
    """A change of the replica count."""

    time: float
    before: int
    after: int


@dataclass(frozen=True)
class Replay:
    """What happened to one policy, per step of the replayed part."""

    policy: str
    first_step: int
    ready: IntArray
    """Lowest number of ready replicas during each step."""
    paid: FloatArray
    """Mean number of replicas (ready or starting) during each step."""
    requested: IntArray
    """Replicas asked for at the end of each step."""
    actions: tuple[Action, ...]
    syncs: int


def replay(
    world: World,
    policy: Policy,
    on_step: Callable[[int], None] | None = None,
) -> Replay:
    """Run `policy` through `world` from `world.first_replayed` to the end."""
    ticks = np.asarray(policy.tick_times(world), dtype=np.float64)
    start, n, step = world.first_replayed, world.n, world.step
    pool = PodPool(world.startup, policy.initial_replicas(world))
    count = n - start
    ready = np.zeros(count, dtype=np.int64)
    paid = np.zeros(count, dtype=np.float64)
    requested = np.zeros(count, dtype=np.int64)
    actions: list[Action] = []
    tick_list = ticks.tolist()
    ti, nt = 0, len(tick_list)
    while ti < nt and tick_list[ti] < world.time(start):
        ti += 1
    for k in range(start, n):
        t_k = world.time(k)
        t_next = t_k + step
        low = pool.ready(t_k)
        area = 0.0
        last = t_k
        past = world.past(k)
        while ti < nt and tick_list[ti] < t_next:
            now = tick_list[ti]
            ti += 1
            area += pool.total * (now - last)
            last = now
            before = pool.total
            desired = policy.decide(now, past, before)
            if desired != before:
                actions.append(Action(now, before, desired))
                pool.scale_to(now, desired)
                if desired < before:
                    low = min(low, pool.ready(now))
        area += pool.total * (t_next - last)
        i = k - start
        ready[i] = low
        paid[i] = area / step
        requested[i] = pool.total
        if on_step is not None:
            on_step(k)
    return Replay(
        policy=policy.name,
        first_step=start,
        ready=ready,
        paid=paid,
        requested=requested,
        actions=tuple(actions),
        syncs=ti,
    )
