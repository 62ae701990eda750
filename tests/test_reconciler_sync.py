"""The real `Reconciler.sync` on the in-process fakes (tests/fakes), in virtual time: what it
writes to /scale, to status and conditions, and which Events it posts, for a new object's
warm-up, DryRun, another autoscaler on the target, Secret and target errors, Prometheus failing
(fallback) and the happy path. The cluster tests check the same against a real API server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from forecastscaler.core.api import ScaleTargetRef
from forecastscaler.operator.owners import Owner
from forecastscaler.operator.reconcile import DEFAULT_INTERVAL
from forecastscaler.operator.settings import OperatorConfig
from tests.fakes import Constant, ScaleWrite, World, make_world
from tests.fakes.kube import FakeKube

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NS, NAME, TARGET = "shop", "fs", "web"
QUERY = 'sum(rate(http_requests_total{app="web"}[1m]))'
WEB = ScaleTargetRef(kind="Deployment", name=TARGET)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def manifest(**spec: Any) -> dict[str, Any]:
    """A ForecastScaler on Deployment web: 10 per replica, a cheap model on an hour of history."""
    base: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
        "maxReplicas": 20,
        "metric": {"query": QUERY, "targetPerReplica": 10},
        "forecast": {"models": ["lastValue"], "step": "1m", "history": "1h", "horizon": "5m"},
        "anomaly": {"enabled": False},
    }
    return {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "generation": 1,
            "uid": "u-1",
            "creationTimestamp": CREATED,
        },
        "spec": _merge(base, spec),
        "status": {},
    }


def world(load: float | None = 45.0, replicas: int = 1, warmup: bool = False, **spec: Any) -> World:
    """The manifest with `spec` merged in, its load `load` at every time (None: no series)."""
    loads = {} if load is None else {QUERY: Constant(load)}
    return make_world(manifest(**spec), loads, now=NOW, replicas=replicas, warmup=warmup)


# ------------------------------------------------------------------------------ happy path


async def test_happy_path_scales_to_the_load_and_reports_it() -> None:
    w = world(load=45.0, replicas=1)
    assert await w.sync() == 30.0
    assert w.kube.writes == [ScaleWrite(NS, "Deployment", TARGET, 5)]
    s = w.status
    assert (s["currentReplicas"], s["desiredReplicas"], s["currentLoad"]) == (5, 5, 45.0)
    assert s["lastDecision"]["reason"] == "Reactive"
    assert s["lastScaleTime"] == "2026-01-01T00:00:00Z"
    assert s["health"] == {"consecutiveFailures": 0, "status": "Happy"}
    assert s["forecast"]["model"].startswith("lastValue") and s["forecast"]["historyPoints"] == 61
    assert w.conditions("Ready", "ForecastReady", "AbleToScale", "Fallback") == {
        "Ready": ("True", "Ready"),
        "ForecastReady": ("True", "ModelFitted"),
        "AbleToScale": ("True", "SucceededRescale"),
        "Fallback": ("False", "MetricAvailable"),
    }
    assert [(e.type, e.reason) for e in w.events.events] == [("Normal", "SuccessfulRescale")]
    assert w.events.events[0].message.startswith("scaled web 1→5: current load 45")
    (endpoint,) = w.services.sources
    assert (endpoint.url, endpoint.bearer_token) == (OperatorConfig().prometheus_url, None)
    assert w.counted("forecastscaler_scale_writes_total", result="success") == 1

    await w.sync()  # the same load: nothing to write, nothing new to tell
    assert len(w.kube.writes) == 1
    assert w.condition("AbleToScale")[:2] == ("True", "ReadyForNewScale")
    assert w.events.events == []


# ------------------------------------------------------------------------------ warm-up


async def test_warm_up_decides_on_the_load_while_the_first_fit_runs_in_the_background() -> None:
    w = world(load=45.0, replicas=1, warmup=True)
    await w.sync()
    status, reason, message = w.condition("ForecastReady")
    assert (status, reason) == ("Unknown", "Fitting")
    assert message.startswith("first fit on 61 points in progress")
    assert w.state.warming is not None and w.state.model.model is None
    assert "forecast" not in w.status
    # It does not wait for the model: the current load alone scales the target.
    assert w.kube.writes == [ScaleWrite(NS, "Deployment", TARGET, 5)]
    assert w.status["lastDecision"]["reason"] == "Reactive"
    assert "ModelFitted" not in w.events.reasons()

    await w.sync()  # the background fit has landed
    assert w.condition("ForecastReady")[:2] == ("True", "ModelFitted")
    assert w.state.warming is None and w.state.model.fits == 1
    assert w.state.model.fitted_at == NOW, "fitted at the sync that started it"
    assert w.status["forecast"]["fittedAt"] == "2026-01-01T00:00:00Z"
    fitted = [e for e in w.events.events if e.reason == "ModelFitted"]
    assert [e.type for e in fitted] == ["Normal"]
    assert fitted[0].message.startswith("ForecastReady=True")


# ------------------------------------------------------------------------------ DryRun


async def test_dry_run_reports_the_path_active_would_take_but_never_patches_the_scale() -> None:
    w = world(load=80.0, replicas=1, mode="DryRun")
    would = []
    for _ in range(3):
        await w.sync()
        would += [e.message.split(" (DryRun)")[0] for e in w.events.events]
    # Active would go 1→5 (+4 pods per 15 s) then 5→8; DryRun reports that same path.
    assert would == ["would scale web 1→5", "would scale web 5→8"]
    assert w.kube.writes == [] and w.kube.calls["patch_scale"] == 0
    assert w.kube.replicas[(NS, TARGET)] == 1
    assert (w.status["currentReplicas"], w.status["desiredReplicas"]) == (1, 8)
    assert w.condition("Ready") == ("True", "Ready", "DryRun: reporting only for web")
    assert w.condition("AbleToScale") == ("True", "DryRun", "DryRun: would ask for 8")
    assert "lastScaleTime" not in w.status


# ------------------------------------------------------------------------------ co-owner

CREATED = "2024-06-01T12:00:00Z"
API = ScaleTargetRef(kind="Deployment", name="api")
CoOwner = Callable[[FakeKube], None]


def hpa(target: ScaleTargetRef, via: str = "") -> CoOwner:
    return lambda kube: kube.add_hpa(NS, "web-cpu", target, via)


def other_scaler(name: str, created: str, target: ScaleTargetRef = WEB) -> CoOwner:
    owner = Owner(created, name, f"uid-{name}", target=("apps", target.kind, target.name))
    return lambda kube: kube.add_scaler(NS, owner)


def cannot_list(kube: FakeKube) -> None:
    kube.hpa_error = PermissionError("forbidden: cannot list horizontalpodautoscalers")


CO_OWNERS: dict[str, tuple[CoOwner, str | None]] = {
    # who else is there -> what AbleToScale names (None: nothing blocks the write)
    "hpa-on-the-same-deployment": (
        hpa(WEB),
        "HorizontalPodAutoscaler web-cpu also scales Deployment web",
    ),
    "keda-hpa-on-the-same-deployment": (
        hpa(WEB, via="KEDA ScaledObject web-queue"),
        "HorizontalPodAutoscaler web-cpu (made by KEDA ScaledObject web-queue) also scales",
    ),
    "hpa-on-another-deployment": (hpa(API), None),
    "hpa-on-a-statefulset-of-the-same-name": (
        hpa(ScaleTargetRef(kind="StatefulSet", name=TARGET)),
        None,
    ),
    "hpa-of-another-api-group": (
        hpa(ScaleTargetRef(api_version="example.com/v1", kind="Deployment", name=TARGET)),
        None,
    ),
    "older-forecastscaler-on-the-same-deployment": (
        other_scaler("web-old", "2024-05-01T00:00:00Z"),
        "older ForecastScaler web-old also scales Deployment web",
    ),
    "same-second-and-first-by-name": (
        other_scaler("aaa", CREATED),
        "older ForecastScaler aaa also scales Deployment web",
    ),
    "newer-forecastscaler-on-the-same-deployment": (
        other_scaler("web-new", "2024-07-01T00:00:00Z"),
        None,
    ),
    "same-second-and-later-by-name": (other_scaler("zzz", CREATED), None),
    "older-forecastscaler-on-another-deployment": (
        other_scaler("api", "2024-05-01T00:00:00Z", API),
        None,
    ),
    "autoscalers-cannot-be-listed": (cannot_list, None),
}


@pytest.mark.parametrize(("add", "named"), CO_OWNERS.values(), ids=CO_OWNERS.keys())
async def test_another_autoscaler_on_the_target_stops_the_writes(
    add: CoOwner, named: str | None
) -> None:
    """An HPA (KEDA's too) or an older ForecastScaler on the same target: this one decides
    and reports, never writes, says who; the oldest ForecastScaler keeps scaling."""
    w = world(load=45.0, replicas=2)
    add(w.kube)
    await w.sync()
    assert w.status["desiredReplicas"] == 5, "it decides either way"
    if named is None:
        assert w.kube.writes == [ScaleWrite(NS, "Deployment", TARGET, 5)]
        assert w.condition("Ready")[:2] == ("True", "Ready")
        return
    assert w.kube.writes == [] and w.kube.calls["patch_scale"] == 0
    for type_ in ("Ready", "AbleToScale"):
        status, reason, message = w.condition(type_)
        assert (status, reason) == ("False", "ConflictingAutoscaler")
        assert named in message, message
    warnings = [e for e in w.events.events if e.reason == "ConflictingAutoscaler"]
    assert len(warnings) == 3 and {e.type for e in warnings} == {"Warning"}
    assert w.counted("forecastscaler_scale_writes_total", result="error") == 0

    await w.sync()  # still there: no write, and no Event again for the same problem
    assert w.kube.writes == [] and w.events.events == []

    w.kube.hpas.clear()  # the other autoscaler deleted: it scales at the next sync
    w.kube.scalers.clear()
    await w.sync()
    assert w.kube.writes == [ScaleWrite(NS, "Deployment", TARGET, 5)]
    assert w.conditions("Ready", "AbleToScale") == {
        "Ready": ("True", "Ready"),
        "AbleToScale": ("True", "SucceededRescale"),
    }


# ------------------------------------------------------------------------------ Secrets

TOKEN_REF = {"prometheus": {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}}
SECRETS: dict[str, tuple[dict[str, str] | None, str | None]] = {
    # the Secret's data (None: no such Secret) -> the Ready=False message (None: ready)
    "missing-secret": (None, "cannot read Secret shop/prom-token: 404 Not Found"),
    "missing-key": ({"password": "x"}, "Secret shop/prom-token has no key 'token'"),
    "token-present": ({"token": "s3cr3t\n"}, None),
}


@pytest.mark.parametrize(("data", "problem"), SECRETS.values(), ids=SECRETS.keys())
async def test_a_bearer_token_secret_that_cannot_be_read_fails_the_metric_read(
    data: dict[str, str] | None, problem: str | None
) -> None:
    w = world(load=45.0, replicas=1, metric=TOKEN_REF)
    if data is not None:
        w.kube.secrets[(NS, "prom-token")] = data
    await w.sync()
    if problem is None:
        (endpoint,) = w.services.sources
        assert endpoint.bearer_token == "s3cr3t"
        assert w.kube.writes == [ScaleWrite(NS, "Deployment", TARGET, 5)]
        assert w.condition("Ready")[:2] == ("True", "Ready")
        return
    assert w.condition("Ready") == ("False", "SecretUnavailable", problem)
    assert w.condition("Fallback")[:2] == ("False", "MetricFailing")
    assert w.status["health"] == {"consecutiveFailures": 1, "status": "Failing"}
    assert w.services.sources == {} and w.prometheus.counts == {}, "Prometheus never asked"
    assert w.kube.writes == [], "no scaling on a metric that could not be read"
    assert ("Warning", "SecretUnavailable") in [(e.type, e.reason) for e in w.events.events]
    assert w.counted("forecastscaler_prometheus_query_errors_total", reason="SecretUnavailable")


# ------------------------------------------------------------------------------ target errors

TARGETS: dict[str, tuple[dict[str, Any], str, str]] = {
    # how the target is broken -> AbleToScale=False reason, a part of its message
    "missing-target": (
        {"missing": True},
        "FailedGetScale",
        "Deployment shop/web (apps/v1) not found",
    ),
    "no-scale-subresource": (
        {"kind": "ConfigMap"},
        "InvalidTarget",
        "ConfigMap shop/web (v1): this kind has no scale subresource",
    ),
    "scale-write-refused": (
        {"refuse": "422 Unprocessable Entity"},
        "FailedUpdateScale",
        "cannot scale Deployment shop/web (apps/v1): 422 Unprocessable Entity",
    ),
}


@pytest.mark.parametrize(("broken", "reason", "message"), TARGETS.values(), ids=TARGETS.keys())
async def test_a_target_that_cannot_be_read_or_written(
    broken: dict[str, Any], reason: str, message: str
) -> None:
    kind = broken.get("kind", "Deployment")
    ref = {"apiVersion": "v1" if kind == "ConfigMap" else "apps/v1", "kind": kind, "name": TARGET}
    w = world(load=45.0, replicas=1, scaleTargetRef=ref)
    w.kube.unscalable_kinds.add("ConfigMap")
    if broken.get("missing"):
        w.kube.missing.add((NS, TARGET))
    w.kube.refuse_writes = broken.get("refuse")
    await w.sync()
    for type_ in ("Ready", "AbleToScale"):
        status, got, text = w.condition(type_)
        assert (status, got) == ("False", reason) and message in text
    assert w.kube.writes == []
    warnings = [e for e in w.events.events if e.type == "Warning" and e.reason == reason]
    assert warnings, w.events.events
    assert w.status["health"]["consecutiveFailures"] == 0, "the metric itself was read"
    if "refuse" in broken:  # decided, tried, refused: the decision stays, the count does not
        assert (w.status["currentReplicas"], w.status["desiredReplicas"]) == (1, 5)
        assert w.counted("forecastscaler_scale_writes_total", result="error") == 1
    else:  # nothing decided without the target, and its windows start afresh
        assert "desiredReplicas" not in w.status and "lastDecision" not in w.status
        assert "recommendations" not in w.status
        assert w.kube.calls["patch_scale"] == 0


async def test_an_invalid_spec_is_reported_and_touches_nothing_else() -> None:
    w = world(minReplicas=5, maxReplicas=2)
    assert await w.sync() == DEFAULT_INTERVAL
    status, reason, message = w.condition("Ready")
    assert (status, reason) == ("False", "InvalidSpec")
    assert "minReplicas (5) is greater than maxReplicas (2)" in message
    assert set(w.kube.calls) == {"patch_status"} and w.prometheus.counts == {}
    assert [(e.type, e.reason) for e in w.events.events] == [("Warning", "InvalidSpec")]


# ------------------------------------------------------------------------------ fallback


@dataclass(frozen=True)
class Outage:
    fallback_replicas: int | None
    writes: tuple[int, ...]
    """The replicas written over the outage's syncs (the target has 5)."""
    desired: int


OUTAGES = {
    "fallback-replicas-above-current-scale-up": Outage(8, (8,), 8),
    "fallback-replicas-below-current-never-scale-down": Outage(2, (), 5),
    "fallback-replicas-unset-hold-the-current-count": Outage(None, (), 5),
}


@pytest.mark.parametrize("case", OUTAGES.values(), ids=OUTAGES.keys())
async def test_prometheus_down_counts_failures_then_falls_back(case: Outage) -> None:
    fallback: dict[str, Any] = {"failureThreshold": 2}
    if case.fallback_replicas is not None:
        fallback["replicas"] = case.fallback_replicas
    w = world(load=50.0, replicas=5, fallback=fallback)
    w.prometheus.down = True

    await w.sync()  # below the threshold: hold, and say how far from fallback
    assert w.condition("Fallback") == (
        "False",
        "MetricFailing",
        "1 of 2 failed syncs before fallback; holding replicas",
    )
    status, reason, message = w.condition("Ready")
    assert (status, reason) == ("False", "PrometheusUnavailable")
    assert "is unreachable: ConnectionError" in message
    assert w.status["lastDecision"]["reason"] == "NoData" and w.kube.writes == []

    await w.sync()  # the threshold: Fallback=True, spec.fallback.replicas as a floor
    assert w.condition("Fallback")[:2] == ("True", "MetricUnavailable")
    assert w.status["health"] == {"consecutiveFailures": 2, "status": "Failing"}
    assert w.status["lastDecision"]["reason"] == "Fallback"
    assert w.status["desiredReplicas"] == case.desired
    assert tuple(write.replicas for write in w.kube.writes) == case.writes
    assert ("Warning", "MetricUnavailable") in [(e.type, e.reason) for e in w.events.events]
    assert (
        w.counted("forecastscaler_prometheus_query_errors_total", reason="PrometheusUnavailable")
        == 2
    )

    w.prometheus.down = False  # back: the count starts over and Fallback clears
    await w.sync()
    assert w.status["health"] == {"consecutiveFailures": 0, "status": "Happy"}
    assert w.conditions("Ready", "Fallback") == {
        "Ready": ("True", "Ready"),
        "Fallback": ("False", "MetricAvailable"),
    }


async def test_a_query_without_series_is_no_data_not_zero_load() -> None:
    w = world(load=None, replicas=4)
    await w.sync()
    status, reason, message = w.condition("Ready")
    assert (status, reason) == ("False", "NoData") and QUERY in message
    assert w.status["health"]["consecutiveFailures"] == 1
    assert w.kube.writes == [], "no data must never read as no load (a scale-down)"
    assert w.status["desiredReplicas"] == 4
