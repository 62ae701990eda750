"""Kubernetes access: the target's /scale subresource, the ForecastScaler's status, Secrets.

Blocking calls through the official client; the operator runs them in threads. The target is
reached through discovery (the dynamic client), so any kind with a scale subresource works,
exactly like the HPA's scaleTargetRef. Failures become TargetError with a condition reason.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    NotFoundError,
    ResourceNotFoundError,
)

from forecastscaler.operator.api import GROUP, PLURAL, VERSION, ScaleTargetRef

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


class SecretError(Exception):
    reason = "SecretUnavailable"


@dataclass(frozen=True)
class Scale:
    """What /scale says: the replicas asked for and those that exist."""

    replicas: int
    status_replicas: int
    selector: str | None


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
            raise SecretError(
                f"cannot read Secret {namespace}/{name}: {exc.status} {exc.reason}"
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
