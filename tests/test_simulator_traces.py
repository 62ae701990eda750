"""Trace loading: what a usable trace is, and the errors for what is not."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from forecastscaler.core.traces import TraceError, load_trace


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def _rows(n: int, start: int = 0, step: int = 60, value: str = "{i}") -> str:
    return "".join(f"{start + i * step},{value.format(i=i)}\n" for i in range(n))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("timestamp,value\n" + _rows(5), "at least 10", id="too-short"),
        pytest.param(
            "timestamp,value\n" + _rows(12) + "780,abc\n", "is not a number", id="non-numeric"
        ),
        pytest.param(
            "timestamp,value\n" + _rows(12) + "yesterday,3\n",
            "neither ISO-8601 nor epoch",
            id="unparseable-time",
        ),
        pytest.param(
            "timestamp,value\n" + _rows(12) + "745,3\n", "irregular timestamps", id="irregular"
        ),
        pytest.param("time,value\n" + _rows(12), "no 'timestamp' column", id="no-time-column"),
        pytest.param("timestamp,load\n" + _rows(12), "no 'value' column", id="no-value-column"),
        pytest.param(
            "timestamp,value\n" + _rows(12, value=""), "fewer than 10 numeric", id="all-empty"
        ),
    ],
)
def test_unusable_traces_are_rejected_with_a_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(_write(tmp_path, text))


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        load_trace(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "timestamp,value\n" + _rows(5) + "300,\n" + _rows(6, start=360, value="{i}"),
            id="empty-cell",
        ),
        pytest.param(
            "timestamp,value\n" + _rows(5) + _rows(6, start=360, value="{i}"), id="missing-row"
        ),
        pytest.param(
            "timestamp,value\n" + _rows(5) + "300,NaN\n" + _rows(6, start=360), id="nan-text"
        ),
    ],
)
def test_gaps_are_carried_as_missing_never_as_zero(tmp_path: Path, text: str) -> None:
    trace = load_trace(_write(tmp_path, text))
    assert len(trace) == 12
    assert math.isnan(trace.load.iloc[5])
    assert trace.load.notna().sum() == 11
    assert trace.step_seconds == 60


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("0", "60", id="epoch-seconds"),
        pytest.param("1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z", id="iso-8601"),
    ],
)
def test_timestamp_formats(tmp_path: Path, first: str, second: str) -> None:
    if first == "0":
        body = _rows(12)
    else:
        body = "".join(f"1970-01-01T00:{i:02d}:00Z,{i}\n" for i in range(12))
    trace = load_trace(_write(tmp_path, "timestamp,value\n" + body))
    assert trace.step_seconds == 60
    assert trace.load.index[0].timestamp() == 0


def test_another_value_column(tmp_path: Path) -> None:
    body = "".join(f"{i * 30},{i},{2 * i}\n" for i in range(12))
    trace = load_trace(_write(tmp_path, "timestamp,a,b\n" + body), column="b")
    assert trace.load.iloc[3] == 6
    assert trace.step_seconds == 30


def test_shared_traces_load(tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "traces"
    if not shared.is_dir():
        pytest.skip("no ../shared/traces")
    for path in sorted(shared.glob("*.csv")):
        trace = load_trace(path)
        assert len(trace) >= 10, path
