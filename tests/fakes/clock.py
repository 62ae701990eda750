"""Virtual time: a clock that moves only when told to, and a sleep that moves it."""

from __future__ import annotations

import asyncio


class VirtualClock:
    """Seconds that pass only through `advance` and `sleep`. Call it for the time (as
    `Services.clock`, or as the round loop's clock).

    `stop_at` plays a Kopf daemon's stop flag: `stopped()` turns true once the clock reaches
    it, and a `sleep` across it wakes there, as `await stopped.wait(t)` returns early.
    """

    def __init__(self, now: float = 0.0, *, stop_at: float | None = None) -> None:
        self.now = now
        self.stop_at = stop_at
        self.sleeps: list[float] = []
        """Every `sleep` asked for, in order."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "time does not go back"
        self.now += seconds

    def stopped(self) -> bool:
        return self.stop_at is not None and self.now >= self.stop_at

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by `seconds` (to `stop_at` if that comes first), then yield to
        the event loop once, as a real sleep would."""
        self.sleeps.append(seconds)
        until = self.now + seconds
        if self.stop_at is not None and self.stop_at < until:
            until = max(self.now, self.stop_at)  # already stopped: at once
        self.now = until
        await asyncio.sleep(0)


__all__ = ["VirtualClock"]
