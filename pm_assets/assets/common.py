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
