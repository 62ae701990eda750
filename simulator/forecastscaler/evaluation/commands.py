"""The evaluation's subcommands of `forecastscaler`: `backtest`, `detect` and `nab`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backtest`, `detect` and `nab` to the `forecastscaler` command."""
    from forecastscaler.evaluation.backtest_cli import add_backtest_arguments

    backtest = subparsers.add_parser(
        "backtest",
        help="rolling-origin evaluation of every model and the ensemble on a trace",
    )
    add_backtest_arguments(backtest)
    backtest.set_defaults(handler=_backtest)

    from forecastscaler.evaluation.detect_command import add_detect_arguments, add_nab_arguments

    detect = subparsers.add_parser(
        "detect", help="score every step of a trace for anomalies (timestamp,value,anomaly_score)"
    )
    add_detect_arguments(detect)
    detect.set_defaults(handler=_detect)
    nab = subparsers.add_parser(
        "nab", help="score the anomaly detector on a NAB corpus (standard profile)"
    )
    add_nab_arguments(nab)
    nab.set_defaults(handler=_nab)


def _backtest(args: argparse.Namespace) -> int:
    from forecastscaler.evaluation.backtest_cli import run_backtest

    return run_backtest(args)


def _detect(args: argparse.Namespace) -> int:
    from forecastscaler.evaluation.detect_command import run_detect

    return run_detect(args)


def _nab(args: argparse.Namespace) -> int:
    from forecastscaler.evaluation.detect_command import run_nab

    return run_nab(args)
