"""The operator's own metrics, in Prometheus naming, one label set per ForecastScaler.

What a dashboard needs to show next to the workload: the load and the forecast band at the
horizon, desired and current replicas, why each decision was made, how accurate the forecast
has been (against the last-value forecast) and how often its interval held, and the costs and
failures of doing it (refit and sync durations, Prometheus errors, scale writes).
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from forecastscaler.core.decision import Decision
from forecastscaler.core.trust import Accuracy

LABELS = ("namespace", "name")
_DURATIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric of the operator, in its own registry (tests make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.load = Gauge(
            "forecastscaler_load",
            "Current value of the ForecastScaler's metric.",
            LABELS,
            registry=r,
        )
        self.forecast = Gauge(
            "forecastscaler_forecast_load",
            "Forecast of the load at the horizon, by quantile (0.1 and 0.9 bound the 80% "
            "interval, 0.5 is the point forecast; the provisioned quantile is also labelled "
            'provisioned="true").',
            (*LABELS, "quantile", "provisioned"),
            registry=r,
        )
        self.horizon = Gauge(
            "forecastscaler_forecast_horizon_seconds",
            "How far ahead the forecast is.",
            LABELS,
            registry=r,
        )
        self.desired = Gauge(
            "forecastscaler_desired_replicas",
            "Replicas the last decision asked for.",
            LABELS,
            registry=r,
        )
        self.current = Gauge(
            "forecastscaler_current_replicas", "Replicas the target has.", LABELS, registry=r
        )
        self.decisions = Counter(
            "forecastscaler_decisions",
            "Decisions by the signal that won (Forecast, Reactive, Stabilized, ...).",
            (*LABELS, "reason"),
            registry=r,
        )
        self.forecast_error = Gauge(
            "forecastscaler_forecast_error",
            "Rolling mean absolute error of the point forecast at the horizon.",
            LABELS,
            registry=r,
        )
        self.naive_error = Gauge(
            "forecastscaler_naive_forecast_error",
            "Rolling mean absolute error of the last-value forecast at the same times.",
            LABELS,
            registry=r,
        )
        self.coverage = Gauge(
            "forecastscaler_forecast_quantile_coverage_ratio",
            "Share of loads at or below the provisioned quantile forecast (ideally the quantile).",
            LABELS,
            registry=r,
        )
        self.interval_coverage = Gauge(
            "forecastscaler_forecast_interval_coverage_ratio",
            "Share of loads inside the 80% prediction interval (ideally 0.8).",
            LABELS,
            registry=r,
        )
        self.trusted = Gauge(
            "forecastscaler_forecast_trusted",
            "1 while the forecast is trusted (accuracy gate), else 0.",
            LABELS,
            registry=r,
        )
        self.anomaly = Gauge(
            "forecastscaler_anomaly_score",
            "Anomaly score of the current load (0 to 1).",
            LABELS,
            registry=r,
        )
        self.refit = Histogram(
            "forecastscaler_refit_duration_seconds",
            "Time to refit the model.",
            LABELS,
            buckets=_DURATIONS,
            registry=r,
        )
        self.sync = Histogram(
            "forecastscaler_reconcile_duration_seconds",
            "Time of one sync (read, forecast, decide, apply, report).",
            LABELS,
            buckets=_DURATIONS,
            registry=r,
        )
        self.query_errors = Counter(
            "forecastscaler_prometheus_query_errors",
            "Failed reads of the metric, by reason.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.scale_writes = Counter(
            "forecastscaler_scale_writes",
            "Writes of the target's scale, by result (success, error).",
            (*LABELS, "result"),
            registry=r,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Expose /metrics on the port (a daemon thread of prometheus_client)."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        self._server: WSGIServer | None = server

    def close(self) -> None:
        """Stop serving /metrics (the operator is shutting down)."""
        server: WSGIServer | None = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None

    def observe_sync(
        self,
        namespace: str,
        name: str,
        *,
        load: float | None,
        current: int | None,
        decision: Decision | None,
        quantile: float,
        horizon_seconds: float,
        accuracy: Accuracy | None,
        trusted: bool,
        anomaly_score: float | None,
    ) -> None:
        """Record what one sync found and decided."""
        key = (namespace, name)
        if load is not None:
            self.load.labels(*key).set(load)
        if current is not None:
            self.current.labels(*key).set(current)
        self.trusted.labels(*key).set(1.0 if trusted else 0.0)
        self.horizon.labels(*key).set(horizon_seconds)
        if anomaly_score is not None:
            self.anomaly.labels(*key).set(anomaly_score)
        if decision is not None:
            self._observe_decision(key, decision, quantile)
        if accuracy is not None and accuracy.samples:
            self._observe_accuracy(key, accuracy)

    def _observe_decision(self, key: tuple[str, str], decision: Decision, quantile: float) -> None:
        self.desired.labels(*key).set(decision.desired_replicas)
        self.decisions.labels(*key, decision.reason.value).inc()
        at = decision.forecast_at_horizon
        if at is None:
            return
        value, point, lower, upper = at
        q = f"{quantile:g}"
        for level, band in (("0.1", lower), ("0.5", point), ("0.9", upper)):
            if level != q:
                self.forecast.labels(*key, level, "false").set(band)
        self.forecast.labels(*key, q, "true").set(value)

    def _observe_accuracy(self, key: tuple[str, str], accuracy: Accuracy) -> None:
        pairs: tuple[tuple[Gauge, float | None], ...] = (
            (self.forecast_error, accuracy.forecast_mae),
            (self.naive_error, accuracy.naive_mae),
            (self.coverage, accuracy.coverage),
            (self.interval_coverage, accuracy.interval_coverage),
        )
        for gauge, v in pairs:
            if v is not None:
                gauge.labels(*key).set(v)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted ForecastScaler."""
        for metric in (
            self.load,
            self.forecast,
            self.horizon,
            self.desired,
            self.current,
            self.decisions,
            self.forecast_error,
            self.naive_error,
            self.coverage,
            self.interval_coverage,
            self.trusted,
            self.anomaly,
            self.refit,
            self.sync,
            self.query_errors,
            self.scale_writes,
        ):
            stale = [
                labels
                for labels in list(metric._metrics)  # prometheus_client keeps children here
                if labels[:2] == (namespace, name)
            ]
            for labels in stale:
                metric.remove(*labels)
