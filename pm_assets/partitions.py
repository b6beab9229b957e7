"""The daily partitions every time-based asset shares (UTC days; see settings for the range)."""

from dagster import DailyPartitionsDefinition

from pm_assets.settings import PARTITION_END, PARTITION_START

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END)
