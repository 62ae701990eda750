"""The operator's glue around the model work of the sync step: refits, updates, predicts and
the detector run in the bounded fit pool, never on the event loop, and are timed there (the
pure step reads no clock)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

import pandas as pd

from forecastscaler.core.model import AnomalyState, ModelKey, training_history
from forecastscaler.core.sync import ModelResult, ModelWork, run_model_work
from forecastscaler.models.base import Forecaster
from forecastscaler.models.selection import make_forecaster


def _timed(work: ModelWork) -> ModelResult:
    """run_model_work, with the refit's seconds measured in the worker (queueing is not
    fitting)."""
    started = time.perf_counter()
    laps: dict[str, float] = {}

    def lap(phase: str) -> None:
        laps[phase] = time.perf_counter() - started

    result = run_model_work(work, lap=lap)
    return replace(result, seconds=laps["fit"]) if "fit" in laps else result


async def model_work(work: ModelWork, pool: Executor) -> ModelResult:
    """The sync's model work, in the fit pool."""
    return await asyncio.get_running_loop().run_in_executor(pool, _timed, work)


async def observe_detector(
    anomaly: AnomalyState, history: pd.Series, threshold: float, pool: Executor
) -> float | None:
    """Feed the detector the history's new steps, in the fit pool (it refits a forest now and
    then); its score for the newest step."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, anomaly.observe, history, threshold)


def _fit(names: tuple[str, ...], steps: int, history: pd.Series) -> tuple[Forecaster, float]:
    started = time.perf_counter()  # timed in the worker: queueing is not fitting
    model = make_forecaster(names, steps).fit(history)
    return model, time.perf_counter() - started


def first_model(
    anomaly: AnomalyState | None,
    history: pd.Series,
    threshold: float,
    names: tuple[str, ...],
    steps: int,
) -> tuple[AnomalyState | None, float | None, Forecaster, float]:
    """A new object's first detector pass and first fit, in one background job (the detector
    first, so its anomalous steps are left out of the fit): (detector, its score for the
    newest step, the fitted model, the fit's seconds in the worker)."""
    score = anomaly.observe(history, threshold) if anomaly is not None else None
    flagged = anomaly.flagged if anomaly is not None else ()
    model, seconds = _fit(names, steps, training_history(history, flagged))
    return anomaly, score, model, seconds


def first_fit(
    pool: Executor,
    anomaly: AnomalyState | None,
    history: pd.Series,
    threshold: float,
    key: ModelKey,
) -> asyncio.Future[Any]:
    """Start a new object's first detector pass and fit in the background pool."""
    job = asyncio.get_running_loop().run_in_executor(
        pool, first_model, anomaly, history, threshold, key.models, key.horizon_steps
    )
    return asyncio.ensure_future(job)


__all__ = ["first_fit", "first_model", "model_work", "observe_detector"]
