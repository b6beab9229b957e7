"""The daily partitions every time-based asset shares (UTC days; see settings for the range), and which rows of a
frame fall in each.

Open-ended by default: the last partition is the last complete UTC day, so a new partition appears every night.
"""

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


def partition_rows(frame, column: str, keys: list[str], partitions_def=daily_partitions):
    """Yield (key, positions of the rows of ``frame`` whose ``column`` falls in that partition's window), for each
    key, positions ascending (the rows' original order).

    The column is sorted once and each window is two binary searches, so splitting a year into days is not 366
    passes over it.
    """
    import numpy as np
    import pandas as pd

    values = frame[column].to_numpy()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    for key in keys:
        window = partitions_def.time_window_for_partition_key(key)
        start, end = (
            pd.Timestamp(t).tz_convert("UTC").tz_localize(None).to_datetime64() for t in (window.start, window.end)
        )
        lo, hi = np.searchsorted(ordered, start, "left"), np.searchsorted(ordered, end, "left")
        yield key, np.sort(order[lo:hi])
