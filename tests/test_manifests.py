"""The install manifests, the Grafana dashboard and the kind workflow, checked without a cluster.

kubectl and kustomize are not needed: kustomizations are followed by hand (resources,
configMapGenerator files), which is enough to catch a missing or unparsable file, an overlay
kustomize would reject, a Deployment that lost its hardening, a Service pointing at the wrong
port, and dashboard queries naming metrics the operator does not export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from forecastscaler.cli import build_parser
from forecastscaler.operator.commands import peering_priority
from forecastscaler.operator.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
DASHBOARD = MANIFESTS / "grafana-dashboard.json"
WORKFLOW = ROOT / ".github" / "workflows" / "kind.yaml"

Doc = dict[str, Any]


def _kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))


def _load(path: Path) -> Doc:
    with path.open() as f:
        loaded = yaml.safe_load(f)
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    return loaded


def _documents(path: Path) -> list[Doc]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _build(directory: Path) -> Iterator[Doc]:
    """Every object a kustomization directory yields, following its resources (no patches)."""
    kustomization = _load(directory / "kustomization.yaml")
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            yield from _build(target)
        else:
            yield from _documents(target)


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return list(_build(MANIFESTS))


@pytest.fixture(scope="module")
def deployment(base: list[Doc]) -> Doc:
    return _one(base, "Deployment", "forecastscaler")


def _container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _command_line(container: Doc) -> str:
    return " ".join([*container.get("command", []), *container.get("args", [])])


# --- kustomizations -------------------------------------------------------------------------


@pytest.mark.parametrize("directory", _kustomization_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_references_exist_and_parse(directory: Path) -> None:
    kustomization = _load(directory / "kustomization.yaml")
    resources = kustomization.get("resources", [])
    assert resources, "a kustomization without resources installs nothing"
    for entry in resources:
        target = (directory / entry).resolve()
        assert target.exists(), f"{entry} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{entry} is not a kustomization"
            # kustomize rejects a base whose directory contains the overlay ("cycle detected").
            assert not directory.resolve().is_relative_to(target), f"{entry} contains {directory}"
            continue
        docs = _documents(target)
        assert docs, f"{entry} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{entry}: apiVersion/kind missing"
            assert doc.get("metadata", {}).get("name"), f"{entry}: a {doc['kind']} has no name"
    for generator in kustomization.get("configMapGenerator", []):
        for source in generator.get("files", []):
            path = (directory / source.split("=", 1)[-1]).resolve()
            # kustomize reads no file outside the kustomization's own directory.
            assert path.is_relative_to(directory.resolve()), f"{source} is outside {directory}"
            assert path.is_file(), f"{source} does not exist"


def test_base_installs_the_operator_and_what_it_needs(base: list[Doc]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in base}
    for expected in [
        ("Namespace", "forecastscaler-system"),
        ("CustomResourceDefinition", "forecastscalers.forecastscaler.io"),
        ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
        ("ServiceAccount", "forecastscaler"),
        ("ClusterRole", "forecastscaler"),
        ("ClusterRoleBinding", "forecastscaler"),
        ("Deployment", "forecastscaler"),
        ("Service", "forecastscaler-metrics"),
    ]:
        assert expected in kinds, f"{expected} missing from manifests/"


# --- the Deployment -------------------------------------------------------------------------

CHECKS: list[tuple[str, Callable[[Doc], object]]] = [
    ("two replicas", lambda d: d["spec"]["replicas"] == 2),
    (
        "pod runs as non-root",
        lambda d: d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
    ),
    (
        "read-only root filesystem",
        lambda d: _container(d)["securityContext"]["readOnlyRootFilesystem"],
    ),
    (
        "no privilege escalation",
        lambda d: _container(d)["securityContext"]["allowPrivilegeEscalation"] is False,
    ),
    (
        "all capabilities dropped",
        lambda d: _container(d)["securityContext"]["capabilities"]["drop"] == ["ALL"],
    ),
    ("liveness probe", lambda d: _container(d)["livenessProbe"]["httpGet"]),
    ("readiness probe", lambda d: _container(d)["readinessProbe"]["httpGet"]),
    (
        "cpu and memory requested and limited",
        lambda d: all(
            _container(d)["resources"][bound].get(r)
            for bound in ("requests", "limits")
            for r in ("cpu", "memory")
        ),
    ),
    ("metrics served", lambda d: int(_env(_container(d))["FORECASTSCALER_METRICS_PORT"]) > 0),
    (
        "writable /tmp",
        lambda d: any(m["mountPath"] == "/tmp" for m in _container(d)["volumeMounts"]),
    ),
]


@pytest.mark.parametrize(("what", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_deployment(deployment: Doc, what: str, check: Callable[[Doc], object]) -> None:
    assert check(deployment), what


def _named_port(container: Doc, port: int | str) -> Doc:
    key = "name" if isinstance(port, str) else "containerPort"
    found: list[Doc] = [p for p in container["ports"] if p[key] == port]
    assert len(found) == 1, f"container port {port!r} not declared"
    return found[0]


def test_metrics_service_reaches_the_metrics_port(base: list[Doc], deployment: Doc) -> None:
    container = _container(deployment)
    service = _one(base, "Service", "forecastscaler-metrics")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "Service selects no pod"
    (port,) = service["spec"]["ports"]
    served = int(_env(container)["FORECASTSCALER_METRICS_PORT"])
    assert _named_port(container, port["targetPort"])["containerPort"] == served
    assert _named_port(container, "metrics")["containerPort"] == served
    probe_port = container["readinessProbe"]["httpGet"]["port"]
    assert _named_port(container, probe_port)["containerPort"] == served


def test_liveness_probe_asks_kopfs_health_endpoint(deployment: Doc) -> None:
    container = _container(deployment)
    url = re.search(r"--liveness[=\s]+(\S+)", _command_line(container))
    assert url, "the operator serves no liveness endpoint"
    match = re.fullmatch(r"http://0\.0\.0\.0:(\d+)(/\S*)", url.group(1))
    assert match, url.group(1)
    for probe in ("livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == match.group(2)
        assert _named_port(container, get["port"])["containerPort"] == int(match.group(1))


def test_peering_is_installed_and_allowed(base: list[Doc], deployment: Doc) -> None:
    """With --peering, Kopf pauses until the peering object exists and it may watch and patch it."""
    name = re.search(r"--peering[=\s]+(\S+)", _command_line(_container(deployment)))
    assert name, "two replicas without --peering would both act"
    _one(base, "ClusterKopfPeering", name.group(1))
    crd = _one(base, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert crd["spec"]["scope"] == "Cluster"
    rules = _one(base, "ClusterRole", "forecastscaler")["rules"]
    granted = {
        verb
        for rule in rules
        if "kopf.dev" in rule["apiGroups"] and "clusterkopfpeerings" in rule["resources"]
        for verb in rule["verbs"]
    }
    assert {"get", "list", "watch", "patch"} <= granted


def test_operator_command_gives_each_pod_its_own_priority(deployment: Doc) -> None:
    """Parses the container's command line with the operator's own parser and derives the
    peering priority as `forecastscaler run` does from POD_IP: peers of equal priority would
    all pause, so two pods must never tie."""
    container = _container(deployment)
    command = container["command"] + container.get("args", [])
    assert command[:2] == ["forecastscaler", "run"], command
    args = build_parser().parse_args(command[1:])
    assert args.peering and not args.namespace  # cluster-wide, with peering
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    priorities = {ip: peering_priority(args.priority, ip) for ip in ("10.244.1.7", "10.244.2.7")}
    assert len(set(priorities.values())) == len(priorities)
    assert all(p > 0 for p in priorities.values())


def test_servicemonitor_overlay_selects_the_metrics_service(base: list[Doc]) -> None:
    overlay = list(_build(MANIFESTS / "overlays" / "servicemonitor"))
    monitor = _one(overlay, "ServiceMonitor")
    service = _one(base, "Service", "forecastscaler-metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # Otherwise the target's namespace label overwrites the ForecastScaler's.
    assert endpoint["honorLabels"] is True


# --- the Grafana dashboard ------------------------------------------------------------------


def _exported_names() -> dict[str, str]:
    """Every series name the operator exports, mapped to its metric family."""
    names: dict[str, str] = {}
    families: list[Metric] = list(Metrics().registry.collect())
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    for family in families:
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = family.name
    return names


def _dashboard() -> Doc:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _exprs(dashboard: Doc) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


METRIC = re.compile(r"\bforecastscaler_[a-z_]+")


def test_dashboard_queries_use_only_exported_metrics() -> None:
    exported = _exported_names()
    dashboard = _dashboard()
    queries = [expr for _, expr in _exprs(dashboard)]
    queries += [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    used = set()
    for expr in queries:
        names = METRIC.findall(expr)
        assert names, f"no operator metric in {expr}"
        unknown = [n for n in names if n not in exported]
        assert not unknown, f"{unknown} not exported by forecastscaler.operator.metrics"
        used |= {exported[n] for n in names}
    missing = set(exported.values()) - used
    assert not missing, f"metrics not on the dashboard: {sorted(missing)}"


def test_dashboard_panels_follow_the_object_variables() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for name in ("namespace", "name"):
        assert "label_values(forecastscaler_desired_replicas" in variables[name]["query"]["query"]
        assert variables[name]["query"]["query"].endswith(f", {name})")
    for title, expr in _exprs(dashboard):
        for selector in re.findall(r"forecastscaler_[a-z_]+\{([^}]*)\}", expr):
            assert 'namespace=~"$namespace"' in selector, f"{title}: {expr}"
            assert 'name=~"$name"' in selector, f"{title}: {expr}"
        assert "{" in expr, f"{title}: {expr} selects every object"


def test_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_grafana_overlay_ships_the_same_dashboard() -> None:
    copy = MANIFESTS / "overlays" / "grafana" / "grafana-dashboard.json"
    assert copy.read_bytes() == DASHBOARD.read_bytes(), (
        "cp manifests/grafana-dashboard.json manifests/overlays/grafana/"
    )
    generator = _load(copy.parent / "kustomization.yaml")["configMapGenerator"][0]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"


# --- the kind workflow ----------------------------------------------------------------------


def test_kind_workflow_uses_the_repositorys_paths_and_image(deployment: Doc) -> None:
    workflow = _load(WORKFLOW)
    job = workflow["jobs"]["kind"]
    script = "\n".join(step.get("run", "") for step in job["steps"])
    paths = set(re.findall(r"\b(?:manifests|crds|examples|tests)/[\w./-]*\w", script))
    assert {"examples/demo/deployment.yaml", "examples/demo/forecastscaler.yaml"} <= paths
    for path in paths:
        assert (ROOT / path).exists(), f"the workflow names {path}, which does not exist"
    assert "kubectl apply -k manifests/" in script
    assert "python -m pytest tests/cluster" in script
    for variable in ("FORECASTSCALER_TEST_KUBECONFIG", "FORECASTSCALER_TEST_PROMETHEUS_URL"):
        assert variable in script
    # The image kind loads is the one the Deployment runs.
    assert job["env"]["IMAGE"] == _container(deployment)["image"]
