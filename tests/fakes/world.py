"""One ForecastScaler on the fakes, synced by the real Reconciler in virtual time: its body
(status patched into it), its target, its Prometheus, and what was posted and counted."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forecastscaler.operator.reconcile import ObjectState, Reconciler
from forecastscaler.operator.settings import OperatorConfig
from tests.fakes.clock import VirtualClock
from tests.fakes.kube import FakeKube
from tests.fakes.prometheus import FakeConnection, FakePrometheus, Series
from tests.fakes.services import EventRecorder, FakeServices, InlineExecutor


@dataclass
class World:
    """The object `body`, the fakes around it and its state between syncs."""

    body: dict[str, Any]
    kube: FakeKube
    prometheus: FakeConnection
    clock: VirtualClock
    events: EventRecorder
    services: FakeServices
    state: ObjectState = field(default_factory=ObjectState)

    async def sync(self) -> float:
        """One sync now, then its interval passes; `events` holds this sync's Events only."""
        self.events.events.clear()
        interval = await Reconciler(self.services).sync(
            self.body, self.state, logging.getLogger("tests.world")
        )
        self.clock.advance(interval)
        return interval

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.body["status"]
        return status

    def condition(self, type_: str) -> tuple[str, str, str]:
        """(status, reason, message) of a condition."""
        for c in self.status.get("conditions", []):
            if c["type"] == type_:
                return c["status"], c["reason"], c["message"]
        raise AssertionError(f"no {type_} condition in {self.status.get('conditions')}")

    def conditions(self, *types: str) -> dict[str, tuple[str, str]]:
        """(status, reason) of each condition type."""
        return {t: self.condition(t)[:2] for t in types}

    def counted(self, name: str, **labels: str) -> float:
        """A sample of the operator's metrics for this object (0 when never counted)."""
        meta = self.body["metadata"]
        value = self.services.metrics.registry.get_sample_value(
            name, {"namespace": meta["namespace"], "name": meta["name"], **labels}
        )
        return value or 0.0


def make_world(
    body: dict[str, Any],
    loads: Mapping[str, Series],
    *,
    now: float,
    replicas: int = 1,
    warmup: bool = False,
) -> World:
    """A world at `now` whose target has `replicas`, every pool inline (deterministic); with
    `warmup`, first fits go to the background pool as the operator's do."""
    meta = body["metadata"]
    kube = FakeKube({(meta["namespace"], meta["name"]): body}, initial_replicas=replicas)
    prometheus = FakeConnection(loads)
    clock, events, inline = VirtualClock(now), EventRecorder(), InlineExecutor()
    services = FakeServices(
        kube=kube,
        config=OperatorConfig(),
        pool=inline,
        emit=events,
        warmup_pool=inline if warmup else None,
        kube_io=inline,
        metrics_io=inline,
        clock=clock,
        make_source=lambda endpoint: FakePrometheus(endpoint, prometheus),
    )
    return World(body, kube, prometheus, clock, events, services)


__all__ = ["World", "make_world"]
