"""Small helpers every asset module uses: time windows as naive UTC timestamps, schemas, per-day counts."""

import pandas as pd
from dagster import TableColumn, TableSchema


def naive_utc(t) -> pd.Timestamp:
    """A Dagster time-window bound (tz-aware UTC) as the tz-naive UTC timestamp the tables use."""
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def column_schema(frame: pd.DataFrame) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=c, type=str(t)) for c, t in frame.dtypes.items()])


def by_day(frame: pd.DataFrame, column: str = "datetime"):
    """``frame`` grouped by the partition key (YYYY-MM-DD) of ``column``."""
    return frame.groupby(frame[column].dt.strftime("%Y-%m-%d"))


def daily_partitioned(partition_expr: str = "datetime") -> dict:
    """The decorator arguments every daily asset shares: the daily partitions, backfills as one run, and the column
    the IO manager splits a ranged run's output by."""
    from dagster import BackfillPolicy

    from pm_assets.partitions import daily_partitions

    return {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run(),
            "metadata": {"partition_expr": partition_expr}}
