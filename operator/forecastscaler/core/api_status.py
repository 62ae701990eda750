"""The ForecastScaler status (forecastscaler.io/v1alpha1), as pydantic models: what the
operator writes and `kubectl get -o yaml` shows. Re-exported by forecastscaler.core.api, whose
ForecastScaler carries it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forecastscaler.core.api_model import ApiModel


class Condition(ApiModel):
    """A Kubernetes condition (type, status, reason, message)."""

    type: str = Field(description="Ready, ForecastReady, AbleToScale, ScalingLimited, ...")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word machines can match on.")
    message: str = Field(default="", description="What happened, for a person.")
    last_transition_time: str | None = Field(
        default=None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed for."
    )


class ForecastStatus(ApiModel):
    """The forecast the last decision acted on."""

    value: float = Field(description="The provisioned quantile of the load at the horizon.")
    point: float = Field(description="The point (median-like) forecast at the horizon.")
    lower: float = Field(description="0.1 quantile at the horizon (the 80% interval's low end).")
    upper: float = Field(description="0.9 quantile at the horizon (the 80% interval's high end).")
    quantile: float = Field(description="The quantile `value` is.")
    horizon_seconds: float = Field(description="How far ahead, in seconds.")
    model: str = Field(description="The model that produced it.")
    fitted_at: str = Field(description="When the model was last fitted (RFC 3339).")
    history_points: int = Field(description="Observations the model was fitted on.")


class DecisionStatus(ApiModel):
    """The last replica decision and why it was made."""

    time: str = Field(description="When it was made (RFC 3339).")
    desired_replicas: int = Field(description="Replicas it asked for.")
    reason: str = Field(
        description=(
            "Which signal won: Forecast, Reactive, MinReplicas, MaxReplicas, Stabilized, "
            "RateLimited, Tolerance, Fallback, Anomaly, NoData or ScalingDisabled."
        )
    )
    message: str = Field(description="The numbers behind the decision.")
    forecast_replicas: int | None = Field(
        default=None, description="Replicas the forecast alone asked for."
    )
    reactive_replicas: int | None = Field(
        default=None, description="Replicas the current load alone asked for."
    )


class AccuracyStatus(ApiModel):
    """How the operator's own past forecasts at the horizon fared, over the trust window."""

    samples: int = Field(description="Forecasts scored in the window.")
    forecast_error: float | None = Field(
        default=None, description="Mean absolute error of the point forecast at the horizon."
    )
    naive_error: float | None = Field(
        default=None,
        description="Mean absolute error of the last-value forecast at the same times.",
    )
    relative_error: float | None = Field(
        default=None,
        description="forecastError / naiveError: below 1 the forecast beats last value.",
    )
    coverage: float | None = Field(
        default=None,
        description="Share of loads at or below the provisioned quantile (ideally the quantile).",
    )
    interval_coverage: float | None = Field(
        default=None, description="Share of loads inside the 80% interval (ideally 0.8)."
    )
    window_seconds: float = Field(description="The rolling window, in seconds.")


class ForecastScalerStatus(ApiModel):
    """Observed state of a ForecastScaler, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation last acted on."
    )
    current_replicas: int | None = Field(default=None, description="Replicas the target has.")
    desired_replicas: int | None = Field(
        default=None, description="Replicas last decided (written in Active mode)."
    )
    current_load: float | None = Field(default=None, description="The metric's current value.")
    last_scale_time: str | None = Field(
        default=None, description="When the operator last changed the target's replicas."
    )
    forecast: ForecastStatus | None = Field(default=None, description="The forecast acted on.")
    last_decision: DecisionStatus | None = Field(default=None, description="The last decision.")
    accuracy: AccuracyStatus | None = Field(
        default=None, description="The forecast's measured accuracy at the horizon."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, ForecastReady, AbleToScale, and more."
    )
