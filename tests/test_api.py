"""The ForecastScaler API: validation, defaults, durations, and the committed CRD."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from forecastscaler.core.api import (
    ForecastScaler,
    ForecastScalerSpec,
    format_duration,
    parse_duration,
)
from forecastscaler.operator.crd import crd, crd_yaml

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "forecastscaler.yaml"

MINIMAL: dict[str, Any] = {
    "scaleTargetRef": {"kind": "Deployment", "name": "web"},
    "maxReplicas": 10,
    "metric": {"query": "sum(rate(http_requests_total[1m]))", "targetPerReplica": 50},
}


def with_path(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with `value` set at a dotted path (intermediate objects created)."""
    spec = copy.deepcopy(MINIMAL)
    node = spec
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


# --------------------------------------------------------------------------------- validation


def test_minimal_spec_is_valid() -> None:
    spec = ForecastScalerSpec.model_validate(MINIMAL)
    assert spec.max_replicas == 10
    assert spec.metric.target_per_replica == 50


def test_min_above_max_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(
        ValidationError, match=r"minReplicas \(5\) is greater than maxReplicas \(3\)"
    ):
        ForecastScalerSpec.model_validate({**MINIMAL, "minReplicas": 5, "maxReplicas": 3})


def test_min_equal_to_max_is_allowed() -> None:
    spec = ForecastScalerSpec.model_validate({**MINIMAL, "minReplicas": 4, "maxReplicas": 4})
    assert (spec.min_replicas, spec.max_replicas) == (4, 4)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("forecast.horizon", "5 minutes", id="horizon-words"),
        pytest.param("forecast.horizon", "5", id="horizon-no-unit"),
        pytest.param("forecast.horizon", "", id="horizon-empty"),
        pytest.param("forecast.horizon", "-5m", id="horizon-negative"),
        pytest.param("forecast.horizon", "m5", id="horizon-unit-first"),
        pytest.param("forecast.horizon", "5M", id="horizon-upper-case"),
        pytest.param("forecast.history", "1y", id="history-years"),
        pytest.param("forecast.step", "1 m", id="step-space"),
        pytest.param("forecast.retrainInterval", "PT1H", id="retrain-iso8601"),
        pytest.param("interval", "30", id="interval-no-unit"),
        pytest.param("forecast.horizon", "0s", id="horizon-zero"),
        pytest.param("interval", "500ms", id="interval-below-1s"),
        pytest.param("forecast.history", "2m", id="history-under-three-steps"),
    ],
)
def test_bad_durations_are_rejected(path: str, value: str) -> None:
    with pytest.raises(ValidationError):
        ForecastScalerSpec.model_validate(with_path(path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("forecast.horizon", "1h30m", id="compound"),
        pytest.param("forecast.horizon", "90s", id="seconds"),
        pytest.param("forecast.history", "14d", id="days"),
        pytest.param("forecast.history", "2w", id="weeks"),
        pytest.param("interval", "1.5s", id="fractional"),
        pytest.param("forecast.history", "3m", id="history-exactly-three-steps"),
    ],
)
def test_good_durations_are_accepted(path: str, value: str) -> None:
    ForecastScalerSpec.model_validate(with_path(path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("replicas", 3, id="top-level"),
        pytest.param("forecast.horizn", "5m", id="typo-in-forecast"),
        pytest.param("behavior.scaleUp.policy", [], id="typo-in-scale-up"),
        pytest.param("metric.targetValue", 10, id="hpa-field-in-metric"),
        pytest.param("scaleTargetRef.namespace", "other", id="namespace-in-target"),
        pytest.param("fallback.replica", 3, id="typo-in-fallback"),
    ],
)
def test_unknown_fields_are_rejected(path: str, value: Any) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ForecastScalerSpec.model_validate(with_path(path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("maxReplicas", 0, id="max-zero"),
        pytest.param("minReplicas", 0, id="min-zero"),
        pytest.param("metric.targetPerReplica", 0, id="target-zero"),
        pytest.param("metric.query", "", id="empty-query"),
        pytest.param("forecast.quantile", 0.4, id="quantile-below-median"),
        pytest.param("forecast.quantile", 1.0, id="quantile-one"),
        pytest.param("forecast.models", [], id="no-models"),
        pytest.param("forecast.models", ["arima"], id="unknown-model"),
        pytest.param("anomaly.action", "Panic", id="unknown-anomaly-action"),
        pytest.param("anomaly.threshold", 1.5, id="threshold-above-one"),
        pytest.param("behavior.tolerance", -0.1, id="negative-tolerance"),
        pytest.param("behavior.scaleDown.selectPolicy", "Maximum", id="bad-select-policy"),
        pytest.param(
            "behavior.scaleUp.policies",
            [{"type": "Pods", "value": 4, "periodSeconds": 1801}],
            id="period-above-1800",
        ),
        pytest.param(
            "behavior.scaleUp.policies",
            [{"type": "Pods", "value": 0, "periodSeconds": 15}],
            id="policy-value-zero",
        ),
        pytest.param("behavior.scaleDown.stabilizationWindowSeconds", 3601, id="window-above-1h"),
        pytest.param("mode", "Off", id="unknown-mode"),
        pytest.param("fallback.failureThreshold", 0, id="failure-threshold-zero"),
    ],
)
def test_out_of_range_values_are_rejected(path: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ForecastScalerSpec.model_validate(with_path(path, value))


def test_defaults() -> None:
    spec = ForecastScalerSpec.model_validate(MINIMAL)
    assert spec.min_replicas == 1
    assert spec.scale_target_ref.api_version == "apps/v1"
    assert (spec.forecast.startup, spec.forecast.horizon) == ("3m", "4m30s")
    assert spec.metric.capacity_per_replica is None
    assert spec.forecast.history == "7d"
    assert spec.forecast.step == "1m"
    assert spec.forecast.quantile == 0.9
    assert spec.forecast.retrain_interval == "1h"
    assert spec.forecast.models == ["ensemble"]
    assert spec.interval == "30s"
    assert spec.interval_seconds == 30
    assert spec.behavior.tolerance == 0.1
    assert spec.behavior.scale_up is None
    assert spec.behavior.scale_down is None
    assert spec.mode == "Active"
    assert spec.anomaly.enabled is True
    assert spec.anomaly.action == "FreezeScaleDown"
    assert spec.anomaly.threshold == 0.9
    assert spec.fallback.failure_threshold == 3
    assert spec.fallback.replicas is None
    assert spec.metric.prometheus is None


def test_camel_case_aliases_round_trip() -> None:
    raw = with_path("metric.prometheus", {"insecureSkipTLSVerify": True})
    raw["behavior"] = {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        }
    }
    spec = ForecastScalerSpec.model_validate(raw)
    assert spec.metric.prometheus is not None
    assert spec.metric.prometheus.insecure_skip_tls_verify is True
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["metric"]["prometheus"]["insecureSkipTLSVerify"] is True
    assert dumped["behavior"]["scaleDown"]["policies"][0]["periodSeconds"] == 60
    assert ForecastScalerSpec.model_validate(dumped) == spec


def test_whole_object_parses() -> None:
    obj = ForecastScaler.model_validate(
        {
            "apiVersion": "forecastscaler.io/v1alpha1",
            "kind": "ForecastScaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": MINIMAL,
        }
    )
    assert obj.spec.max_replicas == 10
    with pytest.raises(ValidationError):
        ForecastScaler.model_validate(
            {"apiVersion": "v1", "kind": "ForecastScaler", "spec": MINIMAL}
        )


# ---------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1h30m", 5400, id="1h30m"),
        pytest.param("90s", 90, id="90s"),
        pytest.param("5m", 300, id="5m"),
        pytest.param("7d", 604_800, id="7d"),
        pytest.param("2w", 1_209_600, id="2w"),
        pytest.param("500ms", 0.5, id="500ms"),
        pytest.param("1.5h", 5400, id="1.5h"),
        pytest.param("1m30s", 90, id="1m30s"),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "five minutes", "-1s", "1y", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(300, "5m", id="5m"),
        pytest.param(90, "1m30s", id="90s"),
        pytest.param(270, "4m30s", id="4m30s"),
        pytest.param(5400, "90m", id="90m"),
        pytest.param(3600, "1h", id="1h"),
        pytest.param(86_400, "1d", id="1d"),
        pytest.param(604_800, "1w", id="1w"),
        pytest.param(0.5, "0.5s", id="half-second"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1h30m", "90s", "7d", "500ms", "5m", "14d", "1.5s", "45s"])
def test_duration_round_trip(text: str) -> None:
    seconds = parse_duration(text)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


# ---------------------------------------------------------------------------------------- CRD


def test_committed_crd_matches_the_models() -> None:
    assert crd_yaml() == CRD_FILE.read_text(), (
        "crds/forecastscaler.yaml is out of date with the pydantic models: "
        "run `forecastscaler crd > crds/forecastscaler.yaml`"
    )


def test_crd_yaml_parses_back_to_the_crd() -> None:
    assert yaml.safe_load(crd_yaml()) == crd()


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in a nested structure."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from nodes(value)


def root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def schemas(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (properties and items) with its path."""
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from schemas(prop, f"{path}.{name}")
    if "items" in node:
        yield from schemas(node["items"], f"{path}[]")


@pytest.mark.parametrize("keyword", ["$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"])
def test_crd_has_no_non_structural_keywords(keyword: str) -> None:
    found = [n for n in nodes(crd()) if keyword in n]
    assert not found, f"{keyword} in the CRD: {found[:1]}"


def test_crd_has_no_additional_properties_false() -> None:
    found = [n for n in nodes(crd()) if n.get("additionalProperties") is False]
    assert not found


def test_every_schema_node_has_a_type() -> None:
    untyped = [path for path, node in schemas(root_schema()) if "type" not in node]
    assert not untyped, f"structural schemas need a type everywhere: {untyped}"


def test_every_spec_property_has_a_description() -> None:
    spec = root_schema()["properties"]["spec"]
    # Properties, at any depth (including those of list items); a list's items themselves
    # are described by the list's own description.
    missing = [
        path
        for path, node in schemas(spec, ".spec")
        if not path.endswith("[]") and not node.get("description")
    ]
    assert not missing, f"kubectl explain would show nothing for: {missing}"


def test_crd_spec_schema_carries_defaults_and_limits() -> None:
    spec = root_schema()["properties"]["spec"]
    props = spec["properties"]
    assert set(spec["required"]) == {"scaleTargetRef", "maxReplicas", "metric"}
    assert props["minReplicas"]["default"] == 1
    assert props["minReplicas"]["minimum"] == 1
    assert props["mode"]["enum"] == ["Active", "DryRun"]
    assert "default" not in props["forecast"]["properties"]["horizon"]  # derived: see _derived
    assert "default" not in props["forecast"]["properties"]["startup"]
    assert props["forecast"]["properties"]["horizon"]["pattern"]
    for name in ("forecast", "anomaly", "behavior", "fallback"):
        assert props[name]["default"] == {}, name


def test_crd_names_columns_and_subresources() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["fsc"]
    assert spec["names"]["kind"] == "ForecastScaler"
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for name in ("Target", "Min", "Max", "Current", "Desired", "Forecast", "Mode", "Age"):
        assert name in columns, name
    assert columns[-1] == "Age"


@pytest.mark.parametrize(
    ("forecast", "interval", "expected"),
    [
        pytest.param({}, "30s", ("3m", "4m30s"), id="defaults"),
        pytest.param({"startup": "1m"}, "30s", ("1m", "2m30s"), id="horizon-from-startup"),
        pytest.param({"horizon": "15m"}, "30s", ("13m30s", "15m"), id="startup-from-horizon"),
        pytest.param({"horizon": "15s", "step": "5s"}, "5s", ("5s", "15s"), id="fast-demo-clock"),
        pytest.param({"horizon": "1m"}, "30s", ("0s", "1m"), id="startup-at-least-0"),
        pytest.param({"startup": "2m", "horizon": "10m"}, "30s", ("2m", "10m"), id="both"),
        pytest.param({"step": "1h"}, "5m", ("3m", "68m"), id="coarse-step"),
    ],
)
def test_startup_and_horizon_are_derived_from_each_other(
    forecast: dict[str, str], interval: str, expected: tuple[str, str]
) -> None:
    spec = ForecastScalerSpec.model_validate(
        {**MINIMAL, "forecast": forecast, "interval": interval}
    )
    assert (spec.forecast.startup, spec.forecast.horizon) == expected
    # Parsed again from its own dump, the spec is the same (the derivation is idempotent).
    again = ForecastScalerSpec.model_validate(spec.model_dump(by_alias=True))
    assert again == spec


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        pytest.param(
            {"forecast": {"startup": "5m", "horizon": "2m"}},
            "forecast.horizon (2m) is shorter than forecast.startup plus interval (5m30s)",
            id="horizon-shorter-than-the-window",
        ),
        pytest.param(
            {"metric": {"query": "q", "targetPerReplica": 8, "capacityPerReplica": 5}},
            "metric.capacityPerReplica (5) is below metric.targetPerReplica (8)",
            id="capacity-below-target",
        ),
        pytest.param(
            {"metric": {"query": "q", "targetPerReplica": 8, "capacityPerReplica": 0}},
            "capacityPerReplica",
            id="capacity-zero",
        ),
        pytest.param({"forecast": {"quantile": 0.9999}}, "quantile", id="quantile-above-0.999"),
    ],
)
def test_window_and_capacity_are_checked(overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        ForecastScalerSpec.model_validate({**MINIMAL, **overrides})
