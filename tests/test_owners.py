"""owners.py: who else scales a target, read from objects as the API serves them."""

from __future__ import annotations

from typing import Any

import pytest

from forecastscaler.core.api import ScaleTargetRef
from forecastscaler.operator.owners import Owner, from_hpa, from_scaler, rivals

WEB = ScaleTargetRef(kind="Deployment", name="web")


def scaler_body(name: str, created: str, target: str = "web", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"u-{name}", "creationTimestamp": created, **meta},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
    }


def test_an_hpa_that_keda_made_names_its_scaled_object() -> None:
    owner = from_hpa(
        {
            "metadata": {
                "name": "keda-hpa-web",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "ownerReferences": [{"kind": "ScaledObject", "name": "web"}],
            },
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
            },
        }
    )
    assert owner.scales(WEB)
    assert (
        owner.describe() == "HorizontalPodAutoscaler keda-hpa-web (made by KEDA ScaledObject web)"
    )


def test_a_forecastscaler_being_deleted_scales_nothing() -> None:
    body = scaler_body("old", "2024-01-01T00:00:00Z", deletionTimestamp="2024-02-01T00:00:00Z")
    assert from_scaler(body) is None


ME = Owner("2024-06-01T00:00:00Z", "me", "u-me")
RIVALS: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    # other ForecastScalers in the namespace -> the ones that keep the target from ME
    "alone": ([], []),
    "itself-listed": ([scaler_body("me", "2024-06-01T00:00:00Z")], []),
    "an-older-one": ([scaler_body("a", "2024-05-01T00:00:00Z")], ["a"]),
    "a-newer-one": ([scaler_body("b", "2024-07-01T00:00:00Z")], []),
    "same-second-first-by-name": ([scaler_body("aa", "2024-06-01T00:00:00Z")], ["aa"]),
    "same-second-later-by-name": ([scaler_body("zz", "2024-06-01T00:00:00Z")], []),
    "older-on-another-target": ([scaler_body("a", "2024-05-01T00:00:00Z", "api")], []),
    "two-older-oldest-first": (
        [scaler_body("y", "2024-05-02T00:00:00Z"), scaler_body("x", "2024-05-01T00:00:00Z")],
        ["x", "y"],
    ),
}


@pytest.mark.parametrize(("bodies", "expected"), RIVALS.values(), ids=RIVALS.keys())
def test_only_older_forecastscalers_keep_the_target(
    bodies: list[dict[str, Any]], expected: list[str]
) -> None:
    me = Owner(ME.created, ME.name, "u-me")
    others = [o for o in (from_scaler(b) for b in bodies) if o is not None]
    assert [o.name for o in rivals(me, WEB, others)] == expected
