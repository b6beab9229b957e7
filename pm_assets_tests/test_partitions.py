"""The daily partitions: which days exist at a given time, and which rows of a frame fall in each day's UTC window
(what the IO manager splits a ranged run's output by), against a plain loop over the rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from dagster import DailyPartitionsDefinition

from pm_assets.partitions import daily_partitions, partition_range, partition_rows

OPEN = DailyPartitionsDefinition(start_date="2015-01-01")
KEYS = ["2014-12-31", "2015-01-01", "2015-01-02", "2015-01-03"]


def naive_rows(times: pd.Series, key: str, offset_hours: int = 0) -> list[int]:
    """Positions of the times in the day ``key`` of a timezone ``offset_hours`` ahead of UTC, by a loop."""
    start = pd.Timestamp(key) - pd.Timedelta(hours=offset_hours)
    end = start + pd.Timedelta(days=1)
    return [i for i, t in enumerate(times) if not pd.isna(t) and start <= t < end]


def _frame() -> pd.DataFrame:
    """Rows out of time order: on each midnight, a nanosecond before one, within days, NaT and far outside."""
    times = [
        "2015-01-02 00:00",
        "2015-01-01 23:59:59.999999999",
        "2015-01-01 00:00",
        None,
        "2015-01-03 12:00",
        "2015-01-01 00:00",  # a tie: the two keep their order
        "2014-12-31 23:00",
        "2016-06-01",
        "2015-01-02 07:00",
        "2014-01-01",
    ]
    return pd.DataFrame({"datetime": pd.to_datetime(times, format="ISO8601"), "row": range(len(times))})


def test_the_project_partitions_start_on_the_configured_day_and_are_open_ended():
    # conftest sets PM_PARTITION_START=2015-01-01 and no end: the last day is the last complete UTC day
    assert daily_partitions.start == datetime(2015, 1, 1, tzinfo=UTC)
    assert partition_range(current_time=datetime(2015, 1, 10, 5, tzinfo=UTC)) == ("2015-01-01", "2015-01-10")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2014, 12, 31, 23, tzinfo=UTC), ("2015-01-01", "2015-01-01")),  # before the first day: none
        (datetime(2015, 1, 1, 23, 59, tzinfo=UTC), ("2015-01-01", "2015-01-01")),  # the first day not over yet
        (datetime(2015, 1, 2, tzinfo=UTC), ("2015-01-01", "2015-01-02")),  # its end: one partition
        (datetime(2015, 1, 3, 12, tzinfo=UTC), ("2015-01-01", "2015-01-03")),
    ],
)
def test_partition_range_is_the_complete_days_at_that_time_end_exclusive(now, expected):
    assert partition_range(OPEN, now) == expected


def test_partition_range_of_a_closed_definition_ends_at_its_end():
    closed = DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-01-05")
    assert partition_range(closed, datetime(2030, 1, 1, tzinfo=UTC)) == ("2015-01-01", "2015-01-05")


@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_rows_fall_in_the_utc_day_that_contains_them_in_their_original_order(unit):
    frame = _frame().astype({"datetime": f"datetime64[{unit}]"})  # pandas 3 reads timestamps at other resolutions
    out = dict(partition_rows(frame, "datetime", KEYS, OPEN))
    assert list(out) == KEYS
    for key in KEYS:
        assert out[key].tolist() == naive_rows(frame["datetime"], key), key
    assert out["2015-01-01"].tolist() == [1, 2, 5]  # midnight in, just before the next midnight in
    placed = np.concatenate(list(out.values()))
    assert 3 not in placed and 7 not in placed and 9 not in placed  # NaT, and days not asked for


def test_windows_of_another_timezone_are_compared_in_utc():
    """The tables hold naive UTC times; a Berlin day starts at 23:00 UTC the day before."""
    berlin = DailyPartitionsDefinition(start_date="2015-01-01", timezone="Europe/Berlin")
    frame = _frame()
    out = dict(partition_rows(frame, "datetime", KEYS[1:], berlin))
    for key in KEYS[1:]:
        assert out[key].tolist() == naive_rows(frame["datetime"], key, offset_hours=1), key
    assert 6 in out["2015-01-01"]  # 2014-12-31 23:00 UTC is Berlin's 2015-01-01 00:00


def test_an_empty_frame_gives_every_key_no_rows():
    empty = _frame().iloc[:0]
    assert [(k, len(rows)) for k, rows in partition_rows(empty, "datetime", KEYS, OPEN)] == [(k, 0) for k in KEYS]
