"""``by_day``, the per-partition grouping every daily asset uses, against pandas' groupby on the formatted day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pm_assets.assets.common import by_day


def naive_days(frame: pd.DataFrame, column: str = "datetime") -> dict[str, pd.DataFrame]:
    """{YYYY-MM-DD: the rows of that day, in frame order}, by formatting every row; rows without a time in none."""
    keys = frame[column].dt.strftime("%Y-%m-%d")
    return {key: frame[keys == key] for key in sorted(keys.dropna().unique())}


def _groups(grouped) -> dict[str, pd.DataFrame]:
    return {key: rows for key, rows in grouped}


@pytest.mark.parametrize("seed", range(3))
def test_groups_are_the_days_in_order_with_their_rows_in_frame_order(seed):
    rng = np.random.default_rng(seed)
    times = pd.Timestamp("2015-01-30") + pd.to_timedelta(rng.integers(0, 5 * 24 * 3600, 200), unit="s")
    frame = pd.DataFrame({"datetime": times, "value": rng.normal(size=200)}, index=rng.permutation(1000)[:200])
    frame.loc[frame.index[::17], "datetime"] = pd.NaT
    out = _groups(by_day(frame))
    expected = naive_days(frame)
    assert list(out) == list(expected)  # the days in order, across the month's end
    for key, rows in expected.items():
        pd.testing.assert_frame_equal(out[key], rows)
    assert sum(len(rows) for rows in out.values()) == frame["datetime"].notna().sum()  # NaT rows in no day


def test_a_day_runs_from_midnight_to_just_before_the_next():
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(
                ["2015-01-02 00:00", "2015-01-01 23:59:59.999999", "2015-01-01 00:00"], format="ISO8601"
            )
        }
    )
    out = _groups(by_day(frame, "date"))
    assert {key: rows.index.tolist() for key, rows in out.items()} == {"2015-01-01": [1, 2], "2015-01-02": [0]}


@pytest.mark.parametrize("times", [[], [None, None]], ids=["empty", "only-NaT"])
def test_no_rows_with_a_time_give_no_group(times):
    frame = pd.DataFrame({"datetime": pd.to_datetime(pd.Series(times, dtype=object)), "v": range(len(times))})
    assert _groups(by_day(frame)) == {}
