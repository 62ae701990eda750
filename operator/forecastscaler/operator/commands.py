"""The operator's subcommands of `forecastscaler`: `crd` and `run`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `crd` and `run` to the `forecastscaler` command."""
    crd = subparsers.add_parser(
        "crd", help="print the ForecastScaler CustomResourceDefinition (YAML)"
    )
    crd.set_defaults(handler=_crd)

    run = subparsers.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--prometheus-url",
        help="default Prometheus for objects that name none (env FORECASTSCALER_PROMETHEUS_URL)",
    )
    run.add_argument("--fit-workers", type=int, help="size of the model-fitting pool")
    run.add_argument(
        "--metrics-port",
        type=int,
        help="serve the operator's own metrics on this port at /metrics; 0 turns them off "
        "(env FORECASTSCALER_METRICS_PORT, default 0)",
    )
    run.add_argument(
        "-n", "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    run.add_argument(
        "--peering", help="Kopf peering name for HA (default: standalone, one replica)"
    )
    run.add_argument(
        "--priority",
        type=int,
        help="Kopf peering priority: the highest alive replica acts, the others stand by "
        "(default: derived from env POD_IP, so replicas of one Deployment differ)",
    )
    run.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(handler=_run)


def _crd(_args: argparse.Namespace) -> int:
    from forecastscaler.operator.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def _run(args: argparse.Namespace) -> int:
    import kopf

    from forecastscaler.operator import handlers  # noqa: F401 - registers the handlers
    from forecastscaler.operator.settings import OperatorConfig

    base = OperatorConfig.from_env()
    cfg = OperatorConfig(
        prometheus_url=args.prometheus_url or base.prometheus_url,
        fit_workers=args.fit_workers or base.fit_workers,
        prometheus_timeout=base.prometheus_timeout,
        metrics_port=base.metrics_port if args.metrics_port is None else args.metrics_port,
    )
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=peering_priority(args.priority, os.environ.get("POD_IP")),
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(config=cfg),
    )
    return 0


def peering_priority(given: int | None, pod_ip: str | None) -> int:
    """This replica's Kopf peering priority: the given one, or one derived from the pod's IP,
    so replicas of one Deployment differ without per-pod configuration (with equal
    priorities Kopf pauses them all). 0 outside a pod."""
    if given is not None:
        return given
    if not pod_ip:
        return 0
    try:
        return int(ipaddress.ip_address(pod_ip)) % 2**31
    except ValueError:
        return 0
