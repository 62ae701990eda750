"""The `forecastscaler` command: one parser, whose subcommands each layer registers.

The operator (`crd`, `run`), the simulator (`serve-load`, `simulate`) and the evaluation
(`backtest`, `detect`, `nab`) each add their own in a `commands.register`; this package, above
them all, is the only code that imports all three. Heavy modules (kopf, the handlers, the replay,
the models) are imported only by the subcommand that runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from forecastscaler.evaluation import commands as evaluation_commands
from forecastscaler.operator import commands as operator_commands
from forecastscaler.simulator import commands as simulator_commands

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forecastscaler",
        description="Predictive autoscaler for Kubernetes: scales ahead of forecast load.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    operator_commands.register(sub)
    simulator_commands.register(sub)
    evaluation_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
