"""Raw ingestion: the five Kaggle files become typed, validated parquet tables.

- ``source_files``: inventory of the CSV files (hash, rows, time span, rows outside the partition range).
- ``machines``: the fleet (unpartitioned); the list of valid machine ids for every other table.
- ``maintenance_history``: replacements before the first partition, the opening history that
  "time since last replacement" needs on the first days (the real file starts 2014-06-01).
- ``telemetry``, ``errors``, ``maintenance``, ``failures``: one daily partition per UTC day.

Every row read is either stored or quarantined with a reason (``data/quarantine/<table>/<partition>.parquet``).
A backfill over many partitions runs as a single run (``BackfillPolicy.single_run()``): each file is parsed
once and split by day.
"""


import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    asset,
)

from pm_assets.assets.common import by_day, column_schema, daily_partitioned, naive_utc
from pm_assets.checks import raw_check_results, raw_check_specs
from pm_assets.core.completeness import expected_hours, hourly_completeness
from pm_assets.core.markdown import markdown_table
from pm_assets.core.schema import EVENT_TABLES, MACHINES, MAINTENANCE, TABLES, TableSpec
from pm_assets.core.storage import write_parquet_atomic
from pm_assets.core.validation import ValidationResult, validate_rows
from pm_assets.partitions import daily_partitions, split_by_partition
from pm_assets.resources import RawFilesResource

RAW_GROUP = "raw"
RAW_KINDS = {"pandas", "parquet"}


def _quarantine(raw_files: RawFilesResource, spec: TableSpec, rejected: pd.DataFrame, keys: list[str]) -> None:
    """Write the rejected rows of each partition (an empty file where none), replacing earlier runs' files."""
    column = spec.time_column if len(keys) > 1 else None  # one key ("history", "all", or a day) takes every row
    for key, part in split_by_partition(rejected, column, keys):
        write_parquet_atomic(part.reset_index(drop=True), raw_files.quarantine_path(spec.name, key))


def _metadata(spec: TableSpec, raw_files: RawFilesResource, rows_in: int, result: ValidationResult, keys: list[str]) -> dict:
    """Metadata of the whole run: totals over its partitions, schema, source file and quarantine."""
    kept, rejected = result.kept, result.rejected
    by_rule = {r: n for r, n in result.rejected_by_rule().items() if n}
    meta = {
        "dagster/column_schema": column_schema(kept),
        "run_rows_in": rows_in,
        "run_rows_kept": len(kept),
        "run_rows_rejected": len(rejected),
        "run_partitions": len(keys),
        "source_file": MetadataValue.path(str(raw_files.path(spec))),
        "source_sha256": raw_files.sha256(spec),
        "quarantine": MetadataValue.path(str(raw_files.quarantine_path(spec.name, keys[0]).parent)),
        "rejected_by_rule": MetadataValue.md(markdown_table(pd.DataFrame(by_rule.items(), columns=["rule", "rows"]))),
    }
    if not spec.time_column:  # unpartitioned: the run is the table
        meta.update({"dagster/row_count": len(kept), "rows_in": rows_in, "rows_rejected": len(rejected),
                     "machines_seen": int(kept["machineID"].nunique())})
    return meta


def _partition_metadata(spec: TableSpec, window_rows: pd.DataFrame, result: ValidationResult, keys: list[str]) -> dict[str, dict]:
    """Per partition: row count (plotted by the UI), rows in and rejected, machines seen, time span."""
    rows_in = by_day(window_rows, spec.time_column).size()
    kept = by_day(result.kept, spec.time_column).agg(rows=("machineID", "size"), machines=("machineID", "nunique"),
                                    first=(spec.time_column, "min"), last=(spec.time_column, "max"))
    rejected = by_day(result.rejected, spec.time_column).size()
    out = {}
    for key in keys:
        meta = {"dagster/row_count": int(kept["rows"].get(key, 0)), "rows_in": int(rows_in.get(key, 0)),
                "rows_rejected": int(rejected.get(key, 0)), "machines_seen": int(kept["machines"].get(key, 0))}
        if key in kept.index:
            meta.update(first_timestamp=str(kept.loc[key, "first"]), last_timestamp=str(kept.loc[key, "last"]))
        out[key] = meta
    return out


def _ingest_window(raw_files: RawFilesResource, spec: TableSpec, start, end, machine_ids) -> tuple[pd.DataFrame, ValidationResult]:
    """The parsed rows of ``spec``'s file with timestamps in [start, end) (no lower bound when start is None),
    and their validation."""
    parsed = raw_files.load(spec)
    times = parsed[spec.time_column]
    in_window = times < naive_utc(end)
    if start is not None:
        in_window &= times >= naive_utc(start)
    rows = parsed[in_window]
    return rows, validate_rows(rows, spec, machine_ids)


@asset(
    group_name=RAW_GROUP,
    kinds={"csv", "pandas"},
    description="Inventory of the five source CSV files: path, size, sha256, rows, time span, and how many rows "
    "fall before, inside and after the partition range (rows outside it are reported here, not dropped silently).",
)
def source_files(context: AssetExecutionContext, raw_files: RawFilesResource) -> Output[pd.DataFrame]:
    start, end = (naive_utc(t) for t in (daily_partitions.start, daily_partitions.end))
    rows = []
    for spec in TABLES.values():
        path = raw_files.path(spec)
        parsed = raw_files.load(spec)
        row = {"table": spec.name, "path": str(path), "bytes": path.stat().st_size, "sha256": raw_files.sha256(spec),
               "rows": len(parsed)}
        if spec.time_column:
            t = parsed[spec.time_column]
            row.update(first=t.min(), last=t.max(), rows_before_partitions=int((t < start).sum()),
                       rows_in_partitions=int(((t >= start) & (t < end)).sum()), rows_after_partitions=int((t >= end).sum()))
        rows.append(row)
    inventory = pd.DataFrame(rows)
    outside = int(inventory[["rows_before_partitions", "rows_after_partitions"]].fillna(0).to_numpy().sum())
    return Output(
        inventory,
        metadata={
            "dagster/row_count": len(inventory),
            "files": MetadataValue.md(markdown_table(inventory.drop(columns=["path"]))),
            "partition_range": f"{start.date()} .. {(end - pd.Timedelta(days=1)).date()}",
            "rows_outside_partitions": outside,
        },
    )


@asset(
    group_name=RAW_GROUP,
    kinds=RAW_KINDS,
    deps=[source_files],
    check_specs=raw_check_specs(MACHINES),
    description="The fleet: one row per machine with its model (model1..model4) and age in years. "
    "Its machine ids are the valid ids of every other table.",
)
def machines(context: AssetExecutionContext, raw_files: RawFilesResource):
    parsed = raw_files.load(MACHINES)
    result = validate_rows(parsed, MACHINES)
    _quarantine(raw_files, MACHINES, result.rejected, ["all"])
    meta = _metadata(MACHINES, raw_files, len(parsed), result, ["all"])
    meta["machines_by_model"] = MetadataValue.md(
        markdown_table(result.kept["model"].value_counts(sort=False).rename_axis("model").reset_index(name="machines"))
    )
    yield Output(result.kept, metadata=meta)
    yield from raw_check_results(MACHINES, len(parsed), result, None)


@asset(
    group_name=RAW_GROUP,
    kinds=RAW_KINDS,
    deps=[source_files],
    ins={"machines": AssetIn()},
    check_specs=raw_check_specs(MAINTENANCE, "maintenance_history"),
    description="Component replacements recorded before the first daily partition: the opening history that "
    "'time since last replacement' needs on the first days. Later replacements are in the partitioned "
    "`maintenance` asset.",
)
def maintenance_history(context: AssetExecutionContext, raw_files: RawFilesResource, machines: pd.DataFrame):
    rows, result = _ingest_window(raw_files, MAINTENANCE, None, daily_partitions.start, machines["machineID"])
    _quarantine(raw_files, MAINTENANCE, result.rejected, ["history"])
    meta = _metadata(MAINTENANCE, raw_files, len(rows), result, ["history"])
    meta.update({"dagster/row_count": len(result.kept), "rows_in": len(rows), "rows_rejected": len(result.rejected)})
    yield Output(result.kept, metadata=meta)
    yield from raw_check_results(MAINTENANCE, len(rows), result, machines["machineID"], asset_name="maintenance_history")


RAW_DESCRIPTIONS = {
    "telemetry": "Hourly sensor readings per machine (volt, rotate, pressure, vibration), one partition per UTC "
    "day. Completeness per machine is checked against the hours the source file covers.",
    "errors": "Non-fatal machine errors (error1..error5) with their hour; several may share one hour.",
    "maintenance": "Component replacements (comp1..comp4), scheduled or after a failure, at their hour.",
    "failures": "Component failures (comp1..comp4): each is also a replacement in `maintenance`.",
}


def build_raw_table_asset(spec: TableSpec):
    """A daily-partitioned raw table read from its Kaggle file (one factory for four alike assets)."""

    @asset(
        name=spec.name,
        group_name=RAW_GROUP,
        kinds=RAW_KINDS,
        **daily_partitioned(spec.time_column),
        deps=[source_files],
        ins={"machines": AssetIn()},
        check_specs=raw_check_specs(spec),
        description=RAW_DESCRIPTIONS[spec.name],
    )
    def _raw_table(context: AssetExecutionContext, raw_files: RawFilesResource, machines: pd.DataFrame):
        window, keys = context.partition_time_window, context.partition_keys
        machine_ids = machines["machineID"]
        rows, result = _ingest_window(raw_files, spec, window.start, window.end, machine_ids)
        rows_in = len(rows)
        _quarantine(raw_files, spec, result.rejected, keys)
        for key, partition_meta in _partition_metadata(spec, rows, result, keys).items():
            context.add_asset_metadata(partition_meta, partition_key=key)
        meta = _metadata(spec, raw_files, rows_in, result, keys)
        completeness = None
        if spec.name == "telemetry":
            parsed = raw_files.load(spec)
            grid = expected_hours(naive_utc(window.start), naive_utc(window.end), parsed["datetime"].min(), parsed["datetime"].max())
            completeness = hourly_completeness(result.kept, machine_ids, grid)
            # per day: kept rows (unique and on the hour) over machines x expected hours of that day
            expected = pd.Series(1, index=grid).groupby(grid.strftime("%Y-%m-%d")).size() * len(machine_ids)
            kept_per_day = by_day(result.kept).size()
            for key in keys:
                if expected.get(key, 0):
                    context.add_asset_metadata({"coverage": float(kept_per_day.get(key, 0) / expected[key])},
                                               partition_key=key)
            meta["run_coverage"] = float(completeness["present_hours"].sum() / max(completeness["expected_hours"].sum(), 1))
            meta["run_machines_complete"] = int((completeness["missing_hours"] == 0).sum())
        yield Output(result.kept, metadata=meta)
        yield from raw_check_results(spec, rows_in, result, machine_ids, completeness)

    return _raw_table


raw_table_assets = [build_raw_table_asset(TABLES[name]) for name in ("telemetry", *EVENT_TABLES)]
telemetry, errors, maintenance, failures = raw_table_assets
