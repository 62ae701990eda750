"""Replaying a trace as a live Prometheus metric, for the demo and the cluster tests.

A trace is played in compressed time (one trace step every `step_seconds` of wall time) by a
tiny HTTP exporter that Prometheus scrapes; the part of the trace before "now" can be written
as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`, so the operator starts with
days of history instead of minutes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import numpy.typing as npt

LoadFn = Callable[[float], float]


class TracePlayer:
    """Load at wall-clock time t: trace values spaced `step_seconds` apart, linearly
    interpolated, with value index `offset` playing at `start`, looping at the end."""

    def __init__(
        self,
        values: Sequence[float] | npt.NDArray[np.float64],
        step_seconds: float,
        start: float,
        offset: int = 0,
        scale: float = 1.0,
    ) -> None:
        arr = np.asarray(values, dtype=np.float64)
        idx = np.arange(len(arr))
        ok = np.isfinite(arr)
        if not ok.any():
            raise ValueError("the trace has no numeric values")
        self.values = np.interp(idx, idx[ok], arr[ok]) * scale
        self.step_seconds = step_seconds
        self.start = start
        self.offset = offset

    def position(self, t: float) -> float:
        return self.offset + (t - self.start) / self.step_seconds

    def __call__(self, t: float) -> float:
        pos = self.position(t) % len(self.values)
        i = math.floor(pos)
        j = (i + 1) % len(self.values)
        w = pos - i
        return float((1 - w) * self.values[i] + w * self.values[j])


def openmetrics_history(
    metric: str,
    labels: dict[str, str],
    load: LoadFn,
    start: float,
    end: float,
    every: float,
    help_text: str = "Replayed load",
) -> str:
    """OpenMetrics text with `metric` sampled from `load` every `every` seconds in [start,
    end), for promtool's backfill."""
    label_text = _labels(labels)
    lines = [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
    t = start
    while t < end:
        lines.append(f"{metric}{{{label_text}}} {load(t):.6g} {t:.3f}")
        t += every
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


class LoadExporter:
    """Serves `metric{labels} load(now)` at /metrics on 127.0.0.1:port, in a thread. More
    series of the same metric can be added while it runs (`set`), which lets one scrape
    target serve many independent tests."""

    def __init__(
        self,
        metric: str,
        labels: dict[str, str] | None = None,
        load: LoadFn | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metric, self.clock = metric, clock
        self._series: dict[str, LoadFn] = {}
        self._lock = threading.Lock()
        if load is not None:
            self.set(labels or {}, load)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, labels: dict[str, str], load: LoadFn | None) -> None:
        """Serve (or, with None, stop serving) the series with these labels."""
        key = _labels(labels)
        with self._lock:
            if load is None:
                self._series.pop(key, None)
            else:
                self._series[key] = load

    def render(self) -> str:
        now = self.clock()
        with self._lock:
            series = list(self._series.items())
        lines = [f"# TYPE {self.metric} gauge"]
        for key, load in series:
            value = load(now)
            if math.isfinite(value):  # a NaN load is a missing sample, as with a real target
                lines.append(f"{self.metric}{{{key}}} {value:.6g}")
        return "\n".join(lines) + "\n"

    def start(self) -> LoadExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoadExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_targets_file(directory: Path, name: str, port: int, job: str) -> Path:
    """A Prometheus file_sd target file (written atomically) for an exporter."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": job}}]))
    tmp.replace(path)
    return path
