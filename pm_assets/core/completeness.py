"""Hourly completeness of telemetry: which machine-hours are missing, reported rather than invented.

The expected hours of a window are the hourly grid of the window clipped to the span the source file covers
(its first and last timestamp over all machines): a file that starts at 06:00 on its first day is not called
incomplete for the six hours before it began. Every machine of the machines table is expected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected_hours(window_start, window_end, source_first, source_last) -> pd.DatetimeIndex:
    """The hourly grid in [window_start, window_end) that lies within [source_first, source_last]."""
    if source_first is None or source_last is None or pd.isna(source_first):
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    start = max(pd.Timestamp(window_start), pd.Timestamp(source_first).ceil("h"))
    last = min(pd.Timestamp(window_end) - pd.Timedelta(hours=1), pd.Timestamp(source_last).floor("h"))
    if last < start:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    return pd.date_range(start, last, freq="h").astype("datetime64[ns]")


def _longest_run(missing: np.ndarray) -> int:
    """Length of the longest run of True in a boolean vector."""
    if not missing.any():
        return 0
    padded = np.concatenate(([0], missing.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def hourly_completeness(telemetry: pd.DataFrame, machine_ids, grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Per machine: expected, present and missing hours on ``grid``, coverage share and longest gap (hours).

    ``telemetry`` holds validated rows (unique machineID, datetime). Rows off the grid are not counted.
    """
    ids = _ids(machine_ids)
    present = np.zeros((len(ids), len(grid)), dtype=bool)
    _mark(present, ids, grid, telemetry)
    return _table(ids, present)


def _ids(machine_ids) -> np.ndarray:
    return np.sort(np.asarray(list(machine_ids), dtype=np.int64))


def _mark(present: np.ndarray, ids: np.ndarray, grid: pd.DatetimeIndex, telemetry: pd.DataFrame) -> None:
    """Set the machine-hours of ``telemetry``'s rows on ``grid`` (rows of unknown machines or off the grid: none)."""
    if len(grid) and len(telemetry):
        machine = telemetry["machineID"].to_numpy(dtype=np.int64)
        row = np.searchsorted(ids, machine)
        col = grid.get_indexer(pd.DatetimeIndex(telemetry["datetime"]))
        ok = (row < len(ids)) & (col >= 0)
        ok[ok] &= ids[row[ok]] == machine[ok]
        present[row[ok], col[ok]] = True


def _table(ids: np.ndarray, present: np.ndarray) -> pd.DataFrame:
    n_hours = present.shape[1]
    n_present = present.sum(axis=1)
    return pd.DataFrame(
        {
            "machineID": ids.astype(np.int32),
            "expected_hours": np.full(len(ids), n_hours, dtype=np.int64),
            "present_hours": n_present.astype(np.int64),
            "missing_hours": (n_hours - n_present).astype(np.int64),
            "coverage": n_present / n_hours if n_hours else np.ones(len(ids)),
            "longest_gap_hours": [_longest_run(~r) for r in present],
        }
    )


def overall_coverage(completeness: pd.DataFrame) -> float:
    """Machine-hours present over machine-hours expected, over every machine of a :func:`hourly_completeness`
    table (0.0 when no hour is expected)."""
    return float(completeness["present_hours"].sum() / max(completeness["expected_hours"].sum(), 1))


def machines_complete(completeness: pd.DataFrame) -> int:
    """The machines of a :func:`hourly_completeness` table with no hour missing."""
    return int((completeness["missing_hours"] == 0).sum())


class HourlyPresence:
    """Which machine had a reading at which hour of a window, marked a chunk of validated rows at a time; once
    every chunk is in, :func:`hourly_completeness`'s table and each day's coverage on the hours the source spans
    (its first and last timestamp, known only then). A machine-hour is one bit: 1,000 machines x a year is 8.8 MB."""

    def __init__(self, machine_ids, window_start, window_end):
        self.window = (pd.Timestamp(window_start), pd.Timestamp(window_end))
        self.ids = _ids(machine_ids)
        self.grid = pd.date_range(self.window[0], self.window[1], freq="h", inclusive="left").astype("datetime64[ns]")
        self.present = np.zeros((len(self.ids), len(self.grid)), dtype=bool)

    def add(self, telemetry: pd.DataFrame) -> None:
        _mark(self.present, self.ids, self.grid, telemetry)

    def _span(self, source_first, source_last) -> slice:
        expected = expected_hours(*self.window, source_first, source_last)
        if len(expected) == 0:
            return slice(0, 0)
        return slice(int(self.grid.get_loc(expected[0])), int(self.grid.get_loc(expected[-1])) + 1)

    def completeness(self, source_first, source_last) -> pd.DataFrame:
        return _table(self.ids, self.present[:, self._span(source_first, source_last)])

    def coverage_by_day(self, source_first, source_last) -> dict[str, float]:
        """Per day with expected hours: machine-hours present over machines x expected hours of that day."""
        span = self._span(source_first, source_last)
        hours = self.grid[span]
        if len(hours) == 0 or len(self.ids) == 0:
            return {}
        days = hours.strftime("%Y-%m-%d")
        present = pd.Series(self.present[:, span].sum(axis=0)).groupby(days).sum()
        expected = pd.Series(1, index=hours).groupby(days).size() * len(self.ids)
        return {day: float(present[day] / expected[day]) for day in expected.index}
