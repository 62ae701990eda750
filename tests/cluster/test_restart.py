"""An operator restarted mid-run resumes from status (core/memory.py), against the real API
server and Prometheus.

One run, shared by the tests of this module: the operator (its own process, so it can be killed)
serves two ForecastScalers, one whose scale-down the stabilization window is holding and one
whose Prometheus cannot be reached. Partway through the window the operator is killed (SIGKILL,
as on a crash: nothing is written on the way out) and started again. The tests then check what
a user sees: the held scale-down comes when the window counted from the recommendations in
status ends, neither earlier nor a whole window after the restart, and the failure count in
status.health, and with it the Fallback condition, goes on from where it was.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from forecastscaler.simulator.live import LoadExporter
from tests.cluster.support import (
    OperatorProcess,
    apply_scaler,
    condition,
    deployment,
    eventually,
    replicas_of,
    scaler,
)
from tests.cluster.test_operator import manifest

pytestmark = pytest.mark.cluster

WINDOW = 90
"""Scale-down stabilization window of the held object, seconds."""
KILL_AFTER = 30
"""Seconds into the window at which the operator is killed."""
HELD_FROM = 10  # replicas the held Deployment starts with; its load needs 2
FAILING_REPLICAS = 6
THRESHOLD = 3  # the failing object's fallback.failureThreshold


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _failures(status: dict[str, Any]) -> int | None:
    count = (status.get("health") or {}).get("consecutiveFailures")
    return count if isinstance(count, int) else None


@dataclass
class Sample:
    at: float
    held_replicas: int
    held: dict[str, Any]
    """The held object's status."""
    failing_replicas: int
    failing: dict[str, Any]


@dataclass
class RestartRun:
    namespace: str
    samples: list[Sample] = field(default_factory=list)
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each object's status as the killed operator left it (what the new one reads)."""
    killed_at: float = 0.0
    restarted_at: float = 0.0
    """When the new process was started (a fresh memory would count the window from after)."""
    serving_at: float = 0.0
    log: str = ""

    def after(self) -> list[Sample]:
        return [s for s in self.samples if s.at > self.restarted_at]


class Sampler:
    """Both objects' replicas and status, twice a second, in the background."""

    def __init__(self, api: client.ApiClient, run: RestartRun) -> None:
        self.api, self.run = api, run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        ns = self.run.namespace
        while not self._stop.is_set():
            try:
                at = time.time()  # before the reads: a change seen was made before it
                held = scaler(self.api, ns, "held").get("status") or {}
                failing = scaler(self.api, ns, "failing").get("status") or {}
                self.run.samples.append(
                    Sample(
                        at,
                        replicas_of(self.api, ns, "held"),
                        held,
                        replicas_of(self.api, ns, "failing"),
                        failing,
                    )
                )
            except Exception:  # a transient API error must not end the sampling
                pass
            self._stop.wait(0.5)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _delete_scalers(api: client.ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(api)
    group = ("forecastscaler.io", "v1alpha1", namespace, "forecastscalers")
    objects.delete_collection_namespaced_custom_object(*group)
    eventually(
        lambda: not objects.list_namespaced_custom_object(*group)["items"],
        timeout=30,
        what="ForecastScalers to be deleted",
        interval=0.5,
    )


@pytest.fixture(scope="module")
def restart_run(
    api: client.ApiClient,
    kubeconfig: str,
    prometheus_url: str,
    crd: None,
    loads: LoadExporter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RestartRun]:
    namespace = f"fsc-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    log: Path = tmp_path_factory.mktemp("restart") / "operator.log"
    operator = OperatorProcess(kubeconfig, prometheus_url, namespace, log).start()
    run = RestartRun(namespace)
    try:
        eventually(operator.serving, timeout=120, what="the operator serving /metrics")
        # held: 10 replicas for a flat load that needs 2; the scale-down window (from the
        # first sync's recommendation, the current count) holds them. The last-value model and
        # the HPA's backward window keep the forecast out of the timing.
        loads.set({"app": namespace}, lambda t: 150.0)
        deployment(api, namespace, "held", replicas=HELD_FROM)
        apply_scaler(
            api,
            namespace,
            manifest(
                "held",
                namespace,
                anomaly={"enabled": False},
                forecast={"models": ["lastValue"], "lookAheadScaleDown": False},
                behavior={"scaleDown": {"stabilizationWindowSeconds": WINDOW}},
            ),
        )
        # failing: a Prometheus nobody listens on; Fallback after THRESHOLD failed syncs.
        deployment(api, namespace, "failing", replicas=FAILING_REPLICAS)
        apply_scaler(
            api,
            namespace,
            manifest(
                "failing",
                namespace,
                interval="2s",
                anomaly={"enabled": False},
                fallback={"failureThreshold": THRESHOLD},
                metric={"prometheus": {"address": "http://127.0.0.1:9"}},
            ),
        )
        with Sampler(api, run):

            def held() -> bool:
                status = scaler(api, namespace, "held").get("status") or {}
                return (status.get("lastDecision") or {}).get("reason") == "Stabilized"

            eventually(held, timeout=90, what="held: lastDecision Stabilized")
            held_since = time.time()

            def fallback() -> bool:
                c = condition(scaler(api, namespace, "failing"), "Fallback")
                return c is not None and c["status"] == "True"

            eventually(fallback, timeout=60, what="failing: Fallback=True")
            wait = held_since + KILL_AFTER - time.time()
            if wait > 0:
                time.sleep(wait)

            operator.stop(signal.SIGKILL)
            run.killed_at = time.time()
            for name in ("held", "failing"):
                run.before[name] = scaler(api, namespace, name).get("status") or {}
            time.sleep(3)  # a moment without any operator
            run.restarted_at = time.time()
            operator.start()
            eventually(operator.serving, timeout=120, what="the restarted operator serving")
            run.serving_at = time.time()

            def scaled_down() -> bool:
                return replicas_of(api, namespace, "held") < HELD_FROM

            eventually(
                scaled_down, timeout=WINDOW + 120, what="held: the scale-down after the window"
            )
            # The failing object's count, a little further on.
            time.sleep(8)
        yield run
    finally:
        run.log = operator.text()
        try:
            _delete_scalers(api, namespace)  # while the operator runs, to release finalizers
        finally:
            operator.stop()
            core.delete_namespace(namespace)
            print(f"--- {log}\n{run.log[-4000:]}")


def test_a_restart_mid_window_neither_scales_down_early_nor_waits_a_new_window(
    restart_run: RestartRun,
) -> None:
    run = restart_run
    recorded = run.before["held"].get("recommendations")
    assert recorded, f"status.recommendations missing before the restart: {run.before['held']}"
    # The window holds HELD_FROM until WINDOW seconds after the last recommendation of it.
    hold_from = max(_time(r["time"]) for r in recorded if r["replicas"] >= HELD_FROM)
    hold_until = hold_from + WINDOW
    assert run.serving_at < hold_until - 10, (
        f"the operator took {run.serving_at - run.restarted_at:.0f}s to start again, too long "
        f"to see it hold the window (ends {hold_until - run.restarted_at:.0f}s after the restart)"
    )

    # The restarted operator synced and still held the replicas before the window ended.
    synced = [
        s
        for s in run.after()
        if s.at < hold_until
        and any(_time(r["time"]) > run.restarted_at for r in s.held.get("recommendations") or [])
    ]
    assert synced, "the restarted operator wrote no recommendation before the window ended"
    assert all(s.held_replicas == HELD_FROM for s in synced), [s.held_replicas for s in synced]
    assert synced[-1].held.get("lastDecision", {}).get("reason") == "Stabilized"

    first_down = next((s for s in run.samples if s.held_replicas < HELD_FROM), None)
    assert first_down is not None, "the recorder never saw the scale-down"
    # No early scale-down: not before the window counted from the recorded recommendations
    # (a second of slack for the sampler's clock and the status's microsecond rounding).
    assert first_down.at >= hold_until - 1, (
        f"scaled down {hold_until - first_down.at:.1f}s before the window ended"
    )
    # And no new window either: an operator that had forgotten (seeded with the current count
    # at its first sync, as the HPA does) would hold until a whole window after the restart.
    fresh_until = run.restarted_at + WINDOW
    assert first_down.at < min(hold_until + 15, fresh_until - 5), (
        f"scaled down {first_down.at - hold_until:.1f}s after the recorded window ended: the "
        "restarted operator counted the window afresh instead of resuming it from status"
    )
    assert first_down.held_replicas == 2


def test_a_restart_does_not_reset_the_failure_count_or_fallback(restart_run: RestartRun) -> None:
    run = restart_run
    before = _failures(run.before["failing"])
    assert before is not None and before >= THRESHOLD + 2, run.before["failing"].get("health")
    assert run.before["failing"]["health"]["status"] == "Failing"
    fallback = condition({"status": run.before["failing"]}, "Fallback")
    assert fallback is not None and fallback["status"] == "True", fallback

    after = run.after()
    counts = [_failures(s.failing) for s in after]
    assert all(c is not None and c >= before for c in counts), (
        f"the failure count went back below {before} after the restart: {counts}"
    )
    assert max(c for c in counts if c is not None) > before, (
        f"the restarted operator never counted on from {before}: {counts}"
    )
    # Counting on from what status said, not from 1 (a sync or two may fall between samples).
    first_new = next(c for c in counts if c is not None and c != before)
    assert before < first_new <= before + 3, counts
    for s in after:
        c = condition({"status": s.failing}, "Fallback")
        assert c is not None and c["status"] == "True", f"Fallback after the restart: {c}"
    assert all(s.failing_replicas == FAILING_REPLICAS for s in run.samples)
