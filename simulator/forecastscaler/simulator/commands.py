"""The simulator's subcommands of `forecastscaler`: `serve-load` (a trace as a live metric, the
demo's load) and `simulate` (its implementation is in `command.py`)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve-load` and `simulate` to the `forecastscaler` command."""
    load = subparsers.add_parser(
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
    load.set_defaults(handler=_serve_load)

    from forecastscaler.simulator.command import add_arguments

    simulate = subparsers.add_parser(
        "simulate",
        help="replay a trace through the ForecastScaler decision, the HPA and an oracle",
    )
    add_arguments(simulate)
    simulate.set_defaults(handler=_simulate)


def _serve_load(args: argparse.Namespace) -> int:
    """Replay a trace as a live metric (the demo's load), after writing its past for backfill."""
    import time
    from pathlib import Path

    from forecastscaler.core.traces import TraceError, bundled_trace_path, load_trace
    from forecastscaler.simulator.live import (
        LoadExporter,
        TracePlayer,
        openmetrics_history,
        write_targets_file,
    )

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
