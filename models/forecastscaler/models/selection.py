"""Choosing among models by their backtest at the horizon, and the model names of the API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Self

import pandas as pd

from forecastscaler.models.base import (
    DEFAULT_QUANTILES,
    Capabilities,
    Forecast,
    Forecaster,
    InsufficientHistory,
    NotFitted,
)
from forecastscaler.models.blend import SeasonalBlend
from forecastscaler.models.history import regularize, valid_count
from forecastscaler.models.naive import LastValue, SeasonalNaive


class BestOf(Forecaster):
    """Fits every candidate that the history allows and forecasts with the one whose
    rolling-origin error at the horizon is lowest. Candidates that cannot fit (too little
    history, no season) are skipped; the reasons are kept in `skipped_`."""

    name: ClassVar[str] = "bestOf"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(self, candidates: Sequence[Forecaster]) -> None:
        if not candidates:
            raise ValueError("BestOf needs at least one candidate")
        self.candidates = list(candidates)

    def min_history(self) -> int:
        return min(c.min_history() for c in self.candidates)

    def fit(self, y: pd.Series) -> Self:
        series = regularize(y)
        got = valid_count(series)
        fitted: list[Forecaster] = []
        self.skipped_: dict[str, str] = {}
        for candidate in self.candidates:
            try:
                fitted.append(candidate.fit(series))
            except ValueError as exc:  # InsufficientHistory, UnsuitableSeries
                self.skipped_[candidate.name] = str(exc)
        if not fitted:
            needs = ", ".join(f"{c.name} {c.min_history()}" for c in self.candidates)
            raise InsufficientHistory(f"every model ({needs})", self.min_history(), got)
        self.chosen_ = min(fitted, key=lambda m: m.backtest_error)
        self.errors_ = {m.name: m.backtest_error for m in fitted}
        self.backtest_error_ = self.chosen_.backtest_error
        return self

    def update(self, y: pd.Series) -> Self:
        if not hasattr(self, "chosen_"):
            raise NotFitted("BestOf must be fitted before update")
        self.chosen_.update(y)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        if not hasattr(self, "chosen_"):
            raise NotFitted("BestOf must be fitted before predict")
        return self.chosen_.predict(horizon, quantiles)


MODEL_FACTORIES: dict[str, Callable[[int], Forecaster]] = {
    "seasonalBlend": lambda h: SeasonalBlend(horizon=h),
    "seasonalNaive": lambda h: SeasonalNaive(horizon=h),
    "lastValue": lambda h: LastValue(horizon=h),
}
# The default until the learned ensemble lands: the best of the simple models by backtest.
ENSEMBLE_MEMBERS = ("seasonalBlend", "seasonalNaive", "lastValue")


def make_forecaster(names: Sequence[str], horizon: int) -> Forecaster:
    """The forecaster for the API's `forecast.models` list at a horizon in steps. A lastValue
    fallback is always among the candidates, so any non-empty history can be forecast."""
    expanded: list[str] = []
    for name in names:
        for member in ENSEMBLE_MEMBERS if name == "ensemble" else (name,):
            if member not in MODEL_FACTORIES:
                raise ValueError(f"unknown model {member!r}; known: {sorted(MODEL_FACTORIES)}")
            if member not in expanded:
                expanded.append(member)
    if "lastValue" not in expanded:
        expanded.append("lastValue")
    return BestOf([MODEL_FACTORIES[n](horizon) for n in expanded])
