"""The ForecastScaler API (forecastscaler.io/v1alpha1), as pydantic models.

These models are the single source of truth: the CRD in crds/ is generated from them
(`forecastscaler crd`), the operator parses every object through them, and the simulator reads
the same manifest a user applies. Field descriptions become `kubectl explain` text, so they are
written for the person reading it. The status models live in api_status.py.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from forecastscaler.core.api_model import ApiModel
from forecastscaler.core.api_status import ForecastScalerStatus

GROUP = "forecastscaler.io"
VERSION = "v1alpha1"
KIND = "ForecastScaler"
PLURAL = "forecastscalers"
SINGULAR = "forecastscaler"
SHORT_NAMES = ("fsc",)

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        json_schema_extra={"example": "5m"},
    ),
]


@functools.lru_cache(maxsize=1024)
def parse_duration(value: str) -> float:
    """Seconds in a Prometheus-style duration such as `90s`, `5m`, `1h30m` or `7d` (each
    distinct string is parsed once: specs' durations are read on every sync)."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d, w)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """The shortest readable duration for a number of seconds (`300` → `5m`, `270` → `4m30s`)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds > 60 and seconds == int(seconds):
        return format_duration(seconds - seconds % 60) + format_duration(seconds % 60)
    return f"{seconds:g}s"


# --------------------------------------------------------------------------------------- spec


class ScaleTargetRef(ApiModel):
    """The workload to scale: any resource that has a scale subresource (Deployment,
    StatefulSet, ReplicaSet, or a custom resource that implements /scale)."""

    api_version: str = Field(
        default="apps/v1", description="API version of the target, for example apps/v1."
    )
    kind: str = Field(min_length=1, description="Kind of the target, for example Deployment.")
    name: str = Field(
        min_length=1, description="Name of the target, in the ForecastScaler's namespace."
    )


class SecretKeySelector(ApiModel):
    """A key of a Secret in the ForecastScaler's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(default="token", min_length=1, description="Key in the Secret's data.")


class PrometheusSpec(ApiModel):
    """Where to read the metric, when not from the operator's default Prometheus."""

    address: str | None = Field(
        default=None,
        description=(
            "Base URL of the Prometheus HTTP API, for example "
            "http://prometheus-operated.monitoring:9090. Defaults to the operator's "
            "--prometheus-url setting."
        ),
    )
    bearer_token_secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Secret key holding a bearer token sent as 'Authorization: Bearer'.",
    )
    insecure_skip_tls_verify: bool = Field(
        default=False,
        alias="insecureSkipTLSVerify",
        description="Skip TLS certificate verification (for testing only).",
    )

    @field_validator("address")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """The Prometheus HTTP API speaks http or https; anything else fails at every query,
        so it is refused at once, with the fix."""
        if value is None or (
            urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc
        ):
            return value
        raise ValueError(
            f"{value!r} is not an http:// or https:// URL with a "
            "host, for example http://prometheus-operated.monitoring:9090"
        )


class MetricSpec(ApiModel):
    """The load signal: a PromQL query, and how much of it one replica serves."""

    query: str = Field(
        min_length=1,
        description=(
            "PromQL expression returning exactly one series: the total load on the workload, "
            'for example sum(rate(http_requests_total{app="web"}[1m])). It is evaluated as a '
            "range query for history and as an instant query for the current load."
        ),
    )
    target_per_replica: float = Field(
        gt=0,
        description=(
            "Load one replica is meant to serve, in the query's unit (like an HPA "
            "AverageValue target). Desired replicas = ceil(load / targetPerReplica)."
        ),
    )
    capacity_per_replica: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Load one replica serves before it is short (its latency objective is breached), "
            "in the query's unit; at least targetPerReplica. Set, a trusted forecast is "
            "provisioned at capacity: the forecast quantile is the only safety margin, and "
            "the floor is what the current load needs at capacity. Whenever the forecast is "
            "not acted on (none yet, untrusted, an anomaly with ReactiveOnly, fallback) the "
            "operator is the HPA at targetPerReplica. Unset: the forecast is provisioned at "
            "targetPerReplica too, which pays the target's margin on top of the quantile's."
        ),
    )
    prometheus: PrometheusSpec | None = Field(
        default=None, description="Prometheus to query; defaults to the operator's setting."
    )


# Fewest steps of history the simulator and backtest give the models by default: 7d holds
# 10,080 one-minute steps but only 168 hourly ones, too few for the learning members.
MIN_HISTORY_STEPS = 720


def default_history(step_seconds: float) -> str:
    """The default history window for a metric at this step: 7d, or 720 steps if longer."""
    return format_duration(max(7 * 86400.0, MIN_HISTORY_STEPS * step_seconds))


ModelName = Literal[
    "ensemble",
    "seasonalBlend",
    "gradientBoosting",
    "neuralNet",
    "prophet",
    "seasonalNaive",
    "lastValue",
]


class TrustSpec(ApiModel):
    """Accuracy-gated trust: the operator scores its own forecasts against what happened."""

    enabled: bool = Field(
        default=True,
        description=(
            "While the forecast's rolling error at the horizon is worse than the last-value "
            'forecast\'s ("nothing changes"), act on the current load only '
            "(ForecastTrusted=False); trust returns when the forecast does better again."
        ),
    )
    window: Duration = Field(
        default="2h", description="How far back forecasts are scored (a rolling window)."
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        description="Scored forecasts needed before trust is judged; until then it is given.",
    )

    @property
    def window_seconds(self) -> float:
        """`window` in seconds."""
        return parse_duration(self.window)


DEFAULT_INTERVAL = "30s"
DEFAULT_STARTUP = "3m"


def derived_startup(horizon: str | None, interval: str, step: str) -> float:
    """The start-up a spec without `forecast.startup` stands for: horizon minus one interval
    and one step (what the horizon was documented to cover), or the default without horizon."""
    if horizon is None:
        return parse_duration(DEFAULT_STARTUP)
    rest = parse_duration(horizon) - parse_duration(interval) - parse_duration(step)
    return max(0.0, rest)


class ForecastSpec(ApiModel):
    """How the load is forecast."""

    startup: Duration | None = Field(
        default=None,
        description=(
            "Time from asking for a replica to its serving load (scheduling, image pull, "
            "start-up and readiness). Replicas asked for now serve from now + startup until "
            "the next sync's are ready, so each decision provisions the peak of the forecast "
            "quantile over [now + startup, now + startup + interval]. Unset: horizon minus "
            "one interval and one step (at least 0), or 3m when horizon is unset too."
        ),
    )
    horizon: Duration | None = Field(
        default=None,
        description=(
            "How far ahead to forecast: at least startup + interval. Unset: startup + "
            "interval + step (the window the decision serves, with the step that ends "
            "after it), 4m30s with the defaults. While the forecast is trusted, a "
            "scale-down keeps what the forecast needs within the horizon, since a replica "
            "removed now could not be back sooner."
        ),
    )
    history: Duration = Field(
        default="7d",
        description=(
            "How much metric history to learn from (weekly patterns need 14d). The learning "
            "models need a few hundred steps: with a coarse step (15m, 1h) set at least "
            "720 steps (30d at 1h)."
        ),
    )
    step: Duration = Field(
        default="1m",
        description="Resolution of the history and of the forecast (the range query step).",
    )
    quantile: float = Field(
        default=0.9,
        ge=0.5,
        le=0.999,
        description=(
            "Forecast quantile to provision for: the safety margin, stated as a shortage "
            "budget. While the forecast is trusted, the share of steps in which ready "
            "capacity is below the load should be about 1 - quantile: 0.995 is a budget of "
            "0.5 % of steps short (at capacityPerReplica; at targetPerReplica the target "
            "adds its own margin). `forecastscaler simulate --frontier` shows the trade-off "
            "on your own trace."
        ),
    )
    look_ahead_scale_down: bool = Field(
        default=True,
        description=(
            "While the forecast is trusted, the scale-down stabilization window looks ahead "
            "instead of back: replicas are removed as soon as the provisioned quantile of the "
            "forecast over the next behavior.scaleDown.stabilizationWindowSeconds (as far as "
            "the forecast reaches) needs fewer, rather than after the window of past "
            "recommendations has passed. The HPA waits to see whether a drop lasts; the "
            "forecast says so. false: always the HPA's backward window (a scale-down still "
            "keeps what the trusted forecast needs within the horizon)."
        ),
    )
    retrain_interval: Duration = Field(
        default="1h",
        description=(
            "How often the model is refitted on the full history. Between refits it is "
            "updated with new observations without relearning."
        ),
    )
    models: list[ModelName] = Field(
        default=["ensemble"],
        min_length=1,
        description=(
            "Models the forecast combines, weighted at every refit by their rolling-origin "
            "backtest error on the recent history: seasonalBlend, gradientBoosting, neuralNet, "
            "prophet, seasonalNaive, lastValue; 'ensemble' (the default) stands for all of "
            "them. lastValue is always added as the fallback while history is too short for "
            "the others. Prediction intervals are calibrated on the combination's backtest."
        ),
    )
    trust: TrustSpec = Field(
        default_factory=TrustSpec,
        description="Accuracy-gated trust in the forecast.",
    )

    @property
    def step_seconds(self) -> float:
        """`step` in seconds."""
        return parse_duration(self.step)

    @property
    def startup_seconds(self) -> float:
        """`startup` in seconds (a spec parsed as a whole always has it: see `_derived`)."""
        if self.startup is not None:
            return parse_duration(self.startup)
        return derived_startup(self.horizon, DEFAULT_INTERVAL, self.step)

    @property
    def horizon_seconds(self) -> float:
        """`horizon` in seconds (a spec parsed as a whole always has it: see `_derived`)."""
        if self.horizon is not None:
            return parse_duration(self.horizon)
        return self.startup_seconds + parse_duration(DEFAULT_INTERVAL) + self.step_seconds

    @property
    def history_seconds(self) -> float:
        """`history` in seconds."""
        return parse_duration(self.history)

    @property
    def retrain_seconds(self) -> float:
        """`retrainInterval` in seconds."""
        return parse_duration(self.retrain_interval)


AnomalyAction = Literal["FreezeScaleDown", "ReactiveOnly", "Ignore"]


class AnomalySpec(ApiModel):
    """What to do when the load does something the forecast did not expect."""

    enabled: bool = Field(default=True, description="Score every observation for anomalies.")
    action: AnomalyAction = Field(
        default="FreezeScaleDown",
        description=(
            "While the anomaly score is at or above the threshold: FreezeScaleDown keeps "
            "scaling up but never down; ReactiveOnly ignores the forecast and follows the "
            "current load like an HPA; Ignore only reports it."
        ),
    )
    threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description=(
            "Anomaly score (0 to 1) from which the action applies. The score is log10(1/p) / 5 "
            "for the step's tail probability p: 0.9 is a surprise judged rarer than one in "
            "30,000 steps."
        ),
    )


class ScalingPolicy(ApiModel):
    """One rate limit, exactly as in HPA autoscaling/v2."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: an absolute number of replicas; Percent: a share of the current ones."
    )
    value: int = Field(gt=0, description="Amount of change the policy allows (pods or percent).")
    period_seconds: int = Field(
        gt=0, le=1800, description="Window over which the change is counted (1 to 1800 s)."
    )


class ScalingRules(ApiModel):
    """Rules for one direction, with the HPA's semantics and defaults."""

    stabilization_window_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description=(
            "Past recommendations considered before scaling: scale-down takes the highest of "
            "the window, scale-up the lowest. Default 0 for scaleUp, 300 for scaleDown."
        ),
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None,
        description=(
            "Which policy applies when several do: Max (the default) allows the largest "
            "change, Min the smallest, Disabled turns this direction off."
        ),
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Rate limits. Default scaleUp: 100% or 4 pods per 15s, whichever is more; "
            "default scaleDown: 100% per 15s."
        ),
    )


class Behavior(ApiModel):
    """Scaling behavior, the same shape and semantics as HPA autoscaling/v2 `behavior`."""

    scale_up: ScalingRules | None = Field(default=None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(default=None, description="Rules for scaling down.")
    tolerance: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "No change is made while load / (targetPerReplica x current replicas) is within "
            "1 ± tolerance (the HPA's --horizontal-pod-autoscaler-tolerance)."
        ),
    )


class FallbackSpec(ApiModel):
    """What to do while the metric cannot be read (like KEDA's fallback)."""

    failure_threshold: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed syncs before the Fallback condition is set.",
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Replicas to hold at least while in fallback. Unset: hold the current count. "
            "Fallback never scales down: the operator does not remove capacity on data it "
            "does not have."
        ),
    )


class ForecastScalerSpec(ApiModel):
    """Desired state of a ForecastScaler: which workload to scale, on which load, and how."""

    scale_target_ref: ScaleTargetRef = Field(description="The workload to scale.")
    min_replicas: int = Field(default=1, ge=1, description="Lower bound on replicas.")
    max_replicas: int = Field(ge=1, description="Upper bound on replicas.")
    metric: MetricSpec = Field(description="The load, read from Prometheus.")
    forecast: ForecastSpec = Field(
        default_factory=ForecastSpec, description="How the load is forecast."
    )
    anomaly: AnomalySpec = Field(
        default_factory=AnomalySpec, description="Anomaly detection and what it does."
    )
    behavior: Behavior = Field(
        default_factory=Behavior,
        description="Scaling behavior, as in HPA autoscaling/v2, plus tolerance.",
    )
    mode: Literal["Active", "DryRun"] = Field(
        default="Active",
        description="Active scales the target; DryRun does everything but write the scale.",
    )
    interval: Duration = Field(
        default=DEFAULT_INTERVAL, description="How often to decide (sync period)."
    )
    fallback: FallbackSpec = Field(
        default_factory=FallbackSpec, description="Behaviour while the metric is unavailable."
    )

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: object) -> object:
        """Fill in forecast.startup and forecast.horizon from each other, the interval and the
        step, so every parsed spec has both (the CRD cannot default them: they depend on the
        interval and the step). Values that are not durations are left to the field checks."""
        if not isinstance(data, dict):
            return data
        forecast = data.get("forecast", {})
        if isinstance(forecast, ForecastSpec):
            forecast = forecast.model_dump(exclude_unset=True)
        if not isinstance(forecast, dict):
            return data
        interval = data.get("interval", DEFAULT_INTERVAL)
        step = forecast.get("step", "1m")
        startup, horizon = forecast.get("startup"), forecast.get("horizon")
        durations = (interval, step, *(d for d in (startup, horizon) if d is not None))
        if not all(isinstance(d, str) and re.fullmatch(DURATION_PATTERN, d) for d in durations):
            return data
        if startup is None:
            startup = format_duration(derived_startup(horizon, interval, step))
        if horizon is None:
            seconds = parse_duration(startup) + parse_duration(interval) + parse_duration(step)
            horizon = format_duration(seconds)
        return {**data, "forecast": {**forecast, "startup": startup, "horizon": horizon}}

    @model_validator(mode="after")
    def _check(self) -> ForecastScalerSpec:
        # Cross-field rules the CRD schema of Kubernetes 1.20 cannot express (no CEL there).
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is greater than maxReplicas "
                f"({self.max_replicas})"
            )
        step = self.forecast.step_seconds
        if step < 1 or step != int(step):
            raise ValueError("forecast.step must be a whole number of seconds, at least 1s")
        if self.forecast.history_seconds < 3 * step:
            raise ValueError("forecast.history must cover at least three steps")
        if self.interval_seconds < 1:
            raise ValueError("interval must be at least 1s")
        self._check_window()
        capacity, target = self.metric.capacity_per_replica, self.metric.target_per_replica
        if capacity is not None and capacity < target:
            raise ValueError(
                f"metric.capacityPerReplica ({capacity:g}) is below metric.targetPerReplica "
                f"({target:g}): a replica cannot be meant to serve more than it can"
            )
        if self.forecast.trust.window_seconds <= 0:
            raise ValueError("forecast.trust.window must be positive")
        return self

    @property
    def interval_seconds(self) -> float:
        """`interval` in seconds."""
        return parse_duration(self.interval)

    def _check_window(self) -> None:
        """The horizon reaches past the window a decision serves: [startup, startup + interval]."""
        horizon = self.forecast.horizon_seconds
        window_end = self.forecast.startup_seconds + self.interval_seconds
        if horizon <= 0:
            raise ValueError("forecast.horizon must be positive")
        if horizon < window_end:
            raise ValueError(
                f"forecast.horizon ({self.forecast.horizon}) is shorter than forecast.startup "
                f"plus interval ({format_duration(window_end)}): replicas asked for on the "
                "forecast would be late; raise the horizon, or leave it unset to derive it"
            )


class ForecastScaler(ApiModel):
    """ForecastScaler scales a workload ahead of the load its metric is forecast to reach."""

    api_version: Literal["forecastscaler.io/v1alpha1"] = Field(
        default="forecastscaler.io/v1alpha1", description="forecastscaler.io/v1alpha1"
    )
    kind: Literal["ForecastScaler"] = Field(default="ForecastScaler", description=KIND)
    metadata: dict[str, object] = Field(default_factory=dict, description="Standard metadata.")
    spec: ForecastScalerSpec = Field(description="Desired behaviour.")
    status: ForecastScalerStatus | None = Field(default=None, description="Observed state.")
