"""No look-ahead: decisions before step k are the same whatever the trace holds from k on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecastscaler.simulator.api import make_policies
from forecastscaler.simulator.engine import replay
from forecastscaler.simulator.world import World


def _world(values: np.ndarray, step: float = 60.0) -> World:
    index = pd.date_range(
        "2024-01-01", periods=len(values), freq=pd.Timedelta(seconds=step), tz="UTC"
    )
    return World.build("t", pd.Series(values, index=index), step, 30.0, 180.0, 0.5)


def _decisions(world: World, kind: str) -> list[tuple[float, int, int]]:
    [policy], _, _ = make_policies(world, [kind])
    rep = replay(world, policy)
    return [(a.time, a.before, a.after) for a in rep.actions]


@pytest.mark.parametrize(
    ("kind", "n"),
    [
        pytest.param("hpa", 2000, id="hpa"),
        pytest.param("forecast", 1000, id="forecast"),
    ],
)
def test_decisions_before_k_ignore_the_future(kind: str, n: int) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    base = 200 + 100 * np.sin(2 * np.pi * t / 120) + rng.normal(0, 15, n)
    k = int(n * 0.75)
    changed = base.copy()
    changed[k:] = rng.normal(900, 300, n - k).clip(0)  # a wildly different future
    changed[k + 5 : k + 9] = np.nan
    a, b = _world(base), _world(changed)
    cutoff = a.time(k)
    da, db = _decisions(a, kind), _decisions(b, kind)
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
