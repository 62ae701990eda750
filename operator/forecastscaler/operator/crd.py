"""Generate the CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (draft 2020-12, with $refs); the API server wants a structural
OpenAPI v3 schema. This module makes that translation, so that crds/forecastscaler.yaml can
never drift from the models the operator parses with (a test regenerates and compares).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from forecastscaler.core.api import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ForecastScaler,
    ForecastScalerSpec,
)
from forecastscaler.core.api_status import ForecastScalerStatus
from forecastscaler.core.memory import MemoryStatus

Schema = dict[str, Any]

_DROP = {"title", "additionalProperties", "$defs"}
# Optional sub-objects the API server should create empty, so their own defaults apply and
# `kubectl get -o yaml` shows every effective setting.
_DEFAULT_EMPTY = {"forecast", "anomaly", "behavior", "fallback"}


def _structural(node: Any, defs: Schema) -> Any:
    """Inline $refs and translate JSON Schema into what apiextensions.k8s.io/v1 accepts."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}  # the field's own description wins over the class's
        return _structural(merged, defs)
    if "anyOf" in node:
        return _structural(_optional(node, defs), defs)
    _translate_keywords(node)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    return _without_null_default(out)


def _optional(node: Schema, defs: Schema) -> Schema:
    """`X | None` (anyOf with null) as X: structural schemas have no unions, and an absent
    field is how Kubernetes says none."""
    options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"cannot express a union in a structural schema: {options}")
    return _without_null_default({**_structural(options[0], defs), **node})


def _translate_keywords(node: Schema) -> None:
    """JSON Schema 2020 keywords in their OpenAPI v3.0 spelling, in place."""
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True


def _without_null_default(node: Schema) -> Schema:
    if node.get("default", "") is None:
        del node["default"]
    return node


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of a pydantic model, by its camelCase aliases."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: Schema = _structural(raw, raw.get("$defs", {}))
    return schema


def _spec_schema() -> Schema:
    schema = model_schema(ForecastScalerSpec)
    for name in _DEFAULT_EMPTY:
        schema["properties"][name]["default"] = {}
    return schema


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def _status_schema() -> Schema:
    # Only the operator writes status: defaults there would only mask a missing field.
    schema: Schema = _without_defaults(model_schema(ForecastScalerStatus))
    # The autoscaler's memory (core/memory.py): what a restarted operator resumes from.
    memory: Schema = _without_defaults(model_schema(MemoryStatus))
    for name, prop in memory["properties"].items():
        if name in schema["properties"]:
            raise ValueError(f"status.{name} is declared twice")
        schema["properties"][name] = prop
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Target", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
    {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"},
    {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
    {"name": "Current", "type": "integer", "jsonPath": ".status.currentReplicas"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {
        "name": "Forecast",
        "type": "number",
        "jsonPath": ".status.forecast.value",
        "description": "Provisioned quantile of the load at the horizon",
    },
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.lastDecision.reason",
        "priority": 1,
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> Schema:
    """The ForecastScaler CustomResourceDefinition as a dict."""
    root_doc = (ForecastScaler.__doc__ or "").strip()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "forecastscaler"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "autoscaling"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": root_doc,
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "forecastscaler.io/v1alpha1",
                                },
                                "kind": {"type": "string", "description": "ForecastScaler"},
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(),
                                "status": _status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as the YAML committed in crds/forecastscaler.yaml."""
    header = "# Generated by `forecastscaler crd` from the pydantic models. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
