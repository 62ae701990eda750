"""The models of the API by name, and the forecaster the operator builds from a spec's list."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from forecastscaler.models.blend import SeasonalBlend
from forecastscaler.models.calibrated import CalibratedForecaster
from forecastscaler.models.ensemble import Ensemble
from forecastscaler.models.naive import LastValue, SeasonalNaive


def _gradient_boosting(h: int) -> CalibratedForecaster:
    from forecastscaler.models.gbm import GradientBoosting

    return GradientBoosting(horizon=h)


def _neural_net(h: int) -> CalibratedForecaster:
    from forecastscaler.models.neural import NeuralNet

    return NeuralNet(horizon=h)


def _prophet(h: int) -> CalibratedForecaster:
    from forecastscaler.models.prophet_model import ProphetForecaster

    return ProphetForecaster(horizon=h)


# The learning members import their libraries (scikit-learn, torch, Prophet) only when built.
MODEL_FACTORIES: dict[str, Callable[[int], CalibratedForecaster]] = {
    "seasonalBlend": lambda h: SeasonalBlend(horizon=h),
    "gradientBoosting": _gradient_boosting,
    "neuralNet": _neural_net,
    "prophet": _prophet,
    "seasonalNaive": lambda h: SeasonalNaive(horizon=h),
    "lastValue": lambda h: LastValue(horizon=h),
}
# What "ensemble" stands for in the API's forecast.models.
ENSEMBLE_MEMBERS = tuple(MODEL_FACTORIES)


def member_names(names: Sequence[str]) -> list[str]:
    """The API's `forecast.models` list as member names: "ensemble" expanded, duplicates
    dropped, and lastValue always last among them as the fallback for short histories."""
    expanded: list[str] = []
    for name in names:
        for member in ENSEMBLE_MEMBERS if name == "ensemble" else (name,):
            if member not in MODEL_FACTORIES:
                raise ValueError(f"unknown model {member!r}; known: {sorted(MODEL_FACTORIES)}")
            if member not in expanded:
                expanded.append(member)
    if "lastValue" not in expanded:
        expanded.append("lastValue")
    return expanded


def make_forecaster(names: Sequence[str], horizon: int) -> Ensemble:
    """The forecaster for the API's `forecast.models` list at a horizon in steps: the ensemble
    of those members. A lastValue member is always among them, so any history of two or more
    observations can be forecast."""
    return Ensemble([MODEL_FACTORIES[n](horizon) for n in member_names(names)], horizon=horizon)
