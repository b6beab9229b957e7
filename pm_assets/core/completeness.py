"""Hourly completeness of telemetry: which machine-hours are missing, reported rather than invented.

The expected hours of a window are the hourly grid of the window clipped to the span the source file covers
(its first and last timestamp over all machines): a file that starts at 06:00 on its first day is not called
incomplete for the six hours before it began. Every machine of the machines table is expected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COMPLETENESS_COLUMNS = ("machineID", "expected_hours", "present_hours", "missing_hours", "coverage", "longest_gap_hours")


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
    ids = np.sort(np.asarray(list(machine_ids), dtype=np.int64))
    n_hours = len(grid)
    present = np.zeros((len(ids), n_hours), dtype=bool)
    if n_hours and len(telemetry):
        row = np.searchsorted(ids, telemetry["machineID"].to_numpy(dtype=np.int64))
        col = grid.get_indexer(pd.DatetimeIndex(telemetry["datetime"]))
        ok = (row < len(ids)) & (col >= 0)
        ok[ok] &= ids[row[ok]] == telemetry["machineID"].to_numpy(dtype=np.int64)[ok]
        present[row[ok], col[ok]] = True
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
