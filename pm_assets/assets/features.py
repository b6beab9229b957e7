"""Features and labels: one row per machine per snapshot time, on the daily partitions.

Lookback through partitions is declared, not hidden: each input's ``TimeWindowPartitionMapping`` loads the
earlier days a partition needs (14 days of telemetry, 1 day of errors, a year of replacements plus
``maintenance_history``), and the labels load the next days' failures. So materializing partitions one by one
gives exactly the table one run over the whole history gives (asserted in the tests).
"""

from math import ceil

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)
from pydantic import Field

from pm_assets.assets.common import (
    by_day,
    chunked_in,
    chunks_of,
    code_version,
    column_schema,
    daily_partitioned,
    params_of,
    run_summary,
    shown,
)
from pm_assets.core.chunks import ChunkedFrames, StoredPartitions, shift_key
from pm_assets.core.features import FeatureParams, FeatureTotals, build_features, feature_columns
from pm_assets.core.labels import DEFAULT_HORIZON_HOURS, LABEL_CLASSES, LabelTotals, build_labels, observed_until
from pm_assets.core.markdown import markdown_table
from pm_assets.core.schema import FAILURES
from pm_assets.core.validation import empty_table

#: Changes with this module and the pm_assets code it uses (see ``code_version``).
CODE_VERSION = code_version(__name__)

FEATURES_GROUP = "features"
_DEFAULTS = FeatureParams()
#: Days of earlier partitions each input needs (the longest window, 14 days, reaches into the 14th day back).
TELEMETRY_LOOKBACK_DAYS = ceil(_DEFAULTS.lookback_hours / 24)
ERRORS_LOOKBACK_DAYS = 1
MAINTENANCE_LOOKBACK_DAYS = _DEFAULTS.replacement_lookback_days
#: Days of later failure partitions the labels read: enough for horizons up to 24 * LABEL_LOOKAHEAD_DAYS hours.
LABEL_LOOKAHEAD_DAYS = 2


def _lookback(days: int) -> TimeWindowPartitionMapping:
    return TimeWindowPartitionMapping(start_offset=-days, allow_nonexistent_upstream_partitions=True)


class FeatureConfig(Config):
    """How snapshots are taken and how much telemetry a window needs."""

    snapshot_every_hours: int = Field(
        default=_DEFAULTS.snapshot_every_hours,
        description="Hours between snapshots (must divide 24); 24 = one per day.",
    )
    min_coverage: float = Field(
        default=_DEFAULTS.min_coverage,
        ge=0.0,
        le=1.0,
        description="Share of a window's hours that must have a reading for its mean/sd/trend (else NaN, flagged).",
    )

    def params(self) -> FeatureParams:
        return params_of(self, FeatureParams)


class LabelConfig(Config):
    """The prediction target."""

    horizon_hours: int = Field(
        default=DEFAULT_HORIZON_HOURS,
        ge=1,
        le=24 * LABEL_LOOKAHEAD_DAYS,
        description="A snapshot at t is positive for component K when K fails in (t, t + horizon].",
    )


@asset(
    code_version=CODE_VERSION,
    group_name=FEATURES_GROUP,
    kinds={"pandas", "parquet"},
    **daily_partitioned(),
    ins={
        "telemetry": chunked_in(_lookback(TELEMETRY_LOOKBACK_DAYS)),
        "errors": chunked_in(_lookback(ERRORS_LOOKBACK_DAYS)),
        "maintenance": chunked_in(_lookback(MAINTENANCE_LOOKBACK_DAYS)),
        "maintenance_history": AssetIn(),
        "machines": AssetIn(),
    },
    check_specs=[
        AssetCheckSpec(
            "complete_snapshots_have_no_nan",
            asset="features",
            blocking=True,
            description="No feature is NaN in a snapshot flagged complete.",
        )
    ],
    description="Snapshot features per machine (every 3 h by default), from data at or before the snapshot: "
    "telemetry mean/sd over 3 h, 24 h, 3, 7, 14 days and 7-day trend per sensor; error counts over 24 h; days since "
    "each component's last replacement; model and age. Coverage columns per window; `usable` (3 h and 24 h windows "
    "covered) and `complete` (every window covered, no NaN) flags. Gaps are flagged, never filled.",
)
def features(
    context: AssetExecutionContext,
    config: FeatureConfig,
    telemetry: StoredPartitions,
    errors: StoredPartitions,
    maintenance: StoredPartitions,
    maintenance_history: pd.DataFrame,
    machines: pd.DataFrame,
):
    params = config.params()
    totals = FeatureTotals(params)

    def chunks():
        for keys in chunks_of(context):
            first, last = keys[0], keys[-1]
            all_maintenance = pd.concat(
                [maintenance_history, maintenance.read(shift_key(first, -MAINTENANCE_LOOKBACK_DAYS), last)],
                ignore_index=True,
            )
            table = build_features(
                telemetry.read(shift_key(first, -TELEMETRY_LOOKBACK_DAYS), last),
                errors.read(shift_key(first, -ERRORS_LOOKBACK_DAYS), last),
                all_maintenance,
                machines,
                pd.Timestamp(first),
                pd.Timestamp(shift_key(last, 1)),
                params,
            )
            _add_feature_day_metadata(context, table, keys)
            totals.add(table)
            yield keys, table

    yield Output(ChunkedFrames(chunks(), lambda: _features_metadata(totals)))
    yield AssetCheckResult(
        check_name="complete_snapshots_have_no_nan",
        passed=totals.nan_in_complete == 0,
        metadata=shown(
            {"nan_values_in_complete_snapshots": totals.nan_in_complete, "complete_snapshots": totals.complete}
        ),
    )


def _add_feature_day_metadata(context: AssetExecutionContext, table: pd.DataFrame, keys: list[str]) -> None:
    """Per day: snapshots (plotted by the UI), the shares usable and complete, the mean 24 h and 14 d coverage."""
    per_day = by_day(table).agg(
        rows=("machineID", "size"),
        usable=("usable", "mean"),
        complete=("complete", "mean"),
        coverage_24h=("coverage_24h", "mean"),
        coverage_14d=("coverage_14d", "mean"),
    )
    for key in keys:
        if key in per_day.index:
            row = per_day.loc[key]
            context.add_asset_metadata(
                shown(
                    {
                        "dagster/row_count": int(row["rows"]),
                        "share_usable": float(row["usable"]),
                        "share_complete": float(row["complete"]),
                        "mean_coverage_24h": float(row["coverage_24h"]),
                        "mean_coverage_14d": float(row["coverage_14d"]),
                    }
                ),
                partition_key=key,
            )


def _features_metadata(totals: FeatureTotals) -> dict:
    """The run's metadata: schema, totals, settings and the coverage of each window."""
    params = totals.params
    return shown(
        {
            "dagster/column_schema": column_schema(totals.schema),
            "run": run_summary(
                rows=totals.rows,
                share_usable=totals.share(totals.usable),
                share_complete=totals.share(totals.complete),
            ),
            "settings": run_summary(
                features=len(feature_columns(params)),
                snapshot_every_hours=params.snapshot_every_hours,
                min_coverage=params.min_coverage,
            ),
            "coverage_by_window": MetadataValue.md(markdown_table(totals.coverage())),
        }
    )


@asset(
    code_version=CODE_VERSION,
    group_name=FEATURES_GROUP,
    kinds={"pandas", "parquet"},
    **daily_partitioned(),
    ins={
        "features": chunked_in(),
        "failures": chunked_in(  # tomorrow's failures may not be ingested yet
            TimeWindowPartitionMapping(
                start_offset=0, end_offset=LABEL_LOOKAHEAD_DAYS, allow_nonexistent_upstream_partitions=True
            ),
            allow_missing_partitions=True,
        ),
    },
    check_specs=[
        AssetCheckSpec(
            "immature_labels_have_no_class",
            asset="labels",
            blocking=True,
            description="No immature snapshot carries a class it could be mistaken for.",
        )
    ],
    description="Per snapshot: which component (none, comp1..comp4) fails within the horizon (24 h by default), "
    "per-component flags and the binary `failure_within_horizon`. A negative label is `label_mature` only once the "
    "whole horizon lies within the failure data ingested so far; immature labels have no class.",
)
def labels(context: AssetExecutionContext, config: LabelConfig, features: StoredPartitions, failures: StoredPartitions):
    failures_until = observed_until(context.partition_keys[0], failures.keys)
    totals = LabelTotals()

    def chunks():
        for keys in chunks_of(context):
            found = failures.read(keys[0], shift_key(keys[-1], LABEL_LOOKAHEAD_DAYS))
            if found.empty and "failure" not in found:
                found = empty_table(FAILURES)
            snapshots = features.read(keys[0], keys[-1], ["machineID", "datetime"])  # only the keys are needed
            table = build_labels(snapshots, found, config.horizon_hours, failures_until)
            _add_label_day_metadata(context, table)
            totals.add(table)
            yield keys, table

    def metadata() -> dict:
        return shown(
            {
                "dagster/column_schema": column_schema(totals.schema),
                "run": run_summary(
                    rows=totals.rows, share_mature=totals.share_mature, horizon_hours=config.horizon_hours
                ),
                "label_counts": MetadataValue.md(markdown_table(totals.class_counts())),
                "failures_observed_until": str(failures_until),
            }
        )

    yield Output(ChunkedFrames(chunks(), metadata))
    yield AssetCheckResult(
        check_name="immature_labels_have_no_class",
        passed=totals.leaked == 0,
        metadata=shown({"immature": totals.immature, "immature_with_a_class": totals.leaked}),
    )


def _add_label_day_metadata(context: AssetExecutionContext, table: pd.DataFrame) -> None:
    """Per day: snapshots (plotted by the UI), the share mature, positives and snapshots per class."""
    for key, day in by_day(table):
        counts = day["failure_component"].value_counts()
        context.add_asset_metadata(
            shown(
                {
                    "dagster/row_count": len(day),
                    "share_mature": float(day["label_mature"].mean()),
                    "positives": int(day["failure_within_horizon"].sum()),
                    **{f"n_{cls}": int(counts.get(cls, 0)) for cls in LABEL_CLASSES},
                }
            ),
            partition_key=key,
        )
