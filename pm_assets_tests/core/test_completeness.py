"""Hourly completeness: one table from every row, or marked chunk by chunk, against a naive count."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.completeness import (
    HourlyPresence,
    expected_hours,
    hourly_completeness,
    machines_complete,
    overall_coverage,
)


def _telemetry(seed: int = 0) -> pd.DataFrame:
    """4 machines over 3 days from 05:00 on the first to 20:00 on the last, with random gaps and a machine silent
    on day 2; plus a row of an unknown machine."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2015-01-01 05:00", "2015-01-03 20:00", freq="h")
    rows = pd.DataFrame([(m, h) for h in hours for m in (1, 2, 3, 4)], columns=["machineID", "datetime"])
    keep = rng.random(len(rows)) > 0.1
    keep &= ~((rows["machineID"] == 3) & (rows["datetime"].dt.day == 2))
    rows = rows[keep]
    return pd.concat(
        [rows, pd.DataFrame({"machineID": [99], "datetime": [pd.Timestamp("2015-01-02 03:00")]})], ignore_index=True
    )


def test_presence_marked_by_chunks_gives_the_table_of_all_rows_and_each_days_coverage():
    rows = _telemetry()
    first, last = rows["datetime"].min(), rows["datetime"].max()
    window = (pd.Timestamp("2015-01-01"), pd.Timestamp("2015-01-04"))
    grid = expected_hours(*window, first, last)
    whole = hourly_completeness(rows, [1, 2, 3, 4], grid)
    presence = HourlyPresence([4, 3, 2, 1], *window)
    for _, chunk in rows.groupby(rows["datetime"].dt.floor("D")):
        presence.add(chunk)
    pd.testing.assert_frame_equal(presence.completeness(first, last), whole)
    assert whole.loc[whole["machineID"] == 3, "longest_gap_hours"].item() >= 24
    known = rows[rows["machineID"] <= 4]
    for day, coverage in presence.coverage_by_day(first, last).items():
        expected_day = grid[grid.strftime("%Y-%m-%d") == day]
        kept = known[known["datetime"].dt.strftime("%Y-%m-%d") == day]
        assert coverage == len(kept) / (4 * len(expected_day)), day
    assert list(presence.coverage_by_day(first, last)) == ["2015-01-01", "2015-01-02", "2015-01-03"]
    assert presence.completeness(None, None)["expected_hours"].eq(0).all()


def test_overall_coverage_and_complete_machines_against_a_naive_count():
    rows = _telemetry()
    grid = expected_hours("2015-01-01", "2015-01-04", rows["datetime"].min(), rows["datetime"].max())
    table = hourly_completeness(rows, [1, 2, 3, 4, 5], grid)  # machine 5 sends nothing
    on_grid = rows[rows["machineID"].isin([1, 2, 3, 4, 5]) & rows["datetime"].isin(grid)]
    assert overall_coverage(table) == len(on_grid.drop_duplicates()) / (5 * len(grid))
    full = [m for m in (1, 2, 3, 4, 5) if set(on_grid.loc[on_grid["machineID"] == m, "datetime"]) == set(grid)]
    assert machines_complete(table) == len(full)
    everything = pd.DataFrame([(m, h) for m in (1, 2) for h in grid], columns=["machineID", "datetime"])
    complete = hourly_completeness(everything, [1, 2], grid)
    assert overall_coverage(complete) == 1.0 and machines_complete(complete) == 2
    nothing = hourly_completeness(rows, [1, 2], grid[:0])
    assert overall_coverage(nothing) == 0.0  # no hour expected: no coverage, not a division by zero
