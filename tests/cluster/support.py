"""Helpers for the cluster tests: polling, kubectl, and reading objects back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
METRIC = "fsc_test_load"


def kubectl(
    kubeconfig: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kubectl the way a user does."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def prom_query(url: str, query: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout=5
    ) as resp:
        result: list[dict[str, Any]] = json.load(resp)["data"]["result"]
        return result


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll until check() returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")


def deployment(api: client.ApiClient, namespace: str, name: str, replicas: int) -> None:
    """A plain Deployment (its pods stay Pending without nodes; /scale works all the same)."""
    body = yaml.safe_load(
        f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec: {{containers: [{{name: web, image: nginx:1.25}}]}}
        """
    )
    client.AppsV1Api(api).create_namespaced_deployment(namespace, body)


def replicas_of(api: client.ApiClient, namespace: str, name: str) -> int:
    scale = client.AppsV1Api(api).read_namespaced_deployment_scale(name, namespace)
    return int(scale.spec.replicas or 0)


def apply_scaler(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "forecastscaler.io", "v1alpha1", namespace, "forecastscalers", manifest
    )


def scaler(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "forecastscaler.io", "v1alpha1", namespace, "forecastscalers", name
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def events(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    items = (
        client.CoreV1Api(api)
        .list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={name},involvedObject.kind=ForecastScaler",
        )
        .items
    )
    return list(items)


class OperatorProcess:
    """The operator as the `operator` fixture runs it (Kopf's `run --standalone` of
    forecastscaler.operator.handlers, watching one namespace, with the admin kubeconfig), but
    in a process of its own: KopfRunner runs it in a thread of the test process, which cannot
    be killed and started again, and a restart is what a crashed, evicted or rescheduled
    operator pod goes through. Every start appends to the same log."""

    def __init__(
        self,
        kubeconfig: str,
        prometheus_url: str,
        namespace: str,
        log: Path,
        module: str = "forecastscaler.operator.handlers",
    ) -> None:
        self.kubeconfig, self.prometheus_url, self.namespace = kubeconfig, prometheus_url, namespace
        self.log, self.module = log, module
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> OperatorProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with socket.socket() as probe:  # a fresh port: the old one may linger in TIME_WAIT
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "FORECASTSCALER_PROMETHEUS_URL": self.prometheus_url,
            "FORECASTSCALER_METRICS_PORT": str(self.port),
        }
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"--- start {self.starts} at {time.time():.3f}\n")
            out.flush()
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "kopf", "run", "--standalone"),
                    *("--namespace", self.namespace, "-m", self.module),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def serving(self) -> bool:
        """True once the startup handler serves /metrics (the operator is up)."""
        assert self.proc is not None
        assert self.proc.poll() is None, f"the operator exited:\n{self.text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop it: SIGTERM lets Kopf finish its handlers, SIGKILL is a crash (no goodbye)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
