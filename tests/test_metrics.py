"""The operator's own metrics: names, labels, values, and forgetting a deleted object."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from forecastscaler.core.decision import Decision, Reason
from forecastscaler.core.trust import Accuracy
from forecastscaler.operator.metrics import Metrics


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(m.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def decision() -> Decision:
    return Decision(
        desired_replicas=9,
        reason=Reason.FORECAST,
        message="",
        current_replicas=7,
        forecast_at_horizon=(870.0, 800.0, 700.0, 870.0),
    )


def observe(m: Metrics, name: str = "web") -> None:
    m.observe_sync(
        "shop",
        name,
        load=650.0,
        current=7,
        decision=decision(),
        quantile=0.9,
        horizon_seconds=300.0,
        accuracy=Accuracy(30, 12.0, 20.0, 0.9, 0.8),
        trusted=True,
        anomaly_score=0.1,
    )


def test_a_sync_is_exported_under_prometheus_names() -> None:
    m = Metrics()
    observe(m)
    observe(m)
    got = samples(m)
    obj = (("name", "web"), ("namespace", "shop"))
    assert got[("forecastscaler_load", obj)] == 650.0
    assert got[("forecastscaler_current_replicas", obj)] == 7
    assert got[("forecastscaler_desired_replicas", obj)] == 9
    assert got[("forecastscaler_decisions_total", (*obj, ("reason", "Forecast")))] == 2
    band = dict(
        (dict(labels)["quantile"], value)
        for (metric, labels), value in got.items()
        if metric == "forecastscaler_forecast_load"
    )
    assert band == {"0.1": 700.0, "0.5": 800.0, "0.9": 870.0}
    provisioned = [
        labels
        for (metric, labels), _ in got.items()
        if metric == "forecastscaler_forecast_load" and ("provisioned", "true") in labels
    ]
    assert provisioned == [
        tuple(sorted({**dict(obj), "quantile": "0.9", "provisioned": "true"}.items()))
    ]
    assert got[("forecastscaler_forecast_error", obj)] == 12.0
    assert got[("forecastscaler_naive_forecast_error", obj)] == 20.0
    assert got[("forecastscaler_forecast_quantile_coverage_ratio", obj)] == 0.9
    assert got[("forecastscaler_forecast_interval_coverage_ratio", obj)] == 0.8
    assert got[("forecastscaler_forecast_trusted", obj)] == 1.0


def test_counters_and_histograms_carry_the_object() -> None:
    m = Metrics()
    m.query_errors.labels("shop", "web", "PrometheusUnavailable").inc()
    m.scale_writes.labels("shop", "web", "success").inc()
    m.refit.labels("shop", "web").observe(0.7)
    m.sync.labels("shop", "web").observe(0.02)
    got = samples(m)
    obj = (("name", "web"), ("namespace", "shop"))
    assert (
        got[
            (
                "forecastscaler_prometheus_query_errors_total",
                (*obj, ("reason", "PrometheusUnavailable")),
            )
        ]
        == 1
    )
    assert got[("forecastscaler_scale_writes_total", (*obj, ("result", "success")))] == 1
    assert got[("forecastscaler_refit_duration_seconds_count", obj)] == 1
    assert got[("forecastscaler_refit_duration_seconds_sum", obj)] == 0.7
    assert got[("forecastscaler_reconcile_duration_seconds_count", obj)] == 1


def test_forget_drops_only_that_object() -> None:
    m = Metrics()
    observe(m, "web")
    observe(m, "api")
    m.refit.labels("shop", "web").observe(1.0)
    m.forget("shop", "web")
    names = {dict(labels).get("name") for (_, labels) in samples(m)}
    assert "web" not in names
    assert "api" in names
