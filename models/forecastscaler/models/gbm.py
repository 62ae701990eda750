"""Gradient-boosted trees on the window, calendar and season features: the tree learner.

One histogram gradient-boosting model per step ahead (direct multi-horizon), each predicting
the scale-free change (v[t+h] - v[t]) / scale with the absolute-error loss, since the mean
absolute error at the horizon is what the models are compared on. Trees split on whatever
matters (the hour, how far now is from yesterday, a ramp in the last minutes) without
assuming a shape, and scale-free targets let one fit serve a series whose level moves.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import ThreadpoolController

from forecastscaler.models.base import Capabilities, FloatArray
from forecastscaler.models.features import WindowForecaster

# Leaves of at least 20 origins, so no leaf learns a single incident; 63 bins per feature fit
# about a quarter faster than 255 and forecast as well on these scale-free features.
MIN_LEAF = 20
MAX_BINS = 63
# The boosting's OpenMP threads. Fits run side by side in a worker pool and forecast from a
# single row, where more threads only add contention (on a busy two-core machine, many times
# the single-threaded time).
THREADS = 1


@functools.cache
def _openmp() -> Any:
    """The process's OpenMP pools, found once (finding them costs milliseconds; limiting them
    then costs microseconds)."""
    return ThreadpoolController()


def one_thread() -> AbstractContextManager[Any]:
    """Run the boosting on THREADS OpenMP threads within the block."""
    limiter: AbstractContextManager[Any] = _openmp().limit(limits=THREADS, user_api="openmp")
    return limiter


class GradientBoosting(WindowForecaster):
    """Direct multi-horizon gradient boosting of the scale-free change over the next steps."""

    name: ClassVar[str] = "gradientBoosting"
    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_seasonality=False, supports_intervals=True
    )

    def __init__(
        self,
        horizon: int = 5,
        window: int = 16,
        context: int = 64,
        season: int | None = None,
        max_iter: int = 40,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 15,
        max_train: int = 2000,
        max_origins: int = 1500,
        seed: int = 0,
    ) -> None:
        super().__init__(
            horizon=horizon,
            window=window,
            context=context,
            season=season,
            max_train=max_train,
            max_origins=max_origins,
        )
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.seed = seed

    def _learn(self, features: FloatArray, changes: FloatArray) -> None:
        boosters: list[HistGradientBoostingRegressor | float] = []
        with one_thread():
            for h in range(self.horizon):
                seen = np.isfinite(changes[:, h])
                if np.count_nonzero(seen) < 2 * MIN_LEAF:  # hardly ever observed: no change
                    boosters.append(float(np.median(changes[seen, h])) if seen.any() else 0.0)
                    continue
                booster = HistGradientBoostingRegressor(
                    loss="absolute_error",
                    learning_rate=self.learning_rate,
                    max_iter=self.max_iter,
                    max_leaf_nodes=self.max_leaf_nodes,
                    min_samples_leaf=MIN_LEAF,
                    max_bins=MAX_BINS,
                    early_stopping=False,
                    random_state=self.seed,
                )
                boosters.append(booster.fit(features[seen], changes[seen, h]))
        self.learned_ = boosters

    def _infer(self, features: FloatArray) -> FloatArray:
        out = np.empty((len(features), self.horizon))
        with one_thread():
            for h, booster in enumerate(self.learned_):
                if isinstance(booster, float):
                    out[:, h] = booster
                else:
                    out[:, h] = booster.predict(features)
        return out
