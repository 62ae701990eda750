"""Operator-wide settings, from the command line or FORECASTSCALER_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FORECASTSCALER_{name.upper()}", default)


@dataclass(frozen=True)
class OperatorConfig:
    """Settings shared by every ForecastScaler the operator serves."""

    prometheus_url: str = "http://127.0.0.1:9090"
    """Default Prometheus for objects that name none (FORECASTSCALER_PROMETHEUS_URL)."""
    fit_workers: int = 2
    """Size of the model-fitting pool (FORECASTSCALER_FIT_WORKERS)."""
    prometheus_timeout: float = 10.0
    """Seconds a Prometheus query may take (FORECASTSCALER_PROMETHEUS_TIMEOUT)."""
    metrics_port: int = 0
    """Port of the operator's own /metrics endpoint; 0 disables it (FORECASTSCALER_METRICS_PORT)."""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        defaults = cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = _env(f.name, str(getattr(defaults, f.name)))
            values[f.name] = type(getattr(defaults, f.name))(raw)
        config = cls(**values)  # type: ignore[arg-type]
        if config.fit_workers < 1:
            raise ValueError("FORECASTSCALER_FIT_WORKERS must be at least 1")
        return config
