"""The simulated world: a load that steps through a trace, and replicas that take time to start.

Conventions (every policy, every score, every test uses these):

- **Time** is epoch seconds. Trace step k (0-based) covers ``[T_k, T_k + step)`` with
  ``T_k = t0 + k * step``; its load ``L_k`` is constant over the step (piecewise constant).
  A NaN load is a gap: no data, never zero load.
- **What a scaler sees.** Step k's load becomes known when the step is complete, at
  ``T_{k+1}``. A decision at time t (``T_k <= t < T_{k+1}``) sees the loads of steps
  ``0 .. k-1`` only: the current load is ``L_{k-1}``. Like a Prometheus sample, a value is
  labelled with the time it describes the past up to, so the history a model is fitted on has
  ``L_j`` at the timestamp ``T_{j+1}`` (end label). :class:`PastView` is the only window a
  policy gets onto the trace (the oracle excepted, by definition).
- **Replicas.** One replica serves ``capacity`` load units. A replica asked for at time t is
  ready at ``t + startup`` (startup is at least one step); removing one is immediate, and the
  newest replicas (those still starting first) go first, as a ReplicaSet deletes not-ready
  pods first. You pay for every replica that exists, ready or starting.
- **Scoring is per step.** The ready capacity of step k is the lowest number of ready replicas
  at any instant of ``[T_k, T_{k+1})`` times ``capacity``: a replica that becomes ready in the
  middle of a step does not count for that step, a removal in the middle of a step does.
  Step k is short when its ready capacity is below ``L_k``. Steps with a NaN load are not
  scored for shortage (their replicas are still paid).
- **Syncs.** Each policy decides at its own period, within steps as well as at their start:
  the HPA every 15 s (the controller's sync period), the forecast policy every
  ``spec.interval`` (30 s by default), as in a cluster; a decision between two step ends sees
  the same completed steps, but its stabilization windows and rate limits move on. The oracle
  decides exactly when its look-ahead window gains or loses a step.
- **Replay window.** The first ``warmup`` part of the trace is history: policies may read it,
  and scoring covers the rest (steps ``first_scored ..``). Policies start acting a little
  before (``first_replayed``, a lead-in of about an hour) from the same steady state (enough
  ready replicas for the last known load at the target utilisation), so the scored part does
  not start with a transient that depends on how the replay was started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

# Relative slack when comparing capacity with load, so float rounding is never a shortage.
EPS = 1e-9
# The share of a replica's capacity the policies aim to use (the 80 % target).
TARGET_UTILISATION = 0.8


@dataclass(frozen=True)
class World:
    """A trace turned into a world every policy is replayed in."""

    name: str
    t0: float
    step: float
    load: FloatArray
    capacity: float
    startup: float
    first_scored: int
    first_replayed: int
    target_utilisation: float = TARGET_UTILISATION
    end_index: pd.DatetimeIndex = field(repr=False, default_factory=lambda: pd.DatetimeIndex([]))
    """End labels of the steps (``T_{k+1}``), as the history index of the forecast policy."""

    @classmethod
    def build(
        cls,
        name: str,
        load: pd.Series,
        step: float,
        capacity: float,
        startup: float,
        warmup: float,
        lead_in: float | None = None,
    ) -> World:
        """A world from a regular load series; `warmup` is a fraction of the steps."""
        values = load.to_numpy(dtype=np.float64).copy()
        values.setflags(write=False)
        n = len(values)
        if not 0.0 < warmup < 1.0:
            raise ValueError(f"warmup must be a fraction between 0 and 1, not {warmup}")
        if capacity <= 0 or not math.isfinite(capacity):
            raise ValueError(f"capacity must be positive, not {capacity}")
        startup = max(float(startup), float(step))
        first_scored = min(max(1, round(n * warmup)), n - 1)
        lead = max(3600.0, 6 * step, 2 * startup) if lead_in is None else lead_in
        first_replayed = max(1, first_scored - math.ceil(lead / step))
        t0 = float(pd.Timestamp(load.index[0]).timestamp())
        ends = pd.DatetimeIndex(load.index) + pd.Timedelta(seconds=step)
        return cls(
            name=name,
            t0=t0,
            step=float(step),
            load=values,
            capacity=float(capacity),
            startup=startup,
            first_scored=first_scored,
            first_replayed=first_replayed,
            end_index=ends,
        )

    @property
    def n(self) -> int:
        return len(self.load)

    @property
    def target(self) -> float:
        """Load per replica the reactive policies aim at (80% of capacity by default)."""
        return self.target_utilisation * self.capacity

    def time(self, k: int) -> float:
        """Start of step k (epoch seconds)."""
        return self.t0 + k * self.step

    @property
    def start_time(self) -> float:
        return self.time(self.first_replayed)

    @property
    def end_time(self) -> float:
        return self.time(self.n)

    def completed(self, t: float) -> int:
        """Number of steps complete at time t."""
        return max(0, min(self.n, math.floor((t - self.t0) / self.step + EPS)))

    def past(self, k: int) -> PastView:
        """The view of a decision made during step k: steps 0 .. k-1."""
        return PastView(self.load, self.end_index, k)

    def initial_replicas(self) -> int:
        """Steady state at the start of the replay: the last known load at the target."""
        known = self.load[: self.first_replayed]
        finite = known[np.isfinite(known)]
        last = float(finite[-1]) if len(finite) else float(np.nanmedian(self.load))
        return max(1, math.ceil(last / self.target - EPS))


class PastView:
    """What a policy may read at a decision: the loads of completed steps, nothing later."""

    __slots__ = ("_index", "_k", "_load")

    def __init__(self, load: FloatArray, end_index: pd.DatetimeIndex, completed: int) -> None:
        self._load = load
        self._index = end_index
        self._k = completed

    @property
    def completed(self) -> int:
        """Steps complete (the decision happens during step `completed`)."""
        return self._k

    @property
    def values(self) -> FloatArray:
        """Loads of the completed steps (read-only)."""
        return self._load[: self._k]

    def current_load(self) -> float | None:
        """The last completed step's load; None when it is a gap (or nothing is complete)."""
        if self._k == 0:
            return None
        value = float(self._load[self._k - 1])
        return value if math.isfinite(value) else None

    def history(self, since: float) -> pd.Series:
        """Completed loads labelled with their end time, from epoch `since` on, gaps omitted
        (as a Prometheus range query returns no sample where there is none)."""
        first = int(self._index.searchsorted(pd.Timestamp(since, unit="s", tz="UTC")))
        first = min(first, self._k)
        values = self._load[first : self._k]
        series = pd.Series(values, index=self._index[first : self._k], dtype="float64")
        return series[np.isfinite(values)]


class PodPool:
    """The replicas of the target: batches of (ready time, count), oldest first."""

    __slots__ = ("_batches", "startup", "total")

    def __init__(self, startup: float, ready: int) -> None:
        self.startup = startup
        self._batches: list[list[float]] = [[-math.inf, float(ready)]] if ready else []
        self.total = ready

    def ready(self, t: float) -> int:
        """Replicas ready at time t."""
        starting = 0.0
        for ready_at, count in reversed(self._batches):
            if ready_at <= t:
                break
            starting += count
        return self.total - int(starting)

    def scale_to(self, t: float, replicas: int) -> None:
        """Ask for `replicas` at time t: new ones start, removed ones go at once (newest
        first)."""
        if replicas > self.total:
            self._batches.append([t + self.startup, float(replicas - self.total)])
        else:
            remove = self.total - replicas
            while remove > 0:
                batch = self._batches[-1]
                take = min(remove, int(batch[1]))
                batch[1] -= take
                remove -= take
                if batch[1] == 0:
                    self._batches.pop()
        self.total = replicas
        # Merge batches that are all ready, so the list stays short.
        if len(self._batches) > 1 and self._batches[1][0] <= t:
            ready_now = [b for b in self._batches if b[0] <= t]
            later = [b for b in self._batches if b[0] > t]
            merged = float(sum(b[1] for b in ready_now))
            self._batches = [[-math.inf, merged], *later]
