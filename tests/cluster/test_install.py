"""The operator as installed: the shipped RBAC, two replicas with Kopf peering, and a Secret it
may read only where a namespace allows it.

Two `forecastscaler run` processes act as the Deployment's two replicas would: each with the
ServiceAccount token of manifests/base (nothing more than its ClusterRole), the shipped
peering, and its own priority. The test proves that the active one can do its whole job with
those rights, that the standby does nothing meanwhile, that a Prometheus token in a Secret
needs the namespace's RoleBinding (and says so when it is missing), and that the standby takes
over when the active replica dies without a goodbye (SIGKILL, as on a lost node).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from forecastscaler.operator.kube import SECRET_READER_ROLE
from forecastscaler.simulator.live import LoadExporter
from tests.cluster.support import (
    ROOT,
    apply_scaler,
    condition,
    deployment,
    eventually,
    kubectl,
    replicas_of,
    scaler,
)

pytestmark = pytest.mark.cluster

SYSTEM = "forecastscaler-system"
BASE = ROOT / "manifests" / "base"


def _apply(kubeconfig: str, path: Path, namespace: str | None = None) -> None:
    args = ["apply", "-f", str(path)] + (["-n", namespace] if namespace else [])
    done = kubectl(kubeconfig, *args)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed(kubeconfig: str, api: client.ApiClient, crd: None, tmp_path_factory: Any) -> str:
    """manifests/base's namespace, RBAC and peering applied; a kubeconfig holding only the
    operator ServiceAccount's token."""
    for name in ("namespace.yaml", "peering-crd.yaml"):
        _apply(kubeconfig, BASE / name)
    waited = kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clusterkopfpeerings.kopf.dev",
    )
    assert waited.returncode == 0, waited.stderr
    _apply(kubeconfig, BASE / "rbac.yaml", SYSTEM)
    _apply(kubeconfig, BASE / "peering.yaml")
    core = client.CoreV1Api(api)

    def token() -> str | None:
        sa = core.read_namespaced_service_account("forecastscaler", SYSTEM)
        for ref in sa.secrets or []:
            secret = core.read_namespaced_secret(ref.name, SYSTEM)
            if secret.data and "token" in secret.data:
                return base64.b64decode(secret.data["token"]).decode()
        return None

    value = eventually(token, timeout=60, what="the ServiceAccount's token Secret")
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "forecastscaler", "user": {"token": value}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "forecastscaler"}}],
        "current-context": "sa",
    }
    path = tmp_path_factory.mktemp("sa") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


class Replica:
    """One `forecastscaler run` process, as one pod of the Deployment runs it."""

    def __init__(
        self, name: str, kubeconfig: str, prometheus_url: str, priority: int, logs: Path
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = logs / f"{name}.log"
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "FORECASTSCALER_PROMETHEUS_URL": prometheus_url,
            "FORECASTSCALER_METRICS_PORT": str(self.port),
            "POD_ID": name,  # Kopf's identity of this replica in the peering object
        }
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "forecastscaler.cli", "run"),
                    *("--peering=forecastscaler", f"--priority={priority}", "--verbose"),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def serving(self) -> bool:
        assert self.proc.poll() is None, f"{self.log.stem} exited:\n{self.text()[-3000:]}"
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def reconciles(self, namespace: str, name: str) -> float:
        """How many syncs of one ForecastScaler this replica has run."""
        series = "forecastscaler_reconcile_duration_seconds_count"
        want = f'{series}{{name="{name}",namespace="{namespace}"}}'
        for line in self.metrics().splitlines():
            if line.startswith(want):
                return float(line.split()[-1])
        return 0.0

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def replicas(
    installed: str, prometheus_url: str, namespace: str, api: client.ApiClient, tmp_path: Path
) -> Iterator[tuple[Replica, Replica]]:
    active = Replica("replica-a", installed, prometheus_url, 200, tmp_path)
    standby = Replica("replica-b", installed, prometheus_url, 100, tmp_path)
    try:
        for r in (active, standby):
            eventually(r.serving, timeout=90, what=f"{r.log.stem} serving /metrics")
        yield active, standby
    finally:
        _delete_scalers(api, namespace)  # while a replica lives to release their finalizers
        for r in (active, standby):
            r.stop()
            print(f"--- {r.log}\n{r.text()[-3000:]}")


def _delete_scalers(api: client.ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(api)
    group = ("forecastscaler.io", "v1alpha1", namespace, "forecastscalers")
    for item in objects.list_namespaced_custom_object(*group)["items"]:
        objects.delete_namespaced_custom_object(*group, item["metadata"]["name"])
    try:
        eventually(
            lambda: not objects.list_namespaced_custom_object(*group)["items"],
            60,
            "the ForecastScalers deleted",
        )
    except BaseException:  # pytest.fail in a teardown: report, but stop the replicas anyway
        print("ForecastScalers still present in", namespace)


def _manifest(name: str, app: str, **spec: Any) -> dict[str, Any]:
    from tests.cluster.test_operator import manifest

    return manifest(name, app, **spec)


def test_installed_rbac_peering_and_takeover(
    api: client.ApiClient,
    kubeconfig: str,
    installed: str,
    namespace: str,
    loads: LoadExporter,
    replicas: tuple[Replica, Replica],
) -> None:
    active, standby = replicas
    level = {"load": 450.0}
    loads.set({"app": namespace}, lambda t: level["load"])
    deployment(api, namespace, "web", replicas=1)
    apply_scaler(api, namespace, _manifest("web", namespace, anomaly={"enabled": False}))

    # The active replica does the whole job with the ServiceAccount's rights alone.
    eventually(lambda: replicas_of(api, namespace, "web") == 5, 120, "web scaled to 5")
    ready = condition(scaler(api, namespace, "web"), "Ready")
    assert ready and ready["status"] == "True", ready
    assert active.reconciles(namespace, "web") > 0
    assert standby.reconciles(namespace, "web") == 0, "the standby acted while paused"
    for r in (active, standby):
        assert "Forbidden" not in r.text(), r.text()[-3000:]

    # ...and is denied what it has no business doing.
    as_operator = config.new_client_from_config(config_file=installed)
    denied = [
        ("list Secrets", lambda: client.CoreV1Api(as_operator).list_namespaced_secret(namespace)),
        (
            "patch the Deployment itself",
            lambda: client.AppsV1Api(as_operator).patch_namespaced_deployment(
                "web", namespace, {"spec": {"paused": True}}
            ),
        ),
        (
            "delete the Deployment",
            lambda: client.AppsV1Api(as_operator).delete_namespaced_deployment("web", namespace),
        ),
        (
            "create a ForecastScaler",
            lambda: client.CustomObjectsApi(as_operator).create_namespaced_custom_object(
                "forecastscaler.io",
                "v1alpha1",
                namespace,
                "forecastscalers",
                _manifest("other", namespace),
            ),
        ),
        ("list Pods", lambda: client.CoreV1Api(as_operator).list_namespaced_pod(namespace)),
    ]
    for what, call in denied:
        with pytest.raises(ApiException) as refused_call:
            call()
        assert refused_call.value.status == 403, (what, refused_call.value)

    # A bearer token in a Secret: unreadable until the namespace binds the reader role.
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="prom-token"), string_data={"token": "t"}
        ),
    )
    prom = {"bearerTokenSecretRef": {"name": "prom-token"}}
    apply_scaler(api, namespace, _manifest("tokened", namespace, metric={"prometheus": prom}))
    deployment(api, namespace, "tokened", replicas=1)

    def refused() -> dict[str, Any] | None:
        c = condition(scaler(api, namespace, "tokened"), "Ready")
        return c if c and c["reason"] == "SecretUnavailable" else None

    c = eventually(refused, 60, "Ready=False SecretUnavailable on the unbound namespace")
    assert "403" in c["message"] and SECRET_READER_ROLE in c["message"], c["message"]
    assert "secret-reader-rolebinding.yaml" in c["message"], c["message"]
    _apply(kubeconfig, ROOT / "manifests" / "secret-reader-rolebinding.yaml", namespace)
    eventually(
        lambda: (
            (condition(scaler(api, namespace, "tokened"), "Ready") or {}).get("status") == "True"
        ),
        60,
        "Ready=True once the RoleBinding lets the operator read the token",
    )

    # The active replica dies without leaving the peering; the standby takes over once its
    # peering record expires (Kopf's default lifetime, 60 s) and acts on a new load.
    active.stop(signal.SIGKILL)
    killed = time.monotonic()
    level["load"] = 850.0
    eventually(lambda: replicas_of(api, namespace, "web") == 9, 150, "the standby scaling to 9")
    took = time.monotonic() - killed
    assert standby.reconciles(namespace, "web") > 0
    print(f"standby took over and scaled {took:.0f}s after the active replica was killed")


def test_the_kustomize_base_passes_a_server_side_dry_run(installed: str, kubeconfig: str) -> None:
    """`kubectl apply --dry-run=server -k manifests/`: every object of the install, checked by
    the API server itself (schemas, RBAC objects, the Deployment). The namespace and the
    peering CRD exist by now (a dry run cannot create what later objects need)."""
    version = kubectl(kubeconfig, "version", "--client", "-o", "json")
    info = yaml.safe_load(version.stdout or "{}") or {}
    kustomize = str(info.get("kustomizeVersion", ""))
    if not kustomize.startswith("v5") and not kustomize.startswith("v4"):
        # kubectl before 1.21 embeds kustomize v2, which predates the `labels` field.
        pytest.skip(
            f"kubectl {info.get('clientVersion', {}).get('gitVersion')} embeds "
            f"kustomize {kustomize or 'v2'}; -k needs kubectl 1.21 or later"
        )
    done = kubectl(kubeconfig, "apply", "--dry-run=server", "-k", "manifests/")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 11 and all("(server dry run)" in line for line in lines), done.stdout
    assert any(line.startswith("deployment.apps/forecastscaler ") for line in lines), lines
