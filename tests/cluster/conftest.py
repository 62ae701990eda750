"""Fixtures for tests against a real API server and a real Prometheus.

The cluster is taken from KUBECONFIG when it is set (a kind cluster, say); otherwise the
project's own scripts start the local control plane and Prometheus on loopback. These tests
never skip silently: without a cluster they fail, saying how to get one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from forecastscaler.simulator.live import LoadExporter, write_targets_file
from tests.cluster.support import METRIC, ROOT, eventually, kubectl, prom_query

STATE = Path(os.environ.get("FORECASTSCALER_STATE", "/tmp/forecastscaler-local"))

pytestmark = pytest.mark.cluster


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """KUBECONFIG of the cluster under test, starting the local one when none is given."""
    given = os.environ.get("FORECASTSCALER_TEST_KUBECONFIG")
    if given:
        return given
    up = _run("bash", "scripts/local-cluster.sh", "up", check=False)
    if up.returncode != 0:
        pytest.fail(
            "cannot start the local control plane (scripts/local-cluster.sh up):\n"
            + up.stdout[-2000:]
            + up.stderr[-3000:]
        )
    if shutil.which("kubectl") is None:  # use the kubectl built with the control plane
        bindir = (STATE / "bindir").read_text().strip()
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    return str(STATE / "kubeconfig")


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    given = os.environ.get("FORECASTSCALER_TEST_PROMETHEUS_URL")
    if given:
        return given
    up = _run("bash", "scripts/local-prometheus.sh", "up", check=False)
    if up.returncode != 0:
        pytest.fail("cannot start Prometheus (scripts/local-prometheus.sh up):\n" + up.stderr)
    return "http://127.0.0.1:" + os.environ.get("FSC_PROMETHEUS_PORT", "9090")


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> client.ApiClient:
    os.environ["KUBECONFIG"] = kubeconfig
    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def crd(kubeconfig: str, api: client.ApiClient) -> None:
    """The committed CRD, applied with kubectl and Established."""
    applied = kubectl(kubeconfig, "apply", "-f", "crds/forecastscaler.yaml")
    assert applied.returncode == 0, applied.stderr
    waited = kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/forecastscalers.forecastscaler.io",
    )
    assert waited.returncode == 0, waited.stderr


@pytest.fixture(scope="session")
def loads(prometheus_url: str) -> Iterator[LoadExporter]:
    """One exporter for the whole session, scraped by Prometheus: tests add their own series
    of fsc_test_load{app=...} with a load function of wall-clock time."""
    exporter = LoadExporter(METRIC).start()
    exporter.set({"app": "canary"}, lambda t: 1.0)
    targets = Path(
        os.environ.get("FORECASTSCALER_PROMETHEUS_TARGETS_DIR", STATE / "prometheus" / "targets")
    )
    # One file per session, so concurrent sessions on one machine keep their own target.
    path = write_targets_file(
        targets, f"fsc-tests-{uuid.uuid4().hex[:8]}", exporter.port, "fsc-tests"
    )
    eventually(
        lambda: prom_query(prometheus_url, f'{METRIC}{{app="canary"}}'),
        timeout=60,
        what="Prometheus scraping the test exporter",
    )
    yield exporter
    path.unlink(missing_ok=True)
    exporter.stop()


@pytest.fixture
def namespace(api: client.ApiClient, crd: None) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"fsc-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def operator(kubeconfig: str, prometheus_url: str, namespace: str) -> Iterator[Any]:
    """The operator, as `forecastscaler run` runs it, watching the test's namespace."""
    from kopf.testing import KopfRunner

    os.environ["KUBECONFIG"] = kubeconfig
    os.environ["FORECASTSCALER_PROMETHEUS_URL"] = prometheus_url
    with socket.socket() as probe:  # a free port for the operator's own /metrics
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    os.environ["FORECASTSCALER_METRICS_PORT"] = str(metrics_port)
    args = [
        "run",
        "--standalone",
        "--namespace",
        namespace,
        "-m",
        "forecastscaler.operator.handlers",
    ]
    with KopfRunner(args, timeout=60) as runner:
        runner.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield runner
        # Delete the test's ForecastScalers while the operator still runs to release their
        # finalizers; otherwise the namespace would hang in Terminating.
        custom = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
        group = ("forecastscaler.io", "v1alpha1", namespace, "forecastscalers")
        custom.delete_collection_namespaced_custom_object(*group)
        eventually(
            lambda: not custom.list_namespaced_custom_object(*group)["items"],
            timeout=30,
            what="ForecastScalers to be deleted",
            interval=0.5,
        )
    assert runner.exception is None, runner.exception
