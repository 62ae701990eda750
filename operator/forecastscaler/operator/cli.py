"""The `forecastscaler` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from forecastscaler.operator.crd import crd_yaml


def _run(args: argparse.Namespace) -> int:
    import kopf

    from forecastscaler.operator import handlers  # noqa: F401 - registers the handlers
    from forecastscaler.operator.settings import OperatorConfig

    base = OperatorConfig.from_env()
    cfg = OperatorConfig(
        prometheus_url=args.prometheus_url or base.prometheus_url,
        fit_workers=args.fit_workers or base.fit_workers,
        prometheus_timeout=base.prometheus_timeout,
        metrics_port=base.metrics_port,
    )
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(config=cfg),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forecastscaler",
        description="Predictive autoscaler for Kubernetes: scales ahead of forecast load.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("crd", help="print the ForecastScaler CustomResourceDefinition (YAML)")

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--prometheus-url",
        help="default Prometheus for objects that name none (env FORECASTSCALER_PROMETHEUS_URL)",
    )
    run.add_argument("--fit-workers", type=int, help="size of the model-fitting pool")
    run.add_argument(
        "-n", "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    run.add_argument(
        "--peering", help="Kopf peering name for HA (default: standalone, one replica)"
    )
    run.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "crd":
        sys.stdout.write(crd_yaml())
        return 0
    if args.command == "run":
        return _run(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
