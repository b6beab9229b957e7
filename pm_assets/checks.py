"""Asset checks of the raw tables: schema, one check per validation rule, row accounting and hourly completeness.

The checks are evaluated inside the ingestion step (they need the rows it quarantined), so each one sees both
what was stored and what was rejected. A rule check fails with severity ERROR when the stored rows break the
rule (which would be a bug: validation removes such rows) and with severity WARN when rows were quarantined for
it, so the UI shows bad input without stopping the pipeline.
"""

from collections.abc import Iterator

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

from pm_assets.assets.common import shown
from pm_assets.core.completeness import machines_complete, overall_coverage
from pm_assets.core.markdown import markdown_table
from pm_assets.core.schema import TableSpec
from pm_assets.core.validation import ValidationTotals, empty_table, rule_applies

#: check name -> (validation rules it covers, description)
RULE_CHECKS: dict[str, tuple[tuple[str, ...], str]] = {
    "no_missing_or_unparseable_values": (("missing_value", "unparseable_value"), "No NaN, empty or unparseable value."),
    "timestamps_on_the_hour": (("not_on_the_hour",), "Every timestamp is on the hour."),
    "plausible_timestamps": (
        ("implausible_time",),
        "Every timestamp lies between the first partition minus the "
        "history window (LandingResource.history_days) and now plus future_tolerance_hours.",
    ),
    "known_categories": (("unknown_category",), "errorID / comp / failure / model values are in their domain."),
    "within_physical_bounds": (("out_of_bounds",), "Sensor readings (and machine age) within physical bounds."),
    "known_machines": (
        ("unknown_machine", "rejected_machine"),
        "Every machineID is in the machines table (rows of "
        "a machine the machines table rejected are quarantined with that machine's reason).",
    ),
    "no_conflicting_rows": (
        ("conflicting_duplicate",),
        "No key listed twice with different values (ERROR: which "
        "row is right cannot be told, so every one is quarantined).",
    ),
    "unique_keys": (("duplicate_key",), "No duplicate key (e.g. machineID, datetime for telemetry)."),
}
#: Checks that fail with severity ERROR as soon as rows are quarantined for them (not only when stored).
ERROR_WHEN_QUARANTINED = frozenset({"no_conflicting_rows"})
COMPLETENESS_CHECK = "hourly_completeness"
#: Shown in a check's metadata: how many quarantined rows to quote.
SAMPLE_ROWS = 10


def _applies(check: str, spec: TableSpec) -> bool:
    """A rule check is evaluated on a table when one of its rules applies there (``rule_applies``)."""
    return any(rule_applies(rule, spec) for rule in RULE_CHECKS[check][0])


def raw_check_specs(spec: TableSpec, asset_name: str | None = None) -> list[AssetCheckSpec]:
    asset_name = asset_name or spec.name
    specs = [
        AssetCheckSpec(
            "schema_and_dtypes",
            asset=asset_name,
            blocking=True,
            description="Columns, order and stored dtypes as in pm_assets.core.schema.",
        ),
        AssetCheckSpec(
            "rows_accounted",
            asset=asset_name,
            blocking=True,
            description="Rows in the source window == rows kept + rows quarantined.",
        ),
    ]
    specs += [
        AssetCheckSpec(name, asset=asset_name, description=desc)
        for name, (_, desc) in RULE_CHECKS.items()
        if _applies(name, spec)
    ]
    if spec.name == "telemetry":
        specs.append(
            AssetCheckSpec(
                COMPLETENESS_CHECK,
                asset=asset_name,
                description="Every machine has every hour of the window the source covers.",
            )
        )
    return specs


#: Days named in a check's metadata (the rest are counted).
SHOWN_DAYS = 20


def _hits(rejected: pd.DataFrame, rules: tuple[str, ...]) -> pd.DataFrame:
    return rejected.loc[np.array([any(r in rules for r in rs.split(",")) for rs in rejected["rules"]], dtype=bool)]


def _sample_md(hit: pd.DataFrame) -> MetadataValue:
    columns = [c for c in ("staged_day", "source_file", "source_line", "reason") if c in hit]
    return MetadataValue.md(markdown_table(hit.head(SAMPLE_ROWS)[columns]))


def _days(hit: pd.DataFrame) -> str:
    """Which days (partitions) the quarantined rows of a check belong to: a run over many days says where."""
    if "staged_day" not in hit or hit.empty:
        return "none"
    days = sorted(hit["staged_day"].astype(str).unique())
    more = f" and {len(days) - SHOWN_DAYS} more" if len(days) > SHOWN_DAYS else ""
    return ", ".join(days[:SHOWN_DAYS]) + more


def raw_check_results(
    spec: TableSpec,
    totals: ValidationTotals,
    completeness: pd.DataFrame | None = None,
    asset_name: str | None = None,
) -> Iterator[AssetCheckResult]:
    """Evaluate every check of :func:`raw_check_specs` on a validation's totals (one result, or a range's chunks)."""
    asset_name = asset_name or spec.name
    expected = empty_table(spec).dtypes
    kept = totals.schema
    schema_ok = (
        kept is not None
        and list(kept.columns) == list(spec.columns)
        and all(kept[c].dtype == expected[c] for c in spec.columns)
    )
    yield AssetCheckResult(
        asset_key=asset_name,
        check_name="schema_and_dtypes",
        passed=bool(schema_ok),
        metadata=shown(
            {
                "dtypes": MetadataValue.json(
                    {c: str(t) for c, t in kept.dtypes.items()} if kept is not None else "the chunks' dtypes differ"
                )
            }
        ),
    )
    rejected = totals.rejected
    yield AssetCheckResult(
        asset_key=asset_name,
        check_name="rows_accounted",
        passed=totals.rows_in == totals.rows_validated,
        metadata=shown({"rows_in": totals.rows_in, "rows_kept": totals.kept_rows, "rows_rejected": len(rejected)}),
    )
    stored = totals.stored
    quarantined = totals.rejected_by_rule()
    for name, (rules, _) in RULE_CHECKS.items():
        if not _applies(name, spec):
            continue
        n_stored = sum(stored[r] for r in rules)
        n_quarantined = sum(quarantined[r] for r in rules)
        hit = _hits(rejected, rules)
        yield AssetCheckResult(
            asset_key=asset_name,
            check_name=name,
            passed=n_stored == 0 and n_quarantined == 0,
            severity=AssetCheckSeverity.ERROR
            if n_stored or (n_quarantined and name in ERROR_WHEN_QUARANTINED)
            else AssetCheckSeverity.WARN,
            description=(f"{n_quarantined:,} rows quarantined, days {_days(hit)}" if n_quarantined else None),
            metadata=shown(
                {
                    "stored_violations": n_stored,
                    "quarantined_rows": n_quarantined,
                    "days": _days(hit),
                    "quarantined_sample": _sample_md(hit),
                }
            ),
        )
    if completeness is not None:
        incomplete = completeness[completeness["missing_hours"] > 0]
        worst = incomplete.sort_values("missing_hours", ascending=False).head(SAMPLE_ROWS)
        yield AssetCheckResult(
            asset_key=asset_name,
            check_name=COMPLETENESS_CHECK,
            passed=incomplete.empty,
            severity=AssetCheckSeverity.WARN,
            metadata=shown(
                {
                    "machines_complete": machines_complete(completeness),
                    "machines_incomplete": len(incomplete),
                    "machines_without_data": int((completeness["present_hours"] == 0).sum()),
                    "missing_machine_hours": int(completeness["missing_hours"].sum()),
                    "coverage": overall_coverage(completeness),
                    "worst_machines": MetadataValue.md(markdown_table(worst)),
                }
            ),
        )
