"""Who else scales a target: HorizontalPodAutoscalers (KEDA's included) and other
ForecastScalers.

Two autoscalers on one replica count undo each other's changes (6→12→8→16 within seconds),
so exactly one may write. An HPA cannot be told to yield, so a ForecastScaler never writes a
target an HPA scales. Between ForecastScalers the oldest keeps scaling (creation time, then
name, so every operator replica and shard orders them alike) and the others report
`AbleToScale=False ConflictingAutoscaler` naming it. Pure functions over listed objects, so
the rules are tested without a cluster; kube.Kube lists and caches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from forecastscaler.core.api import ScaleTargetRef


def api_group(api_version: str) -> str:
    """The API group of "group/version" ("" for the core group's "v1")."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True, order=True)
class Owner:
    """An autoscaler of some target, ordered oldest first."""

    created: str
    """RFC 3339 creation time (same-width UTC strings sort in time order)."""
    name: str
    uid: str = ""
    kind: str = "ForecastScaler"
    target: tuple[str, str, str] = ("", "", "")
    """(API group, kind, name) of what it scales."""
    via: str = ""
    """Who made it, for the message: "KEDA ScaledObject x" for an HPA KEDA owns."""

    def scales(self, ref: ScaleTargetRef) -> bool:
        return self.target == (api_group(ref.api_version), ref.kind, ref.name)

    def describe(self) -> str:
        own = f"{self.kind} {self.name}"
        return f"{own} (made by {self.via})" if self.via else own


def _target(ref: Mapping[str, Any] | None) -> tuple[str, str, str]:
    ref = ref or {}
    return (
        api_group(str(ref.get("apiVersion") or "")),
        str(ref.get("kind") or ""),
        str(ref.get("name") or ""),
    )


def _maker(meta: Mapping[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ScaledObject":
            return f"KEDA ScaledObject {ref.get('name', '')}"
    return ""


def from_hpa(obj: Mapping[str, Any]) -> Owner:
    """An Owner from a HorizontalPodAutoscaler as a dict (camelCase, as the API serves it)."""
    meta = obj.get("metadata") or {}
    return Owner(
        created=str(meta.get("creationTimestamp") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        kind="HorizontalPodAutoscaler",
        target=_target((obj.get("spec") or {}).get("scaleTargetRef")),
        via=_maker(meta),
    )


def from_scaler(obj: Mapping[str, Any]) -> Owner | None:
    """An Owner from a ForecastScaler as a dict; None while it is being deleted (it no longer
    scales anything)."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    return Owner(
        created=str(meta.get("creationTimestamp") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        target=_target((obj.get("spec") or {}).get("scaleTargetRef")),
    )


def rivals(me: Owner, ref: ScaleTargetRef, others: Iterable[Owner]) -> list[Owner]:
    """The autoscalers that keep `ref` from `me`: every HPA that scales it, and every older
    ForecastScaler that does (never `me`), oldest first."""
    out = [
        o
        for o in others
        if o.scales(ref)
        and o.uid != me.uid
        and (o.kind != "ForecastScaler" or (o.created, o.name) < (me.created, me.name))
    ]
    return sorted(out)


def conflict_message(ref: ScaleTargetRef, found: list[Owner]) -> str:
    """What AbleToScale says while `found` keep this ForecastScaler from writing."""
    names = ", ".join(o.describe() for o in found)
    if all(o.kind == "ForecastScaler" for o in found):
        fix = "delete one of them, or point this one at another target"
        who = "older " + names
    else:
        fix = "delete the other autoscaler, or set mode: DryRun to compare the two"
        who = names
    return (
        f"{who} also scales {ref.kind} {ref.name}: two autoscalers on one target undo each "
        f"other's changes, so this one decides but does not write the scale; {fix}"
    )
