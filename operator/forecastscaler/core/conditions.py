"""Kubernetes-style conditions: set one, keep lastTransitionTime while its status holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from forecastscaler.core.api_status import Condition

Status = Literal["True", "False", "Unknown"]

# The order conditions are listed in status (Ready first, like most controllers).
ORDER = ("Ready", "ForecastReady", "AbleToScale", "ScalingLimited", "AnomalyDetected", "Fallback")


@dataclass(frozen=True)
class Wanted:
    """A condition as the reconcile computed it."""

    type: str
    status: Status
    reason: str
    message: str


def merge(
    existing: Sequence[Condition], wanted: Sequence[Wanted], now: str, generation: int | None
) -> tuple[list[Condition], list[tuple[Condition | None, Condition]]]:
    """New conditions, and the (old, new) pairs whose status or reason changed."""
    by_type = {c.type: c for c in existing}
    changed: list[tuple[Condition | None, Condition]] = []
    for w in wanted:
        old = by_type.get(w.type)
        transition = old is None or old.status != w.status
        new = Condition(
            type=w.type,
            status=w.status,
            reason=w.reason,
            message=w.message,
            last_transition_time=now if transition or old is None else old.last_transition_time,
            observed_generation=generation,
        )
        if old is None or old.status != new.status or old.reason != new.reason:
            changed.append((old, new))
        by_type[w.type] = new
    ordered = sorted(
        by_type.values(), key=lambda c: (ORDER.index(c.type) if c.type in ORDER else 99, c.type)
    )
    return ordered, changed
