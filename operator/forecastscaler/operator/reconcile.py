"""One sync of one ForecastScaler: the I/O around the pure sync step.

The steps themselves (what to read, the model work, the decision, what the write means, the
status) are `forecastscaler.core.sync.Sync` and `forecastscaler.core.status.render`, which the
simulator replays unchanged. This module does only what they cannot: read the target and the
metric (blocking calls, in their own thread pools), run the model work in the bounded fit pool,
write the scale and the status, post Events and log. Every failure is caught here, handed to
the step as a `Problem`, and never turned into a scale-down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.model import AnomalyState, ModelKey
from forecastscaler.core.status import (
    Report,
    merge_patch,
    render,
    render_invalid,
    validation_message,
)
from forecastscaler.core.sync import LogLine, Problem, Sync, SyncState
from forecastscaler.operator.forecasting import first_fit, model_work, observe_detector
from forecastscaler.operator.kube import ConflictingAutoscaler, Kube, SecretError, TargetError
from forecastscaler.operator.metrics import Metrics
from forecastscaler.operator.owners import Owner, conflict_message, rivals
from forecastscaler.operator.prometheus import Endpoint, MetricError, PrometheusSource
from forecastscaler.operator.settings import OperatorConfig

# Posts a Kubernetes Event: (object body, type, reason, message). kopf.event in the operator.
EventSink = Callable[[Mapping[str, Any], str, str, str], None]

T = TypeVar("T")
AnyLogger = logging.Logger | logging.LoggerAdapter[Any]

DEFAULT_INTERVAL = 30.0
CONFLICT = ConflictingAutoscaler.reason


@dataclass(frozen=True)
class Warming:
    """A first detector pass and fit in the background: the job, the sync that started it
    (the model's fitted-at) and the spec it is for."""

    job: asyncio.Future[Any]
    since: float
    key: ModelKey


@dataclass
class ObjectState(SyncState):
    """What the operator remembers about one ForecastScaler between syncs: the sync step's
    state, and the background first fit of a new object."""

    warming: Warming | None = None


@dataclass
class Services:
    """Operator-wide collaborators, created once at startup."""

    kube: Kube
    config: OperatorConfig
    pool: Executor
    """Model fitting and prediction (CPU)."""
    emit: EventSink
    warmup_pool: Executor | None = None
    """First fits of new objects, in the background: a hundred objects created (or found at
    start-up) together must not hold every sync behind each other's first fit. None: first
    fits are awaited like refits."""
    kube_io: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="kube")
    )
    """Kubernetes calls: their own pool, so a slow Prometheus never delays a scale write."""
    metrics_io: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="prom")
    )
    """Prometheus queries (and the history bookkeeping that follows them)."""
    clock: Callable[[], float] = time.time
    metrics: Metrics = field(default_factory=Metrics)
    _sources: dict[Endpoint, PrometheusSource] = field(default_factory=dict)

    def source(self, endpoint: Endpoint) -> PrometheusSource:
        if endpoint not in self._sources:
            self._sources[endpoint] = PrometheusSource(endpoint)
        return self._sources[endpoint]


def _me(meta: Mapping[str, Any]) -> Owner:
    """This ForecastScaler as an Owner even while it is being deleted."""
    return Owner(
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("name") or ""),
        str(meta.get("uid") or ""),
    )


def _problem(exc: Exception, fallback: type[Exception], what: str) -> Problem:
    """An exception as the step's Problem; one of no known kind is `fallback`'s reason."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and isinstance(exc, TargetError | MetricError | SecretError):
        return Problem(reason, str(exc))
    return Problem(getattr(fallback, "reason", "Unknown"), f"{what}: {exc}")


class Reconciler:
    """Runs syncs; one instance serves every ForecastScaler."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def _kube(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.s.kube_io, fn, *args)

    async def _prom(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.s.metrics_io, fn, *args)

    async def sync(self, body: Mapping[str, Any], state: ObjectState, logger: AnyLogger) -> float:
        """One sync; returns the seconds until the next."""
        meta = body.get("metadata", {})
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        generation = meta.get("generation")
        now = self.s.clock()
        try:
            spec = ForecastScalerSpec.model_validate(body.get("spec", {}))
        except ValidationError as exc:
            message = validation_message(exc)
            logger.warning("invalid ForecastScaler %s/%s: %s", namespace, name, message)
            report = render_invalid(body.get("status"), message, now, generation)
            await self._publish(body, report, logger)
            return DEFAULT_INTERVAL

        started = time.perf_counter()
        sync = Sync(spec, state, now)
        await self._read_target(sync, namespace, _me(meta), logger)
        sync.resume(body.get("status"))
        await self._read_metric(sync, namespace)
        if not await self._warm_up(sync, state):
            await self._detect(sync, state, logger)
            await self._forecast(sync)
        sync.decide(state.detector_score)
        await self._write(sync, namespace)
        for event in sync.events:
            self.s.emit(body, event.type, event.reason, event.message)
        _log(logger, sync.logs)
        await self._publish(body, render(sync, body.get("status"), generation), logger)
        self._observe(namespace, name, sync, time.perf_counter() - started)
        return spec.interval_seconds

    def _observe(self, namespace: str, name: str, sync: Sync, seconds: float) -> None:
        m, spec = self.s.metrics, sync.spec
        m.observe_sync(
            namespace,
            name,
            load=sync.load,
            current=sync.current,
            decision=sync.decision,
            quantile=spec.forecast.quantile,
            horizon_seconds=spec.forecast.horizon_seconds,
            accuracy=sync.accuracy,
            trusted=sync.trusted,
            anomaly_score=sync.anomaly_score,
        )
        m.sync.labels(namespace, name).observe(seconds)
        if sync.metric_problem is not None:
            m.query_errors.labels(namespace, name, sync.metric_problem.reason).inc()
        if sync.applied:
            m.scale_writes.labels(namespace, name, "success").inc()
        elif (
            sync.write_problem is not None and sync.write_problem.reason != "ConflictingAutoscaler"
        ):
            # a write refused by the API, not one left undone because an HPA owns the target
            m.scale_writes.labels(namespace, name, "error").inc()
        if sync.refit_seconds is not None:
            m.refit.labels(namespace, name).observe(sync.refit_seconds)

    # ------------------------------------------------------------------------------ reading

    async def _read_target(self, sync: Sync, namespace: str, me: Owner, logger: AnyLogger) -> None:
        ref = sync.spec.scale_target_ref
        try:
            scale = await self._kube(self.s.kube.get_scale, namespace, ref)
        except Exception as exc:  # discovery or transport errors: same treatment
            sync.target(None, _problem(exc, TargetError, "cannot read the target's scale"))
            return
        sync.target(scale.replicas)
        # Another autoscaler on the same target would fight over its replicas: the operator
        # then decides and reports but does not write (like DryRun), and says why.
        try:
            owners = await self._kube(self.s.kube.owners_in, namespace, me.uid)
        except Exception as exc:  # cannot list them (RBAC, API): scaling is not blocked on it
            logger.debug("cannot list the autoscalers in %s: %s", namespace, exc)
            return
        found = rivals(me, ref, owners)
        if found:
            sync.conflict(Problem(CONFLICT, conflict_message(ref, found)))

    async def _endpoint(self, spec: ForecastScalerSpec, namespace: str) -> Endpoint:
        prom = spec.metric.prometheus
        address = (prom.address if prom and prom.address else None) or self.s.config.prometheus_url
        token = None
        if prom and prom.bearer_token_secret_ref:
            ref = prom.bearer_token_secret_ref
            token = await self._kube(self.s.kube.read_secret_key, namespace, ref.name, ref.key)
        return Endpoint(
            url=address,
            bearer_token=token,
            verify_tls=not (prom.insecure_skip_tls_verify if prom else False),
            timeout_seconds=self.s.config.prometheus_timeout,
        )

    async def _read_metric(self, sync: Sync, namespace: str) -> None:
        spec = sync.spec
        try:
            endpoint = await self._endpoint(spec, namespace)
        except Exception as exc:  # e.g. a token that is not valid base64
            sync.metric_read(None, _problem(exc, SecretError, "cannot read the bearer token"))
            return
        sync.select_model(endpoint.url)
        source, wanted = self.s.source(endpoint), sync.fetch_range()
        at = datetime.fromtimestamp(sync.now, UTC)
        start = datetime.fromtimestamp(wanted.start, UTC)
        try:
            load = await self._prom(source.current, spec.metric.query, at)
            fresh = await self._prom(source.history, spec.metric.query, start, at, wanted.step)
            await self._prom(sync.history_read, fresh, wanted)
        except Exception as exc:  # a malformed answer must count as a failure, not crash
            problem = _problem(exc, MetricError, f"cannot read the metric: {type(exc).__name__}")
            sync.metric_read(None, problem)
            return
        sync.metric_read(load)

    # ------------------------------------------------------------------------------ models

    async def _forecast(self, sync: Sync) -> None:
        if sync.metric_problem is not None:
            sync.forecast_problem = Problem("MetricUnavailable", str(sync.metric_problem))
            return
        sync.model_done(await model_work(sync.model_work(), self.s.pool))

    async def _warm_up(self, sync: Sync, state: ObjectState) -> bool:
        """A new object's first detector pass and fit run in the background while its syncs
        go on, on the current load alone (ForecastReady=Unknown, reason Fitting). True while
        that is so; False once there is a model (or no background pool), and the sync goes on
        to detect and forecast as usual."""
        pool, model, spec = self.s.warmup_pool, state.model, sync.spec
        if (
            pool is None
            or (model.model is not None and state.warming is None)
            or sync.metric_problem is not None
            or not len(model.history)
            or model.key is None
        ):
            return False
        warming = state.warming
        if warming is not None and warming.job.done():
            state.warming = None
            try:
                anomaly, score, fitted, seconds = warming.job.result()
            except Exception as exc:
                sync.model_failed(exc)
                return True
            if warming.key == model.key:
                sync.first_fit_done(anomaly, score, fitted, warming.since)
                sync.refit_seconds = seconds
                return False
            warming = None  # the spec changed meanwhile: fit again for the new one
        if warming is None:
            key = model.key
            job = first_fit(
                pool,
                AnomalyState() if spec.anomaly.enabled else None,
                model.history.copy(),
                spec.anomaly.threshold,
                key,
            )
            state.warming = Warming(job, sync.now, key)
        sync.fitting()
        return True

    async def _detect(self, sync: Sync, state: ObjectState, logger: AnyLogger) -> None:
        """Feed the detector the history's new steps (in the pool: it refits a forest now and
        then); its anomalous steps are left out of the next refit."""
        spec, history = sync.spec, state.model.history
        if not spec.anomaly.enabled:
            state.anomaly, state.detector_score = None, None
            return
        if sync.metric_problem is not None or not len(history):
            return
        if state.anomaly is None:
            state.anomaly = AnomalyState()
        state.anomaly.forget_before(history.index[0])
        try:
            state.detector_score = await observe_detector(
                state.anomaly, history, spec.anomaly.threshold, self.s.pool
            )
        except Exception:  # the detector failing must not stop the autoscaler
            logger.exception("anomaly detection failed")
            state.anomaly, state.detector_score = None, None

    # ------------------------------------------------------------------------------ writing

    async def _write(self, sync: Sync, namespace: str) -> None:
        replicas = sync.write_wanted()
        if replicas is None:
            sync.written()
            return
        try:
            ref = sync.spec.scale_target_ref
            scale = await self._kube(self.s.kube.patch_scale, namespace, ref, replicas)
        except TargetError as exc:
            sync.written(problem=_problem(exc, TargetError, "cannot write the scale"))
            return
        sync.written(scale.replicas)

    async def _publish(self, body: Mapping[str, Any], report: Report, logger: AnyLogger) -> None:
        """Post the Events of changed conditions, log them, and write status as a merge patch."""
        for event in report.events:
            self.s.emit(body, event.type, event.reason, event.message)
        for new in report.changed:
            logger.info("condition %s=%s (%s): %s", new.type, new.status, new.reason, new.message)
        meta = body.get("metadata", {})
        patch = merge_patch(body.get("status") or {}, report.status)
        if not patch:
            return
        try:
            await self._kube(
                self.s.kube.patch_status, meta.get("namespace", ""), meta.get("name", ""), patch
            )
        except Exception as exc:  # deleted meanwhile, API hiccup: next sync writes again
            logger.warning("cannot update status: %s", exc)


def _log(logger: AnyLogger, lines: list[LogLine]) -> None:
    for line in lines:
        if line.level == "error":
            logger.error(line.message, exc_info=line.error)
        elif line.level == "warning":
            logger.warning(line.message)
        else:
            logger.info(line.message)


__all__ = ["DEFAULT_INTERVAL", "ObjectState", "Reconciler", "Services", "Warming"]
