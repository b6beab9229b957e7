"""The daily partitions every time-based asset shares (UTC days; see settings for the range), their time
windows as the naive UTC timestamps the tables hold, and which rows of a frame fall in each.

Open-ended by default: the last partition is the last complete UTC day, so a new partition appears every night.
"""

import numpy as np
import pandas as pd
from dagster import DailyPartitionsDefinition

from pm_assets.settings import PARTITION_END, PARTITION_START

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END)


def partition_range(partitions_def=daily_partitions, current_time=None) -> tuple[str, str]:
    """(first day, end day exclusive) of the partitions existing at ``current_time`` (default now), YYYY-MM-DD;
    equal when no partition exists yet."""
    first = partitions_def.start.strftime("%Y-%m-%d")
    keys = partitions_def.get_partition_keys(current_time=current_time)
    if not keys:
        return first, first
    end = partitions_def.time_window_for_partition_key(keys[-1]).end
    return first, end.strftime("%Y-%m-%d")


def naive_utc(t) -> pd.Timestamp:
    """A Dagster time-window bound (tz-aware UTC) as the tz-naive UTC timestamp the tables use (a naive one as it
    is): the one conversion between partitions and stored times."""
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def naive_window(key: str, partitions_def=daily_partitions) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The partition's time window [start, end) as naive UTC timestamps."""
    window = partitions_def.time_window_for_partition_key(key)
    return naive_utc(window.start), naive_utc(window.end)


def partition_rows(frame, column: str, keys: list[str], partitions_def=daily_partitions):
    """Yield (key, positions of the rows of ``frame`` whose ``column`` falls in that partition's window), for each
    key, positions ascending (the rows' original order).

    The column is sorted once and each window is two binary searches, so splitting a year into days is not 366
    passes over it.
    """
    values = frame[column].to_numpy()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    for key in keys:
        start, end = (t.to_datetime64() for t in naive_window(key, partitions_def))
        lo, hi = np.searchsorted(ordered, start, "left"), np.searchsorted(ordered, end, "left")
        yield key, np.sort(order[lo:hi])
