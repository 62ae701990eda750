"""An in-memory Kubernetes for the operator's `Kube` calls: the targets' /scale, the
ForecastScalers' status, HorizontalPodAutoscalers and Secrets.

It overrides `forecastscaler.operator.kube.Kube` at its public methods (what the Reconciler
calls) and raises that module's exceptions with its wording, so the Reconciler sees what it
sees on a cluster; how kube.py maps the API server's answers is the cluster tests' to check.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from forecastscaler.core.api import ScaleTargetRef
from forecastscaler.operator.kube import (
    InvalidTarget,
    Kube,
    Scale,
    ScaleWriteFailed,
    SecretError,
    TargetNotFound,
)
from forecastscaler.operator.owners import Owner

Key = tuple[str, str]
"""(namespace, name)."""


def apply_merge_patch(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies the operator's status patches."""
    out = dict(doc)
    for key, value in patch.items():
        before = out.get(key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(before, Mapping):
            out[key] = apply_merge_patch(before, value)
        else:
            out[key] = value
    return out


def _describe(ref: ScaleTargetRef, namespace: str) -> str:
    """A target as kube.py names it in its errors."""
    return f"{ref.kind} {namespace}/{ref.name} ({ref.api_version})"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class ScaleWrite:
    """One PATCH of a target's /scale."""

    namespace: str
    kind: str
    name: str
    replicas: int


@dataclass(frozen=True)
class Hpa:
    """A HorizontalPodAutoscaler: its name and its scaleTargetRef."""

    name: str
    target: ScaleTargetRef
    via: str = ""
    """"KEDA ScaledObject x" for an HPA that KEDA made."""


class FakeKube(Kube):
    """/scale and status in memory. A status patch is merged into the object's body in
    `bodies` (as Kopf's watch would deliver it before the next sync) when the body is there;
    every call sleeps `latency` in the calling thread (the Reconciler's kube_io pool).

    Targets exist unless listed in `missing`; a target's replicas start at `initial_replicas`.
    Kinds in `unscalable_kinds` have no scale subresource. `refuse_writes` makes every scale
    PATCH fail with that message. `hpas` are per namespace, `secrets` per (namespace, name)
    with their keys' decoded values.
    """

    def __init__(
        self,
        bodies: MutableMapping[Key, dict[str, Any]] | None = None,
        *,
        latency: float = 0.0,
        initial_replicas: int = 1,
    ) -> None:
        self.bodies: MutableMapping[Key, dict[str, Any]] = {} if bodies is None else bodies
        self.latency = latency
        self.initial_replicas = initial_replicas
        self.replicas: dict[Key, int] = {}
        self.missing: set[Key] = set()
        self.unscalable_kinds: set[str] = set()
        self.refuse_writes: str | None = None
        self.hpas: dict[str, list[Hpa]] = {}
        self.hpa_error: Exception | None = None
        self.scalers: dict[str, list[Owner]] = {}
        self.secrets: dict[Key, dict[str, str]] = {}
        self.writes: list[ScaleWrite] = []
        self.status_patches: list[tuple[Key, dict[str, Any]]] = []
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _call(self, name: str) -> None:
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            self.calls[name] += 1

    def _target(self, namespace: str, ref: ScaleTargetRef) -> Key:
        if ref.kind in self.unscalable_kinds:
            raise InvalidTarget(f"{_describe(ref, namespace)}: this kind has no scale subresource")
        key = (namespace, ref.name)
        if key in self.missing:
            raise TargetNotFound(f"{_describe(ref, namespace)} not found")
        return key

    def add_hpa(self, namespace: str, name: str, target: ScaleTargetRef, via: str = "") -> None:
        """An HPA named `name` in `namespace`, scaling `target`."""
        self.hpas.setdefault(namespace, []).append(Hpa(name, target, via))

    def add_scaler(self, namespace: str, owner: Owner) -> None:
        """Another ForecastScaler in `namespace` (its target in `owner.target`)."""
        self.scalers.setdefault(namespace, []).append(owner)

    def owners_in(self, namespace: str, me: str) -> list[Owner]:
        """The HPAs and the other ForecastScalers, as kube.py lists them."""
        self._call("owners_in")
        if self.hpa_error is not None:
            raise self.hpa_error
        hpas = [
            Owner(
                "2024-01-01T00:00:00Z",
                h.name,
                f"hpa-{h.name}",
                "HorizontalPodAutoscaler",
                (_group(h.target.api_version), h.target.kind, h.target.name),
                h.via,
            )
            for h in self.hpas.get(namespace, [])
        ]
        return hpas + list(self.scalers.get(namespace, []))

    def get_scale(self, namespace: str, ref: ScaleTargetRef) -> Scale:
        self._call("get_scale")
        key = self._target(namespace, ref)
        with self._lock:
            replicas = self.replicas.setdefault(key, self.initial_replicas)
        return Scale(replicas=replicas, status_replicas=replicas, selector=f"app={ref.name}")

    def patch_scale(self, namespace: str, ref: ScaleTargetRef, replicas: int) -> Scale:
        self._call("patch_scale")
        key = self._target(namespace, ref)
        if self.refuse_writes is not None:
            raise ScaleWriteFailed(
                f"cannot scale {_describe(ref, namespace)}: {self.refuse_writes}"
            )
        with self._lock:
            self.replicas[key] = replicas
            self.writes.append(ScaleWrite(namespace, ref.kind, ref.name, replicas))
        return Scale(replicas=replicas, status_replicas=replicas, selector=f"app={ref.name}")

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._call("patch_status")
        key = (namespace, name)
        with self._lock:
            self.status_patches.append((key, status))
            body = self.bodies.get(key)
            if body is not None:
                body["status"] = apply_merge_patch(body.get("status") or {}, status)

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        self._call("read_secret_key")
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretError(f"cannot read Secret {namespace}/{name}: 404 Not Found")
        if key not in data:
            raise SecretError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key].strip()


__all__ = ["FakeKube", "Hpa", "Key", "ScaleWrite", "apply_merge_patch"]
