"""The autoscaler's memory as status, and back: what a restarted operator resumes from.

The HPA keeps its stabilization recommendations and scale events in process memory, and a
restarted controller starts them afresh. Here they live in the ForecastScaler's status too, with
the consecutive metric failures (as KEDA keeps them in a ScaledObject's `status.health`), so a
restarted or newly elected operator carries on where the last one stopped: the scale-down window
is counted from the recommendations actually made, the rate policies count the changes actually
made, and the Fallback count does not start over.

Status layout (written whole every sync; `recommendations` and `scaleEvents` only while the
operator has a decision memory for the object):

    health:
      consecutiveFailures: 2        # syncs in a row the metric could not be read
      status: Failing               # Happy at 0, else Failing
    recommendations:                # oldest first
      - {time: "2024-05-01T12:00:03.250000Z", replicas: 11}
      - {time: "2024-05-01T12:00:13.250000Z", replicas: 4}   # held at 11 by the window
    scaleEvents:                    # oldest first; + added, - removed
      - {time: "2024-05-01T12:00:03.250000Z", change: 4}

Only what can still change a decision is written. A recommendation matters to `stabilize` only
inside a window (scale-down takes the window's highest, scale-up its lowest), and one that is
no higher than a later one can never be a scale-down window's highest (the later one is in the
window whenever it is): the scale-down chain is the suffix maxima newer than the scale-down
window, the scale-up chain the suffix minima newer than the scale-up window, and their union
gives every `stabilize` call, now or later, exactly the answer the full list gives. A scale event
matters to `limit_rate` only within the longest policy period. The chains are as long as the
distinct replica counts a window saw; past a cap (rare: `RECOMMENDATION_LIMIT` distinct counts in
one window) entries are merged on the side of capacity, never towards an earlier scale-down: the
scale-down chain keeps the higher count at the later time, the scale-up chain drops the lower
count (never towards a later scale-up). Scale events past `SCALE_EVENT_LIMIT` the same way: the
oldest scale-up is forgotten, or the two oldest scale-downs become one at the later time.

Times are RFC 3339 in UTC with microseconds (Kubernetes' MicroTime form): the windows compare
ages, and whole seconds would move an entry across a window edge up to half a second early or
late; microseconds change a comparison only within half a microsecond of an edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from forecastscaler.core.api import ForecastScalerSpec
from forecastscaler.core.behavior import Recommendation, Rules, ScaleEvent, resolve_behavior
from forecastscaler.core.decision import Memory

RECOMMENDATION_LIMIT = 32
"""Most recommendations kept per direction (scale-down chain, scale-up chain)."""
SCALE_EVENT_LIMIT = 64
"""Most scale events kept."""

HEALTH = "health"
RECOMMENDATIONS = "recommendations"
SCALE_EVENTS = "scaleEvents"
KEYS = (HEALTH, RECOMMENDATIONS, SCALE_EVENTS)
"""The status keys this module writes and reads."""


# ------------------------------------------------------------------------------------ times


def rfc3339_micro(ts: float) -> str:
    """Epoch seconds as RFC 3339 in UTC with microseconds, e.g. 2024-05-01T12:00:03.250000Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time with a zone (Z or an offset; any fraction digits).
    ValueError for anything else, a time without a zone included."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    try:
        ts = parsed.timestamp()
    except (OverflowError, OSError) as exc:
        raise ValueError(f"{text!r} is out of range") from exc
    if not math.isfinite(ts):
        raise ValueError(f"{text!r} is not a finite time")
    return ts


# ------------------------------------------------------------------- status models (the CRD's)


class _Entry(BaseModel):
    # Unknown keys (a later version's) are ignored, not a reason to drop the entry.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class HealthStatus(_Entry):
    """Whether the metric can be read, as KEDA's ScaledObject status.health reports it (one
    entry: a ForecastScaler reads one metric). Kept in status, so a restarted operator goes on
    counting and the Fallback condition does not start over."""

    consecutive_failures: Annotated[StrictInt, Field(ge=0)] = Field(
        description=(
            "Syncs in a row in which the metric could not be read; 0 after a read succeeds. "
            "Fallback applies from spec.fallback.failureThreshold."
        )
    )
    status: Literal["Happy", "Failing"] = Field(
        description="Happy when the last read succeeded, Failing while reads fail."
    )


class _Timed(_Entry):
    time: str = Field(description="When, in RFC 3339 (UTC, microseconds).")

    @field_validator("time")
    @classmethod
    def _valid_time(cls, value: str) -> str:
        parse_time(value)
        return value


class RecommendationStatus(_Timed):
    """One replica recommendation, before stabilization."""

    replicas: Annotated[StrictInt, Field(ge=0)] = Field(
        description="Replicas recommended, before the stabilization windows and rate policies."
    )


class ScaleEventStatus(_Timed):
    """One change of the target's replicas (in DryRun: of the count Active mode would have)."""

    change: StrictInt = Field(description="Replicas added (positive) or removed (negative).")

    @field_validator("change")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a scale event changes the replicas")
        return value


class MemoryStatus(_Entry):
    """The status fields this module owns (merged into the CRD's status schema)."""

    health: HealthStatus | None = Field(
        default=None,
        description=(
            "Whether the metric can be read, and how many syncs in a row it could not be "
            "(like KEDA's status.health). Survives an operator restart."
        ),
    )
    recommendations: list[RecommendationStatus] | None = Field(
        default=None,
        description=(
            "The recent replica recommendations the stabilization windows (spec.behavior) "
            "still need, oldest first: the HPA keeps these in memory; here a restarted or newly "
            "elected operator resumes the windows from them, so it neither scales down early "
            "nor waits a window afresh. Only entries that can still decide a window are kept."
        ),
    )
    scale_events: list[ScaleEventStatus] | None = Field(
        default=None,
        description=(
            "The replica changes made within the longest rate-policy period of "
            "spec.behavior, oldest first, which the policies count (also after a restart)."
        ),
    )


# ------------------------------------------------------------------------------- compaction


def _windows(spec: ForecastScalerSpec) -> tuple[Rules, Rules, int]:
    """(scaleUp rules, scaleDown rules, longest policy period)."""
    up, down = resolve_behavior(spec.behavior)
    period = max((p.period_seconds for p in (*up.policies, *down.policies)), default=0)
    return up, down, period


def _chain(recs: Sequence[Recommendation], cutoff: float, higher: bool) -> list[Recommendation]:
    """Recommendations newer than `cutoff` that no later one matches or beats (higher: for
    the scale-down window's maximum; else lower, for the scale-up window's minimum); oldest
    first. `recs` are oldest first."""
    kept: list[Recommendation] = []
    best: int | None = None
    for rec in reversed(recs):
        if rec.time <= cutoff:
            break
        if best is None or (rec.replicas > best if higher else rec.replicas < best):
            kept.append(rec)
            best = rec.replicas
    kept.reverse()
    return kept


def _cheapest_pair(chain: Sequence[Recommendation]) -> int:
    """Index i of the neighbours (i, i+1) whose merging changes least: the replicas between
    them times the seconds between them (the oldest such pair on ties). The newest entry, this
    sync's own recommendation, is left alone while there are older pairs."""
    pairs = range(len(chain) - 2) if len(chain) > 2 else range(1)
    costs = [
        abs(chain[i].replicas - chain[i + 1].replicas) * (chain[i + 1].time - chain[i].time)
        for i in pairs
    ]
    return costs.index(min(costs))


def _cap_down(chain: list[Recommendation], limit: int) -> list[Recommendation]:
    """The scale-down chain (counts falling with time) within `limit`: two neighbours become
    one, the higher count at the later time, which holds no less and no shorter."""
    while len(chain) > max(limit, 1):
        i = _cheapest_pair(chain)
        chain[i : i + 2] = [Recommendation(chain[i + 1].time, chain[i].replicas)]
    return chain


def _cap_up(chain: list[Recommendation], limit: int) -> list[Recommendation]:
    """The scale-up chain (counts rising with time) within `limit`: of two neighbours the
    lower, older one goes, which holds a scale-up back no more than the full list did."""
    while len(chain) > max(limit, 1):
        del chain[_cheapest_pair(chain)]
    return chain


def compact_recommendations(
    recs: Iterable[Recommendation], spec: ForecastScalerSpec, now: float
) -> tuple[Recommendation, ...]:
    """The recommendations any `stabilize` call from `now` on needs, oldest first (see the
    module's docstring); times after `now` are taken as `now`."""
    up, down, _ = _windows(spec)
    ordered = sorted(
        (Recommendation(min(r.time, now), r.replicas) for r in recs), key=lambda r: r.time
    )
    down_chain = _cap_down(
        _chain(ordered, now - down.stabilization_window_seconds, higher=True),
        RECOMMENDATION_LIMIT,
    )
    up_chain = _cap_up(
        _chain(ordered, now - up.stabilization_window_seconds, higher=False),
        RECOMMENDATION_LIMIT,
    )
    return tuple(sorted({*down_chain, *up_chain}, key=lambda r: (r.time, r.replicas)))


def compact_scale_events(
    events: Iterable[ScaleEvent], spec: ForecastScalerSpec, now: float
) -> tuple[ScaleEvent, ...]:
    """The scale events any `limit_rate` call from `now` on counts, oldest first, at most
    SCALE_EVENT_LIMIT (capped on the side of capacity; see the module's docstring)."""
    _, _, period = _windows(spec)
    cutoff = now - period
    kept = sorted(
        (ScaleEvent(min(e.time, now), e.change) for e in events if e.change and e.time > cutoff),
        key=lambda e: e.time,
    )
    while len(kept) > SCALE_EVENT_LIMIT:
        ups = [i for i, e in enumerate(kept) if e.change > 0]
        if ups:
            # Fewer replicas counted as added: both policy limits start higher.
            del kept[ups[0]]
        else:
            # Removed replicas counted longer: both policy limits start higher.
            first, second = kept[0], kept[1]
            kept[0:2] = [ScaleEvent(second.time, first.change + second.change)]
    return tuple(kept)


def compact(memory: Memory, spec: ForecastScalerSpec, now: float) -> Memory:
    """`memory` reduced to what can still change a decision from `now` on: the same decisions,
    within the caps."""
    return Memory(
        recommendations=compact_recommendations(memory.recommendations, spec, now),
        scale_events=compact_scale_events(memory.scale_events, spec, now),
    )


# ------------------------------------------------------------------------- status and back

E = TypeVar("E", bound=_Timed)


def health_status(failures: int) -> dict[str, Any]:
    """`status.health` for a count of consecutive metric failures."""
    failures = max(int(failures), 0)
    return {"consecutiveFailures": failures, "status": "Failing" if failures else "Happy"}


def memory_status(
    memory: Memory | None, failures: int, now: float, spec: ForecastScalerSpec
) -> dict[str, Any]:
    """The status fields `health`, `recommendations` and `scaleEvents` (JSON-able, camelCase)
    for the memory after this sync's decision. Without a memory (no decision yet, or the target
    unreadable: the windows start afresh) only `health`: the lists are then left out, and a
    merge patch of the whole status removes them."""
    status: dict[str, Any] = {HEALTH: health_status(failures)}
    if memory is None:
        return status
    kept = compact(memory, spec, now)
    status[RECOMMENDATIONS] = [
        {"time": rfc3339_micro(r.time), "replicas": r.replicas} for r in kept.recommendations
    ]
    status[SCALE_EVENTS] = [
        {"time": rfc3339_micro(e.time), "change": e.change} for e in kept.scale_events
    ]
    return status


def _entries(raw: Any, model: type[E]) -> list[E] | None:
    """The entries of a status list that validate; None when it is not a list at all."""
    if not isinstance(raw, list):
        return None
    valid: list[E] = []
    for item in raw:
        try:
            valid.append(model.model_validate(item))
        except (ValidationError, TypeError, ValueError):
            continue
    return valid


def resume_failures(status: Mapping[str, Any] | None) -> int:
    """The consecutive metric failures recorded in `status.health.consecutiveFailures` (0 when
    missing or not a non-negative integer; the Happy/Failing word is not needed for it)."""
    health = status.get(HEALTH) if isinstance(status, Mapping) else None
    count = health.get("consecutiveFailures") if isinstance(health, Mapping) else None
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return 0


def resume(
    status: Mapping[str, Any] | None,
    spec: ForecastScalerSpec,
    now: float,
    current: int | None = None,
) -> tuple[Memory | None, int]:
    """(memory, consecutive failures) restored from a status `memory_status` wrote.

    Entries that do not validate are skipped, times after `now` (another pod's clock) are taken
    as `now`, and what no window or policy period reaches any more is dropped.

    Unlike `initial_memory`, a resumed memory adds no recommendation of its own: the scale-down
    window is counted from the recommendations actually made, so a restart neither scales down
    early nor holds a window longer than an operator that never stopped. The record is current
    when its newest entry is no older than the scale-down window or two sync intervals (a sync
    writes one each time it decides; a restart within an interval loses none); then the memory
    is exactly what the operator had, possibly empty (nothing holds).

    A record older than that says nothing of what the load asked for while no operator ran.
    Then, as for a new object, a full scale-down window must pass before replicas are removed:
    the memory is None when nothing in it is still in reach (the caller seeds it with
    `initial_memory(now, current)`), and, given `current`, the current count is added at `now`
    to what is left (scale events within a policy period, say), as `initial_memory` would.
    The memory is None, too, when the status has no record at all (a new object, or one an
    older operator wrote)."""
    failures = resume_failures(status)
    if not isinstance(status, Mapping):
        return None, failures
    recs = _entries(status.get(RECOMMENDATIONS), RecommendationStatus)
    events = _entries(status.get(SCALE_EVENTS), ScaleEventStatus)
    if recs is None and events is None:
        return None, failures
    recorded = Memory(
        recommendations=tuple(Recommendation(parse_time(r.time), r.replicas) for r in recs or ()),
        scale_events=tuple(ScaleEvent(parse_time(e.time), e.change) for e in events or ()),
    )
    memory = compact(recorded, spec, now)
    _, down, _ = _windows(spec)
    window = down.stabilization_window_seconds
    times = [r.time for r in recorded.recommendations] + [e.time for e in recorded.scale_events]
    newest = max(times, default=-math.inf)
    if min(newest, now) > now - max(window, 2 * spec.interval_seconds):
        return memory, failures  # current: exactly what the last operator had
    if not memory.recommendations and not memory.scale_events:
        return None, failures
    if current is not None and window > 0:
        seeded = (*memory.recommendations, Recommendation(now, current))
        memory = Memory(recommendations=seeded, scale_events=memory.scale_events)
    return memory, failures


__all__ = [
    "KEYS",
    "RECOMMENDATION_LIMIT",
    "SCALE_EVENT_LIMIT",
    "HealthStatus",
    "MemoryStatus",
    "RecommendationStatus",
    "ScaleEventStatus",
    "compact",
    "compact_recommendations",
    "compact_scale_events",
    "health_status",
    "memory_status",
    "parse_time",
    "resume",
    "resume_failures",
    "rfc3339_micro",
]
