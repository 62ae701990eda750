"""Helpers for the cluster tests: polling, kubectl, and reading objects back."""

from __future__ import annotations

import json
import subprocess
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
