"""The rounds of one ForecastScaler (`rounds.run_rounds`, the Kopf daemon's body) in virtual
time: the start-to-start schedule, overruns, the uid spread of the first rounds and refits,
failed syncs, stopping and cancellation, and the Kopf handler's wiring of it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import kopf
import pytest

# Kopf's own stop flag, as it hands it to a daemon (not exported under a public name).
from kopf._cogs.aiokits.aioenums import FlagSetter
from kopf._core.intents.stoppers import DaemonStoppingReason

from forecastscaler.operator.handlers import autoscale
from forecastscaler.operator.reconcile import ObjectState
from forecastscaler.operator.rounds import FAILED_ROUND_INTERVAL, run_rounds, spread_fraction
from tests.fakes import VirtualClock

UID = "0b6c2d3e-5f1a-4c8b-9d7e-1234567890ab"
SPREAD = spread_fraction(UID)


class Boom(RuntimeError):
    pass


@dataclass
class FakeSync:
    """A sync that takes `durations[k]` virtual seconds in round k and returns `intervals[k]`
    (None: raises); after the last round it stops the object (as a deletion would)."""

    clock: VirtualClock
    intervals: tuple[float | None, ...]
    durations: tuple[float, ...]
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    first_refits: list[float] = field(default_factory=list)

    async def __call__(self, state: ObjectState) -> float:
        k = len(self.starts)
        self.starts.append(self.clock())
        self.first_refits.append(state.model.first_refit)
        await self.clock.sleep(self.durations[k])
        self.ends.append(self.clock())
        if k == len(self.intervals) - 1:
            self.clock.stop_at = self.clock()
        interval = self.intervals[k]
        if interval is None:
            raise Boom("sync blew up")
        return interval


def lagging(clock: VirtualClock, lag: float) -> Callable[[float], Awaitable[None]]:
    """A sleep that wakes `lag` seconds late, as a busy event loop does."""

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds + lag)

    return sleep


async def drive(sync: FakeSync, lag: float = 0.0, uid: str = UID) -> ObjectState:
    clock = sync.clock
    return await run_rounds(
        sync,
        uid=uid,
        clock=clock,
        sleep=lagging(clock, lag) if lag else clock.sleep,
        stopped=clock.stopped,
    )


@dataclass(frozen=True)
class Schedule:
    intervals: tuple[float | None, ...]
    """What each round's sync returns (None: it raises)."""
    durations: tuple[float, ...]
    gaps: tuple[float, ...]
    """Start-to-start gaps from the second round on (the first gap is the spread's)."""
    lag: float = 0.0


SCHEDULES = {
    "rounds-start-an-interval-after-the-previous-began": Schedule(
        (10,) * 5, (2,) * 5, (10, 10, 10)
    ),
    "long-syncs-do-not-push-later-rounds-back": Schedule((10,) * 5, (1, 7, 9, 3, 1), (10, 10, 10)),
    "an-overrun-starts-the-next-round-at-once": Schedule((10,) * 5, (1, 1, 14, 1, 1), (10, 14, 10)),
    "missed-rounds-are-skipped-not-caught-up": Schedule(
        (10,) * 6, (1, 1, 35, 1, 1, 1), (10, 35, 10, 10)
    ),
    "the-interval-each-sync-returns-sets-the-next-gap": Schedule(
        (10, 10, 5, 5, 20, 20), (1,) * 6, (10, 5, 5, 20)
    ),
    "a-failed-sync-is-retried-30s-after-it-began": Schedule(
        (10, 10, None, 10, 10), (1, 1, 2, 1, 1), (10, FAILED_ROUND_INTERVAL, 10)
    ),
    "late-wake-ups-do-not-drift-the-schedule": Schedule((10,) * 5, (1,) * 5, (10, 10, 10), lag=0.5),
}


@pytest.mark.parametrize("case", SCHEDULES.values(), ids=SCHEDULES.keys())
async def test_schedule(case: Schedule) -> None:
    clock = VirtualClock(1000.0)
    sync = FakeSync(clock, case.intervals, case.durations)
    await drive(sync, lag=case.lag)
    assert len(sync.starts) == len(case.intervals)
    first = case.intervals[0] or FAILED_ROUND_INTERVAL
    assert sync.starts[1] == pytest.approx(sync.ends[0] + first * SPREAD + case.lag)
    gaps = [b - a for a, b in pairwise(sync.starts[1:])]
    assert gaps == pytest.approx(list(case.gaps))


SPREADS = {
    "uid-a": ("3f0e1f5c-0000-4000-8000-000000000001", 30.0, None),
    "uid-b": ("3f0e1f5c-0000-4000-8000-000000000002", 30.0, None),
    "uid-c-long-interval": ("3f0e1f5c-0000-4000-8000-000000000003", 300.0, None),
    "a-failed-first-round-spreads-its-retry": ("3f0e1f5c-0000-4000-8000-000000000004", 30.0, Boom),
}


@pytest.mark.parametrize(("uid", "interval", "fails"), SPREADS.values(), ids=SPREADS.keys())
async def test_the_second_round_and_the_first_refit_are_spread_by_uid(
    uid: str, interval: float, fails: type[Exception] | None
) -> None:
    clock = VirtualClock(50.0)
    first: float | None = None if fails else interval
    sync = FakeSync(clock, (first, interval, interval), (3, 1, 1))
    state = await drive(sync, uid=uid)
    spread = spread_fraction(uid)
    wait = FAILED_ROUND_INTERVAL if fails else interval
    assert sync.starts[1] - sync.ends[0] == pytest.approx(wait * spread)
    assert sync.starts[2] - sync.starts[1] == pytest.approx(interval)
    # The first refit's fraction of retrainInterval is set before the first sync, and kept.
    assert sync.first_refits == [0.5 + 0.5 * spread] * 3
    assert state.model.first_refit == 0.5 + 0.5 * spread


def test_spread_fraction_is_stable_and_spread_over_zero_to_one() -> None:
    # Pinned: a restarted operator (another process, another version) must spread alike.
    assert spread_fraction("") == pytest.approx(0.889_415_994_75, abs=1e-10)
    assert spread_fraction(UID) == spread_fraction(str(uuid.UUID(UID)))
    many = [spread_fraction(str(uuid.uuid5(uuid.NAMESPACE_URL, f"fs-{i}"))) for i in range(2000)]
    assert all(0.0 <= f < 1.0 for f in many)
    assert len(set(many)) == len(many)
    for lo in (0.0, 0.25, 0.5, 0.75):  # about a quarter of the objects in each quarter
        share = sum(lo <= f < lo + 0.25 for f in many) / len(many)
        assert 0.2 < share < 0.3, (lo, share)


async def test_a_passed_state_is_the_one_synced_and_returned() -> None:
    clock = VirtualClock()
    state = ObjectState()
    seen: list[ObjectState] = []

    async def sync(s: ObjectState) -> float:
        seen.append(s)
        clock.stop_at = clock()
        return 10.0

    got = await run_rounds(
        sync, uid=UID, clock=clock, sleep=clock.sleep, stopped=clock.stopped, state=state
    )
    assert got is state and seen == [state]


# ------------------------------------------------------------------------------ stop, cancel


async def test_stopped_before_the_first_round_syncs_nothing() -> None:
    clock = VirtualClock(stop_at=0.0)
    sync = FakeSync(clock, (10,), (1,))
    await drive(sync)
    assert sync.starts == []


async def test_a_stop_during_the_wait_ends_it_at_once_without_another_round() -> None:
    clock = VirtualClock()
    sync = FakeSync(clock, (10,) * 10, (1,) * 10)
    # Round 2 starts at 1 + 10 * SPREAD and is due again 10 s later; stop halfway through.
    stop = 1 + 10 * SPREAD + 5
    clock.stop_at = stop
    await drive(sync)
    assert len(sync.starts) == 2
    assert clock() == pytest.approx(stop), "the wait returns when stopped, not when due"


async def test_a_stop_during_a_sync_lets_it_finish_and_starts_no_other() -> None:
    clock = VirtualClock()
    sync = FakeSync(clock, (10, 10), (1, 4))  # stops itself at the end of round 2
    await drive(sync)
    assert len(sync.starts) == 2
    assert clock() == sync.ends[-1], "a stopped object's wait returns at once"


BLOCKED = {"in-the-sync": "sync", "in-the-wait": "sleep"}


@pytest.mark.parametrize("where", BLOCKED.values(), ids=BLOCKED.keys())
async def test_cancellation_propagates_and_is_not_a_failed_sync(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock()
    forever = asyncio.Event()
    rounds: list[float] = []

    async def sync(state: ObjectState) -> float:
        rounds.append(clock())
        if where == "sync":
            await forever.wait()
        return 10.0

    async def sleep(seconds: float) -> None:
        await forever.wait()

    task = asyncio.create_task(
        run_rounds(sync, uid=UID, clock=clock, sleep=sleep, stopped=clock.stopped)
    )
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with caplog.at_level(logging.ERROR), pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)  # a swallowed cancel: TimeoutError instead
    assert rounds == [0.0]
    assert "sync failed" not in caplog.text


async def test_a_failed_sync_is_logged_and_the_rounds_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock()
    sync = FakeSync(clock, (None, None, 10), (1, 1, 1))
    with caplog.at_level(logging.ERROR, logger="forecastscaler"):
        await drive(sync)
    assert len(sync.starts) == 3
    failed = [r for r in caplog.records if r.getMessage() == "sync failed"]
    assert len(failed) == 2 and all(r.exc_info and r.exc_info[0] is Boom for r in failed)


# ------------------------------------------------------------------------------ Kopf handler


class FakeMetrics:
    def __init__(self) -> None:
        self.forgotten: list[tuple[str, str]] = []

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


class FakeReconciler:
    """What the handler uses of a Reconciler: `sync`, and `s.metrics.forget`."""

    def __init__(self, setter: FlagSetter[DaemonStoppingReason], rounds: int) -> None:
        self.setter, self.rounds = setter, rounds
        self.metrics = FakeMetrics()
        self.s = self
        self.states: list[ObjectState] = []

    async def sync(self, body: Any, state: ObjectState, logger: Any) -> float:
        self.states.append(state)
        if len(self.states) == self.rounds:
            self.setter.set(DaemonStoppingReason.RESOURCE_DELETED)  # deleted meanwhile
        return 0.01


async def test_the_kopf_daemon_runs_the_rounds_until_stopped_and_forgets_the_metrics() -> None:
    setter: FlagSetter[DaemonStoppingReason] = FlagSetter()
    reconciler = FakeReconciler(setter, rounds=3)
    body = kopf.Body({"metadata": {"name": "web", "namespace": "shop", "uid": UID}})
    await asyncio.wait_for(
        autoscale(
            stopped=setter.async_waiter,
            body=body,
            memo=kopf.Memo(reconciler=reconciler),
            logger=logging.getLogger("test"),
        ),
        timeout=5,
    )
    assert len(reconciler.states) == 3
    assert len({id(s) for s in reconciler.states}) == 1, "one state across the rounds"
    assert reconciler.states[0].model.first_refit == 0.5 + 0.5 * SPREAD
    assert reconciler.metrics.forgotten == [("shop", "web")]
