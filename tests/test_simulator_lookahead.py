"""No look-ahead: decisions before step k are the same whatever the trace holds from k on."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from forecastscaler.simulator.api import make_policies
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.fit_ahead import FitAhead
from forecastscaler.simulator.forecast_policy import ForecastPolicy
from forecastscaler.simulator.world import World


def _world(values: np.ndarray, step: float = 60.0) -> World:
    index = pd.date_range(
        "2024-01-01", periods=len(values), freq=pd.Timedelta(seconds=step), tz="UTC"
    )
    return World.build("t", pd.Series(values, index=index), step, 30.0, 180.0, 0.5)


def _decisions(world: World, kind: str, fit_workers: int = 0) -> list[tuple[float, int, int]]:
    [policy], _, _ = make_policies(world, [kind], fit_workers=fit_workers)
    try:
        rep = replay(world, policy)
    finally:
        if isinstance(policy, ForecastPolicy):
            policy.close()
    return [(a.time, a.before, a.after) for a in rep.actions]


@pytest.mark.parametrize(
    ("kind", "n", "fit_workers"),
    [
        pytest.param("hpa", 2000, 0, id="hpa"),
        pytest.param("forecast", 1000, 0, id="forecast", marks=pytest.mark.slow),
        # Refits fitted ahead in a worker read the trace ahead by design; they must only ever
        # be used on the history the replay has at the refit.
        pytest.param("forecast", 1000, 1, id="forecast-fit-ahead", marks=pytest.mark.slow),
    ],
)
def test_decisions_before_k_ignore_the_future(kind: str, n: int, fit_workers: int) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    base = 200 + 100 * np.sin(2 * np.pi * t / 120) + rng.normal(0, 15, n)
    k = int(n * 0.75)
    changed = base.copy()
    changed[k:] = rng.normal(900, 300, n - k).clip(0)  # a wildly different future
    changed[k + 5 : k + 9] = np.nan
    a, b = _world(base), _world(changed)
    cutoff = a.time(k)
    da, db = _decisions(a, kind, fit_workers), _decisions(b, kind, fit_workers)
    before_a = [d for d in da if d[0] < cutoff]
    before_b = [d for d in db if d[0] < cutoff]
    assert before_a == before_b
    assert len(before_a) > 5
    # ...and the future does matter afterwards, so the test can see a leak.
    assert da != db


def test_oracle_reads_the_future_by_design() -> None:
    n = 400
    base = np.full(n, 100.0)
    changed = base.copy()
    changed[300:] = 1000.0
    cutoff = _world(base).time(300)
    before = [d for d in _decisions(_world(changed), "oracle") if d[0] < cutoff]
    assert before and before[-1][2] > before[0][1]


@pytest.mark.slow
def test_fitting_ahead_changes_nothing_but_the_time() -> None:
    """The same replay with refits fitted ahead in a worker and fitted in place: the same
    decisions and forecasts, and the worker's fits were used."""
    rng = np.random.default_rng(5)
    n = 1500
    t = np.arange(n)
    values = 200 + 100 * np.sin(2 * np.pi * t / 240) + rng.normal(0, 10, n)
    values[900:910] = np.nan  # a gap: the refit after it must still match or fit in place
    world = _world(values)
    runs = []
    for workers in (0, 1):
        [policy], _, _ = make_policies(world, ["forecast"], fit_workers=workers)
        assert isinstance(policy, ForecastPolicy)
        try:
            rep = replay(world, policy)
        finally:
            policy.close()
        runs.append((rep, policy))
    (in_place, p0), (ahead, p1) = runs
    assert [(a.time, a.after) for a in in_place.actions] == [
        (a.time, a.after) for a in ahead.actions
    ]
    f0, f1 = p0.sync_frame(), p1.sync_frame()
    pd.testing.assert_frame_equal(f0, f1)
    assert p0.fit_ahead is None
    assert p1.fit_ahead is not None and p1.fit_ahead.hits >= 5
    assert p1.model.fits == p0.model.fits


def test_a_dead_fitting_worker_means_fitting_in_place() -> None:
    """A worker that died (killed, or refused to start) fails neither a refit nor the next
    prefetch, even when its fit was not wanted: the replay fits in place from then on."""
    index = pd.date_range("2024-01-01", periods=400, freq="1min", tz="UTC")
    history = pd.Series(100 + np.sin(np.arange(400) / 20.0), index=index)
    ahead = FitAhead(("seasonalBlend",), 5, workers=1)
    try:
        ahead.submit(0.0, history)
        pool = ahead._pool
        assert pool is not None
        for process in list(pool._processes.values()):
            process.kill()
            process.join()
        deadline = time.monotonic() + 30
        while not pool._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ahead.take(history.iloc[:-1]) is None  # a refit on other data: not wanted
        ahead.submit(1.0, history)  # on the dead pool: must not raise
        assert ahead.broken is not None
        assert ahead.take(history) is None
        ahead.submit(2.0, history)
        assert ahead.take(history) is None
    finally:
        ahead.close()
