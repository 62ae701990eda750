"""The cost/shortage frontier: what each way of buying safety costs, on one trace.

The HPA buys safety by running replicas below capacity (its target, e.g. 80 %), because it
reacts late; ForecastScaler buys it with a forecast quantile, provisioned at capacity. One
point of each says little (either can be made safer by paying more), so both are swept: the
HPA over targets, ForecastScaler over `forecast.quantile`. The quantiles replay the same run's
forecasts (`QuantileTrack`s), so the sweep costs one forecast run, and the HPAs are cheap.

from forecastscaler.simulator.frontier import frontier, cheapest, dominating
f = frontier("web.csv")
cheapest(f, 0.005).forecast    # the cheapest quantile short on at most 0.5 % of steps
dominating(f, 0.8)             # the cheapest quantile no more often short than the HPA at 80 %
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forecastscaler.core.traces import Trace
from forecastscaler.simulator.api import (
    DEFAULT_STARTUP,
    ScalerInput,
    SimulationResult,
    simulate,
)
from forecastscaler.simulator.forecast_policy import quantile_name
from forecastscaler.simulator.hpa import hpa_name

Kind = Literal["hpa", "forecast"]

DEFAULT_HPA_TARGETS = tuple(round(0.05 * k, 2) for k in range(10, 20))
"""The HPA's targets swept by default: 50 %, 55 %, ... 95 % of capacity."""
DEFAULT_QUANTILES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
"""The `forecast.quantile` values swept by default (the API's range is 0.5 .. 0.999)."""
BASELINE_TARGET = 0.8
"""The HPA every saving is measured against: the common 80 % target."""
SHORT_SLACK = 1e-12
"""Float slack when a share of short steps is compared with a budget or another share."""


@dataclass(frozen=True)
class FrontierRow:
    """One configuration on the frontier and what it did over the scored steps."""

    kind: Kind
    name: str
    """hpa@80, forecast@p99.5: the policy's name in the simulation's scores."""
    setting: float
    """The HPA's target as a share of capacity, or ForecastScaler's forecast.quantile."""
    per_replica: float
    """The HPA's AverageValue; for ForecastScaler the metric.capacityPerReplica it runs."""
    short: float
    """Share of scored steps (with a known load) whose ready capacity was below the load."""
    short_steps: int
    unmet: float
    replica_hours: float
    cost_vs_oracle: float | None
    saving: float | None
    """Replica-hours saved against the baseline HPA, as a share of its (negative: dearer)."""
    default: bool
    """The baseline HPA, or the manifest's own quantile."""


@dataclass(frozen=True)
class Frontier:
    """Both curves of one run, cheapest-last order as swept (HPA by target, ForecastScaler by
    quantile), with the simulation they come from."""

    result: SimulationResult
    hpa: tuple[FrontierRow, ...]
    forecast: tuple[FrontierRow, ...]
    baseline: FrontierRow
    """The HPA at the baseline target: what the savings are against."""

    @property
    def rows(self) -> tuple[FrontierRow, ...]:
        return (*self.hpa, *self.forecast)

    @property
    def default_quantile(self) -> float:
        return next(r.setting for r in self.forecast if r.default)

    @property
    def scored_steps(self) -> int:
        return self.result.scored_steps

    def to_dict(self) -> dict[str, Any]:
        """The simulation's JSON (as `simulate --json` writes it) and the frontier's rows."""
        data = self.result.to_dict()
        data["frontier"] = {
            "baseline": self.baseline.name,
            "default_quantile": self.default_quantile,
            "hpa": [_row_dict(r) for r in self.hpa],
            "forecast": [_row_dict(r) for r in self.forecast],
        }
        return data


@dataclass(frozen=True)
class Pick:
    """The cheapest configuration of each kind that meets a shortage budget (None: none does)."""

    max_short: float
    hpa: FrontierRow | None
    forecast: FrontierRow | None

    @property
    def saving(self) -> float | None:
        """ForecastScaler's replica-hours saved against the HPA that meets the same budget, as
        a share of the HPA's; None unless both meet it."""
        if self.hpa is None or self.forecast is None:
            return None
        return saving(self.forecast, self.hpa)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_short": self.max_short,
            "hpa": self.hpa.name if self.hpa else None,
            "forecast": self.forecast.name if self.forecast else None,
            "saving_vs_hpa": self.saving,
        }


def _row_dict(row: FrontierRow) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in asdict(row).items()
    }


def saving(row: FrontierRow, against: FrontierRow) -> float | None:
    """Replica-hours `row` saves against `against`, as a share of its (negative: dearer)."""
    if against.replica_hours <= 0:
        return None
    return 1.0 - row.replica_hours / against.replica_hours


def frontier(
    trace: Trace | str | Path,
    *,
    hpa_targets: Sequence[float] = DEFAULT_HPA_TARGETS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    scalers: Sequence[ScalerInput] = (),
    baseline_target: float = BASELINE_TARGET,
    capacity: float | None = None,
    startup: str | float = DEFAULT_STARTUP,
    warmup: str | float = 0.5,
    column: str = "value",
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None,
    fit_workers: int | None = None,
    clock: Callable[[], float] | None = None,
) -> Frontier:
    """Replay the HPA at each of `hpa_targets` (shares of capacity) and one ForecastScaler
    (`scalers`: at most one manifest, default the defaults) at each of `quantiles` and its own,
    on one forecast run, and score them against the oracle. The baseline target is always
    replayed: the savings need it. The other arguments are `simulate`'s."""
    if len(scalers) > 1:
        raise ValueError("the frontier sweeps one ForecastScaler: give at most one manifest")
    _check_shares(hpa_targets, baseline_target)
    targets = tuple(sorted({*hpa_targets, baseline_target}))
    result = simulate(
        trace,
        policies=("forecast", "oracle"),
        scalers=scalers,
        capacity=capacity,
        startup=startup,
        warmup=warmup,
        column=column,
        progress=progress,
        fit_workers=fit_workers,
        clock=clock,
        quantiles=quantiles,
        hpa_targets=targets,
    )
    return from_result(result, targets, baseline_target)


def _check_shares(shares: Sequence[float], baseline: float) -> None:
    """Targets are shares of capacity in (0, 1]: above 1 a replica would be asked to serve
    more than it can, at 0 the HPA would ask for infinitely many."""
    bad = [s for s in (*shares, baseline) if not (math.isfinite(s) and 0 < s <= 1)]
    if bad:
        raise ValueError(f"hpa targets must be shares of capacity in (0, 1], not {bad}")


def from_result(
    result: SimulationResult, hpa_targets: Sequence[float], baseline_target: float
) -> Frontier:
    """The frontier of a simulation that replayed the HPA at `hpa_targets` (hpa@NN) and one
    forecast policy with its quantile tracks."""
    spec = result.specs["forecast"]
    own = float(spec["forecast"]["quantile"])
    capacity = float(spec["metric"].get("capacityPerReplica") or spec["metric"]["targetPerReplica"])
    base = _hpa_row(result, baseline_target, baseline_target, None)
    hpa = tuple(_hpa_row(result, t, baseline_target, base) for t in sorted(hpa_targets))
    forecast = tuple(
        _forecast_row(result, name, q, capacity, own, base)
        for name, q in _forecast_names(result, own)
    )
    baseline = next(r for r in hpa if r.default)
    return Frontier(result=result, hpa=hpa, forecast=forecast, baseline=baseline)


def _forecast_names(result: SimulationResult, own: float) -> list[tuple[str, float]]:
    """Each forecast policy's name and quantile, by quantile: the base policy runs its own."""
    out = [("forecast", own)]
    for name, spec in result.specs.items():
        if name.startswith("forecast@"):
            out.append((name, float(spec["forecast"]["quantile"])))
    return sorted(out, key=lambda item: item[1])


def _scores_row(result: SimulationResult, policy: str, **fields: Any) -> dict[str, Any]:
    s = result.scores[policy]
    return {
        "short": float(s["underprovisioned_fraction"]),
        "short_steps": int(s["short_steps"]),
        "unmet": float(s["unmet_fraction"]),
        "replica_hours": float(s["replica_hours"]),
        "cost_vs_oracle": s["cost_vs_oracle"],
        **fields,
    }


def _hpa_row(
    result: SimulationResult, target: float, baseline: float, base: FrontierRow | None
) -> FrontierRow:
    name = hpa_name(target)
    default = math.isclose(target, baseline)
    row = FrontierRow(
        **_scores_row(
            result,
            name,
            kind="hpa",
            name=name,
            setting=target,
            per_replica=result.hpa_targets[name],
            saving=None,
            default=default,
        )
    )
    return _with_saving(row, base or row)


def _forecast_row(
    result: SimulationResult,
    policy: str,
    quantile: float,
    capacity: float,
    own: float,
    base: FrontierRow,
) -> FrontierRow:
    row = FrontierRow(
        **_scores_row(
            result,
            policy,
            kind="forecast",
            name=quantile_name("forecast", quantile),
            setting=quantile,
            per_replica=capacity,
            saving=None,
            default=math.isclose(quantile, own),
        )
    )
    return _with_saving(row, base)


def _with_saving(row: FrontierRow, base: FrontierRow) -> FrontierRow:
    values = asdict(row)
    values["saving"] = saving(row, base)
    return FrontierRow(**values)


def meets(row: FrontierRow, max_short: float) -> bool:
    """Short on at most `max_short` of the scored steps."""
    return row.short <= max_short + SHORT_SLACK


def _cheapest_of(rows: Sequence[FrontierRow], max_short: float) -> FrontierRow | None:
    """The fewest replica-hours among rows meeting the budget; a tie goes to the safer."""
    ok = [r for r in rows if meets(r, max_short)]
    return min(ok, key=lambda r: (r.replica_hours, r.short)) if ok else None


def cheapest(front: Frontier, max_short: float) -> Pick:
    """For the HPA and for ForecastScaler, the cheapest configuration short on at most
    `max_short` of the scored steps: what to set for that shortage budget."""
    if not (math.isfinite(max_short) and 0 <= max_short <= 1):
        raise ValueError(f"max_short must be a share of steps in [0, 1], not {max_short}")
    return Pick(
        max_short=max_short,
        hpa=_cheapest_of(front.hpa, max_short),
        forecast=_cheapest_of(front.forecast, max_short),
    )


def hpa_row(front: Frontier, hpa_target: float) -> FrontierRow:
    """The HPA row at a target share (one that was swept)."""
    for row in front.hpa:
        if math.isclose(row.setting, hpa_target):
            return row
    swept = ", ".join(f"{100 * r.setting:g}%" for r in front.hpa)
    raise KeyError(f"the hpa at {100 * hpa_target:g}% was not replayed (swept: {swept})")


def dominating(front: Frontier, hpa_target: float) -> FrontierRow | None:
    """The cheapest ForecastScaler quantile no more often short than the HPA at `hpa_target`
    (None: every quantile is short more often). Its `saving(row, hpa_row(front, target))` is
    what replacing that HPA would save at no more shortage."""
    return _cheapest_of(front.forecast, hpa_row(front, hpa_target).short)


def plain_number(value: float) -> str:
    """A number as a manifest wants it: six significant digits, never an exponent (YAML 1.1
    reads 1e+05 as a string)."""
    return str(np.format_float_positional(float(f"{value:.6g}"), trim="-"))


def manifest_lines(front: Frontier, row: FrontierRow) -> str:
    """The manifest lines that apply a configuration: for ForecastScaler, the fragment of the
    spec to merge (metric.targetPerReplica, where the reactive path aims, is kept as run); for
    the HPA, the target of its autoscaling/v2 metric."""
    if row.kind == "hpa":
        return (
            "target:\n"
            "  type: AverageValue\n"
            f'  averageValue: "{plain_number(row.per_replica)}"'
            f"  # {100 * row.setting:g}% of {plain_number(front.result.world.capacity)} per replica"
        )
    metric: Mapping[str, Any] = front.result.specs["forecast"]["metric"]
    return (
        "metric:\n"
        f"  targetPerReplica: {plain_number(float(metric['targetPerReplica']))}\n"
        f"  capacityPerReplica: {plain_number(row.per_replica)}\n"
        "forecast:\n"
        f"  quantile: {row.setting:g}"
    )
