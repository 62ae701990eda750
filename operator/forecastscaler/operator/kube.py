"""Kubernetes access: the target's /scale subresource, the ForecastScaler's status, Secrets.

Blocking calls through the official client; the operator runs them in threads. The target is
reached through discovery (the dynamic client), so any kind with a scale subresource works,
exactly like the HPA's scaleTargetRef. Failures become TargetError with a condition reason.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    NotFoundError,
    ResourceNotFoundError,
)

from forecastscaler.core.api import GROUP, PLURAL, VERSION, ScaleTargetRef
from forecastscaler.operator.owners import Owner, from_hpa, from_scaler

MERGE_PATCH = "application/merge-patch+json"


def load_credentials() -> client.Configuration:
    """In-cluster service account in a pod, else the kubeconfig that KUBECONFIG names now
    (exec and auth-provider plugins included); installed as the client's default."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    configuration: client.Configuration = client.Configuration.get_default_copy()
    return configuration


class TargetError(Exception):
    """The scale target cannot be read or written; `reason` is a condition reason."""

    reason = "FailedGetScale"


class TargetNotFound(TargetError):
    reason = "FailedGetScale"


class InvalidTarget(TargetError):
    reason = "InvalidTarget"


class ScaleWriteFailed(TargetError):
    reason = "FailedUpdateScale"


class ConflictingAutoscaler(TargetError):
    """Another autoscaler (a HorizontalPodAutoscaler, KEDA's included, or an older
    ForecastScaler) scales the same target: two owners of one replica count fight, so the
    operator does not write it (owners.py)."""

    reason = "ConflictingAutoscaler"


# Installed by manifests/base but bound cluster-wide to nobody: reading Secrets everywhere is
# more than a token for Prometheus needs. Each namespace that uses one binds it.
SECRET_READER_ROLE = "forecastscaler-secret-reader"


class SecretError(Exception):
    reason = "SecretUnavailable"


@dataclass(frozen=True)
class Scale:
    """What /scale says: the replicas asked for and those that exist."""

    replicas: int
    status_replicas: int
    selector: str | None


HPA_CACHE_SECONDS = 30.0


def _describe(ref: ScaleTargetRef, namespace: str) -> str:
    return f"{ref.kind} {namespace}/{ref.name} ({ref.api_version})"


class Kube:
    """The few Kubernetes calls the operator makes."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._owners: dict[str, tuple[float, list[Owner], set[str]]] = {}

    def _scale_resource(self, ref: ScaleTargetRef, namespace: str) -> Any:
        with self._lock:  # discovery is lazy and not thread-safe on first use
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api_client)
            dynamic = self._dynamic
        try:
            resource = dynamic.resources.get(api_version=ref.api_version, kind=ref.kind)
        except ResourceNotFoundError as exc:
            raise InvalidTarget(
                f"{_describe(ref, namespace)}: the API server knows no kind {ref.kind!r} in "
                f"{ref.api_version!r}"
            ) from exc
        scale = getattr(resource, "subresources", {}).get("scale")
        if scale is None:
            raise InvalidTarget(f"{_describe(ref, namespace)}: this kind has no scale subresource")
        return scale

    def owners_in(self, namespace: str, me: str) -> list[Owner]:
        """The autoscalers in the namespace: its HorizontalPodAutoscalers and ForecastScalers.
        Listed at most every HPA_CACHE_SECONDS per namespace, so a hundred ForecastScalers do
        not list them at every sync, and afresh whenever the ForecastScaler `me` (a uid) is not
        in the cached list yet: a new one sees every older one at its first sync."""
        now = time.monotonic()
        with self._lock:
            cached = self._owners.get(namespace)
        if cached is None or now - cached[0] > HPA_CACHE_SECONDS or me not in cached[2]:
            hpas = client.AutoscalingV1Api(
                self.api_client
            ).list_namespaced_horizontal_pod_autoscaler(namespace)
            listed = [from_hpa(self.api_client.sanitize_for_serialization(h)) for h in hpas.items]
            scalers = cast(
                "dict[str, Any]",
                self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL),
            )
            found = [from_scaler(o) for o in scalers.get("items") or []]
            listed += [o for o in found if o is not None]
            cached = (now, listed, {o.uid for o in listed if o.kind == "ForecastScaler"})
            with self._lock:
                self._owners[namespace] = cached
        return cached[1]

    def get_scale(self, namespace: str, ref: ScaleTargetRef) -> Scale:
        resource = self._scale_resource(ref, namespace)
        try:
            obj = resource.get(name=ref.name, namespace=namespace)
        except NotFoundError as exc:
            raise TargetNotFound(f"{_describe(ref, namespace)} not found") from exc
        except DynamicApiError as exc:
            raise TargetError(
                f"cannot read the scale of {_describe(ref, namespace)}: {exc.summary()}"
            ) from exc
        return _scale_of(obj)

    def patch_scale(self, namespace: str, ref: ScaleTargetRef, replicas: int) -> Scale:
        resource = self._scale_resource(ref, namespace)
        try:
            obj = resource.patch(
                body={"spec": {"replicas": replicas}},
                name=ref.name,
                namespace=namespace,
                content_type=MERGE_PATCH,
            )
        except NotFoundError as exc:
            raise TargetNotFound(f"{_describe(ref, namespace)} not found") from exc
        except DynamicApiError as exc:
            raise ScaleWriteFailed(
                f"cannot scale {_describe(ref, namespace)}: {exc.summary()}"
            ) from exc
        return _scale_of(obj)

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the ForecastScaler's status subresource."""
        self._custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
            _content_type=MERGE_PATCH,
        )

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            hint = ""
            if exc.status == 403:
                hint = (
                    f": the operator may not read Secrets in {namespace}; grant it there with "
                    f"a RoleBinding to ClusterRole {SECRET_READER_ROLE} "
                    "(manifests/secret-reader-rolebinding.yaml)"
                )
            raise SecretError(
                f"cannot read Secret {namespace}/{name}: {exc.status} {exc.reason}{hint}"
            ) from exc
        data = (secret.data or {}).get(key)
        if data is None:
            raise SecretError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data).decode().strip()


def _scale_of(obj: Any) -> Scale:
    spec = getattr(obj, "spec", None)
    status = getattr(obj, "status", None)
    replicas = int(getattr(spec, "replicas", 0) or 0)
    status_replicas = int(getattr(status, "replicas", 0) or 0)
    selector = getattr(status, "selector", None)
    return Scale(replicas=replicas, status_replicas=status_replicas, selector=selector)
