"""Hourly completeness: the expected hours of a window, the table against a loop over machines and hours, and one
table from every row or marked chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def naive_completeness(telemetry: pd.DataFrame, machine_ids, grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Per machine, by loops over the grid: the hours with a reading, the missing ones and the longest run of them."""
    rows = []
    readings = set(zip(telemetry["machineID"], telemetry["datetime"]))
    for machine in sorted(machine_ids):
        present = [(machine, hour) in readings for hour in grid]
        longest = run = 0
        for seen in present:
            run = 0 if seen else run + 1
            longest = max(longest, run)
        n = sum(present)
        rows.append((machine, len(grid), n, len(grid) - n, n / len(grid) if len(grid) else 1.0, longest))
    return pd.DataFrame(
        rows,
        columns=["machineID", "expected_hours", "present_hours", "missing_hours", "coverage", "longest_gap_hours"],
    )


def _assert_matches(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    for column in expected.columns:
        np.testing.assert_allclose(actual[column].to_numpy(float), expected[column].to_numpy(float), err_msg=column)


@pytest.mark.parametrize("seed", range(3))
def test_the_table_matches_a_loop_with_off_grid_rows_unknown_and_silent_machines(seed):
    rows = _telemetry(seed)
    off_grid = pd.DataFrame({"machineID": [1, 2], "datetime": pd.to_datetime(["2015-01-02 03:30", "2015-01-05 00:00"])})
    unknown = pd.DataFrame({"machineID": [5], "datetime": [pd.Timestamp("2015-01-02 03:00")]})  # sorts before 7
    rows = pd.concat([rows, off_grid, unknown], ignore_index=True)
    grid = expected_hours("2015-01-01", "2015-01-04", rows["datetime"].min(), pd.Timestamp("2015-01-03 20:00"))
    machines = [1, 2, 3, 4, 7]  # 7 has no reading at all; 5 and 99 are no machines of the table
    out = hourly_completeness(rows, machines, grid)
    expected = naive_completeness(rows, machines, grid)
    _assert_matches(out, expected)
    silent = out.set_index("machineID").loc[7]
    assert silent["present_hours"] == 0 and silent["longest_gap_hours"] == len(grid) and silent["coverage"] == 0
    assert out["machineID"].dtype == np.int32 and out["present_hours"].dtype == np.int64


def test_without_telemetry_every_hour_is_missing_and_without_hours_nothing_is():
    grid = expected_hours("2015-01-01", "2015-01-02", "2015-01-01", "2015-01-01 23:00")
    none = hourly_completeness(pd.DataFrame({"machineID": [], "datetime": pd.to_datetime([])}), [2, 1], grid)
    assert none["machineID"].tolist() == [1, 2]
    assert (
        none["missing_hours"].eq(24).all() and none["longest_gap_hours"].eq(24).all() and none["coverage"].eq(0).all()
    )
    nothing_expected = hourly_completeness(_telemetry(), [1, 2], grid[:0])
    # no hour was expected: complete, not 0/0
    assert nothing_expected["expected_hours"].eq(0).all() and nothing_expected["coverage"].eq(1.0).all()
    assert nothing_expected["longest_gap_hours"].eq(0).all()
    assert hourly_completeness(_telemetry(), [], grid).empty


@pytest.mark.parametrize(
    ("window", "source", "first", "last"),
    [
        # the source's span rounded inwards to whole hours: 05:30 starts at 06:00, 20:10 ends at 20:00
        (
            ("2015-01-01", "2015-01-02"),
            ("2015-01-01 05:30", "2015-01-01 20:10"),
            "2015-01-01 06:00",
            "2015-01-01 20:00",
        ),
        # a source covering more than the window: the window, end exclusive
        (("2015-01-01", "2015-01-02"), ("2014-12-01", "2015-02-01"), "2015-01-01 00:00", "2015-01-01 23:00"),
        # a source ending exactly at the window's end: its last hour is not in the window
        (
            ("2015-01-01", "2015-01-02"),
            ("2015-01-01 12:00", "2015-01-02 00:00"),
            "2015-01-01 12:00",
            "2015-01-01 23:00",
        ),
    ],
)
def test_expected_hours_are_the_windows_hours_within_the_sources_span(window, source, first, last):
    hours = expected_hours(*window, *source)
    pd.testing.assert_index_equal(hours, pd.date_range(first, last, freq="h").astype("datetime64[ns]"))


@pytest.mark.parametrize(
    "source",
    [(None, None), (pd.NaT, pd.NaT), ("2015-02-01", "2015-03-01"), ("2014-01-01", "2014-12-31 23:59")],
    ids=["no-source", "NaT", "after-the-window", "before-the-window"],
)
def test_expected_hours_are_none_without_an_overlap(source):
    hours = expected_hours("2015-01-01", "2015-01-02", *source)
    assert len(hours) == 0 and hours.dtype == "datetime64[ns]"


def test_presence_without_machines_or_source_reports_no_day():
    presence = HourlyPresence([], "2015-01-01", "2015-01-03")
    presence.add(_telemetry())
    assert presence.coverage_by_day("2015-01-01", "2015-01-02 23:00") == {}
    assert presence.completeness("2015-01-01", "2015-01-02 23:00").empty
    assert HourlyPresence([1], "2015-01-01", "2015-01-03").coverage_by_day(None, None) == {}
