"""The forecaster contract every model follows (after statsforecast and sktime).

Hyper-parameters go in `__init__`; `fit(history)` learns and returns self; learned state lives
in attributes ending in `_`; `update(history)` brings a fitted model up to date with new
observations without relearning; `predict(horizon)` returns the point forecast and quantile
paths. Histories are pandas Series on a regular DatetimeIndex with NaN for gaps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


class InsufficientHistory(ValueError):
    """Too little usable history for a model; says how much it needs."""

    def __init__(self, model: str, needed: int, got: int) -> None:
        super().__init__(f"{model} needs at least {needed} observations; got {got}")
        self.model = model
        self.needed = needed
        self.got = got


class NotFitted(RuntimeError):
    """predict or update called before fit."""


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, so callers choose and fall back without trying."""

    needs_seasonality: bool
    supports_intervals: bool


@dataclass(frozen=True)
class Forecast:
    """Point forecast and quantile paths over the next `len(index)` steps."""

    index: pd.DatetimeIndex
    point: FloatArray
    quantiles: dict[float, FloatArray]
    model: str

    def quantile(self, q: float) -> FloatArray:
        """The path for quantile q, interpolated between the computed levels."""
        if q in self.quantiles:
            return self.quantiles[q]
        levels = sorted(self.quantiles)
        if not levels:
            return self.point
        if q <= levels[0]:
            return self.quantiles[levels[0]]
        if q >= levels[-1]:
            return self.quantiles[levels[-1]]
        hi = next(level for level in levels if level > q)
        lo = max(level for level in levels if level < q)
        w = (q - lo) / (hi - lo)
        return (1 - w) * self.quantiles[lo] + w * self.quantiles[hi]


class Forecaster(ABC):
    """Base class for every forecasting model."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @abstractmethod
    def min_history(self) -> int:
        """Fewest valid observations `fit` accepts with these hyper-parameters."""

    @abstractmethod
    def fit(self, y: pd.Series) -> Self:
        """Learn from a history; returns self."""

    def update(self, y: pd.Series) -> Self:
        """Bring the model up to date with a newer history. The default refits; models with
        expensive fits override it to keep what they learned."""
        return self.fit(y)

    @abstractmethod
    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        """Forecast the next `horizon` steps after the end of the history."""

    @property
    def backtest_error(self) -> float:
        """Mean absolute error at the calibration horizon over the last rolling-origin
        backtest (lower is better); inf when the model could not backtest."""
        value = getattr(self, "backtest_error_", None)
        return float("inf") if value is None else float(value)
