"""What a user reads in Ready=False InvalidSpec for a spec the operator refuses: the words of
the check that failed, with the field, and no library prefix or regular expression."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.status import validation_message

BASE: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    "minReplicas": 1,
    "maxReplicas": 5,
    "metric": {"query": "q", "targetPerReplica": 10},
}

MESSAGES: dict[str, tuple[dict[str, Any], str]] = {
    "min-above-max": ({"minReplicas": 6}, "minReplicas (6) is greater than maxReplicas (5)"),
    "capacity-below-target": (
        {"metric": {"query": "q", "targetPerReplica": 10, "capacityPerReplica": 5}},
        "metric.capacityPerReplica (5) is below metric.targetPerReplica (10): a replica cannot "
        "be meant to serve more than it can",
    ),
    "duration-in-words": (
        {"interval": "5 minutes"},
        "spec.interval: invalid duration '5 minutes': use a number and a unit "
        "(ms, s, m, h, d, w), e.g. 30s, 5m or 1h30m",
    ),
    "zero-interval": ({"interval": "0s"}, "interval must be at least 1s"),
    "horizon-shorter-than-startup": (
        {"forecast": {"horizon": "1m", "startup": "3m"}},
        "forecast.horizon (1m) is shorter than forecast.startup plus interval (3m30s): replicas "
        "asked for on the forecast would be late; raise the horizon, or leave it unset to "
        "derive it",
    ),
    "negative-target": (
        {"metric": {"query": "q", "targetPerReplica": -1}},
        "spec.metric.targetPerReplica: Input should be greater than 0",
    ),
    "prometheus-address-of-another-scheme": (
        {"metric": {"query": "q", "targetPerReplica": 10, "prometheus": {"address": "ftp://x"}}},
        "spec.metric.prometheus.address: 'ftp://x' is not an http:// or https:// URL with a "
        "host, for example http://prometheus-operated.monitoring:9090",
    ),
    "prometheus-address-without-scheme": (
        {"metric": {"query": "q", "targetPerReplica": 10, "prometheus": {"address": "prom:9090"}}},
        "spec.metric.prometheus.address: 'prom:9090' is not an http:// or https:// URL with "
        "a host, for example http://prometheus-operated.monitoring:9090",
    ),
    "quantile-above-0.999": (
        {"forecast": {"quantile": 1.5}},
        "spec.forecast.quantile: Input should be less than or equal to 0.999",
    ),
}


@pytest.mark.parametrize(("change", "expected"), MESSAGES.values(), ids=MESSAGES.keys())
def test_the_message_a_refused_spec_shows(change: dict[str, Any], expected: str) -> None:
    body = copy.deepcopy(BASE)
    body.update(change)
    with pytest.raises(ValidationError) as caught:
        ForecastScalerSpec.model_validate(body)
    message = validation_message(caught.value)
    assert message == expected
    assert "Value error" not in message and "pattern" not in message
