"""Refits computed ahead of the replay, in a worker process.

In a replay the refit schedule is known in advance: the forecast policy refits when
`retrainInterval` of simulated time has passed since its last fit, on the history window it
can see then, with the steps the batch anomaly detector flagged masked. None of that depends
on the policy's decisions. So while the replay runs the syncs of one retrain interval, a
worker fits the model for the next refit. The replay takes the prefetched model only when it
was fitted on exactly the history the refit sees (same timestamps, same values), and fits in
place otherwise (a gap at the refit sync, for instance): decisions are identical either way,
only faster. Fitting is deterministic, so a model fitted in the worker equals one fitted here.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pandas as pd

from forecastscaler.models.base import Forecaster
from forecastscaler.models.selection import make_forecaster


def _fit(
    models: tuple[str, ...], horizon_steps: int, history: pd.Series
) -> tuple[Forecaster, float]:
    started = time.perf_counter()
    model = make_forecaster(list(models), horizon_steps).fit(history)
    return model, time.perf_counter() - started


def _same(a: pd.Series, b: pd.Series) -> bool:
    return bool(
        len(a) == len(b)
        and a.index.equals(b.index)
        and np.array_equal(
            a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64), equal_nan=True
        )
    )


UNGUARDED_SCRIPT = (
    "simulate() was called while a fitting worker imported the script that started it: "
    "a worker process (fit_workers > 0) imports the main script, as every spawned "
    "multiprocessing worker does, and this script calls simulate() at import. Put the call "
    'under `if __name__ == "__main__":` (then workers speed the replay up), or pass '
    "fit_workers=0. The replay in the main process goes on fitting in place."
)


def refuse_in_bootstrapping_worker() -> None:
    """Stop a spawned worker that is importing the user's main script from replaying it all
    again. Without a ``__main__`` guard the worker would run the caller's whole simulation
    before it could fit anything, and the parent would wait for it (15x slower, side effects
    twice); failing here breaks the pool at once, and the parent fits in place."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(UNGUARDED_SCRIPT)


class FitAhead:
    """One fit at a time, ahead of the replay, in `workers` spawned processes (spawned, not
    forked: the replay's process has torch and OpenMP thread pools that a fork would copy
    mid-state)."""

    def __init__(self, models: tuple[str, ...], horizon_steps: int, workers: int = 1) -> None:
        self.models = models
        self.horizon_steps = horizon_steps
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: tuple[float, pd.Series, Future[tuple[Forecaster, float]]] | None = None
        self.hits = 0
        self.misses = 0
        self.worker_seconds = 0.0
        self.broken: str | None = None
        """Why the worker stopped being used (it died); then every refit is fitted in place."""

    def submit(self, at: float, history: pd.Series) -> None:
        """Start fitting the model the refit at simulated time `at` will want."""
        self.discard()
        if self.broken is not None:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        try:
            future = self._pool.submit(_fit, self.models, self.horizon_steps, history)
        except BrokenProcessPool as exc:  # the worker died while its fit was not wanted
            self._broke(exc)
            return
        self._pending = (at, history, future)

    def take(self, history: pd.Series) -> Forecaster | None:
        """The prefetched model for a refit on `history`, or None when there is none
        for exactly that (then the caller fits in place). A fit that failed in the worker
        raises here, as it would have in place."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        _, fitted_on, future = pending
        if not _same(fitted_on, history):
            future.cancel()
            self.misses += 1
            return None
        try:
            model, seconds = future.result()
        except BrokenProcessPool as exc:
            # The worker died (it could not start, or was killed): fitting in place gives the
            # same model, so the replay goes on without it.
            self._broke(exc)
            self.misses += 1
            return None
        self.worker_seconds += seconds
        self.hits += 1
        return model

    def _broke(self, exc: BaseException) -> None:
        cause = exc.__cause__ or exc.__context__
        self.broken = "; ".join(str(e) for e in (exc, cause) if e is not None and str(e))
        self.close()

    def discard(self) -> None:
        if self._pending is not None:
            self._pending[2].cancel()
            self._pending = None

    def close(self) -> None:
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
