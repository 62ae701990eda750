"""One sync of one ForecastScaler: fetch, forecast, decide, apply, report.

Split like the HPA controller: reading the target and the metric (blocking I/O, in threads),
forecasting (in the bounded fit pool), deciding (the pure core), writing the scale, and
reporting (status, conditions, Events). Every failure is caught here, turned into a condition
and an Event, and never turned into a scale-down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from forecastscaler.core import conditions as cond
from forecastscaler.core.api import (
    Condition,
    ForecastScalerSpec,
    format_duration,
    parse_duration,
)
from forecastscaler.core.decision import (
    Decision,
    ForecastPath,
    Memory,
    Observation,
    Reason,
    decide,
    initial_memory,
    remember,
)
from forecastscaler.core.model import (
    AnomalyState,
    ModelKey,
    ModelState,
    anomaly_score,
    combined_score,
    first_model,
    model_key,
    rfc3339,
)
from forecastscaler.core.trust import (
    Accuracy,
    AccuracyTracker,
    judge,
    new_tracker,
    remember_forecast,
)
from forecastscaler.models.base import InsufficientHistory
from forecastscaler.operator.forecasting import forecast_path, refresh
from forecastscaler.operator.kube import (
    ConflictingAutoscaler,
    Kube,
    Scale,
    SecretError,
    TargetError,
)
from forecastscaler.operator.metrics import Metrics
from forecastscaler.operator.prometheus import Endpoint, MetricError, PrometheusSource
from forecastscaler.operator.settings import OperatorConfig

# Posts a Kubernetes Event: (object body, type, reason, message). kopf.event in the operator.
EventSink = Callable[[Mapping[str, Any], str, str, str], None]

T = TypeVar("T")
AnyLogger = logging.Logger | logging.LoggerAdapter[Any]

DEFAULT_INTERVAL = 30.0


@dataclass(frozen=True)
class Warming:
    """A first detector pass and fit in the background: the job, the sync that started it
    (the model's fitted-at) and the spec it is for."""

    job: asyncio.Future[Any]
    since: float
    key: ModelKey


@dataclass
class ObjectState:
    """What the operator remembers about one ForecastScaler between syncs (in memory, like
    the HPA; a restarted operator re-seeds it conservatively)."""

    memory: Memory | None = None
    failures: int = 0
    model: ModelState = field(default_factory=ModelState)
    last_forecast: ForecastPath | None = None
    last_dry_run: int | None = None
    dry_run_replicas: int | None = None
    """The count Active mode would have now (DryRun only)."""
    dry_run_anchor: int | None = None
    """The real count dry_run_replicas started from."""
    last_write_error: str | None = None
    last_scale_time: str | None = None
    accuracy: AccuracyTracker | None = None
    """The forecast's own track record at the horizon (accuracy-gated trust)."""
    anomaly: AnomalyState | None = None
    """The streaming anomaly detector over the metric's history."""
    detector_score: float | None = None
    warming: Warming | None = None
    """The first detector pass and fit of a new object, running in the background."""


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


@dataclass
class Outcome:
    """Everything one sync learned, for status and conditions."""

    spec: ForecastScalerSpec
    scale: Scale | None = None
    target_error: TargetError | None = None
    load: float | None = None
    metric_error: MetricError | SecretError | None = None
    forecast: ForecastPath | None = None
    forecast_problem: tuple[str, str] | None = None
    anomaly_score: float | None = None
    decision: Decision | None = None
    applied: bool = False
    write_error: TargetError | None = None
    trusted: bool = True
    accuracy: Accuracy | None = None
    refit_seconds: float | None = None


def _sig(x: float | None, digits: int = 4) -> float | None:
    """Round to significant digits, so status does not churn on noise."""
    if x is None or not math.isfinite(x) or x == 0:
        return None if x is None or not math.isfinite(x) else 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}" if where != "spec" else err["msg"])
    return "; ".join(parts)


class Reconciler:
    """Runs syncs; one instance serves every ForecastScaler."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def _kube(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.s.kube_io, fn, *args)

    async def _prom(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.s.metrics_io, fn, *args)

    async def sync(
        self,
        body: Mapping[str, Any],
        state: ObjectState,
        logger: AnyLogger,
    ) -> float:
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
            await self._report_invalid(body, message, now, generation)
            return DEFAULT_INTERVAL

        started = time.perf_counter()
        out = Outcome(spec=spec)
        await self._read_target(out, namespace)
        await self._check_co_owner(out, namespace, logger)
        if out.target_error is not None:
            # Nothing is decided without the target; start the windows afresh when it is back.
            state.memory = None
            state.dry_run_replicas = None
        await self._read_metric(out, state, namespace, now)
        if not await self._warm_up(out, state, now, logger):
            await self._detect(out, state, logger)
            await self._forecast(out, state, now, logger)
        self._score_anomaly(out, state, now)
        self._decide(out, state, now)
        await self._apply(out, state, namespace, now, body, logger)
        await self._report(body, out, state, now, generation, logger)
        self._observe(namespace, name, out, time.perf_counter() - started)
        return spec.interval_seconds

    def _observe(self, namespace: str, name: str, out: Outcome, seconds: float) -> None:
        m = self.s.metrics
        m.observe_sync(
            namespace,
            name,
            load=out.load,
            current=out.scale.replicas if out.scale is not None else None,
            decision=out.decision,
            quantile=out.spec.forecast.quantile,
            horizon_seconds=parse_duration(out.spec.forecast.horizon),
            accuracy=out.accuracy,
            trusted=out.trusted,
            anomaly_score=out.anomaly_score,
        )
        m.sync.labels(namespace, name).observe(seconds)
        if out.metric_error is not None:
            m.query_errors.labels(namespace, name, out.metric_error.reason).inc()
        if out.applied:
            m.scale_writes.labels(namespace, name, "success").inc()
        elif out.write_error is not None and not isinstance(
            out.write_error, ConflictingAutoscaler
        ):  # a write refused by the API, not one left undone because an HPA owns the target
            m.scale_writes.labels(namespace, name, "error").inc()
        if out.refit_seconds is not None:
            m.refit.labels(namespace, name).observe(out.refit_seconds)

    # ------------------------------------------------------------------------------ reading

    async def _read_target(self, out: Outcome, namespace: str) -> None:
        try:
            out.scale = await self._kube(
                self.s.kube.get_scale, namespace, out.spec.scale_target_ref
            )
        except TargetError as exc:
            out.target_error = exc
        except Exception as exc:  # discovery or transport errors: same treatment
            out.target_error = TargetError(f"cannot read the target's scale: {exc}")

    async def _check_co_owner(self, out: Outcome, namespace: str, logger: AnyLogger) -> None:
        """A HorizontalPodAutoscaler on the same target would fight over its replicas: the
        operator then decides and reports but does not write (like DryRun), and says why."""
        if out.target_error is not None:
            return
        ref = out.spec.scale_target_ref
        try:
            hpas = await self._kube(self.s.kube.autoscalers_of, namespace, ref)
        except Exception as exc:  # cannot list HPAs (RBAC, API): scaling is not blocked on it
            logger.debug("cannot list HorizontalPodAutoscalers in %s: %s", namespace, exc)
            return
        if hpas:
            out.write_error = ConflictingAutoscaler(
                f"HorizontalPodAutoscaler {', '.join(hpas)} also scales {ref.kind} {ref.name}: "
                "two autoscalers on one target undo each other's changes, so this one does not "
                "write the scale; delete the HPA, or set mode: DryRun to compare the two"
            )

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

    async def _read_metric(
        self, out: Outcome, state: ObjectState, namespace: str, now: float
    ) -> None:
        spec = out.spec
        try:
            endpoint = await self._endpoint(spec, namespace)
        except SecretError as exc:
            out.metric_error = exc
            state.failures += 1
            return
        except Exception as exc:  # e.g. a token that is not valid base64
            out.metric_error = SecretError(f"cannot read the bearer token: {exc}")
            state.failures += 1
            return
        key = model_key(spec, endpoint.url)
        if state.model.key != key:
            state.model.reset(key)
            if state.accuracy is not None:  # scores of another query say nothing of this one
                state.accuracy.reset()
            state.anomaly = None
        source = self.s.source(endpoint)
        step = parse_duration(spec.forecast.step)
        window = parse_duration(spec.forecast.history)
        at = datetime.fromtimestamp(now, UTC)
        full = state.model.needs_full_fetch(
            key, now, parse_duration(spec.forecast.retrain_interval)
        )
        if full:
            first = now - window
        else:  # only what is new since the last sync, with a little overlap for late samples
            last = state.model.history.index[-1].timestamp()
            first = max(now - window, last - 2 * step)
        # Range queries start on multiples of the step, so every fetch lands on the same grid.
        start = datetime.fromtimestamp(math.ceil(first / step) * step, UTC)
        try:
            out.load = await self._prom(source.current, spec.metric.query, at)
            fresh = await self._prom(source.history, spec.metric.query, start, at, step)
            if full:  # the whole window read afresh replaces what was cached
                state.model.history = fresh.iloc[0:0]
                state.model.fetched_at = now
            await self._prom(state.model.merge_history, fresh, window, now)
            state.failures = 0
        except MetricError as exc:
            out.metric_error = exc
            out.load = None
            state.failures += 1
        except Exception as exc:  # a malformed answer must count as a failure, not crash
            out.metric_error = MetricError(f"cannot read the metric: {type(exc).__name__}: {exc}")
            out.load = None
            state.failures += 1

    async def _forecast(
        self,
        out: Outcome,
        state: ObjectState,
        now: float,
        logger: AnyLogger,
    ) -> None:
        if out.metric_error is not None:
            out.forecast_problem = ("MetricUnavailable", str(out.metric_error))
            return
        try:
            flagged = state.anomaly.flagged if state.anomaly is not None else ()
            out.refit_seconds = await refresh(state.model, out.spec, now, self.s.pool, flagged)
            out.forecast = await forecast_path(state.model, out.spec, now, self.s.pool)
            if out.forecast is None:
                out.forecast_problem = (
                    "StaleHistory",
                    "the metric's history ends more than one horizon ago",
                )
        except Exception as exc:
            out.forecast_problem = _model_failed(exc, state.model, logger)

    async def _warm_up(
        self, out: Outcome, state: ObjectState, now: float, logger: AnyLogger
    ) -> bool:
        """A new object's first detector pass and fit run in the background while its syncs
        go on, on the current load alone (ForecastReady=False, reason Fitting). True while
        that is so; False once there is a model (or no background pool), and the sync goes on
        to detect and forecast as usual."""
        pool, model, spec = self.s.warmup_pool, state.model, out.spec
        if (
            pool is None
            or (model.model is not None and state.warming is None)
            or out.metric_error is not None
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
                out.forecast_problem = _model_failed(exc, model, logger)
                return True
            if warming.key == model.key:
                state.anomaly, state.detector_score = anomaly, score
                model.model, model.fitted_at = fitted, warming.since
                model.fits += 1
                out.refit_seconds = seconds
                return False
            warming = None  # the spec changed meanwhile: fit again for the new one
        if warming is None:
            key = model.key
            job = asyncio.get_running_loop().run_in_executor(
                pool,
                first_model,
                AnomalyState() if spec.anomaly.enabled else None,
                model.history.copy(),
                spec.anomaly.threshold,
                key.models,
                key.horizon_steps,
            )
            state.warming = Warming(asyncio.ensure_future(job), now, key)
        points = int(model.history.notna().sum())
        out.forecast_problem = (
            FITTING,
            f"first fit on {points} points in progress; following the current load until then",
        )
        return True

    async def _detect(self, out: Outcome, state: ObjectState, logger: AnyLogger) -> None:
        """Feed the detector the history's new steps (in the pool: it refits a forest now and
        then); its anomalous steps are left out of the next refit."""
        spec = out.spec
        history = state.model.history
        if not spec.anomaly.enabled:
            state.anomaly, state.detector_score = None, None
            return
        if out.metric_error is not None or not len(history):
            return
        if state.anomaly is None:
            state.anomaly = AnomalyState()
        state.anomaly.forget_before(history.index[0])
        try:
            state.detector_score = await asyncio.get_running_loop().run_in_executor(
                self.s.pool, state.anomaly.observe, history, spec.anomaly.threshold
            )
        except Exception:  # the detector failing must not stop the autoscaler
            logger.exception("anomaly detection failed")
            state.anomaly, state.detector_score = None, None

    def _score_anomaly(self, out: Outcome, state: ObjectState, now: float) -> None:
        previous, state.last_forecast = state.last_forecast, out.forecast
        residual = anomaly_score(out.spec, state.model, previous, out.load, now)
        detector = state.detector_score if out.spec.anomaly.enabled else None
        out.anomaly_score = combined_score(detector, residual)

    def _decide(self, out: Outcome, state: ObjectState, now: float) -> None:
        if state.accuracy is None:
            state.accuracy = new_tracker(out.spec)
        out.trusted = judge(state.accuracy, out.spec, now, out.load)
        out.accuracy = state.accuracy.accuracy()
        if out.scale is None:
            return
        current = out.scale.replicas
        if out.spec.mode == "DryRun":
            # DryRun follows the count Active mode would have reached, so it reports what
            # the operator would do (1→5→8 under rate limits), not a single capped step.
            # Someone else changing the real count re-anchors it.
            if state.dry_run_replicas is None or state.dry_run_anchor != current:
                state.dry_run_replicas, state.dry_run_anchor = current, current
            current = state.dry_run_replicas
        else:
            state.dry_run_replicas = state.dry_run_anchor = None
        if state.memory is None:
            state.memory = initial_memory(now, current)
        out.decision = decide(
            out.spec,
            Observation(
                now=now,
                current_replicas=current,
                load=out.load,
                forecast=out.forecast,
                forecast_trusted=out.trusted,
                anomaly_score=out.anomaly_score,
                consecutive_failures=state.failures,
                memory=state.memory,
            ),
        )
        remember_forecast(state.accuracy, out.spec, now, out.decision)

    # ------------------------------------------------------------------------------ writing

    async def _apply(
        self,
        out: Outcome,
        state: ObjectState,
        namespace: str,
        now: float,
        body: Mapping[str, Any],
        logger: AnyLogger,
    ) -> None:
        d, spec = out.decision, out.spec
        if d is None or state.memory is None:
            return
        target = spec.scale_target_ref.name
        if spec.mode == "Active" and d.changes_scale and out.write_error is None:
            try:
                out.scale = await self._kube(
                    self.s.kube.patch_scale, namespace, spec.scale_target_ref, d.desired_replicas
                )
                out.applied = True
                state.last_scale_time = rfc3339(now)
                change = f"{d.current_replicas}→{d.desired_replicas}"
                text = f"scaled {target} {change}: {headline(spec, d)}"
                logger.info(text)
                self.s.emit(body, "Normal", "SuccessfulRescale", text)
                state.last_write_error = None
            except TargetError as exc:
                out.write_error = exc
        problem = out.write_error  # refused by the API, or not tried (a co-owning HPA)
        if spec.mode == "Active" and problem is not None:
            if d.changes_scale:
                logger.warning("not scaling %s: %s", target, problem)
            if str(problem) != state.last_write_error:  # once per distinct problem
                self.s.emit(body, "Warning", problem.reason, str(problem))
            state.last_write_error = str(problem)
        if spec.mode == "DryRun":
            if d.changes_scale and d.desired_replicas != state.last_dry_run:
                text = (
                    f"would scale {target} {d.current_replicas}→{d.desired_replicas} (DryRun): "
                    f"{headline(spec, d)}"
                )
                logger.info(text)
                self.s.emit(body, "Normal", "DryRunRescale", text)
            state.last_dry_run = d.desired_replicas
            state.dry_run_replicas = d.desired_replicas
        applied = out.applied or (spec.mode == "DryRun" and d.changes_scale)
        state.memory = remember(spec, state.memory, d, now, applied)

    async def _patch_status(
        self,
        body: Mapping[str, Any],
        status: dict[str, Any],
        logger: AnyLogger,
    ) -> None:
        meta = body.get("metadata", {})
        patch = merge_patch(body.get("status") or {}, status)
        if not patch:
            return
        try:
            await self._kube(
                self.s.kube.patch_status, meta.get("namespace", ""), meta.get("name", ""), patch
            )
        except Exception as exc:  # deleted meanwhile, API hiccup: next sync writes again
            logger.warning("cannot update status: %s", exc)

    def _emit_transitions(
        self, body: Mapping[str, Any], changed: list[tuple[Condition | None, Condition]]
    ) -> None:
        """An Event when a condition's status flips (reason-only changes are not news), or when
        an object starts out unhealthy."""
        for old, new in changed:
            if new.type in _QUIET:
                continue
            bad = new.status == _BAD.get(new.type)
            if old is None and not bad:
                continue
            if old is not None and old.status == new.status:
                continue
            self.s.emit(
                body,
                "Warning" if bad else "Normal",
                new.reason,
                f"{new.type}={new.status}: {new.message}",
            )

    async def _report_invalid(
        self, body: Mapping[str, Any], message: str, now: float, generation: int | None
    ) -> None:
        wanted = [cond.Wanted("Ready", "False", "InvalidSpec", message)]
        existing = _existing_conditions(body)
        merged, changed = cond.merge(existing, wanted, rfc3339(now), generation)
        status = dict(body.get("status") or {})
        status["observedGeneration"] = generation
        status["conditions"] = [c.model_dump(by_alias=True, exclude_none=True) for c in merged]
        self._emit_transitions(body, changed)
        await self._patch_status(body, status, logging.getLogger(__name__))

    async def _report(
        self,
        body: Mapping[str, Any],
        out: Outcome,
        state: ObjectState,
        now: float,
        generation: int | None,
        logger: AnyLogger,
    ) -> None:
        previous = dict(body.get("status") or {})
        status: dict[str, Any] = {"observedGeneration": generation}
        if out.scale is not None:
            status["currentReplicas"] = out.scale.replicas
        elif "currentReplicas" in previous:
            status["currentReplicas"] = previous["currentReplicas"]
        d = out.decision
        if d is not None:
            status["desiredReplicas"] = d.desired_replicas
        elif "desiredReplicas" in previous:
            status["desiredReplicas"] = previous["desiredReplicas"]
        if out.load is not None:
            status["currentLoad"] = _sig(out.load)
        last_scale = state.last_scale_time or previous.get("lastScaleTime")
        if last_scale:
            status["lastScaleTime"] = last_scale
        forecast = forecast_status(out, state, now)
        if forecast is not None:
            status["forecast"] = forecast
        if d is not None:
            status["lastDecision"] = decision_status(d, previous.get("lastDecision"), now)
        elif "lastDecision" in previous:
            status["lastDecision"] = previous["lastDecision"]
        if out.accuracy is not None and out.accuracy.samples:
            status["accuracy"] = accuracy_status(out.accuracy, out.spec)
        merged, changed = cond.merge(
            _existing_conditions(body), wanted_conditions(out, state), rfc3339(now), generation
        )
        status["conditions"] = [c.model_dump(by_alias=True, exclude_none=True) for c in merged]
        self._emit_transitions(body, changed)
        for _, new in changed:
            logger.info("condition %s=%s (%s): %s", new.type, new.status, new.reason, new.message)
        await self._patch_status(body, status, logger)


# Conditions that change too often at the replica bounds to be news: status only.
_QUIET = frozenset({"ScalingLimited"})

# The status of each condition type that deserves a Warning Event.
FITTING = "Fitting"  # ForecastReady's reason while a new object's first fit runs

_BAD = {
    "Ready": "False",
    "ForecastReady": "False",
    "AbleToScale": "False",
    "AnomalyDetected": "True",
    "Fallback": "True",
    "ForecastTrusted": "False",
}


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch turning `old` into `new`: changed keys, and null for keys that
    disappeared (a merge patch keeps whatever it does not mention). Empty when equal."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value:
            patch[key] = value
    return patch


def _model_failed(exc: Exception, model: ModelState, logger: AnyLogger) -> tuple[str, str]:
    """A model that could not be fitted or asked: drop it (the sync goes on reactively) and
    say why as ForecastReady's reason and message."""
    model.model = None
    if isinstance(exc, InsufficientHistory):
        return "InsufficientHistory", f"{exc}; following the current load"
    # A model bug must not stop the autoscaler.
    logger.error("forecasting failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return "ForecastFailed", f"{type(exc).__name__}: {exc}"


def _existing_conditions(body: Mapping[str, Any]) -> list[Condition]:
    raw = (body.get("status") or {}).get("conditions") or []
    out = []
    for item in raw:
        try:
            out.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return out


def headline(spec: ForecastScalerSpec, d: Decision) -> str:
    """The reason for a scale in one phrase, for Events and logs."""
    per = f"{spec.metric.target_per_replica:g} per replica"
    horizon = format_duration(parse_duration(spec.forecast.horizon))
    q = round(spec.forecast.quantile * 100)
    if d.reason == Reason.FORECAST and d.held:
        return (
            f"scale-down held at {d.desired_replicas}: the p{q} forecast needs it within "
            f"{horizon}, {per}"
        )
    if d.reason == Reason.FORECAST and d.forecast_value is not None:
        return f"p{q} forecast {d.forecast_value:.4g} in {horizon}, {per}"
    if d.reason == Reason.REACTIVE and d.load is not None:
        return f"current load {d.load:.4g}, {per}"
    return f"{d.reason.value}: {d.message}"


def forecast_status(out: Outcome, state: ObjectState, now: float) -> dict[str, Any] | None:
    d = out.decision
    if d is None or d.forecast_at_horizon is None or out.forecast is None:
        return None
    value, point, lower, upper = d.forecast_at_horizon
    model = state.model
    return {
        "value": _sig(value),
        "point": _sig(point),
        "lower": _sig(lower),
        "upper": _sig(upper),
        "quantile": out.spec.forecast.quantile,
        "horizonSeconds": parse_duration(out.spec.forecast.horizon),
        "model": out.forecast.model,
        "fittedAt": rfc3339(model.fitted_at if model.fitted_at is not None else now),
        "historyPoints": int(model.history.notna().sum()),
    }


def decision_status(d: Decision, previous: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """The decision for status; its time moves only when the decision itself changes."""
    same = (
        previous is not None
        and previous.get("desiredReplicas") == d.desired_replicas
        and previous.get("reason") == d.reason.value
    )
    status: dict[str, Any] = {
        "time": previous["time"] if same and previous is not None else rfc3339(now),
        "desiredReplicas": d.desired_replicas,
        "reason": d.reason.value,
        "message": d.message,
    }
    if d.forecast_replicas is not None:
        status["forecastReplicas"] = d.forecast_replicas
    if d.reactive_replicas is not None:
        status["reactiveReplicas"] = d.reactive_replicas
    return status


def accuracy_status(a: Accuracy, spec: ForecastScalerSpec) -> dict[str, Any]:
    status: dict[str, Any] = {
        "samples": a.samples,
        "windowSeconds": parse_duration(spec.forecast.trust.window),
    }
    for key, value in (
        ("forecastError", a.forecast_mae),
        ("naiveError", a.naive_mae),
        ("relativeError", a.relative_error),
        ("coverage", a.coverage),
        ("intervalCoverage", a.interval_coverage),
    ):
        if value is not None and math.isfinite(value):
            status[key] = _sig(value, 3)
    return status


def trust_condition(out: Outcome) -> cond.Wanted:
    """ForecastTrusted, with the numbers that decided it."""
    trust = out.spec.forecast.trust
    a = out.accuracy
    if not trust.enabled:
        return cond.Wanted("ForecastTrusted", "True", "GateDisabled", "accuracy gate is off")
    if a is None or a.samples < trust.min_samples:
        got = a.samples if a is not None else 0
        return cond.Wanted(
            "ForecastTrusted",
            "True",
            "NotYetScored",
            f"{got} of {trust.min_samples} forecasts scored; trusted until judged",
        )
    numbers = (
        f"MAE at the horizon {a.forecast_mae:.4g} vs last value {a.naive_mae:.4g} "
        f"over {a.samples} forecasts"
    )
    if out.trusted:
        return cond.Wanted("ForecastTrusted", "True", "Accurate", numbers)
    return cond.Wanted(
        "ForecastTrusted",
        "False",
        "LessAccurateThanNaive",
        f"{numbers}: acting on the current load only",
    )


def wanted_conditions(out: Outcome, state: ObjectState) -> list[cond.Wanted]:
    """The conditions a sync's outcome implies."""
    spec, d = out.spec, out.decision
    wanted: list[cond.Wanted] = []

    def add(type_: str, status: cond.Status, reason: str, message: str) -> None:
        wanted.append(cond.Wanted(type_, status, reason, message))

    problem = out.target_error or out.write_error or out.metric_error
    if problem is not None:
        add("Ready", "False", problem.reason, str(problem))
    else:
        mode = "DryRun: reporting only for" if spec.mode == "DryRun" else "scaling"
        add("Ready", "True", "Ready", f"{mode} {spec.scale_target_ref.name}")

    if out.forecast is not None:
        fitted = rfc3339(state.model.fitted_at or 0)
        points = int(state.model.history.notna().sum())
        add(
            "ForecastReady",
            "True",
            "ModelFitted",
            f"{out.forecast.model} fitted at {fitted} on {points} points",
        )
    elif out.forecast_problem is not None:
        # Not known yet while the first fit runs; False when the forecast cannot be made.
        status: cond.Status = "Unknown" if out.forecast_problem[0] == FITTING else "False"
        add("ForecastReady", status, *out.forecast_problem)

    if out.decision is not None or out.accuracy is not None:
        wanted.append(trust_condition(out))

    scale_error = out.target_error or out.write_error
    if scale_error is not None:
        add("AbleToScale", "False", scale_error.reason, str(scale_error))
    elif d is not None:
        if spec.mode == "DryRun":
            add("AbleToScale", "True", "DryRun", f"DryRun: would ask for {d.desired_replicas}")
        elif d.held:
            horizon = format_duration(parse_duration(spec.forecast.horizon))
            add(
                "AbleToScale",
                "True",
                "ScaleDownStabilized",
                f"the forecast within the {horizon} horizon needs more: "
                f"holding at {d.desired_replicas}",
            )
        elif d.stabilized:
            down = (d.recommendation or 0) < d.current_replicas
            if down and d.looked_ahead:
                why = "the forecast over the scale-down window needs more"
            else:
                why = f"recent recommendations were {'higher' if down else 'lower'}"
            add(
                "AbleToScale",
                "True",
                "ScaleDownStabilized" if down else "ScaleUpStabilized",
                f"{why}: holding at {d.desired_replicas}",
            )
        elif out.applied:
            add("AbleToScale", "True", "SucceededRescale", f"scaled to {d.desired_replicas}")
        else:
            add("AbleToScale", "True", "ReadyForNewScale", "the target's scale can be changed")

    if d is not None:
        if d.scaling_limited:
            add("ScalingLimited", "True", d.limit_reason, d.message)
        else:
            add("ScalingLimited", "False", "DesiredWithinRange", "within the allowed range")

    score = out.anomaly_score
    if not spec.anomaly.enabled:
        add("AnomalyDetected", "False", "Disabled", "anomaly detection is off")
    elif score is not None and d is not None and d.anomalous:
        add(
            "AnomalyDetected",
            "True",
            "UnexpectedLoad",
            f"anomaly score {score:.2f} ≥ {spec.anomaly.threshold:g}: {spec.anomaly.action}",
        )
    elif score is not None:
        add("AnomalyDetected", "False", "ExpectedLoad", f"anomaly score {score:.2f}")
    else:
        add(
            "AnomalyDetected",
            "False",
            "NotScored",
            "waiting for a calibrated forecast to judge the load against",
        )

    threshold = spec.fallback.failure_threshold
    if state.failures >= threshold:
        add(
            "Fallback",
            "True",
            "MetricUnavailable",
            f"{state.failures} failed syncs in a row: holding replicas, no scale-down",
        )
    elif state.failures:
        add(
            "Fallback",
            "False",
            "MetricFailing",
            f"{state.failures} of {threshold} failed syncs before fallback; holding replicas",
        )
    else:
        add("Fallback", "False", "MetricAvailable", "the metric can be read")
    return wanted
