"""A sync as status: the fields, the conditions and the Events of conditions that changed.

Pure: it renders what a `Sync` learned against the status the object had, so the operator
writes the result with one merge patch and the tests read it without a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from forecastscaler.core import conditions as cond
from forecastscaler.core.api import DURATION_PATTERN, ForecastScalerSpec, format_duration
from forecastscaler.core.api_status import Condition
from forecastscaler.core.decision import Decision
from forecastscaler.core.memory import memory_status
from forecastscaler.core.model import rfc3339
from forecastscaler.core.sync import FITTING, Event, Sync, headline
from forecastscaler.core.trust import Accuracy

# Conditions that change too often at the replica bounds to be news: status only.
_QUIET = frozenset({"ScalingLimited"})

# The status of each condition type that deserves a Warning Event.
_BAD = {
    "Ready": "False",
    "ForecastReady": "False",
    "AbleToScale": "False",
    "AnomalyDetected": "True",
    "Fallback": "True",
    "ForecastTrusted": "False",
}


@dataclass(frozen=True)
class Report:
    """What to write: the whole status, and the Events and log lines of changed conditions."""

    status: dict[str, Any]
    events: list[Event]
    changed: list[Condition]


def sig(x: float | None, digits: int = 4) -> float | None:
    """Round to significant digits, so status does not churn on noise."""
    if x is None or not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as `spec.field: problem; ...`, for Ready=False InvalidSpec, in the
    words of the check that failed: no library prefix ("Value error, ...") and no regular
    expression for a duration that does not parse."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = _problem_text(err)
        parts.append(f"spec.{where}: {msg}" if where != "spec" else msg)
    return "; ".join(parts)


def _problem_text(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if err["type"] == "string_pattern_mismatch" and ctx.get("pattern") == DURATION_PATTERN:
        return (
            f"invalid duration {err.get('input')!r}: use a number and a unit "
            "(ms, s, m, h, d, w), e.g. 30s, 5m or 1h30m"
        )
    return str(err["msg"])


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


def existing_conditions(status: Mapping[str, Any] | None) -> list[Condition]:
    """The conditions in status that still validate (a hand-edited one is dropped)."""
    out = []
    for item in (status or {}).get("conditions") or []:
        try:
            out.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return out


def transition_events(changed: Sequence[tuple[Condition | None, Condition]]) -> list[Event]:
    """An Event when a condition's status flips (reason-only changes are not news), or when
    an object starts out unhealthy."""
    events = []
    for old, new in changed:
        if new.type in _QUIET:
            continue
        bad = new.status == _BAD.get(new.type)
        if (old is None and not bad) or (old is not None and old.status == new.status):
            continue
        events.append(
            Event(
                "Warning" if bad else "Normal",
                new.reason,
                f"{new.type}={new.status}: {new.message}",
            )
        )
    return events


def _conditions_status(
    previous: Mapping[str, Any],
    wanted: Sequence[cond.Wanted],
    now: float,
    generation: int | None,
) -> tuple[list[dict[str, Any]], list[Event], list[Condition]]:
    merged, changed = cond.merge(existing_conditions(previous), wanted, rfc3339(now), generation)
    dumped = [c.model_dump(by_alias=True, exclude_none=True) for c in merged]
    return dumped, transition_events(changed), [new for _, new in changed]


def render_invalid(
    previous: Mapping[str, Any] | None, message: str, now: float, generation: int | None
) -> Report:
    """An invalid spec: Ready=False InvalidSpec, and the rest of status as it was."""
    status = dict(previous or {})
    status["observedGeneration"] = generation
    wanted = [cond.Wanted("Ready", "False", "InvalidSpec", message)]
    status["conditions"], events, changed = _conditions_status(
        previous or {}, wanted, now, generation
    )
    return Report(status, events, changed)


def render(sync: Sync, previous: Mapping[str, Any] | None, generation: int | None) -> Report:
    """The status a sync writes, over the status the object had."""
    previous = dict(previous or {})
    d, now = sync.decision, sync.now
    status: dict[str, Any] = {"observedGeneration": generation}
    _keep_or_set(status, previous, "currentReplicas", sync.current)
    _keep_or_set(status, previous, "desiredReplicas", d.desired_replicas if d else None)
    if sync.load is not None:
        status["currentLoad"] = sig(sync.load)
    last_scale = sync.state.last_scale_time or previous.get("lastScaleTime")
    if last_scale:
        status["lastScaleTime"] = last_scale
    forecast = forecast_status(sync)
    if forecast is not None:
        status["forecast"] = forecast
    decision = decision_status(d, previous.get("lastDecision"), now) if d is not None else None
    _keep_or_set(status, previous, "lastDecision", decision)
    if sync.accuracy is not None and sync.accuracy.samples:
        status["accuracy"] = accuracy_status(sync.accuracy, sync.spec)
    status.update(memory_status(sync.state.memory, sync.state.failures, now, sync.spec))
    status["conditions"], events, changed = _conditions_status(
        previous, wanted_conditions(sync), now, generation
    )
    return Report(status, events, changed)


def _keep_or_set(status: dict[str, Any], previous: Mapping[str, Any], key: str, value: Any) -> None:
    """This sync's value, or the previous one when this sync has none (a failed read)."""
    if value is not None:
        status[key] = value
    elif key in previous:
        status[key] = previous[key]


def forecast_status(sync: Sync) -> dict[str, Any] | None:
    d, forecast, spec = sync.decision, sync.forecast, sync.spec
    if d is None or d.forecast_at_horizon is None or forecast is None:
        return None
    value, point, lower, upper = d.forecast_at_horizon
    model = sync.state.model
    return {
        "value": sig(value),
        "point": sig(point),
        "lower": sig(lower),
        "upper": sig(upper),
        "quantile": spec.forecast.quantile,
        "horizonSeconds": spec.forecast.horizon_seconds,
        "model": forecast.model,
        "fittedAt": rfc3339(model.fitted_at if model.fitted_at is not None else sync.now),
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
        "windowSeconds": spec.forecast.trust.window_seconds,
    }
    for key, value in (
        ("forecastError", a.forecast_mae),
        ("naiveError", a.naive_mae),
        ("relativeError", a.relative_error),
        ("coverage", a.coverage),
        ("intervalCoverage", a.interval_coverage),
    ):
        if value is not None and math.isfinite(value):
            status[key] = sig(value, 3)
    return status


def trust_condition(sync: Sync) -> cond.Wanted:
    """ForecastTrusted, with the numbers that decided it."""
    trust = sync.spec.forecast.trust
    a = sync.accuracy
    if not trust.enabled:
        return cond.Wanted("ForecastTrusted", "True", "GateDisabled", "accuracy gate is off")
    if a is None or a.samples < trust.min_samples:
        got = a.samples if a is not None else 0
        return cond.Wanted(
            "ForecastTrusted",
            "True",
            "NotYetScored",
            f"{got} of {trust.min_samples} forecasts scored; trusted until judged"
            + _capacity_note(sync),
        )
    numbers = (
        f"MAE at the horizon {a.forecast_mae:.4g} vs last value {a.naive_mae:.4g} "
        f"over {a.samples} forecasts"
    )
    if sync.trusted:
        return cond.Wanted("ForecastTrusted", "True", "Accurate", numbers + _capacity_note(sync))
    return cond.Wanted(
        "ForecastTrusted",
        "False",
        "LessAccurateThanNaive",
        f"{numbers}: acting on the current load only",
    )


def _capacity_note(sync: Sync) -> str:
    """What setting metric.capacityPerReplica would do, while it is unset."""
    metric, forecast = sync.spec.metric, sync.spec.forecast
    if metric.capacity_per_replica is not None:
        return ""
    return (
        f"; capacityPerReplica is unset, so the p{forecast.quantile * 100:.4g} forecast is "
        f"provisioned at targetPerReplica {metric.target_per_replica:g}, paying the target's "
        "margin on top of the quantile's: set it to the load one replica serves before it is "
        "short to provision at capacity"
    )


def wanted_conditions(sync: Sync) -> list[cond.Wanted]:
    """The conditions a sync implies, in the order status lists them."""
    wanted = [ready_condition(sync)]
    forecast_ready = forecast_ready_condition(sync)
    if forecast_ready is not None:
        wanted.append(forecast_ready)
    if sync.decision is not None or sync.accuracy is not None:
        wanted.append(trust_condition(sync))
    able = able_to_scale_condition(sync)
    if able is not None:
        wanted.append(able)
    d = sync.decision
    if d is not None and d.scaling_limited:
        wanted.append(cond.Wanted("ScalingLimited", "True", d.limit_reason, d.message))
    elif d is not None:
        wanted.append(
            cond.Wanted("ScalingLimited", "False", "DesiredWithinRange", "within the allowed range")
        )
    wanted.append(anomaly_condition(sync))
    wanted.append(fallback_condition(sync))
    return wanted


def ready_condition(sync: Sync) -> cond.Wanted:
    problem = sync.target_problem or sync.write_problem or sync.metric_problem
    if problem is not None:
        return cond.Wanted("Ready", "False", problem.reason, str(problem))
    spec = sync.spec
    mode = "DryRun: reporting only for" if spec.mode == "DryRun" else "scaling"
    return cond.Wanted("Ready", "True", "Ready", f"{mode} {spec.scale_target_ref.name}")


def forecast_ready_condition(sync: Sync) -> cond.Wanted | None:
    model = sync.state.model
    if sync.forecast is not None:
        fitted = rfc3339(model.fitted_at or 0)
        points = int(model.history.notna().sum())
        message = f"{sync.forecast.model} fitted at {fitted} on {points} points"
        return cond.Wanted("ForecastReady", "True", "ModelFitted", message)
    problem = sync.forecast_problem
    if problem is None:
        return None
    # Not known yet while the first fit runs; False when the forecast cannot be made.
    status: cond.Status = "Unknown" if problem.reason == FITTING else "False"
    return cond.Wanted("ForecastReady", status, problem.reason, problem.message)


def able_to_scale_condition(sync: Sync) -> cond.Wanted | None:
    spec, d = sync.spec, sync.decision
    scale_error = sync.target_problem or sync.write_problem
    if scale_error is not None:
        return cond.Wanted("AbleToScale", "False", scale_error.reason, str(scale_error))
    if d is None:
        return None
    if spec.mode == "DryRun":
        return cond.Wanted(
            "AbleToScale", "True", "DryRun", f"DryRun: would ask for {d.desired_replicas}"
        )
    held = _held_condition(spec, d)
    if held is not None:
        return held
    if sync.applied:
        return cond.Wanted(
            "AbleToScale", "True", "SucceededRescale", f"scaled to {d.desired_replicas}"
        )
    return cond.Wanted(
        "AbleToScale", "True", "ReadyForNewScale", "the target's scale can be changed"
    )


def _held_condition(spec: ForecastScalerSpec, d: Decision) -> cond.Wanted | None:
    """AbleToScale when the forecast's hold or a stabilization window kept the count."""
    if d.held:
        horizon = format_duration(spec.forecast.horizon_seconds)
        return cond.Wanted(
            "AbleToScale",
            "True",
            "ScaleDownStabilized",
            f"the forecast within the {horizon} horizon needs more: "
            f"holding at {d.desired_replicas}",
        )
    if not d.stabilized:
        return None
    down = (d.recommendation or 0) < d.current_replicas
    if down and d.looked_ahead:
        why = "the forecast over the scale-down window needs more"
    else:
        why = f"recent recommendations were {'higher' if down else 'lower'}"
    reason = "ScaleDownStabilized" if down else "ScaleUpStabilized"
    return cond.Wanted("AbleToScale", "True", reason, f"{why}: holding at {d.desired_replicas}")


def anomaly_condition(sync: Sync) -> cond.Wanted:
    spec, d, score = sync.spec, sync.decision, sync.anomaly_score
    if not spec.anomaly.enabled:
        return cond.Wanted("AnomalyDetected", "False", "Disabled", "anomaly detection is off")
    if score is not None and d is not None and d.anomalous:
        message = f"anomaly score {score:.2f} ≥ {spec.anomaly.threshold:g}: {spec.anomaly.action}"
        return cond.Wanted("AnomalyDetected", "True", "UnexpectedLoad", message)
    if score is not None:
        return cond.Wanted("AnomalyDetected", "False", "ExpectedLoad", f"anomaly score {score:.2f}")
    return cond.Wanted(
        "AnomalyDetected",
        "False",
        "NotScored",
        "waiting for a calibrated forecast to judge the load against",
    )


def fallback_condition(sync: Sync) -> cond.Wanted:
    failures, threshold = sync.state.failures, sync.spec.fallback.failure_threshold
    if failures >= threshold:
        message = f"{failures} failed syncs in a row: holding replicas, no scale-down"
        return cond.Wanted("Fallback", "True", "MetricUnavailable", message)
    if failures:
        message = f"{failures} of {threshold} failed syncs before fallback; holding replicas"
        return cond.Wanted("Fallback", "False", "MetricFailing", message)
    return cond.Wanted("Fallback", "False", "MetricAvailable", "the metric can be read")


__all__ = [
    "Report",
    "accuracy_status",
    "decision_status",
    "existing_conditions",
    "forecast_status",
    "headline",
    "merge_patch",
    "render",
    "render_invalid",
    "sig",
    "transition_events",
    "trust_condition",
    "validation_message",
    "wanted_conditions",
]
