"""The simulator for notebooks and the command line: load a trace, replay policies, get results.

from forecastscaler.simulator import simulate
result = simulate("traces/web.csv", policies=("forecast", "hpa", "oracle"))
result.scores["forecast"]["underprovisioned_fraction"]
result.frames["hpa"]          # one row per step: load, ready, paid, capacity, short, ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecastscaler.core.api import ForecastScalerSpec, parse_duration
from forecastscaler.core.traces import Trace, load_trace, parse_warmup
from forecastscaler.simulator.engine import Policy, Replay, replay
from forecastscaler.simulator.fit_ahead import refuse_in_bootstrapping_worker
from forecastscaler.simulator.forecast_policy import ForecastPolicy, QuantileTrack
from forecastscaler.simulator.hpa import HpaPolicy, default_max_replicas, hpa_curve
from forecastscaler.simulator.oracle import OraclePolicy
from forecastscaler.simulator.perfect import PerfectForecastPolicy
from forecastscaler.simulator.scalers import build_spec, read_manifest
from forecastscaler.simulator.scores import score, step_frame
from forecastscaler.simulator.world import TARGET_UTILISATION, World

POLICY_KINDS = ("forecast", "hpa", "oracle")
"""The policies replayed by default."""
YARDSTICKS = ("perfect", "target-oracle")
"""Policies replayed on request: `perfect` is the forecast policy with a perfect forecast;
`target-oracle` the oracle at the hpa's target utilisation (never a replica above the target)."""
DEFAULT_STARTUP = 180.0

ScalerInput = str | Path | Mapping[str, Any]


@dataclass
class SimulationResult:
    """Everything a replay produced."""

    trace: Trace
    world: World
    replays: dict[str, Replay]
    scores: dict[str, dict[str, Any]]
    frames: dict[str, pd.DataFrame]
    """Per policy, one row per replayed step (the `scored` column marks the scored part)."""
    syncs: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per forecast policy, one row per sync: load, decision, reason, forecast at the horizon."""
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """How the world was set up where the caller did not say (the capacity from a manifest)."""
    hpa_targets: dict[str, float] = field(default_factory=dict)
    """Per HPA policy, its AverageValue target (load per replica)."""

    @property
    def scored_steps(self) -> int:
        return self.world.n - self.world.first_scored

    def actions(self, policy: str) -> pd.DataFrame:
        """The policy's changes of the replica count."""
        rows = [(a.time, a.before, a.after) for a in self.replays[policy].actions]
        frame = pd.DataFrame(rows, columns=["time", "before", "after"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready."""
        w = self.world
        return {
            "trace": w.name,
            "step_seconds": w.step,
            "scored_steps": self.scored_steps,
            "steps": w.n,
            "capacity": w.capacity,
            "target_per_replica": w.target,
            "startup_seconds": w.startup,
            "scored_from": pd.Timestamp(w.time(w.first_scored), unit="s", tz="UTC").isoformat(),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "policies": {name: _jsonable(s) for name, s in self.scores.items()},
            "hpa_targets": dict(self.hpa_targets),
            "specs": self.specs,
        }


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _seconds(value: str | float) -> float:
    return float(value) if isinstance(value, int | float) else parse_duration(value)


def default_capacity(trace: Trace) -> float:
    """A tenth of the median load: typical load needs about ten replicas."""
    median = float(np.nanmedian(trace.load.to_numpy(dtype=np.float64)))
    if not math.isfinite(median) or median <= 0:
        finite = trace.load.to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        median = float(np.median(finite)) if len(finite) else 1.0
    return median / 10


def _policy_names(policies: Sequence[str]) -> list[str]:
    names = [p.strip() for p in policies if p.strip()]
    unknown = [p for p in names if p not in (*POLICY_KINDS, *YARDSTICKS)]
    if unknown:
        raise ValueError(
            f"unknown policies {unknown}; known: {', '.join((*POLICY_KINDS, *YARDSTICKS))}"
        )
    return names


def build_world(
    trace: Trace,
    capacity: float | None = None,
    startup: str | float = DEFAULT_STARTUP,
    warmup: str | float = 0.5,
) -> World:
    """The world a trace defines (capacity default: median / 10; startup at least a step)."""
    return World.build(
        trace.name,
        trace.load,
        trace.step_seconds,
        capacity if capacity is not None else default_capacity(trace),
        _seconds(startup),
        parse_warmup(warmup),
    )


def named_manifests(
    scalers: Sequence[ScalerInput],
) -> list[tuple[str, Mapping[str, Any] | None]]:
    """Each forecast policy's name and manifest spec (None: the defaults): ``forecast`` when
    there is one, else ``forecast:<file stem>`` or ``forecast:<position>``."""
    manifests: list[tuple[str, Mapping[str, Any] | None]] = []
    for item in scalers:
        if isinstance(item, Mapping):
            manifests.append((f"forecast:{len(manifests) + 1}", item))
        else:
            manifests.append((f"forecast:{Path(item).stem}", read_manifest(item)))
    if len(manifests) <= 1:
        return [("forecast", manifests[0][1] if manifests else None)]
    return manifests


def manifest_target(manifest: Mapping[str, Any] | None) -> float | None:
    """The manifest's metric.targetPerReplica when it sets a usable one (a bad one is reported
    when the spec is validated)."""
    metric = manifest.get("metric") if manifest else None
    value = metric.get("targetPerReplica") if isinstance(metric, Mapping) else None
    try:
        target = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return target if math.isfinite(target) and target > 0 else None


def resolve_capacity(
    trace: Trace, capacity: float | None, scalers: Sequence[ScalerInput]
) -> tuple[float, str | None]:
    """The load one replica serves, and a note when the manifests chose it. One file, two uses:
    a manifest's targetPerReplica is the load a replica is meant to serve at the target
    utilisation, so without --capacity the world follows it, and the hpa targets the same."""
    if capacity is not None:
        return capacity, None
    targets = {t for _, m in named_manifests(scalers) if (t := manifest_target(m)) is not None}
    if len(targets) != 1:
        return default_capacity(trace), None
    target = targets.pop()
    derived = target / TARGET_UTILISATION
    return derived, (
        f"capacity {derived:.4g} per replica: the manifest's targetPerReplica {target:.4g} at "
        f"{TARGET_UTILISATION:.0%} utilisation (--capacity sets it)"
    )


def make_policies(
    world: World,
    policies: Sequence[str] = POLICY_KINDS,
    scalers: Sequence[ScalerInput] = (),
    clock: Callable[[], float] | None = None,
    fit_workers: int = 0,
    quantiles: Sequence[float] = (),
    hpa_target: float | None = None,
    hpa_targets: Sequence[float] = (),
) -> tuple[list[Policy], dict[str, dict[str, Any]], list[str]]:
    """The policies to replay, the forecast specs used and warnings. `fit_workers` > 0 fits
    each forecast policy's next refit ahead in that many worker processes (close the policy
    after its replay). Each forecast policy is followed by a `QuantileTrack` per quantile in
    `quantiles` other than its own (replay the list in order: a track after its policy). The hpa
    takes the manifests' minReplicas and maxReplicas when they agree, and `hpa_target` (a share
    of capacity; default the world's 80 %); `hpa_targets` adds one HPA per share, hpa@50 ...,
    replayed last (the cost/shortage frontier's HPA curve)."""
    names = _policy_names(policies)
    max_replicas = default_max_replicas(world)
    built, warnings = _build_specs(world, names, scalers, max_replicas, hpa_target is None)
    # The HPA gets the forecast policies' bounds when they agree: same limits, fair comparison.
    bounds = {(spec.min_replicas, spec.max_replicas) for _, spec in built}
    hpa_bounds = bounds.pop() if len(bounds) == 1 else (1, max_replicas)
    out: list[Policy] = []
    specs: dict[str, dict[str, Any]] = {}
    for kind in names:
        out.extend(
            _policies_of(
                kind, world, built, hpa_bounds, specs, clock, fit_workers, quantiles, hpa_target
            )
        )
    out.extend(hpa_curve(world, hpa_targets, *hpa_bounds))
    if quantiles and not any(isinstance(p, ForecastPolicy) for p in out):
        warnings.append("quantiles ignored: no forecast policy is replayed")
    return out, specs, warnings


def _build_specs(
    world: World,
    names: Sequence[str],
    scalers: Sequence[ScalerInput],
    max_replicas: int,
    same_target: bool = True,
) -> tuple[list[tuple[str, ForecastScalerSpec]], list[str]]:
    """Each manifest's spec, as the world runs it, and warnings about them. Without a policy
    that runs a manifest they are read for the hpa's bounds only. `same_target`: the hpa runs
    at the world's target, so a manifest at another is warned about (not when the caller chose
    the hpa's target: then the difference is the point)."""
    warnings: list[str] = []
    built: list[tuple[str, ForecastScalerSpec]] = []
    driven = "forecast" in names or "perfect" in names  # policies that run a manifest
    for name, manifest in named_manifests(scalers) if driven or scalers else []:
        spec, notes = build_spec(
            manifest,
            step=world.step,
            startup=world.startup,
            target=world.target,
            max_replicas=max_replicas,
            capacity=world.capacity,
        )
        if not driven:  # read for the hpa's bounds only
            built.append((name, spec))
            continue
        warnings.extend(f"{name}: {n}" for n in notes)
        per = spec.metric.target_per_replica
        if same_target and "hpa" in names and not math.isclose(per, world.target, rel_tol=1e-6):
            warnings.append(
                f"{name}: targetPerReplica {per:.4g} is not the hpa's target {world.target:.4g} "
                f"({world.target_utilisation:.0%} of capacity {world.capacity:.4g}): the policies "
                "are compared at different targets (without --capacity the capacity follows the "
                "manifests' targetPerReplica when they agree)"
            )
        built.append((name, spec))
    return built, warnings


def _policies_of(
    kind: str,
    world: World,
    built: Sequence[tuple[str, ForecastScalerSpec]],
    hpa_bounds: tuple[int, int],
    specs: dict[str, dict[str, Any]],
    clock: Callable[[], float] | None,
    fit_workers: int,
    quantiles: Sequence[float],
    hpa_target: float | None = None,
) -> list[Policy]:
    """The policies of one kind (a forecast one per manifest, then its quantile tracks); the
    specs the manifest-driven ones run are recorded in `specs`."""
    if kind == "hpa":
        low, high = hpa_bounds
        return [HpaPolicy(world, utilisation=hpa_target, min_replicas=low, max_replicas=high)]
    if kind == "oracle":
        return [OraclePolicy(world)]
    if kind == "target-oracle":
        return [OraclePolicy(world, name=kind, per_replica=world.target)]
    out: list[Policy] = []
    for name, spec in built:
        if kind == "perfect":
            perfect = "perfect" + name.removeprefix("forecast")
            specs[perfect] = _dump(spec)
            out.append(PerfectForecastPolicy(world, spec, name=perfect))
            continue
        specs[name] = _dump(spec)
        base = ForecastPolicy(
            spec,
            name=name,
            trace_step=world.step,
            clock=clock,
            fit_workers=fit_workers,
            track_quantiles=quantiles,
        )
        out.append(base)
        for q in base.track_quantiles:
            track = QuantileTrack(base, q)
            specs[track.name] = _dump(track.spec)
            out.append(track)
    return out


def _dump(spec: ForecastScalerSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True, mode="json")


def simulate(
    trace: Trace | str | Path,
    policies: Sequence[str] = POLICY_KINDS,
    scalers: Sequence[ScalerInput] = (),
    capacity: float | None = None,
    startup: str | float = DEFAULT_STARTUP,
    warmup: str | float = 0.5,
    column: str = "value",
    clock: Callable[[], float] | None = None,
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None,
    fit_workers: int | None = None,
    quantiles: Sequence[float] = (),
    hpa_target: float | None = None,
    hpa_targets: Sequence[float] = (),
) -> SimulationResult:
    """Replay `policies` over a trace (a Trace or a CSV path) and score them.

    `scalers` are ForecastScaler manifests (paths or spec mappings), one forecast policy each.
    `clock` (e.g. time.perf_counter) times the forecast policies' phases; `progress(policy,
    steps)` may return a per-step callback (the command line's progress bar). `fit_workers`:
    processes that fit each forecast policy's next refit while the replay goes on (default:
    one on a machine with more than one CPU, else none); results are identical either way. A
    worker imports the caller's main script, so from a script call this under
    ``if __name__ == "__main__":``; without the guard the worker refuses to start and the
    replay fits in place, with a warning.
    `quantiles`: also replay every forecast policy at these `forecast.quantile` values, as
    policies named like forecast@p75, on the forecasts of the same run (the models run once).
    `hpa_target`: the `hpa` policy's target as a share of capacity (default 0.8);
    `hpa_targets`: also replay the HPA at these shares, as policies named like hpa@70."""
    refuse_in_bootstrapping_worker()
    if not isinstance(trace, Trace):
        trace = load_trace(trace, column=column)
    capacity, note = resolve_capacity(trace, capacity, scalers)
    notes = [note] if note else []
    world = build_world(trace, capacity, startup, warmup)
    if fit_workers is None:
        fit_workers = 1 if (os.cpu_count() or 1) > 1 else 0
    chosen, specs, warnings = make_policies(
        world, policies, scalers, clock, fit_workers, quantiles, hpa_target, hpa_targets
    )
    targets = {p.name: p.target for p in chosen if isinstance(p, HpaPolicy)}
    if hpa_target is not None and "hpa" in targets:
        notes.append(
            f"hpa: target {targets['hpa']:.4g} per replica, {100 * hpa_target:g}% of capacity "
            f"(--hpa-target; the default is {world.target_utilisation:.0%})"
        )
    warnings = [*trace.warnings, *warnings]
    replays, timings = _replay_all(world, chosen, progress, warnings)
    oracle = replays.get("oracle") or replay(world, OraclePolicy(world))
    oracle_hours = score(world, oracle)["replica_hours"]
    scores: dict[str, dict[str, Any]] = {}
    frames: dict[str, pd.DataFrame] = {}
    syncs: dict[str, pd.DataFrame] = {}
    for policy in chosen:
        rep = replays[policy.name]
        scores[policy.name] = score(world, rep, oracle_hours)
        frames[policy.name] = step_frame(world, rep)
        if isinstance(policy, ForecastPolicy | QuantileTrack):
            scores[policy.name].update(policy.forecast_scores(world))
            syncs[policy.name] = policy.sync_frame()
        elif isinstance(policy, PerfectForecastPolicy):
            syncs[policy.name] = policy.sync_frame()
        if isinstance(policy, ForecastPolicy):
            for problem, count in sorted(policy.problems.items()):
                warnings.append(f"{policy.name}: {problem} in {count} sync(s)")
    return SimulationResult(
        trace=trace,
        world=world,
        replays=replays,
        scores=scores,
        frames=frames,
        syncs=syncs,
        specs=specs,
        timings=timings,
        warnings=warnings,
        notes=notes,
        hpa_targets=targets,
    )


def _replay_all(
    world: World,
    chosen: Sequence[Policy],
    progress: Callable[[str, int], Callable[[int], None] | None] | None,
    warnings: list[str],
) -> tuple[dict[str, Replay], dict[str, dict[str, Any]]]:
    """Replay each policy in order (a quantile track after its base) and time the forecast
    ones; a fitting worker that stopped is a warning."""
    replays: dict[str, Replay] = {}
    timings: dict[str, dict[str, Any]] = {}
    for policy in chosen:
        on_step = progress(policy.name, world.n - world.first_replayed) if progress else None
        try:
            replays[policy.name] = replay(world, policy, on_step)
        finally:
            if isinstance(policy, ForecastPolicy):
                policy.close()
        if isinstance(policy, QuantileTrack) and policy.quantile == policy.base.track_quantiles[-1]:
            policy.base.inputs = []  # every track of this policy has run
        if isinstance(policy, ForecastPolicy):
            timings[policy.name] = {
                "seconds": dict(policy.timings.seconds),
                "calls": dict(policy.timings.calls),
                "problems": dict(policy.problems),
            }
            if policy.fit_ahead is not None:
                if policy.fit_ahead.broken is not None:
                    warnings.append(
                        f"{policy.name}: the fitting worker stopped ({policy.fit_ahead.broken}); "
                        "the rest was fitted in place, with the same results. If a script calls "
                        'simulate() at its top level, call it under `if __name__ == "__main__":`'
                    )
                timings[policy.name]["fit_ahead"] = {
                    "prefetched": policy.fit_ahead.hits,
                    "missed": policy.fit_ahead.misses,
                    "worker_seconds": policy.fit_ahead.worker_seconds,
                }
    return replays, timings
