"""ForecastScaler manifests for the simulator: the file a user applies to the cluster, read the
same way, with the trace filling in what a cluster would (the metric's step).

Defaults when no manifest is given (or a manifest leaves them unset):

- ``metric.targetPerReplica``: 80% of a replica's capacity (what the HPA baseline targets): what
  the forecast policy follows whenever its forecast is not acted on;
- ``metric.capacityPerReplica``: the world's capacity (the simulator's world has one capacity
  per replica), so a trusted forecast is provisioned at capacity;
- ``minReplicas`` 1, ``maxReplicas`` twice what the trace's peak needs at that target (≥ 10);
- ``forecast.step``: the trace's step (the operator's step is the metric's step);
- ``forecast.history``: the operator's 7d, or 720 steps on coarse traces (the learning models
  need a few hundred steps; 7d of an hourly trace holds 168);
- ``forecast.startup``: the world's start-up time (what the replicas really take); the horizon
  is then derived as the operator derives it (``startup + interval + step``) unless the manifest
  sets it;
- ``forecast.retrainInterval``: the operator's 1h, or 24 steps on coarse traces (a refit per
  hourly point relearns everything for one new point; ``update`` takes points in between);
- everything else: the ForecastScaler defaults (interval 30s; behavior as the HPA's).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from forecastscaler.core.api import (
    ForecastScalerSpec,
    default_history,
    format_duration,
    parse_duration,
)

# Refits on coarse traces: one new point an hour teaches a refit little (`update` takes it in
# between), so the default refits every 24 steps there, like a user would set it.
RETRAIN_STEPS = 24


class ScalerError(ValueError):
    """A manifest the simulator cannot use; the message says why."""


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The `spec` of the ForecastScaler in a YAML file (the first, if there are several)."""
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ScalerError(f"{path}: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "ForecastScaler" and isinstance(doc.get("spec"), dict):
            return dict(doc["spec"])
        if "scaleTargetRef" in doc or "metric" in doc:
            return dict(doc)  # a bare spec
    raise ScalerError(f"{path}: no ForecastScaler in the file")


def build_spec(
    manifest: Mapping[str, Any] | None,
    *,
    step: float,
    startup: float,
    target: float,
    max_replicas: int,
    capacity: float | None = None,
) -> tuple[ForecastScalerSpec, list[str]]:
    """The spec the forecast policy runs, and warnings about it."""
    spec: dict[str, Any] = copy.deepcopy(dict(manifest or {}))
    warnings: list[str] = []
    spec.setdefault(
        "scaleTargetRef", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "simulated"}
    )
    spec.setdefault("maxReplicas", max_replicas)
    metric = dict(spec.get("metric") or {})
    metric.setdefault("query", "trace")
    metric.setdefault("targetPerReplica", target)
    if capacity is not None:
        metric.setdefault("capacityPerReplica", max(capacity, float(metric["targetPerReplica"])))
    spec["metric"] = metric
    forecast = dict(spec.get("forecast") or {})
    forecast.setdefault("step", format_duration(step))
    metric_step = parse_duration(forecast["step"])
    forecast.setdefault("history", default_history(metric_step))
    retrain = max(3600.0, RETRAIN_STEPS * metric_step)
    forecast.setdefault("retrainInterval", format_duration(retrain))
    forecast.setdefault("startup", format_duration(startup))
    spec["forecast"] = forecast
    try:
        parsed = ForecastScalerSpec.model_validate(spec)
    except ValueError as exc:
        raise ScalerError(f"invalid ForecastScaler spec: {exc}") from exc
    fstep = parsed.forecast.step_seconds
    ratio = fstep / step
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise ScalerError(
            f"forecast.step {parsed.forecast.step} is not a multiple of the trace's step "
            f"{format_duration(step)}"
        )
    if not math.isclose(parsed.forecast.startup_seconds, startup):
        warnings.append(
            f"forecast.startup {format_duration(parsed.forecast.startup_seconds)} is not the "
            f"simulated start-up {format_duration(startup)}: the decisions are replayed as "
            "the manifest says, the replicas start as the world says"
        )
    if parsed.mode == "DryRun":
        warnings.append("mode DryRun is replayed as Active (the simulator always applies)")
    return parsed, warnings
