"""The rounds of one ForecastScaler: the body of the Kopf daemon, as a plain coroutine.

`handlers.autoscale` runs it with the event loop's clock and Kopf's stop flag; the tests and
benchmarks/bench_operator_scale.py run this same loop with a virtual clock or asyncio.sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from forecastscaler.operator.reconcile import AnyLogger, ObjectState

log = logging.getLogger("forecastscaler")

FAILED_ROUND_INTERVAL = 30.0
"""Seconds from the start of a round whose sync raised to the start of the next."""

SyncRound = Callable[[ObjectState], Awaitable[float]]
"""One sync of the object on its state; returns the seconds to the next (spec.interval)."""


def spread_fraction(uid: str) -> float:
    """A stable fraction in [0, 1) per object, from its uid."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 2**32


def _never() -> bool:
    return False


async def _round(sync: SyncRound, state: ObjectState, logger: AnyLogger) -> float:
    """One sync; a sync that raised is logged and retried FAILED_ROUND_INTERVAL later."""
    try:
        return await sync(state)
    except asyncio.CancelledError:
        raise
    except Exception:  # keep serving: the next round may succeed
        logger.exception("sync failed")
        return FAILED_ROUND_INTERVAL


async def run_rounds(
    sync: SyncRound,
    *,
    uid: str,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    stopped: Callable[[], bool] = _never,
    state: ObjectState | None = None,
    logger: AnyLogger = log,
) -> ObjectState:
    """Sync one object round after round until `stopped()`; returns its state.

    Rounds start start-to-start: each is due `interval` (what the previous sync returned)
    after the previous one was due, however long the sync took; a sync that overran its
    interval is followed at once by the next, and the rounds it overran are skipped, not
    caught up. Objects created together (an operator restart sees them all at once) are
    spread out: the second round comes `interval * spread_fraction(uid)` after the first
    ended, and the first refit at its own fraction between half and all of
    retrainInterval, so syncs and refits do not queue up in lock-step.

    `sleep(seconds)` may return early when the object is stopped (Kopf's
    `stopped.wait`); `clock` is the one `sleep` counts in. Cancellation propagates.
    """
    spread = spread_fraction(uid)
    state = ObjectState() if state is None else state
    state.model.first_refit = 0.5 + 0.5 * spread
    due: float | None = None  # when the round under way was due (None: the first round)
    while not stopped():
        interval = await _round(sync, state, logger)
        now = clock()
        due = now + interval * spread if due is None else max(due + interval, now)
        await sleep(max(due - now, 0.0))
    return state


__all__ = ["FAILED_ROUND_INTERVAL", "SyncRound", "run_rounds", "spread_fraction"]
