"""The operator's `Services` over the fakes: Prometheus sources made by the test, Events
recorded instead of posted, and an executor that runs its work at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from forecastscaler.operator.prometheus import Endpoint, PrometheusSource
from forecastscaler.operator.reconcile import Services

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class PostedEvent:
    """A Kubernetes Event the operator posted on a ForecastScaler."""

    namespace: str
    name: str
    type: str
    reason: str
    message: str


class EventRecorder:
    """An `EventSink` that keeps what Kopf would post as Kubernetes Events."""

    def __init__(self) -> None:
        self.events: list[PostedEvent] = []

    def __call__(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = body.get("metadata", {})
        self.events.append(
            PostedEvent(meta.get("namespace", ""), meta.get("name", ""), type_, reason, message)
        )

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def counts(self) -> Counter[str]:
        """How many of each `type/reason`."""
        return Counter(f"{e.type}/{e.reason}" for e in self.events)


class InlineExecutor(Executor):
    """Runs each task in the submitting thread, at once: deterministic, and the future is
    done when `submit` returns (an asyncio wrapper of it after one loop iteration)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the future carries it, as a worker's would
            future.set_exception(exc)
        return future


def _no_prometheus(endpoint: Endpoint) -> PrometheusSource:
    raise AssertionError(f"no fake Prometheus for {endpoint.url}")


@dataclass
class FakeServices(Services):
    """Services whose Prometheus sources come from `make_source`, one per endpoint, kept in
    `sources` (so a test sees the endpoints, bearer tokens included, a sync used)."""

    make_source: Callable[[Endpoint], PrometheusSource] = _no_prometheus
    sources: dict[Endpoint, PrometheusSource] = field(default_factory=dict)

    def source(self, endpoint: Endpoint) -> PrometheusSource:
        if endpoint not in self.sources:
            self.sources[endpoint] = self.make_source(endpoint)
        return self.sources[endpoint]

    def close(self) -> None:
        """Shut the thread pools down (the operator's cleanup handler does the same)."""
        for pool in (self.pool, self.warmup_pool, self.kube_io, self.metrics_io):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["EventRecorder", "FakeServices", "InlineExecutor", "PostedEvent"]
