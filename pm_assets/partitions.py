"""The daily partitions every time-based asset shares (UTC days; see settings for the range)."""

from dagster import DailyPartitionsDefinition

from pm_assets.settings import PARTITION_END, PARTITION_START

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END)


def split_by_partition(frame, column: str | None, keys: list[str], partitions_def=daily_partitions):
    """Yield (key, rows of ``frame`` whose ``column`` falls in that partition's window), for each key.

    Without a column every key gets the whole frame (an unpartitioned or single-partition output).
    """
    import pandas as pd

    for key in keys:
        if column is None:
            yield key, frame
            continue
        window = partitions_def.time_window_for_partition_key(key)
        start, end = (pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in (window.start, window.end))
        yield key, frame[(frame[column] >= start) & (frame[column] < end)]
