"""Loading workload traces: a CSV of timestamps and load values on a regular step, and the share
of one used as history (the warmup) by the simulator and the backtest.

Real traces have gaps (empty cells, missing rows); they are carried as NaN, never as zero load,
because "no data" and "no load" lead to opposite scaling decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

MIN_TRACE_STEPS = 10


class TraceError(ValueError):
    """The file is not a usable trace; the message says why and where."""


@dataclass(frozen=True)
class Trace:
    """A load series on a regular grid (NaN where the source has no value)."""

    name: str
    load: pd.Series
    step: pd.Timedelta
    labels: pd.Series | None = None
    warnings: tuple[str, ...] = ()
    """What was repaired on loading (for example duplicated timestamps), to show the user."""

    @property
    def step_seconds(self) -> float:
        return float(self.step.total_seconds())

    def __len__(self) -> int:
        return len(self.load)


def _parse_time(column: pd.Series, path: str) -> pd.DatetimeIndex:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return pd.DatetimeIndex(pd.to_datetime(numeric, unit="s", utc=True))
    try:
        return pd.DatetimeIndex(pd.to_datetime(column, utc=True, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
        bad = column[parsed.isna()]
        first = bad.index[0] + 2 if len(bad) else "?"
        raise TraceError(
            f"{path}: line {first}: timestamp {bad.iloc[0] if len(bad) else ''!r} is neither "
            "ISO-8601 nor epoch seconds"
        ) from exc


def _read_frame(path: str | Path, where: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The CSV as strings, with the columns a trace needs and enough rows."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise TraceError(f"{where}: no such file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise TraceError(f"{where}: not a CSV file: {exc}") from exc
    for name in columns:
        if name not in frame.columns:
            raise TraceError(f"{where}: no {name!r} column (columns: {list(frame.columns)})")
    if len(frame) < MIN_TRACE_STEPS:
        raise TraceError(f"{where}: {len(frame)} rows; a trace needs at least {MIN_TRACE_STEPS}")
    return frame


def _numbers(column: pd.Series, where: str) -> pd.Series:
    """The value column as floats: empty cells and nan/null/na are gaps, anything else that is
    not a number is an error naming its line."""
    raw = column.str.strip()
    values = pd.to_numeric(raw.where(raw != ""), errors="coerce")
    non_numeric = values.isna() & raw.ne("") & ~raw.str.lower().isin(["nan", "null", "na"])
    if non_numeric.any():
        row = int(np.argmax(non_numeric.to_numpy()))
        raise TraceError(f"{where}: line {row + 2}: value {raw.iloc[row]!r} is not a number")
    return values


def _grid_step(index: pd.Index, where: str) -> pd.Timedelta:
    """The trace's step (the commonest gap); every timestamp must lie on its grid."""
    deltas = pd.Series(index[1:] - index[:-1])
    step = pd.Timedelta(deltas.mode().iloc[0])
    since = (index - index[0]).to_numpy()
    off_grid = (since % step.to_timedelta64()) != np.timedelta64(0)
    if off_grid.any():
        bad = index[int(np.argmax(off_grid))]
        raise TraceError(
            f"{where}: irregular timestamps: {bad} is off the {step} grid that starts at {index[0]}"
        )
    return step


def load_trace(path: str | Path, column: str = "value", time_column: str = "timestamp") -> Trace:
    """Read and validate a trace file."""
    where = str(path)
    frame = _read_frame(path, where, (time_column, column))
    values = _numbers(frame[column], where)
    index = _parse_time(frame[time_column].str.strip(), where)
    series = pd.Series(values.to_numpy(dtype=np.float64), index=index)
    if not series.index.is_monotonic_increasing:
        series = series.sort_index()
    warnings: list[str] = []
    if series.index.has_duplicates:
        # Typically a daylight-saving artefact of a local-time source: keep one value per step.
        dups = series.index[series.index.duplicated()].unique()
        warnings.append(f"{len(dups)} duplicated timestamp(s), first {dups[0]}: values averaged")
        series = series.groupby(level=0).mean()

    step = _grid_step(series.index, where)
    grid = pd.date_range(series.index[0], series.index[-1], freq=step)
    load = series.reindex(grid)  # missing rows become NaN, like empty cells
    labels = None
    if "label" in frame.columns:
        lab_raw = frame["label"].str.strip()
        lab = pd.to_numeric(lab_raw.where(lab_raw != ""), errors="coerce")
        labels = pd.Series(lab.to_numpy(), index=index).groupby(level=0).max().reindex(grid)
    if load.notna().sum() < MIN_TRACE_STEPS:
        raise TraceError(f"{where}: fewer than {MIN_TRACE_STEPS} numeric values")
    missing = int(load.isna().sum())
    if missing:
        warnings.append(f"{missing} missing step(s) carried as gaps")
    return Trace(
        name=Path(where).stem, load=load, step=step, labels=labels, warnings=tuple(warnings)
    )


def bundled_trace_path() -> Path:
    """The trace shipped with the package (Wikipedia requests per hour, 21 days)."""
    return Path(str(resources.files("forecastscaler.core") / "data" / "wikipedia_requests_1h.csv"))


def parse_warmup(value: str | float) -> float:
    """A warmup as a fraction: `50%`, `0.5`, or a duration is not accepted here (use a share)."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    fraction = float(match.group(1)) / 100 if match else float(text)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"warmup must be between 0% and 100%, not {value!r}")
    return fraction
