"""In-process fakes of what the operator talks to, shared by the tests and the benchmarks:
the Kubernetes API (`FakeKube`), Prometheus (`FakeConnection` under the real
`PrometheusSource`), the operator's `Services` over them, virtual time, and a `World` of one
ForecastScaler synced by the real Reconciler."""

from tests.fakes.clock import VirtualClock
from tests.fakes.kube import FakeKube, Hpa, Key, ScaleWrite, apply_merge_patch
from tests.fakes.prometheus import Constant, FakeConnection, FakePrometheus, Series, Times
from tests.fakes.services import EventRecorder, FakeServices, InlineExecutor, PostedEvent
from tests.fakes.world import World, make_world

__all__ = [
    "Constant",
    "EventRecorder",
    "FakeConnection",
    "FakeKube",
    "FakePrometheus",
    "FakeServices",
    "Hpa",
    "InlineExecutor",
    "Key",
    "PostedEvent",
    "ScaleWrite",
    "Series",
    "Times",
    "VirtualClock",
    "World",
    "apply_merge_patch",
    "make_world",
]
