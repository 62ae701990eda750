"""The operator's glue around the model adapter (forecastscaler.core.model): refits, updates and
predicts run in the bounded fit pool, never on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor

import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec, parse_duration
from forecastscaler.core.decision import ForecastPath
from forecastscaler.core.model import ModelState, _fit, _update, path_from_model, training_history


async def refresh(
    state: ModelState,
    spec: ForecastScalerSpec,
    now: float,
    pool: Executor,
    flagged: Sequence[pd.Timestamp] = (),
) -> float | None:
    """Refit (on schedule or when the spec changed) or update the model, in the pool; the
    seconds the refit took (in the worker), or None when it only updated. Steps in `flagged`
    (anomalies) are left out of the refit. Raises InsufficientHistory when even the simplest
    model cannot fit."""
    loop = asyncio.get_running_loop()
    key = state.key
    assert key is not None
    retrain = parse_duration(spec.forecast.retrain_interval)
    if state.needs_refit(key, now, retrain):
        history = training_history(state.history, flagged)
        model, seconds = await loop.run_in_executor(
            pool, _fit, key.models, key.horizon_steps, history
        )
        state.model, state.fitted_at = model, now
        state.fits += 1
        return seconds
    assert state.model is not None
    await loop.run_in_executor(pool, _update, state.model, state.history)
    return None


async def forecast_path(
    state: ModelState, spec: ForecastScalerSpec, now: float, pool: Executor
) -> ForecastPath | None:
    """path_from_model for the operator's cached model, computed in the pool."""
    if state.model is None or not len(state.history):
        return None
    loop = asyncio.get_running_loop()
    end = pd.Timestamp(state.history.index[-1]).timestamp()
    return await loop.run_in_executor(
        pool, path_from_model, state.model, state.model_name, spec, now, end
    )


__all__ = ["forecast_path", "refresh"]
