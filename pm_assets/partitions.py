"""The daily partitions every time-based asset shares (UTC days; see settings for the range)."""

from dagster import DailyPartitionsDefinition

from pm_assets.settings import PARTITION_END, PARTITION_START

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END)


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
        start, end = (pd.Timestamp(t).tz_convert("UTC").tz_localize(None).to_datetime64() for t in (window.start, window.end))
        lo, hi = np.searchsorted(ordered, start, "left"), np.searchsorted(ordered, end, "left")
        yield key, np.sort(order[lo:hi])


def split_by_partition(frame, column: str | None, keys: list[str], partitions_def=daily_partitions):
    """Yield (key, rows of ``frame`` in that partition's window) for each key (see :func:`partition_rows`).

    Without a column every key gets the whole frame (an unpartitioned or single-partition output).
    """
    if column is None:
        for key in keys:
            yield key, frame
        return
    for key, rows in partition_rows(frame, column, keys, partitions_def):
        yield key, frame.iloc[rows]
