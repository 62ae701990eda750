"""Reading the load from Prometheus (through prometheus-api-client).

Blocking I/O: the operator calls these from a thread, never on the event loop. Every failure is
turned into a MetricError whose `reason` becomes the condition reason users see, so "Prometheus
is down", "your query is wrong" and "your query returns several series" read differently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

# Prometheus refuses range queries of more than 11,000 points; stay clear of it.
MAX_POINTS_PER_QUERY = 10_000


class MetricError(Exception):
    """The metric could not be read; `reason` is a CamelCase condition reason."""

    reason = "MetricUnavailable"


class PrometheusUnavailable(MetricError):
    reason = "PrometheusUnavailable"


class QueryFailed(MetricError):
    reason = "QueryFailed"


class MultipleSeries(MetricError):
    reason = "QueryReturnedMultipleSeries"


class NoData(MetricError):
    reason = "NoData"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to query."""

    url: str
    bearer_token: str | None = None
    verify_tls: bool = True
    timeout_seconds: float = 10.0


class PrometheusSource:
    """History and current value of one-series PromQL queries."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        headers = (
            {"Authorization": f"Bearer {endpoint.bearer_token}"} if endpoint.bearer_token else None
        )
        self._conn = PrometheusConnect(
            url=endpoint.url.rstrip("/"),
            headers=headers,
            disable_ssl=not endpoint.verify_tls,
            # One quick retry: the operator's own sync loop is the real retry, with backoff
            # expressed as the Fallback condition rather than a blocked worker.
            retry=Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            timeout=math.ceil(endpoint.timeout_seconds),
        )

    def _call(
        self, what: str, fn: object, *args: object, **kwargs: object
    ) -> list[dict[str, object]]:
        try:
            result = fn(*args, **kwargs)  # type: ignore[operator]
        except requests.RequestException as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.endpoint.url} is unreachable: {type(exc).__name__}"
            ) from exc
        except PrometheusApiClientException as exc:
            raise QueryFailed(f"{what} failed: {_prometheus_error(str(exc))}") from exc
        except (ValueError, KeyError) as exc:  # not JSON, or not Prometheus' API shape
            raise PrometheusUnavailable(
                f"{self.endpoint.url} did not answer like a Prometheus API: {exc}"
            ) from exc
        if not isinstance(result, list):
            raise QueryFailed(f"{what} returned {type(result).__name__}, not a vector or matrix")
        return result

    @staticmethod
    def _single(query: str, result: list[dict[str, object]]) -> dict[str, object] | None:
        if len(result) > 1:
            labels = [json.dumps(s.get("metric", {}), sort_keys=True) for s in result[:3]]
            raise MultipleSeries(
                f"query {query!r} returned {len(result)} series (for example {', '.join(labels)});"
                " it must return one: aggregate it, e.g. sum(...)"
            )
        return result[0] if result else None

    def history(self, query: str, start: datetime, end: datetime, step_seconds: float) -> pd.Series:
        """The query's values from start to end on a `step_seconds` grid, NaN where absent."""
        step = timedelta(seconds=step_seconds)
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        times: list[float] = []
        values: list[float] = []
        cursor = start
        while cursor <= end:
            stop = min(cursor + chunk, end)
            result = self._call(
                "range query",
                self._conn.custom_query_range,
                query,
                start_time=cursor,
                end_time=stop,
                step=f"{step_seconds:g}s",
            )
            series = self._single(query, result)
            if series is not None:
                for ts, raw in series.get("values", []):  # type: ignore[attr-defined]
                    times.append(float(ts))
                    values.append(_to_float(raw))
            cursor = stop + step
        index = pd.to_datetime(np.array(times, dtype=np.float64), unit="s", utc=True)
        out = pd.Series(values, index=index, dtype="float64")
        return out[~out.index.duplicated(keep="last")].sort_index()

    def current(self, query: str, at: datetime | None = None) -> float:
        """The query's value now (Prometheus' staleness rules apply: a series whose last sample
        is older than the lookback delta is absent). Raises NoData when absent or NaN."""
        params = {"time": f"{(at or datetime.now(UTC)).timestamp():.3f}"}
        result = self._call("instant query", self._conn.custom_query, query, params=params)
        series = self._single(query, result)
        if series is None:
            raise NoData(f"query {query!r} returned no data (no series, or only stale samples)")
        sample: Any = series.get("value", (None, "NaN"))
        raw = sample[1]
        value = _to_float(raw)
        if not math.isfinite(value):
            raise NoData(f"query {query!r} returned {raw}")
        return value


def _to_float(raw: object) -> float:
    try:
        return float(str(raw))
    except ValueError:
        return float("nan")


def _prometheus_error(text: str) -> str:
    """The `error` field of a Prometheus error body, when there is one."""
    start = text.find("{")
    if start >= 0:
        body = text[start:].rstrip(")'\"")
        try:
            decoded = json.loads(body.encode().decode("unicode_escape"))
            return str(decoded.get("error", text))
        except (ValueError, AttributeError):
            pass
    return text
