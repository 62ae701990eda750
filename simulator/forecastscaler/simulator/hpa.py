"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) with one AverageValue metric.

What the HPA controller does on each sync (pkg/controller/podautoscaler/horizontal.go,
reconcileAutoscaler), written out so the baseline is unambiguous:

1. The target has 0 replicas: scaling is disabled. Outside [min, max]: clamp, nothing else.
2. The metric cannot be read (here: the current load is a gap): no change, nothing remembered.
3. Replica calculation for an AverageValue target (GetExternalPerPodMetricReplicas):
   ``ratio = load / (target * current)``; within ``tolerance`` (0.1) of 1 the current count is
   kept, otherwise ``ceil(load / target)``.
4. normalizeDesiredReplicasWithBehaviors: the stabilization windows over the remembered
   recommendations (scale-down: the highest of the last 300 s by default), then the rate
   policies (scale-up default: the larger of +100% and +4 pods per 15 s; scale-down: 100% per
   15 s) and [min, max].
5. Scale when the count changes, and remember the change for the rate policies.

Steps 4 and 5 are the operator's own port of the controller (`forecastscaler.core.behavior`);
so is the memory (seeded with the current count, like the controller's first sync). With
`behavior` left at the defaults this is exactly what `decide` does with no forecast, which a test
checks. The controller syncs every 15 s (`--horizontal-pod-autoscaler-sync-period`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forecastscaler.core.api import Behavior
from forecastscaler.core.behavior import (
    Recommendation,
    Rules,
    ScaleEvent,
    limit_rate,
    longest_window,
    replicas_for_average_value,
    resolve_behavior,
    stabilize,
)
from forecastscaler.simulator.world import PastView, World

SYNC_PERIOD = 15.0
TOLERANCE = 0.1


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler's controller state, driven in virtual time."""

    target: float
    min_replicas: int = 1
    max_replicas: int = 1000
    tolerance: float = TOLERANCE
    behavior: Behavior = field(default_factory=Behavior)
    recommendations: list[Recommendation] = field(default_factory=list)
    events: list[ScaleEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._up, self._down = resolve_behavior(self.behavior)
        self._window = longest_window(self._up, self._down)
        self._seeded = False

    @property
    def rules(self) -> tuple[Rules, Rules]:
        return self._up, self._down

    def sync(self, now: float, current: int, load: float | None) -> int:
        """One controller sync: the replica count to set."""
        if not self._seeded:
            self.recommendations = [Recommendation(now, current)]
            self._seeded = True
        proposal: int | None = None
        if current == 0:
            return 0
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        elif load is None or not math.isfinite(load) or load < 0:
            return current
        else:
            proposal = replicas_for_average_value(load, self.target, current, self.tolerance)
            stabilized = stabilize(
                now, current, proposal, self.recommendations, self._up, self._down
            )
            desired, _ = limit_rate(
                now,
                current,
                stabilized,
                self.min_replicas,
                self.max_replicas,
                self.events,
                self._up,
                self._down,
            )
        cutoff = now - self._window
        self.recommendations = [r for r in self.recommendations if r.time > cutoff]
        if proposal is not None:
            self.recommendations.append(Recommendation(now, proposal))
        if desired != current:
            self.events = [e for e in self.events if e.time > cutoff]
            self.events.append(ScaleEvent(now, desired - current))
        return desired


class HpaPolicy:
    """The HPA as a replay policy: a sync every 15 s, at an AverageValue target per replica.

    The target is the load a replica is meant to serve: `target` gives it directly (the
    manifest's ``averageValue``), `utilisation` as a share of the world's capacity; with
    neither it is the world's (80 % of capacity). A lower target is the HPA's only safety
    margin (it reacts late), so the cost/shortage frontier replays it at several."""

    def __init__(
        self,
        world: World,
        *,
        name: str = "hpa",
        target: float | None = None,
        utilisation: float | None = None,
        min_replicas: int = 1,
        max_replicas: int | None = None,
        behavior: Behavior | None = None,
        sync_period: float = SYNC_PERIOD,
    ) -> None:
        self.name = name
        self.sync_period = sync_period
        per_replica = hpa_target(world, target, utilisation)
        self.hpa = Hpa(
            target=per_replica,
            min_replicas=min_replicas,
            max_replicas=max_replicas or default_max_replicas(world, per_replica),
            behavior=behavior or Behavior(),
        )

    @property
    def target(self) -> float:
        """The load per replica this HPA aims at (its AverageValue)."""
        return self.hpa.target

    def tick_times(self, world: World) -> np.ndarray:
        return np.arange(world.start_time, world.end_time, self.sync_period, dtype=np.float64)

    def initial_replicas(self, world: World) -> int:
        return min(max(world.initial_replicas(), self.hpa.min_replicas), self.hpa.max_replicas)

    def decide(self, now: float, past: PastView, current: int) -> int:
        return self.hpa.sync(now, current, past.current_load())


def hpa_target(
    world: World, target: float | None = None, utilisation: float | None = None
) -> float:
    """The HPA's load per replica: `target` as given, or `utilisation` of the world's capacity,
    or the world's own target. One of the two at most, and positive: a zero target would ask
    for infinitely many replicas."""
    if target is not None and utilisation is not None:
        raise ValueError("give the hpa a target or a utilisation, not both")
    value = world.target if target is None and utilisation is None else target
    if utilisation is not None:
        value = utilisation * world.capacity
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"the hpa's target must be a positive load per replica, not {value}")
    return float(value)


def hpa_name(utilisation: float) -> str:
    """The policy name of the HPA at a utilisation target: hpa@80 for 0.8."""
    return f"hpa@{round(100 * utilisation, 4):g}"


def hpa_curve(
    world: World, shares: Sequence[float], min_replicas: int, max_replicas: int
) -> list[HpaPolicy]:
    """One HPA per utilisation share (hpa@50, hpa@55, ...), each share once, within the same
    bounds: the HPA's side of the cost/shortage frontier."""
    return [
        HpaPolicy(
            world,
            name=hpa_name(share),
            utilisation=share,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
        )
        for share in dict.fromkeys(shares)
    ]


def default_max_replicas(world: World, target: float | None = None) -> int:
    """Room to grow: twice what the trace's highest load needs at the target (the world's by
    default), at least 10."""
    peak = float(np.nanmax(world.load)) if np.isfinite(world.load).any() else 0.0
    return max(10, 2 * math.ceil(peak / (target or world.target)))
