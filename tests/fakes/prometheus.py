"""An in-process Prometheus: the real `PrometheusSource` (chunking, parsing, error mapping)
over a connection that answers like prometheus_api_client's `PrometheusConnect`."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import requests

from forecastscaler.core.api import parse_duration
from forecastscaler.operator.prometheus import Endpoint, PrometheusSource

Times = npt.NDArray[np.float64]


class Series(Protocol):
    """A query's samples: the value at each time (epoch seconds); NaN where there is none."""

    def at(self, times: Times) -> Times: ...


@dataclass(frozen=True)
class Constant:
    """The same value at every time."""

    value: float

    def at(self, times: Times) -> Times:
        return np.full(times.shape, self.value, dtype=np.float64)


class FakeConnection:
    """Answers like PrometheusConnect: the decoded `result` of a JSON body, one series per
    query in `loads`, none for others (and none where a series is NaN); `latency` slept in the
    calling thread. While `down` it raises what requests raises when nothing listens."""

    def __init__(self, loads: Mapping[str, Series], latency: float = 0.0) -> None:
        self.loads = loads
        self.latency = latency
        self.down = False
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _answer(self, kind: str, points: int, result: list[dict[str, Any]]) -> list[Any]:
        body = json.dumps({"status": "success", "data": {"resultType": kind, "result": result}})
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            self.counts[kind] += 1
            self.counts["points"] += points
        decoded: list[Any] = json.loads(body)["data"]["result"]
        return decoded

    def _check_up(self) -> None:
        if self.down:
            with self._lock:
                self.counts["refused"] += 1
            raise requests.ConnectionError("connection refused")

    def custom_query_range(
        self, query: str, start_time: datetime, end_time: datetime, step: str
    ) -> list[Any]:
        self._check_up()
        load = self.loads.get(query)
        seconds = parse_duration(step)
        start, end = start_time.timestamp(), end_time.timestamp()
        if load is None or end < start:
            return self._answer("matrix", 0, [])
        count = math.floor((end - start) / seconds + 1e-9) + 1
        times = start + seconds * np.arange(count, dtype=np.float64)
        values = [
            [t, str(v)]
            for t, v in zip(times.tolist(), load.at(times).tolist(), strict=True)
            if math.isfinite(v)
        ]
        if not values:
            return self._answer("matrix", 0, [])
        return self._answer("matrix", len(values), [{"metric": {}, "values": values}])

    def custom_query(self, query: str, params: Mapping[str, str] | None = None) -> list[Any]:
        self._check_up()
        load = self.loads.get(query)
        at = float((params or {}).get("time", time.time()))
        value = float(load.at(np.array([at], dtype=np.float64))[0]) if load is not None else None
        if value is None or not math.isfinite(value):
            return self._answer("vector", 0, [])
        return self._answer("vector", 1, [{"metric": {}, "value": [at, str(value)]}])


class FakePrometheus(PrometheusSource):
    """The real PrometheusSource over a fake connection."""

    def __init__(self, endpoint: Endpoint, connection: FakeConnection) -> None:
        self.endpoint = endpoint
        self._conn = connection


__all__ = ["Constant", "FakeConnection", "FakePrometheus", "Series", "Times"]
