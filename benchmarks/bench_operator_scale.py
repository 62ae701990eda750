"""The operator serving many ForecastScalers: does every object keep its sync interval?

Drives the real Reconciler in one asyncio loop with N objects, each in the loop of the operator's
daemon (operator/rounds.py run_rounds, as handlers.autoscale runs it: rounds start to start, the
first ones spread by the object's uid), against the in-process fakes of tests/fakes: a Kubernetes
API (in-memory /scale and status, a few ms of latency slept in the kube_io pool) and a Prometheus
(the real PrometheusSource parsing Prometheus-shaped JSON answers; each object's query returns
its own synthetic daily-pattern load with noise, sampled every 15 s of wall time, so new points
appear as the run goes on). The fit pool is built as the operator builds it, a
ThreadPoolExecutor of cfg.fit_workers threads, subclassed only to time what runs in it.

Prints the startup burst (every object's first sync: the full history fetch, the anomaly
detector's first batch, the first fit of the ensemble), the steady-state gaps between syncs
and their lateness (gap - interval), sync durations, fit and predict times, RSS, CPU, the load
average, and a verdict. Nothing is hard-coded: every figure is measured in the run, except
the one labelled a projection (the next scheduled refit of every object at once).

--seconds is the wall time after start. The startup burst of 100 objects takes minutes on two
busy cores, so --steady S keeps running until S seconds after every object forecasts (judge
the steady state on at least two intervals). A short --retrain brings scheduled refits into
the run.

    python benchmarks/bench_operator_scale.py --objects 5 --seconds 60 --steady 65
    python benchmarks/bench_operator_scale.py --objects 100 --seconds 180 --interval 30 \\
        --fit-workers 2 [--steady 160] [--retrain 1h] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import pickle
import platform
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from forecastscaler.core.api import (
    GROUP,
    KIND,
    VERSION,
    ForecastScalerSpec,
)
from forecastscaler.operator.prometheus import Endpoint
from forecastscaler.operator.reconcile import ObjectState, Reconciler, Services
from forecastscaler.operator.rounds import run_rounds
from forecastscaler.operator.settings import OperatorConfig

# The fakes are the tests' (tests/fakes); run as a script, sys.path starts at benchmarks/.
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fakes import (
    EventRecorder,
    FakeConnection,
    FakeKube,
    FakePrometheus,
    FakeServices,
)

P = ParamSpec("P")
T = TypeVar("T")

NAMESPACE = "bench"
SCRAPE_SECONDS = 15.0
"""The fake Prometheus' scrape interval: the instant query sees the latest sample."""
DAY = 86_400.0
LATE_SHARE = 0.10
"""The verdict's rule: steady-state p95 lateness within this share of the interval."""
INITIAL_REPLICAS = 5


# ------------------------------------------------------------------------------ measurements


def rss_mb(field_name: str = "VmRSS") -> float:
    """Resident memory of this process from /proc (VmHWM is the peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def process_cpu() -> float:
    """CPU seconds of this process and its waited-for children (Prophet's Stan runs there)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Sample:
    """One reading of the machine while the benchmark runs."""

    t: float
    cpu: float
    busy: float
    total: float
    rss: float
    load1: float


def sample(t0: float) -> Sample:
    busy, total = machine_cpu()
    return Sample(
        time.perf_counter() - t0, process_cpu(), busy, total, rss_mb(), os.getloadavg()[0]
    )


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else math.nan


# ------------------------------------------------------------------------------ the load


def _uniform(keys: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """splitmix64 of the keys as uniforms in [0, 1): noise that is the same whenever a sample
    is asked for again, as a real Prometheus answers the same past samples every query."""
    z = keys + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Load:
    """One object's synthetic load: a daily cycle, its own level and phase, Gaussian noise."""

    seed: int
    base: float
    phase: float
    noise: float

    def at(
        self, times: np.ndarray[Any, np.dtype[np.float64]]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The latest scraped sample at each time (wall-clock seconds)."""
        scrape = np.floor(times / SCRAPE_SECONDS)
        daily = 1.0 + 0.6 * np.sin(2 * np.pi * scrape * SCRAPE_SECONDS / DAY + self.phase)
        key = scrape.astype(np.uint64) * np.uint64(2) + (np.uint64(self.seed) << np.uint64(40))
        u1, u2 = _uniform(key), _uniform(key + np.uint64(1))
        gauss = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)
        out: np.ndarray[Any, np.dtype[np.float64]] = np.maximum(
            self.base * daily + self.noise * gauss, 0.0
        )
        return out


# ------------------------------------------------------------------------------ timed fit pool


@dataclass(frozen=True)
class Job:
    """One task of the fit pool: what it was, when queued, started and ended, its thread CPU."""

    kind: str
    submitted: float
    started: float
    ended: float
    cpu: float

    @property
    def wait(self) -> float:
        return self.started - self.submitted

    @property
    def run(self) -> float:
        return self.ended - self.started


def job_kind(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", type(fn).__name__)
    if name == "AnomalyState.observe":
        fresh = getattr(getattr(fn, "__self__", None), "last_time", 0) is None
        return "detector batch" if fresh else "detector step"
    return {
        "_fit": "fit",
        "_update": "update",
        "path_from_model": "predict",
        "first_model": "first detector batch + fit",
    }.get(name, name)


class TimedPool(ThreadPoolExecutor):
    """The operator's fit pool, unchanged but for timing each task where it runs."""

    def __init__(self, max_workers: int, t0: float) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="fit")
        self.t0 = t0
        self.jobs: list[Job] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        kind, submitted = job_kind(fn), time.perf_counter() - self.t0

        def timed() -> T:
            started, cpu = time.perf_counter() - self.t0, time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                ended = time.perf_counter() - self.t0
                self.jobs.append(Job(kind, submitted, started, ended, time.thread_time() - cpu))

        return super().submit(timed)


# ------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class Sync:
    """One completed sync of one object (times from the start of the run)."""

    obj: int
    start: float
    end: float
    forecast: bool
    refit: bool
    ok: bool


@dataclass
class Run:
    t0: float
    syncs: list[Sync] = field(default_factory=list)
    first_forecast: dict[int, float] = field(default_factory=dict)
    lags: list[tuple[float, float]] = field(default_factory=list)
    """(time, how late a 0.5 s timer fired)"""
    samples: list[Sample] = field(default_factory=list)


class CountingHandler(logging.Handler):
    """Counts the operator's warnings and errors, keeping the first few."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if len(self.first) < 5:
            self.first.append(f"{record.levelname}: {record.getMessage()[:200]}")


def object_body(i: int, args: argparse.Namespace, load: Load) -> dict[str, Any]:
    forecast: dict[str, Any] = {}
    for key, value in (("retrainInterval", args.retrain), ("history", args.history)):
        if value is not None:
            forecast[key] = value
    if args.step is not None:
        forecast["step"] = args.step
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"web-{i}"},
        "maxReplicas": 50,
        "metric": {"query": query_of(i), "targetPerReplica": round(load.base / 5, 3)},
    }
    if forecast:
        spec["forecast"] = forecast
    if args.interval is not None:
        spec["interval"] = f"{args.interval:g}s"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": f"fs-{i}",
            "namespace": NAMESPACE,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/fs-{i}")),
            "generation": 1,
        },
        "spec": spec,
        "status": {},
    }


def query_of(i: int) -> str:
    return f'sum(rate(http_requests_total{{app="web-{i}"}}[1m]))'


def record(
    i: int, run: Run, state: ObjectState, start: float, fitted_before: float | None, ok: bool
) -> None:
    """One sync of object i, begun at `start` (from the start of the run), just ended."""
    end = time.perf_counter() - run.t0
    forecast = state.last_forecast is not None
    refit = state.model.fitted_at is not None and state.model.fitted_at != fitted_before
    run.syncs.append(Sync(i, start, end, forecast, refit, ok))
    if forecast and i not in run.first_forecast:
        run.first_forecast[i] = end


async def daemon(
    i: int,
    reconciler: Reconciler,
    body: dict[str, Any],
    state: ObjectState,
    logger: logging.LoggerAdapter[logging.Logger],
    run: Run,
) -> None:
    """handlers.autoscale: the operator's own loop (rounds.run_rounds) on the event loop's
    clock, over the real sync, recording each sync."""

    async def sync(state: ObjectState) -> float:
        start, fitted_before = time.perf_counter() - run.t0, state.model.fitted_at
        try:
            interval = await reconciler.sync(body, state, logger)
        except asyncio.CancelledError:
            raise
        except Exception:  # run_rounds logs it and goes on, as the daemon does
            record(i, run, state, start, fitted_before, ok=False)
            raise
        record(i, run, state, start, fitted_before, ok=True)
        return interval

    await run_rounds(
        sync,
        uid=body["metadata"]["uid"],
        clock=asyncio.get_running_loop().time,
        sleep=asyncio.sleep,
        state=state,
        logger=logger,
    )


async def watch(run: Run, period: float = 0.5) -> None:
    """Samples the machine and the event loop's lag (how late a timer fires)."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(period)
        now = time.perf_counter()
        run.lags.append((now - run.t0, now - before - period))
        run.samples.append(sample(run.t0))


def make_loads(n: int) -> list[Load]:
    """Objects of different sizes and time zones, so no two series are alike."""
    return [
        Load(
            seed=i + 1,
            base=200.0 + 37.0 * i,
            phase=2 * np.pi * i / max(n, 1),
            noise=0.05 * (200.0 + 37.0 * i),
        )
        for i in range(n)
    ]


@dataclass
class Setup:
    reconciler: Reconciler
    services: Services
    pool: TimedPool
    kube: FakeKube
    connection: FakeConnection
    bodies: dict[tuple[str, str], dict[str, Any]]
    states: list[ObjectState]
    events: EventRecorder
    spec: ForecastScalerSpec


def build(args: argparse.Namespace) -> Setup:
    config = OperatorConfig(fit_workers=args.fit_workers)
    loads = make_loads(args.objects)
    bodies = {(NAMESPACE, f"fs-{i}"): object_body(i, args, load) for i, load in enumerate(loads)}
    kube = FakeKube(bodies, latency=args.kube_latency_ms / 1000, initial_replicas=INITIAL_REPLICAS)
    pool = TimedPool(config.fit_workers, time.perf_counter())  # as handlers.configure builds it
    events = EventRecorder()  # what Kopf would post as Kubernetes Events
    warmup = TimedPool(max(1, config.fit_workers // 2), pool.t0)  # as handlers.configure
    warmup.jobs = pool.jobs  # one record of every model task
    connection = FakeConnection(
        {query_of(i): load for i, load in enumerate(loads)}, args.prom_latency_ms / 1000
    )

    def prometheus(endpoint: Endpoint) -> FakePrometheus:
        return FakePrometheus(endpoint, connection)

    services = FakeServices(
        kube=kube,
        config=config,
        pool=pool,
        emit=events,
        warmup_pool=warmup,
        make_source=prometheus,
    )
    spec = ForecastScalerSpec.model_validate(next(iter(bodies.values()))["spec"])
    return Setup(
        reconciler=Reconciler(services),
        services=services,
        pool=pool,
        kube=kube,
        connection=connection,
        bodies=bodies,
        states=[ObjectState() for _ in loads],
        events=events,
        spec=spec,
    )


async def drive(args: argparse.Namespace, setup: Setup, run: Run, log: logging.Logger) -> float:
    """Runs the daemons until the deadline; returns when startup completed (or NaN)."""
    tasks = []
    for i, ((_, name), body) in enumerate(setup.bodies.items()):
        logger = logging.LoggerAdapter(log.getChild(name), {})
        tasks.append(
            asyncio.create_task(daemon(i, setup.reconciler, body, setup.states[i], logger, run))
        )
    watcher = asyncio.create_task(watch(run))
    startup = math.nan
    next_progress = 30.0
    while True:
        await asyncio.sleep(0.25)
        now = time.perf_counter() - run.t0
        if math.isnan(startup) and len(run.first_forecast) == args.objects:
            startup = max(run.first_forecast.values())
            print(f"[{now:6.0f}s] startup burst done at {startup:.1f}s", file=sys.stderr)
        if now >= next_progress:
            next_progress += 30.0
            done = dict(Counter(j.kind for j in setup.pool.jobs))
            print(
                f"[{now:6.0f}s] {len(run.first_forecast)}/{args.objects} objects forecasting, "
                f"{len(run.syncs)} syncs, pool done {done}"
                f", load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
        if now < args.seconds:
            continue
        if args.steady <= 0 or now >= args.max_seconds:
            break
        if not math.isnan(startup) and now >= startup + args.steady:
            break
    run.samples.append(sample(run.t0))
    for task in (*tasks, watcher):
        task.cancel()
    await asyncio.gather(*tasks, watcher, return_exceptions=True)
    return startup


# ------------------------------------------------------------------------------ the report


def at_time(samples: Sequence[Sample], t: float) -> Sample:
    """The sample nearest to t."""
    return min(samples, key=lambda s: abs(s.t - t))


def utilisation(a: Sample, b: Sample, ncores: int) -> dict[str, float]:
    wall = max(b.t - a.t, 1e-9)
    ours = (b.cpu - a.cpu) / wall
    machine_total = (b.total - a.total) or 1.0
    machine = (b.busy - a.busy) / machine_total * ncores  # busy cores, everything on the box
    return {
        "seconds": wall,
        "ours_cores": ours,
        "ours_share": ours / ncores,
        "machine_busy_cores": machine,
        "others_cores": max(machine - ours, 0.0),
    }


def job_stats(jobs: Sequence[Job]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({j.kind for j in jobs}):
        js = [j for j in jobs if j.kind == kind]
        runs, cpus, waits = [j.run for j in js], [j.cpu for j in js], [j.wait for j in js]
        out[kind] = {
            "count": len(js),
            "run_p50": pct(runs, 50),
            "run_p95": pct(runs, 95),
            "run_max": max(runs),
            "cpu_p50": pct(cpus, 50),
            "cpu_p95": pct(cpus, 95),
            "wait_p50": pct(waits, 50),
            "wait_p95": pct(waits, 95),
            "wait_max": max(waits),
        }
    return out


def retained_mb(state: ObjectState) -> float:
    """The size of what an object keeps between syncs, pickled: its data without the
    interpreter's overhead (RSS per object cannot be told apart once libraries are shared)."""
    parts = (state.model.model, state.anomaly, state.model.history)
    try:
        return sum(len(pickle.dumps(p)) for p in parts) / 2**20
    except Exception:  # a member that cannot be pickled: no figure rather than a wrong one
        return math.nan


def histogram_mean(services: Services, name: str) -> tuple[float, int]:
    total, count = 0.0, 0
    for metric in services.metrics.registry.collect():
        if metric.name != name:
            continue
        for s in metric.samples:
            if s.name == name + "_sum":
                total += s.value
            elif s.name == name + "_count":
                count += int(s.value)
    return (total / count if count else math.nan), count


def _condition_counts(bodies: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many objects end with each Ready and ForecastReady status."""
    conditions: Counter[str] = Counter()
    for body in bodies:
        for c in (body.get("status") or {}).get("conditions", []):
            if c["type"] in ("Ready", "ForecastReady"):
                conditions[f"{c['type']}={c['status']}"] += 1
    return conditions


def _verdict(
    complete: bool, forecasting: int, covered: int, n: int, p95: float, interval: float
) -> tuple[str, str]:
    """Whether the rounds kept their schedule, and why: every object forecasting after the
    burst, every one seen in steady state, and the p95 lateness within LATE_SHARE."""
    if not complete:
        return "no", (
            f"the startup burst did not finish within the run "
            f"({forecasting}/{n} objects forecasting)"
        )
    if covered < n:
        return "no", (
            f"steady state too short to judge: {covered}/{n} objects had a gap after "
            f"startup (use --steady {2 * interval:g} or more)"
        )
    if p95 <= LATE_SHARE * interval:
        return "yes", f"steady-state p95 lateness {p95:.2f}s <= {LATE_SHARE:.0%} of {interval:g}s"
    return "no", f"steady-state p95 lateness {p95:.2f}s > {LATE_SHARE:.0%} of {interval:g}s"


def analyse(
    args: argparse.Namespace,
    setup: Setup,
    run: Run,
    startup: float,
    before: Sample,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    n, interval = args.objects, setup.spec.interval_seconds
    end = run.samples[-1]
    complete = not math.isnan(startup)
    cutoff = startup if complete else math.inf

    by_obj: dict[int, list[Sync]] = {}
    for s in run.syncs:
        by_obj.setdefault(s.obj, []).append(s)
    steady_gaps: list[float] = []
    burst_gaps: list[float] = []
    worst: dict[int, float] = {}
    rounds: dict[int, list[float]] = {}  # the k-th gap after the burst, over all objects
    for i, syncs in by_obj.items():
        starts = sorted(s.start for s in syncs)
        k = 0
        for a, b in itertools.pairwise(starts):
            (steady_gaps if a >= cutoff else burst_gaps).append(b - a)
            if a >= cutoff:
                worst[i] = max(worst.get(i, -math.inf), b - a - interval)
                k += 1
                rounds.setdefault(k, []).append(b - a - interval)
    # A sync under way (or a wait) already longer than the rule allows is a late gap too.
    threshold = interval * (1 + LATE_SHARE)
    overdue = []
    for i in range(n):
        starts = [s.start for s in by_obj.get(i, [])]
        last = max(starts) if starts else 0.0
        if last >= cutoff and end.t - last > threshold:
            overdue.append(end.t - last)
    steady_late = [g - interval for g in steady_gaps + overdue]
    burst_late = [g - interval for g in burst_gaps]
    covered = len(worst)

    steady_syncs = [s for s in run.syncs if s.start >= cutoff]
    firsts = [min(ss, key=lambda s: s.start) for ss in by_obj.values()]
    first_forecasts = sorted(run.first_forecast.values())

    jobs_all = job_stats(setup.pool.jobs)
    jobs_steady = job_stats([j for j in setup.pool.jobs if j.submitted >= cutoff])
    refit_mean, refit_count = histogram_mean(
        setup.services, "forecastscaler_refit_duration_seconds"
    )

    ncores = cores()
    at_startup = at_time(run.samples, startup) if complete else end
    kept = [retained_mb(s) for s in setup.states if s.model.model is not None]
    fitted_at = [s.model.fitted_at for s in setup.states if s.model.fitted_at is not None]
    models = Counter(s.model.model_name.split(",")[0] or "(none)" for s in setup.states)
    conditions = _condition_counts(setup.bodies.values())
    p95 = pct(steady_late, 95)
    verdict, why = _verdict(complete, len(run.first_forecast), covered, n, p95, interval)

    fit = jobs_all.get("fit", {})
    projected = (
        n * fit.get("run_p50", math.nan) / min(args.fit_workers, ncores) if fit else math.nan
    )
    return {
        "config": {
            "objects": n,
            "interval_s": interval,
            "retrain_interval": setup.spec.forecast.retrain_interval,
            "history": setup.spec.forecast.history,
            "step": setup.spec.forecast.step,
            "horizon": setup.spec.forecast.horizon,
            "models": list(setup.spec.forecast.models),
            "anomaly": setup.spec.anomaly.enabled,
            "fit_workers": args.fit_workers,
            "kube_latency_ms": args.kube_latency_ms,
            "prom_latency_ms": args.prom_latency_ms,
            "run_seconds": end.t,
            "cores": ncores,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load_average": {
            "before": list(load_before),
            "after": list(os.getloadavg()),
            "max_1m_during": max(s.load1 for s in run.samples),
        },
        "startup": {
            "complete": complete,
            "objects_forecasting": len(run.first_forecast),
            "all_first_forecast_s": startup if complete else None,
            "first_forecast_p50_s": pct(first_forecasts, 50),
            "first_forecast_min_s": first_forecasts[0] if first_forecasts else math.nan,
            "first_sync_duration_p50_s": pct([s.end - s.start for s in firsts], 50),
            "first_sync_duration_max_s": max((s.end - s.start for s in firsts), default=math.nan),
            "late_p50_s": pct(burst_late, 50),
            "late_max_s": max(burst_late, default=math.nan),
            "gaps": len(burst_gaps),
            "objects_never_synced": n - len(by_obj),
            "objects_synced": len(by_obj),
        },
        "steady": {
            "seconds": end.t - cutoff if complete else 0.0,
            "gaps": len(steady_gaps),
            "overdue_open_gaps": len(overdue),
            "objects_covered": covered,
            "gap_p50_s": pct(steady_gaps, 50),
            "gap_p95_s": pct(steady_gaps, 95),
            "gap_max_s": max(steady_gaps + overdue, default=math.nan),
            "late_p50_s": pct(steady_late, 50),
            "late_p95_s": p95,
            "late_max_s": max(steady_late, default=math.nan),
            "worst_object_late_s": max(worst.values(), default=math.nan),
            "late_by_round": {
                str(k): {"gaps": len(v), "p50_s": pct(v, 50), "p95_s": pct(v, 95), "max_s": max(v)}
                for k, v in sorted(rounds.items())
            },
            "sync_p50_s": pct([s.end - s.start for s in steady_syncs], 50),
            "sync_p95_s": pct([s.end - s.start for s in steady_syncs], 95),
            "sync_max_s": max((s.end - s.start for s in steady_syncs), default=math.nan),
            "syncs": len(steady_syncs),
            "refits": sum(s.refit for s in steady_syncs),
            "loop_lag_p95_s": pct([lag for t, lag in run.lags if t >= cutoff], 95),
        },
        "pool": {"all": jobs_all, "steady": jobs_steady},
        "refit_metric": {"mean_s": refit_mean, "count": refit_count},
        "memory_mb": {
            "before": before.rss,
            "after_startup": at_startup.rss,
            "end": end.rss,
            "peak": rss_mb("VmHWM"),
            "per_object": (end.rss - before.rss) / n,
            "retained_per_fitted_object_p50": pct(kept, 50),
            "retained_per_fitted_object_max": max(kept, default=math.nan),
        },
        "cpu": {
            "startup": utilisation(before, at_startup, ncores),
            "steady": utilisation(at_startup, end, ncores) if complete else None,
            "run": utilisation(before, end, ncores),
        },
        "loop_lag_ms": {
            "p50": 1000 * pct([lag for _, lag in run.lags], 50),
            "p95": 1000 * pct([lag for _, lag in run.lags], 95),
            "max": 1000 * max((lag for _, lag in run.lags), default=math.nan),
        },
        "outcome": {
            "syncs": len(run.syncs),
            "failed_syncs": sum(not s.ok for s in run.syncs),
            "syncs_without_forecast_after_first": sum(
                1
                for s in run.syncs
                if not s.forecast
                and s.obj in run.first_forecast
                and s.start > run.first_forecast[s.obj]
            ),
            "conditions": dict(conditions),
            "models": dict(models.most_common(5)),
            "fitted_at_spread_s": (max(fitted_at) - min(fitted_at)) if fitted_at else math.nan,
            "kube_calls": dict(setup.kube.calls),
            "prometheus": dict(setup.connection.counts),
            "events": dict(setup.events.counts()),
        },
        "projection": {
            "next_refit_burst_pool_seconds": projected,
            "note": "not measured: every object's fitted_at is its first sync's start, so all "
            "refit together one retrainInterval later; this is N x median fit / workers",
        },
        "verdict": {
            "keeps_intervals": verdict,
            "why": why,
            "rule": f"steady-state p95 of (gap - interval) <= {LATE_SHARE:.0%} of the interval, "
            "every object observed after the startup burst, which must have completed",
        },
    }


def finite(x: Any) -> Any:
    """NaN and infinities as null, so the JSON is strict."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def fmt(x: float | None, unit: str = "s", digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if unit == "ms":
        return f"{x * 1000:.{digits}f} ms"
    return f"{x:.{digits}f} {unit}".rstrip()


def report(r: dict[str, Any], log_counts: CountingHandler) -> None:
    c, st, sd, mem, cpu = r["config"], r["startup"], r["steady"], r["memory_mb"], r["cpu"]
    la = r["load_average"]
    print(
        f"{c['objects']} ForecastScalers, interval {c['interval_s']:g}s, models {c['models']}, "
        f"history {c['history']} at {c['step']}, horizon {c['horizon']}, retrain "
        f"{c['retrain_interval']}, anomaly detection {'on' if c['anomaly'] else 'off'}"
    )
    print(
        f"fit pool {c['fit_workers']} workers; fake kube {c['kube_latency_ms']:g} ms/call, fake "
        f"prometheus {c['prom_latency_ms']:g} ms/query; {c['cores']} cores usable "
        f"({c['cpu_count']} online), Python {c['python']}; ran {c['run_seconds']:.0f}s"
    )
    print(
        "load average 1/5/15 min: before "
        + " ".join(f"{x:.2f}" for x in la["before"])
        + ", after "
        + " ".join(f"{x:.2f}" for x in la["after"])
        + f", max 1-min during {la['max_1m_during']:.2f} (this benchmark included)"
    )
    print()
    print("startup burst (first sync: full fetch, detector first batch, first fit, forecast)")
    if st["complete"]:
        done = f"every object forecasting after {fmt(st['all_first_forecast_s'])}"
    else:
        done = (
            f"NOT every object forecasting by the end: {st['objects_forecasting']}/"
            f"{c['objects']}; {st['objects_never_synced']} objects still in their first sync "
            f"after {c['run_seconds']:.0f}s"
        )
    print(
        f"  {done}; first object forecasting at {fmt(st['first_forecast_min_s'])}, median "
        f"{fmt(st['first_forecast_p50_s'])}"
    )
    print(
        f"  first sync duration p50 {fmt(st['first_sync_duration_p50_s'])}, max "
        f"{fmt(st['first_sync_duration_max_s'])}; lateness of the {st['gaps']} gaps begun "
        f"during the burst p50 {fmt(st['late_p50_s'])}, max {fmt(st['late_max_s'])}"
    )
    print()
    print(f"steady state ({fmt(sd['seconds'], 's', 0)} after the burst)")
    print(
        f"  gaps between syncs: {sd['gaps']} over {sd['objects_covered']}/{c['objects']} objects "
        f"(+{sd['overdue_open_gaps']} overdue open): p50 {fmt(sd['gap_p50_s'])}, p95 "
        f"{fmt(sd['gap_p95_s'])}, max {fmt(sd['gap_max_s'])}"
    )
    print(
        f"  lateness (gap - interval): p50 {fmt(sd['late_p50_s'])}, p95 {fmt(sd['late_p95_s'])}, "
        f"max {fmt(sd['late_max_s'])}"
    )
    print(
        f"  sync duration: p50 {fmt(sd['sync_p50_s'], 'ms', 1)}, "
        f"p95 {fmt(sd['sync_p95_s'], 'ms', 1)}, max {fmt(sd['sync_max_s'], 'ms', 1)} "
        f"over {sd['syncs']} syncs ({sd['refits']} refits); "
        f"event-loop lag p95 {fmt(sd['loop_lag_p95_s'], 'ms', 1)}"
    )
    for k, v in sd["late_by_round"].items():
        print(
            f"  lateness of gap {k} after the burst ({v['gaps']} objects): p50 {fmt(v['p50_s'])}, "
            f"p95 {fmt(v['p95_s'])}, max {fmt(v['max_s'])}"
        )
    print()
    print("fit pool tasks (run = wall time in the worker, cpu = that thread's CPU, wait = queued)")
    print(
        f"  {'task':<16}{'count':>6}"
        + "".join(f"{h:>11}" for h in ("run p50", "run p95", "run max", "cpu p50", "wait p50"))
        + f"{'wait max':>11}"
    )
    for label, stats in (("all run", r["pool"]["all"]), ("steady state", r["pool"]["steady"])):
        print(f"  [{label}]")
        for kind, s in stats.items():
            print(
                f"  {kind:<16}{s['count']:>6}{fmt(s['run_p50'], 'ms', 1):>11}"
                f"{fmt(s['run_p95'], 'ms', 1):>11}{fmt(s['run_max'], 'ms', 1):>11}"
                f"{fmt(s['cpu_p50'], 'ms', 1):>11}{fmt(s['wait_p50'], 'ms', 1):>11}"
                f"{fmt(s['wait_max'], 'ms', 1):>11}"
            )
    fit = r["pool"]["all"].get("fit", {})
    pred = r["pool"]["all"].get("predict", {})
    print(
        f"  per object: fit of the ensemble on {c['history']} p50 {fmt(fit.get('run_p50'))} wall "
        f"({fmt(fit.get('cpu_p50'))} thread CPU, Stan subprocess not included); predict p50 "
        f"{fmt(pred.get('run_p50'), 'ms', 1)}, p95 {fmt(pred.get('run_p95'), 'ms', 1)}"
    )
    rm = r["refit_metric"]
    print(
        f"  operator's refit metric: mean {fmt(rm['mean_s'])} over {rm['count']} refits "
        "(timed around the pool call: includes waiting in the queue)"
    )
    print()
    print(
        f"memory (VmRSS): before {mem['before']:.0f} MB, after the burst "
        f"{mem['after_startup']:.0f} MB, end {mem['end']:.0f} MB, peak {mem['peak']:.0f} MB; "
        f"per object {(mem['per_object']):.1f} MB (growth / objects, incl. importing the model "
        "libraries)"
    )
    print(
        "  state kept per fitted object (pickled model + detector + history): p50 "
        f"{fmt(mem['retained_per_fitted_object_p50'], 'MB', 1)}, max "
        f"{fmt(mem['retained_per_fitted_object_max'], 'MB', 1)}"
    )
    for label in ("startup", "steady", "run"):
        u = cpu[label]
        if u is None:
            continue
        print(
            f"cpu {label:<8} over {u['seconds']:6.0f}s: this process {u['ours_cores']:.2f} cores "
            f"({u['ours_share']:.0%} of {c['cores']}), whole machine busy "
            f"{u['machine_busy_cores']:.2f} cores, others ~{u['others_cores']:.2f}"
        )
    lag = r["loop_lag_ms"]
    print(
        f"event-loop lag (0.5 s timer): p50 {lag['p50']:.1f} ms, p95 {lag['p95']:.1f} ms, "
        f"max {lag['max']:.1f} ms"
    )
    o = r["outcome"]
    print()
    print(
        f"outcome: {o['syncs']} syncs, {o['failed_syncs']} raised, "
        f"{o['syncs_without_forecast_after_first']} without a forecast after the first; "
        f"conditions {o['conditions']}; members leading: {o['models']}"
    )
    print(
        f"  kube calls {o['kube_calls']}; prometheus {o['prometheus']}; events {o['events']}; "
        f"log {dict(log_counts.counts) or 'no warnings'}"
    )
    for line in log_counts.first:
        print(f"    {line}")
    pr = r["projection"]
    print(
        f"  fitted_at spread across objects {fmt(o['fitted_at_spread_s'])}: the next scheduled "
        f"refit ({c['retrain_interval']} on) queues "
        f"~{fmt(pr['next_refit_burst_pool_seconds'], 's', 0)} of fit-pool work at once "
        "(projection, not measured)"
    )
    v = r["verdict"]
    print()
    print(f"rule: {v['rule']}")
    print(f"keeps its intervals: {v['keeps_intervals']} ({v['why']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=180.0, help="wall time to run after start")
    parser.add_argument(
        "--steady",
        type=float,
        default=0.0,
        help="also run until this many seconds after the startup burst (capped by --max-seconds)",
    )
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument(
        "--interval", type=float, default=None, help="spec.interval in seconds (API default 30s)"
    )
    parser.add_argument(
        "--retrain", default=None, help="spec.forecast.retrainInterval (API default 1h)"
    )
    parser.add_argument("--history", default=None, help="spec.forecast.history (API default 7d)")
    parser.add_argument("--step", default=None, help="spec.forecast.step (API default 1m)")
    parser.add_argument("--fit-workers", type=int, default=OperatorConfig().fit_workers)
    parser.add_argument("--kube-latency-ms", type=float, default=5.0)
    parser.add_argument("--prom-latency-ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.objects < 1 or args.fit_workers < 1:
        parser.error("--objects and --fit-workers must be at least 1")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("bench")
    counting = CountingHandler()
    logging.getLogger().addHandler(counting)

    load_before = os.getloadavg()
    setup = build(args)
    t0 = time.perf_counter()
    setup.pool.t0 = t0
    run = Run(t0=t0)
    before = sample(t0)
    run.samples.append(before)
    startup = asyncio.run(drive(args, setup, run, log))
    result = analyse(args, setup, run, startup, before, load_before)
    report(result, counting)
    if args.json is not None:
        args.json.write_text(json.dumps(finite(result), indent=2))
    for pool in (setup.services.pool, setup.services.kube_io, setup.services.metrics_io):
        pool.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    main()
