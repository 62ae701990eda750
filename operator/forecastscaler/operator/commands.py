"""The `forecastscaler` command."""

from __future__ import annotations

import argparse
import ipaddress
import os
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


def _serve_load(args: argparse.Namespace) -> int:
    """Replay a trace as a live metric (the demo's load), after writing its past for backfill."""
    import time
    from pathlib import Path

    from forecastscaler.simulator.live import (
        LoadExporter,
        TracePlayer,
        openmetrics_history,
        write_targets_file,
    )
    from forecastscaler.simulator.traces import TraceError, bundled_trace_path, load_trace

    try:
        trace = load_trace(args.trace or bundled_trace_path(), column=args.column)
    except TraceError as exc:
        print(f"forecastscaler serve-load: {exc}", file=sys.stderr)
        return 2
    start = time.time()
    player = TracePlayer(
        trace.load.to_numpy(),
        step_seconds=args.step_seconds,
        start=start,
        offset=args.history_steps,
        scale=args.scale,
    )
    labels = dict(item.split("=", 1) for item in args.label)
    if args.backfill_out:
        first = start - args.history_steps * args.step_seconds
        text = openmetrics_history(args.metric, labels, player, first, start, args.step_seconds)
        out = Path(args.backfill_out)
        out.with_suffix(".tmp").write_text(text)
        out.with_suffix(".tmp").replace(out)
    exporter = LoadExporter(args.metric, labels, player, port=args.port).start()
    if args.targets_dir:
        write_targets_file(Path(args.targets_dir), "forecastscaler-demo", exporter.port, "demo")
    print(
        f"serving {args.metric} from {trace.name} on 127.0.0.1:{exporter.port}: one trace step "
        f"({trace.step}) every {args.step_seconds:g}s",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        exporter.stop()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from forecastscaler.simulator.command import run

    return run(args)


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

    load = sub.add_parser(
        "serve-load",
        help="replay a trace as a live Prometheus metric in compressed time (demo load)",
    )
    load.add_argument("--trace", help="CSV trace (default: the bundled Wikipedia trace)")
    load.add_argument("--column", default="value", help="value column of the trace")
    load.add_argument("--metric", default="demo_requests_per_second")
    load.add_argument("--label", action="append", default=["app=web"], help="key=value")
    load.add_argument("--step-seconds", type=float, default=5.0, help="wall seconds per step")
    load.add_argument("--scale", type=float, default=1 / 3600, help="multiply values by this")
    load.add_argument(
        "--history-steps", type=int, default=168, help="trace steps already in the past"
    )
    load.add_argument("--backfill-out", help="write the past as OpenMetrics for promtool")
    load.add_argument("--targets-dir", help="Prometheus file_sd directory to register in")
    load.add_argument("--port", type=int, default=9101)

    from forecastscaler.simulator.command import add_arguments

    simulate = sub.add_parser(
        "simulate",
        help="replay a trace through the ForecastScaler decision, the HPA and an oracle",
    )
    add_arguments(simulate)

    from forecastscaler.simulator.backtest import add_backtest_arguments

    backtest = sub.add_parser(
        "backtest",
        help="rolling-origin evaluation of every model and the ensemble on a trace",
    )
    add_backtest_arguments(backtest)

    from forecastscaler.simulator.detect_command import add_detect_arguments, add_nab_arguments

    detect = sub.add_parser(
        "detect", help="score every step of a trace for anomalies (timestamp,value,anomaly_score)"
    )
    add_detect_arguments(detect)
    nab = sub.add_parser(
        "nab", help="score the anomaly detector on a NAB corpus (standard profile)"
    )
    add_nab_arguments(nab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "crd":
        sys.stdout.write(crd_yaml())
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "serve-load":
        return _serve_load(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "backtest":
        from forecastscaler.simulator.backtest import run_backtest

        return run_backtest(args)
    if args.command == "detect":
        from forecastscaler.simulator.detect_command import run_detect

        return run_detect(args)
    if args.command == "nab":
        from forecastscaler.simulator.detect_command import run_nab

        return run_nab(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
