"""Raw ingestion: files that land become typed, validated parquet tables.

- ``source_files``: stages every new file of the landing folder (parsed once, split by day, identified by its
  sha256; see :mod:`pm_assets.core.landing`) and is the inventory of every file seen: when, its hash, the days it
  touched, or why it failed.
- ``machines``: the fleet (unpartitioned); the list of valid machine ids for every other table.
- ``maintenance_history``: replacements before the first partition, the opening history that
  "time since last replacement" needs on the first days (the real file starts 2014-06-01).
- ``telemetry``, ``errors``, ``maintenance``, ``failures``: one daily partition per UTC day, built from the staged
  rows of that day (every file that brought rows for it, in arrival order): a day is read again without parsing
  any file, and a late file for an old day only adds to that day.

Every row read is either stored or quarantined with a reason (``data/quarantine/<table>/<partition>.parquet``).
A backfill over many partitions runs as a single run (``BackfillPolicy.single_run()``).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from pm_assets.assets.common import (
    by_day,
    chunks_of,
    code_version,
    column_schema,
    daily_partitioned,
    run_summary,
    shown,
)
from pm_assets.checks import raw_check_results, raw_check_specs
from pm_assets.core.chunks import ChunkedFrames
from pm_assets.core.completeness import HourlyPresence, machines_complete, overall_coverage
from pm_assets.core.landing import ALL_ROWS, UNPLACED, inventory, unreadable, unusable
from pm_assets.core.locations import sha256_of
from pm_assets.core.markdown import markdown_table
from pm_assets.core.parquet_files import write_parquet_atomic, write_partitions_atomic
from pm_assets.core.schema import DAILY_TABLES, MACHINES, MAINTENANCE, TABLES, TableSpec
from pm_assets.core.validation import (
    FILE_COLUMN,
    STAGED_DAY,
    ValidationResult,
    ValidationTotals,
    empty_table,
    validate_rows,
)
from pm_assets.partitions import daily_partitions, naive_utc, partition_range
from pm_assets.resources import LandingResource

#: Changes with this module and the pm_assets code it uses (see ``code_version``).
CODE_VERSION = code_version(__name__)

RAW_GROUP = "raw"
RAW_KINDS = {"pandas", "parquet"}
#: Rows of the inventory shown in the metadata (the newest), and errors quoted in a check's description.
INVENTORY_SHOWN = 20
SHOWN_ERRORS = 3


def _quarantine(landing: LandingResource, spec: TableSpec, rejected: pd.DataFrame, keys: list[str]) -> None:
    """Write the rejected rows of each partition (an empty file where none), replacing earlier runs' files. Rows are
    split by the day they were staged under, so a row whose timestamp could not be read lands in its file's day."""
    if len(keys) == 1:  # one key ("history", "all", or a day) takes every row
        groups = {keys[0]: rejected}
    else:
        groups = dict(list(rejected.groupby(STAGED_DAY, sort=False)))
    for key in keys:
        if key in groups:
            write_parquet_atomic(groups[key].reset_index(drop=True), landing.quarantine_path(spec.name, key))
    # the days without a rejected row (most of a year): one empty table written to each file, converted once
    empty = [(landing.quarantine_path(spec.name, key), np.arange(0)) for key in keys if key not in groups]
    if empty:
        write_partitions_atomic(rejected.iloc[:0], empty)


def _metadata(spec: TableSpec, landing: LandingResource, totals: ValidationTotals, keys: list[str]) -> dict:
    """Metadata of the whole run: totals over its partitions, schema, source files and quarantine."""
    by_rule = {r: n for r, n in totals.rejected_by_rule().items() if n}
    rejected = sum(len(p) for p in totals.rejected_parts)
    meta = {
        "dagster/column_schema": column_schema(totals.schema if totals.schema is not None else empty_table(spec)),
        "run": run_summary(
            partitions=len(keys), rows_in=totals.rows_in, rows_kept=totals.kept_rows, rows_rejected=rejected
        ),
        "source_files": MetadataValue.md(_files_md(totals.files)),
        "quarantine": MetadataValue.path(str(landing.quarantine_path(spec.name, keys[0]).parent)),
        "rejected_by_rule": MetadataValue.md(markdown_table(pd.DataFrame(by_rule.items(), columns=["rule", "rows"]))),
    }
    if not spec.time_column:  # unpartitioned: the run is the table
        meta.update(
            {
                "dagster/row_count": totals.kept_rows,
                "rows_in": totals.rows_in,
                "rows_rejected": rejected,
                "machines_seen": len(totals.machines_seen),
            }
        )
    return meta


def _partition_metadata(
    spec: TableSpec, window_rows: pd.DataFrame, result: ValidationResult, keys: list[str]
) -> dict[str, dict]:
    """Per partition: row count (plotted by the UI), rows in and rejected, machines seen, time span, the files that
    brought its rows."""
    rows_in = window_rows.groupby(STAGED_DAY).size()  # by staged day: a row without a readable time counts too
    pairs = window_rows[[STAGED_DAY, FILE_COLUMN]].drop_duplicates()  # each day's files in arrival order
    files = pairs[FILE_COLUMN].astype(str).groupby(pairs[STAGED_DAY].to_numpy()).agg(", ".join).to_dict()
    kept = by_day(result.kept, spec.time_column).agg(
        rows=("machineID", "size"),
        machines=("machineID", "nunique"),
        first=(spec.time_column, "min"),
        last=(spec.time_column, "max"),
    )
    rejected = result.rejected.groupby(STAGED_DAY).size()
    out = {}
    for key in keys:
        meta = {
            "dagster/row_count": int(kept["rows"].get(key, 0)),
            "rows_in": int(rows_in.get(key, 0)),
            "rows_rejected": int(rejected.get(key, 0)),
            "machines_seen": int(kept["machines"].get(key, 0)),
        }
        if key in kept.index:
            meta.update(first_timestamp=str(kept.loc[key, "first"]), last_timestamp=str(kept.loc[key, "last"]))
        out[key] = meta | {"source_files": files.get(key, "none")}
    return out


def _files_md(files: dict[str, int]) -> str:
    """The files that fed these rows and how many rows each brought (arrival order)."""
    if not files:
        return "no file brought rows for these days"
    return markdown_table(pd.DataFrame(list(files.items()), columns=["file", "rows"]))


class IngestConfig(Config):
    """Which landed files to stage."""

    files: list[str] | None = Field(
        default=None,
        description="Names of files in the landing folder to stage (the landing sensor names the new ones). "
        "None: every file there whose hash is not yet in the ledger. A file that cannot be read is recorded, "
        "reported by the check `landed_files_readable`, and fails its table's asset (not this one).",
    )


@asset(
    code_version=CODE_VERSION,
    group_name=RAW_GROUP,
    kinds={"csv", "pandas"},
    check_specs=[
        AssetCheckSpec(
            "landed_files_readable",
            asset="source_files",
            description="Every file in the landing folder could be read (else: which file, "
            "which line, what is wrong; it is tried again only when its bytes change).",
        ),
        AssetCheckSpec(
            "no_unexpected_columns",
            asset="source_files",
            description="No landed file has columns the tables do not use (WARN: they are "
            "ignored; which files and columns is in the metadata).",
        ),
    ],
    description="Stages the files of the landing folder (each parsed once, identified by its sha256, split by UTC day) "
    "and lists every file ever seen: table, name, sha256, size, when it was ingested, rows, the days it touched, "
    "rows before/after the partition range, or why it failed. A re-copied file (same hash) is not staged again.",
)
def source_files(
    context: AssetExecutionContext, config: IngestConfig, landing: LandingResource
) -> Output[pd.DataFrame]:
    landed, ignored = landing.landed()
    by_name = {f.name: f for f in landed}
    staged, failed = _stage(context, landing, _selected(landing, config, landed))
    _quarantine_unplaced(landing, staged)
    entries = landing.staging().entries()
    table = inventory(entries, *partition_range())
    # files still in the landing folder whose latest version could not be read (by name: hashing every landed file
    # of a long history on every run would cost more each day), and entries named like a file that are none
    failing = {e["id"] for e in unreadable(entries, by_name)}
    bad_entries = table[table["id"].isin(failing)]
    not_files = unusable(landing.landing_dir)
    meta = _inventory_metadata(table, staged, failed)
    meta.update(
        {
            "ignored_files": ", ".join(ignored) or "none",
            "not_files": ", ".join(f"{n} ({why})" for n, why in not_files) or "none",
            "landing_dir": MetadataValue.path(landing.landing_dir),
        }
    )
    # A file that cannot be read fails only its table's asset (which names it), not this step: the other files of
    # the run are staged and their tables built. The check below fails too, until the file is fixed or removed.
    yield Output(table, metadata=shown(meta))
    yield _extra_columns_check(table[(table["extra_columns"] != "") & table["name"].isin(list(by_name))])
    yield _readable_check(bad_entries, not_files, landing.landing_dir)


def _selected(landing: LandingResource, config: IngestConfig, landed: list) -> list:
    """The landed files to stage: the ones the config names (each must be there), else every one."""
    if config.files is None:
        return landed
    by_name = {f.name: f for f in landed}
    missing = [n for n in config.files if n not in by_name]
    if missing:
        raise Failure(f"not in the landing folder {landing.landing_dir} (or not a table file): {missing}")
    return [by_name[n] for n in config.files]


def _stage(context: AssetExecutionContext, landing: LandingResource, selected: list) -> tuple[list, list]:
    """Stage each file (a file already staged with the same bytes is not parsed again); the ledger entries of the
    files new to it: (staged, failed), a failure logged as an error."""
    staging = landing.staging()
    staged, failed = [], []
    plausible = landing.plausible_times(daily_partitions.get_first_partition_key())
    for file in selected:
        sha = sha256_of(file.path)
        known = staging.entry_for(file, sha)
        entry = staging.stage(file, sha, plausible)
        if known is None:
            (failed if entry["status"] == "failed" else staged).append(entry)
            if entry["status"] == "failed":
                context.log.error(f"{file.name}: {entry['error']}")
    return staged, failed


def _quarantine_unplaced(landing: LandingResource, staged: list) -> None:
    """Quarantine, per daily table that got a file, the rows whose day nobody can tell (no readable or plausible
    timestamp, no day in the file name): again for every such table, as a new version of a file replaces its
    older rows."""
    staging = landing.staging()
    for name in {e["table"] for e in staged if e["table"] in DAILY_TABLES}:
        unplaced = validate_rows(staging.read(name, [UNPLACED]), TABLES[name])
        write_parquet_atomic(unplaced.rejected, landing.quarantine_path(name, UNPLACED))


def _rows_md(rows: list[dict], none: str):
    """``rows`` as a markdown table, or ``none`` when there is none."""
    return MetadataValue.md(markdown_table(pd.DataFrame(rows))) if rows else none


def _inventory_metadata(table: pd.DataFrame, staged: list, failed: list) -> dict:
    """The inventory's counts and tables: what this run staged or failed, and the newest files of all."""
    return {
        "dagster/row_count": len(table),
        "dagster/column_schema": column_schema(table),
        "files_staged_now": len(staged),
        "files_failed_now": len(failed),
        "files_ingested": int((table["status"] == "ingested").sum()),
        "files_failed": int((table["status"] == "failed").sum()),
        "rows_outside_partitions": int(table[["rows_before_partitions", "rows_after_partitions"]].to_numpy().sum()),
        "rows_implausible": int(table["rows_implausible"].sum()),
        "staged_now": _rows_md(
            [{"file": e["name"], "table": e["table"], "rows": e["rows"], "days": len(e["days"])} for e in staged],
            "nothing new",
        ),
        "failed_now": _rows_md([{"file": e["name"], "table": e["table"], "error": e["error"]} for e in failed], "none"),
        "files": MetadataValue.md(markdown_table(table.drop(columns=["id", "sha256"]).tail(INVENTORY_SHOWN))),
    }


def _extra_columns_check(extra: pd.DataFrame) -> AssetCheckResult:
    """WARN for the landed files with columns the tables do not use (``extra``: their inventory rows)."""
    return AssetCheckResult(
        check_name="no_unexpected_columns",
        passed=extra.empty,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(f"{n}: {c}" for n, c in zip(extra["name"], extra["extra_columns"])) or "none",
        metadata=shown(
            {
                "files_with_extra_columns": len(extra),
                "files": MetadataValue.md(markdown_table(extra[["name", "extra_columns"]])) if len(extra) else "none",
            }
        ),
    )


def _readable_check(bad_entries: pd.DataFrame, not_files: list, landing_dir) -> AssetCheckResult:
    """ERROR while a landed file cannot be read (``bad_entries``: their inventory rows) or an entry of the landing
    folder is no file (``not_files``: (name, why))."""
    problems = [*bad_entries["error"], *(f"{Path(landing_dir) / n}: {why}" for n, why in not_files)]
    return AssetCheckResult(
        check_name="landed_files_readable",
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:SHOWN_ERRORS]) or "every landed file was read",
        metadata=shown(
            {
                "unreadable_files": len(problems),
                "files": ", ".join([*bad_entries["name"], *(n for n, _ in not_files)]) or "none",
            }
        ),
    )


def fail_if_unreadable(landing: LandingResource, table: str, days: list[str] | None = None) -> None:
    """Fail the asset of ``table`` when a file of it that touches ``days`` (any, for None) could not be read and is
    still in the landing folder: the UI shows the table, the file, the line and the problem."""
    landed, _ = landing.landed()
    failing = unreadable(landing.staging().entries(), [f.name for f in landed], table, days)
    if failing:
        names = ", ".join(e["name"] for e in failing)
        raise Failure(
            description=f"{table} cannot be built: "
            + "; ".join(e["error"] for e in failing)
            + ". Fix the file (a new version is staged as soon as its bytes change) or remove it from the landing "
            "folder.",
            metadata=shown({"unreadable_files": names, "landing_dir": MetadataValue.path(landing.landing_dir)}),
        )


@asset(
    code_version=CODE_VERSION,
    group_name=RAW_GROUP,
    kinds=RAW_KINDS,
    deps=[source_files],
    check_specs=raw_check_specs(MACHINES),
    description="The fleet: one row per machine with its model (model1..model4) and age in years, from every "
    "PdM_machines file that landed (a repeated machine id is a duplicate: the first arrival is kept). "
    "Its machine ids are the valid ids of every other table.",
)
def machines(context: AssetExecutionContext, landing: LandingResource):
    fail_if_unreadable(landing, MACHINES.name)
    staging = landing.staging()
    parsed = staging.read(MACHINES.name, [ALL_ROWS])
    if parsed.empty and not staging.chunks(MACHINES.name, ALL_ROWS):
        raise Failure(f"no PdM_machines file has been staged from {landing.landing_dir}: the fleet is unknown")
    result = validate_rows(parsed, MACHINES)
    _quarantine(landing, MACHINES, result.rejected, ["all"])
    totals = ValidationTotals.of(parsed, result, MACHINES)
    meta = _metadata(MACHINES, landing, totals, ["all"])
    meta["machines_by_model"] = MetadataValue.md(
        markdown_table(result.kept["model"].value_counts(sort=False).rename_axis("model").reset_index(name="machines"))
    )
    yield Output(result.kept, metadata=shown(meta))
    yield from raw_check_results(MACHINES, totals)


@asset(
    code_version=CODE_VERSION,
    group_name=RAW_GROUP,
    kinds=RAW_KINDS,
    deps=[source_files],
    ins={"machines": AssetIn()},
    check_specs=raw_check_specs(MAINTENANCE, "maintenance_history"),
    description="Component replacements recorded before the first daily partition: the opening history that "
    "'time since last replacement' needs on the first days. Later replacements are in the partitioned "
    "`maintenance` asset.",
)
def maintenance_history(context: AssetExecutionContext, landing: LandingResource, machines: pd.DataFrame):
    staging = landing.staging()
    first = daily_partitions.get_first_partition_key()
    days = [d for d in staging.days(MAINTENANCE.name) if d < first]
    fail_if_unreadable(landing, MAINTENANCE.name, days)
    rows = staging.read(MAINTENANCE.name, days)
    fleet = landing.fleet(machines)
    result = validate_rows(rows, MAINTENANCE, fleet)
    _quarantine(landing, MAINTENANCE, result.rejected, ["history"])
    totals = ValidationTotals.of(rows, result, MAINTENANCE, fleet)
    meta = _metadata(MAINTENANCE, landing, totals, ["history"])
    meta.update({"dagster/row_count": len(result.kept), "rows_in": len(rows), "rows_rejected": len(result.rejected)})
    yield Output(result.kept, metadata=shown(meta))
    yield from raw_check_results(MAINTENANCE, totals, asset_name="maintenance_history")


RAW_DESCRIPTIONS = {
    "telemetry": "Hourly sensor readings per machine (volt, rotate, pressure, vibration), one partition per UTC "
    "day. Completeness per machine is checked against the hours the staged rows of the window span.",
    "errors": "Non-fatal machine errors (error1..error5) with their hour; several may share one hour.",
    "maintenance": "Component replacements (comp1..comp4), scheduled or after a failure, at their hour.",
    "failures": "Component failures (comp1..comp4): each is also a replacement in `maintenance`.",
}


def build_raw_table_asset(spec: TableSpec):
    """A daily-partitioned raw table built from the staged rows of its days (one factory for four alike assets)."""

    @asset(
        code_version=CODE_VERSION,
        name=spec.name,
        group_name=RAW_GROUP,
        kinds=RAW_KINDS,
        **daily_partitioned(spec.time_column),
        deps=[source_files],
        ins={"machines": AssetIn()},
        check_specs=raw_check_specs(spec),
        description=RAW_DESCRIPTIONS[spec.name] + " Built from every landed file that brought rows for the day "
        "(partition metadata `source_files`).",
    )
    def _raw_table(context: AssetExecutionContext, landing: LandingResource, machines: pd.DataFrame):
        keys = context.partition_keys
        fail_if_unreadable(landing, spec.name, keys)
        fleet = landing.fleet(machines)
        totals = ValidationTotals(spec, fleet)
        hours = _presence(spec, machines, context.partition_time_window)

        def chunks():
            for chunk in chunks_of(context):
                rows = landing.staging().read(spec.name, chunk)
                result = validate_rows(rows, spec, fleet)
                _quarantine(landing, spec, result.rejected, chunk)
                for key, partition_meta in _partition_metadata(spec, rows, result, chunk).items():
                    context.add_asset_metadata(shown(partition_meta), partition_key=key)
                totals.add(rows, result)
                if hours is not None:
                    hours.add(result.kept)
                yield chunk, result.kept
            if hours is not None:  # the grid ends where the source does: known once every chunk is read
                for key, coverage in hours.coverage_by_day(totals.first_time, totals.last_time).items():
                    context.add_asset_metadata(shown({"coverage": coverage}), partition_key=key)

        def metadata() -> dict:
            return _raw_metadata(spec, landing, totals, keys, hours)

        yield Output(ChunkedFrames(chunks(), metadata))
        completeness = hours.completeness(totals.first_time, totals.last_time) if hours is not None else None
        yield from raw_check_results(spec, totals, completeness)

    return _raw_table


def _presence(spec: TableSpec, machines: pd.DataFrame, window) -> HourlyPresence | None:
    """Telemetry's hourly presence over the run's time window, to be marked chunk by chunk (None for the others)."""
    if spec.name != "telemetry":
        return None
    return HourlyPresence(machines["machineID"], naive_utc(window.start), naive_utc(window.end))


def _raw_metadata(
    spec: TableSpec, landing: LandingResource, totals: ValidationTotals, keys: list[str], hours: HourlyPresence | None
) -> dict:
    """The run's metadata (:func:`_metadata`), with telemetry's coverage and complete machines in ``run``."""
    meta = _metadata(spec, landing, totals, keys)
    if hours is not None:
        completeness = hours.completeness(totals.first_time, totals.last_time)
        meta["run"] += ", " + run_summary(
            coverage=overall_coverage(completeness), machines_complete=machines_complete(completeness)
        )
    return shown(meta)


raw_table_assets = [build_raw_table_asset(TABLES[name]) for name in DAILY_TABLES]
telemetry, errors, maintenance, failures = raw_table_assets
