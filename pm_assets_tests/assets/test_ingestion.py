"""Raw ingestion assets, run through Dagster (in-process, one in-memory instance)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, load_assets_from_modules

from pm_assets.assets import ingestion
from pm_assets.core.schema import TABLES
from pm_assets.core.validation import empty_table
from pm_assets_tests.conftest import (
    Q1_SUBSET,
    UNION_PARTIAL,
    check_evaluations,
    materialization_metadata,
    run_assets,
    step_failures,
    stored_partitions,
)

RAW_ASSETS = load_assets_from_modules([ingestion])
YEAR = ("2015-01-01", "2016-01-01")  # the default partition range: the span of the real files


def run_raw(instance, raw_dir, out: Path, first: str, last: str, telemetry_file: str | None = None, selection=None):
    """The raw assets (``selection`` of them, default all) over the days ``first`` to ``last``, the landing folder
    holding ``raw_dir``'s files, every store under ``out``; a failed step does not raise."""
    return run_assets(
        instance,
        out,
        raw_dir=raw_dir,
        telemetry=telemetry_file,
        assets=RAW_ASSETS,
        selection=selection,
        days=(first, last),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def real_q1(real_data_dir, instance, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_q1")
    result = run_raw(instance, real_data_dir, out, *YEAR, telemetry_file=Q1_SUBSET)
    assert result.success
    return result, out


@pytest.fixture(scope="module")
def real_q1_tables(real_q1) -> dict[str, pd.DataFrame]:
    """The four daily tables the year's run stored, each read once (366 files apiece) for the tests below."""
    _, out = real_q1
    return {name: stored_partitions(out, name) for name in ("telemetry", "errors", "maintenance", "failures")}


def test_real_event_files_are_ingested_exactly(real_q1, real_q1_tables):
    result, out = real_q1
    inventory = pd.read_parquet(out / "warehouse" / "source_files.parquet").set_index("table")
    assert inventory.loc["errors", "rows"] == 3919
    assert len(real_q1_tables["errors"]) == 3919
    assert (
        inventory[["rows_before_partitions", "rows_after_partitions"]]
        .drop(index="maintenance")
        .fillna(0)
        .eq(0)
        .all()
        .all()
    )
    assert len(real_q1_tables["failures"]) == 761
    assert len(pd.read_parquet(out / "warehouse" / "machines.parquet")) == 100
    history = pd.read_parquet(out / "warehouse" / "maintenance_history.parquet")
    assert len(history) == 400 and history["datetime"].max() < pd.Timestamp("2015-01-01")
    in_partitions = len(real_q1_tables["maintenance"])
    assert in_partitions + len(history) == 3286
    assert inventory.loc["maintenance", "rows_before_partitions"] == 400
    for name in ("errors", "failures", "maintenance", "telemetry"):
        table = real_q1_tables[name]
        by_partition = materialization_metadata(result, name)
        assert len(by_partition) == 366
        assert sum(m["dagster/row_count"] for m in by_partition.values()) == len(table), name
        assert all(m["rows_in"] == m["dagster/row_count"] + m["rows_rejected"] for m in by_partition.values())
        assert f"rows kept {len(table):,}" in by_partition["2015-03-01"]["run"]
        for day in ("2015-01-01", "2015-06-30"):
            expected_rows = table["datetime"].dt.strftime("%Y-%m-%d").eq(day).sum()
            assert by_partition[day]["dagster/row_count"] == expected_rows


def test_real_q1_telemetry_complete_for_its_20_machines(real_q1, real_q1_tables):
    result, out = real_q1
    telemetry = real_q1_tables["telemetry"]
    assert len(telemetry) == 43_200
    assert telemetry["machineID"].nunique() == 20
    assert telemetry.groupby("machineID").size().eq(90 * 24).all()
    quarantined = pd.concat([pd.read_parquet(f) for f in (out / "quarantine" / "telemetry").glob("*.parquet")])
    assert len(quarantined) == 0
    completeness = check_evaluations(result)[("telemetry", "hourly_completeness")]
    meta = {k: v.value for k, v in completeness.metadata.items()}
    # the other 80 machines of the machines table have no telemetry in this subset: reported, not hidden
    assert meta["machines_complete"] == 20 and meta["machines_without_data"] == 80
    assert meta["missing_machine_hours"] == 80 * 90 * 24
    # per partition: 20 of the 100 machines report every expected hour (from 06:00 on the file's first day)
    by_partition = materialization_metadata(result, "telemetry")
    assert by_partition["2015-01-01"]["dagster/row_count"] == 20 * 18
    assert by_partition["2015-01-01"]["coverage"] == pytest.approx(0.2, abs=1e-12)
    assert by_partition["2015-02-01"]["coverage"] == pytest.approx(0.2, abs=1e-12)
    assert "coverage" not in by_partition["2015-06-01"]  # outside the file's span: nothing was expected


def test_real_q1_rule_checks_pass_and_dtypes_match_schema(real_q1, real_q1_tables):
    result, out = real_q1
    evaluations = check_evaluations(result)
    assert all(evaluations[k].passed for k in evaluations if k[1] != "hourly_completeness")
    for name in ("telemetry", "errors", "maintenance", "failures"):
        assert real_q1_tables[name].dtypes.equals(empty_table(TABLES[name]).dtypes), name
    # every partition file exists, including days without rows, so re-runs replace earlier files
    assert len(list((out / "warehouse" / "failures").glob("*.parquet"))) == 366


def test_real_union_telemetry_gaps_are_reported_not_fatal(real_data_dir, instance, tmp_path):
    result = run_raw(
        instance,
        real_data_dir,
        tmp_path,
        *YEAR,
        telemetry_file=UNION_PARTIAL,
        selection=["source_files", "machines", "telemetry"],
    )
    assert result.success
    assert len(stored_partitions(tmp_path, "telemetry")) == 144_262
    by_partition = materialization_metadata(result, "telemetry")
    assert sum(m["rows_rejected"] for m in by_partition.values()) == 0
    assert 0 < by_partition["2015-06-01"]["coverage"] < 1
    completeness = check_evaluations(result)[("telemetry", "hourly_completeness")]
    assert not completeness.passed and completeness.severity == AssetCheckSeverity.WARN
    # expected: 100 machines x the hours from the file's first hour (2015-01-01 06:00) to the last partition's end
    hours = len(pd.date_range("2015-01-01 06:00", "2016-01-01 06:00", freq="h"))
    # shown to 4 significant digits
    assert completeness.metadata["coverage"].value == float(f"{144_262 / (100 * hours):.4g}")


# A small hand-made dataset with bad rows, in the Kaggle format.
MACHINES_CSV = '"machineID","model","age"\r\n1,"model3",18\r\n2,"model4",7\r\n3,"model1",4\r\n'
EVENTS = {
    "PdM_errors.csv": '"datetime","machineID","errorID"\r\n2015-01-01 07:00:00,1,"error1"\r\n'
    '2015-01-02 03:00:00,9,"error2"\r\n',
    "PdM_maint.csv": '"datetime","machineID","comp"\r\n2014-12-01 06:00:00,1,"comp2"\r\n'
    '2015-01-02 06:00:00,2,"comp7"\r\n',
    "PdM_failures.csv": '"datetime","machineID","failure"\r\n2015-01-02 06:00:00,2,"comp1"\r\n',
}


def _telemetry_csv() -> str:
    lines = ['"datetime","machineID","volt","rotate","pressure","vibration"']
    for day in ("2015-01-01", "2015-01-02"):
        for machine in (1, 2, 3):
            for hour in range(24):
                lines.append(f"{day} {hour:02d}:00:00,{machine},170.5,450.25,100.0,40.0")
    lines[5] = "2015-01-01 04:00:00,1,,450.0,100.0,40.0"  # missing volt
    lines[30] = "2015-01-01 05:00:00,2,170.0,-3.0,100.0,40.0"  # negative rotate
    lines[80] = "2015-01-02 07:30:00,1,170.0,450.0,100.0,40.0"  # off the hour
    lines.append("2015-01-02 05:00:00,9,170.0,450.0,100.0,40.0")  # unknown machine
    lines.append("2015-01-02 05:00:00,3,171.0,450.0,100.0,40.0")  # duplicate of machine 3 at 05:00
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture()
def bad_raw_dir(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "PdM_machines.csv").write_text(MACHINES_CSV, newline="")
    (raw / "PdM_telemetry.csv").write_text(_telemetry_csv(), newline="")
    for name, text in EVENTS.items():
        (raw / name).write_text(text, newline="")
    return raw


def test_bad_rows_are_quarantined_per_partition_and_accounted(bad_raw_dir, instance, tmp_path):
    out = tmp_path / "out"
    result = run_raw(instance, bad_raw_dir, out, "2015-01-01", "2015-01-02")
    assert result.success
    parsed_telemetry = pd.read_csv(bad_raw_dir / "PdM_telemetry.csv")
    for day in ("2015-01-01", "2015-01-02"):
        kept = pd.read_parquet(out / "warehouse" / "telemetry" / f"{day}.parquet")
        rejected = pd.read_parquet(out / "quarantine" / "telemetry" / f"{day}.parquet")
        rows_in = int(parsed_telemetry["datetime"].str.startswith(day).sum())
        assert rows_in == len(kept) + len(rejected)
    rejected = pd.concat(pd.read_parquet(f) for f in sorted((out / "quarantine" / "telemetry").glob("*.parquet")))
    assert sorted(rejected["rules"]) == sorted(
        ["missing_value", "out_of_bounds", "not_on_the_hour", "unknown_machine", "duplicate_key"]
    )
    assert rejected["reason"].str.len().gt(0).all()
    evaluations = check_evaluations(result)
    for check in (
        "within_physical_bounds",
        "timestamps_on_the_hour",
        "known_machines",
        "unique_keys",
        "no_missing_or_unparseable_values",
    ):
        evaluation = evaluations[("telemetry", check)]
        assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN, check
        assert evaluation.metadata["stored_violations"].value == 0
        assert evaluation.metadata["quarantined_rows"].value == 1
    assert evaluations[("telemetry", "rows_accounted")].passed
    assert not evaluations[("errors", "known_machines")].passed  # machine 9
    assert not evaluations[("maintenance", "known_categories")].passed  # comp7
    assert evaluations[("maintenance_history", "rows_accounted")].passed
    assert len(pd.read_parquet(out / "warehouse" / "maintenance_history.parquet")) == 1


def test_partition_by_partition_equals_one_ranged_run(bad_raw_dir, instance, tmp_path):
    ranged, single = tmp_path / "ranged", tmp_path / "single"
    assert run_raw(instance, bad_raw_dir, ranged, "2015-01-01", "2015-01-02").success
    for day in ("2015-01-01", "2015-01-02"):
        assert run_raw(instance, bad_raw_dir, single, day, day).success
    for table in ("telemetry", "errors", "maintenance", "failures"):
        for kind in ("warehouse", "quarantine"):
            for day in ("2015-01-01", "2015-01-02"):
                a = pd.read_parquet(ranged / kind / table / f"{day}.parquet")
                b = pd.read_parquet(single / kind / table / f"{day}.parquet")
                pd.testing.assert_frame_equal(a, b)


def test_an_unreadable_file_fails_only_its_table(bad_raw_dir, instance, tmp_path):
    """A file-level problem (here: semicolons) fails the asset of that file's table, naming file, line and problem;
    the four other tables of the same run are ingested and stored, source_files succeeds with its ERROR check."""
    (bad_raw_dir / "PdM_telemetry.csv").write_text(
        "datetime;machineID;volt;rotate;pressure;vibration\n2015-01-01 00:00:00;1;1;1;1;1\n"
    )
    out = tmp_path / "out"
    result = run_raw(instance, bad_raw_dir, out, "2015-01-01", "2015-01-01")
    failures = step_failures(result)
    assert list(failures) == ["telemetry"]
    assert "telemetry cannot be built: " in failures["telemetry"]
    assert "PdM_telemetry.csv, line 1: header is not comma-separated (found ';' as delimiter?)" in failures["telemetry"]
    check = check_evaluations(result)[("source_files", "landed_files_readable")]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert "PdM_telemetry.csv, line 1" in check.description and "delimiter" in check.description
    inventory = pd.read_parquet(out / "warehouse" / "source_files.parquet").set_index("table")
    assert inventory.loc["telemetry", "status"] == "failed" and "line 1" in inventory.loc["telemetry", "error"]
    assert (inventory.drop(index="telemetry")["status"] == "ingested").all()
    for table in ("errors", "maintenance", "failures"):
        assert (out / "warehouse" / table / "2015-01-01.parquet").exists(), table
    assert len(stored_partitions(out, "errors")) > 0 and not (out / "warehouse" / "telemetry").exists()
    # fixed (new bytes): the next run stages it and builds the table; the check passes again
    (bad_raw_dir / "PdM_telemetry.csv").write_text(
        "datetime,machineID,volt,rotate,pressure,vibration\n2015-01-01 00:00:00,1,1,1,1,1\n"
    )
    again = run_raw(instance, bad_raw_dir, out, "2015-01-01", "2015-01-01")
    assert again.success and check_evaluations(again)[("source_files", "landed_files_readable")].passed
    assert len(stored_partitions(out, "telemetry")) == 1


def test_a_named_unreadable_file_fails_its_tables_asset_not_source_files(bad_raw_dir, instance, tmp_path):
    """The landing sensor's run for one bad file: source_files records it, the table's asset fails naming it."""
    (bad_raw_dir / "PdM_telemetry_2015-01-01.csv").write_text(
        "datetime,machineID,volt,rotate,pressure\n2015-01-01 00:00:00,1,1,1,1\n"
    )
    (bad_raw_dir / "PdM_telemetry.csv").unlink()
    result = run_assets(
        instance,
        tmp_path,
        raw_dir=bad_raw_dir,
        assets=RAW_ASSETS,
        selection=["source_files", "machines", "telemetry"],
        partition_key="2015-01-01",
        run_config={
            "ops": {"source_files": {"config": {"files": ["PdM_telemetry_2015-01-01.csv", "PdM_machines.csv"]}}}
        },
        raise_on_error=False,
    )
    failures = step_failures(result)
    assert list(failures) == ["telemetry"]
    assert (
        "PdM_telemetry_2015-01-01.csv, line 1: header ['datetime', 'machineID', 'volt', 'rotate', 'pressure'] "
        "lacks the required column(s) ['vibration']"
    ) in failures["telemetry"]
    assert result.asset_materializations_for_node("source_files")
    # another day of the table is not concerned by that file
    other = run_assets(
        instance,
        tmp_path,
        raw_dir=bad_raw_dir,
        assets=RAW_ASSETS,
        selection=["machines", "telemetry"],
        partition_key="2015-01-02",
        raise_on_error=False,
    )
    assert other.success


def test_an_extra_column_is_ignored_and_reported_by_a_warn_check(bad_raw_dir, instance, tmp_path):
    errors = (bad_raw_dir / "PdM_errors.csv").read_text().splitlines()
    (bad_raw_dir / "PdM_errors.csv").write_text(
        "\n".join([errors[0] + ',"site"'] + [line + ',"plant 7"' for line in errors[1:]]) + "\n"
    )
    out = tmp_path / "out"
    result = run_raw(instance, bad_raw_dir, out, "2015-01-01", "2015-01-02")
    assert result.success
    check = check_evaluations(result)[("source_files", "no_unexpected_columns")]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.description == "PdM_errors.csv: site"
    stored_errors = stored_partitions(out, "errors")
    assert list(stored_errors.columns) == list(TABLES["errors"].columns) and len(stored_errors) > 0


def test_a_bad_line_costs_only_that_row_and_keeps_its_text(bad_raw_dir, instance, tmp_path):
    """One unparseable timestamp and one short line in a day's telemetry: the other rows of the day and every other
    table are stored; both bad rows are quarantined in their day with file, line, raw text and reason."""
    clean = (bad_raw_dir / "PdM_telemetry.csv").read_text().splitlines()
    reference = tmp_path / "reference"
    assert run_raw(instance, bad_raw_dir, reference, "2015-01-01", "2015-01-02").success
    for old in bad_raw_dir.glob("PdM_telemetry*"):
        old.unlink()
    broken = clean[:3] + ["2015-13-45 99:00:00,1,170.0,450.0,100.0,40.0", "2015-01-02 05:00:00,1,170.0"] + clean[3:]
    (bad_raw_dir / "PdM_telemetry_2015-01-02.csv").write_text("\n".join(broken) + "\n\n")  # and a trailing blank line
    out = tmp_path / "out"
    result = run_raw(instance, bad_raw_dir, out, "2015-01-01", "2015-01-02")
    assert result.success
    # every row the clean file stores is stored, and every other table too
    for table in ("telemetry", "errors", "maintenance", "failures"):
        pd.testing.assert_frame_equal(stored_partitions(out, table), stored_partitions(reference, table))
    quarantined = pd.concat(pd.read_parquet(f) for f in sorted((out / "quarantine" / "telemetry").glob("*.parquet")))
    bad = quarantined.set_index("source_line")
    assert bad.loc[4, "reason"] == "datetime: not a timestamp '2015-13-45 99:00:00'"
    assert bad.loc[4, "raw_line"] == "2015-13-45 99:00:00,1,170.0,450.0,100.0,40.0"
    assert bad.loc[4, "staged_day"] == "2015-01-02"  # no readable time: the day the file name declares
    assert bad.loc[5, "reason"].startswith("expected 6 fields, found 3")
    assert bad.loc[5, "staged_day"] == "2015-01-02" and bad.loc[5, "source_file"] == "PdM_telemetry_2015-01-02.csv"
    assert bad.loc[len(broken) + 1, "reason"] == "blank line"
    meta = materialization_metadata(result, "telemetry")
    for day in ("2015-01-01", "2015-01-02"):
        assert meta[day]["rows_in"] == meta[day]["dagster/row_count"] + meta[day]["rows_rejected"]


def test_each_raw_table_has_the_rule_checks_of_the_rules_that_apply_to_it():
    from pm_assets.checks import RULE_CHECKS, raw_check_specs
    from pm_assets.core.validation import rule_applies

    for spec in TABLES.values():
        names = {s.name for s in raw_check_specs(spec)}
        for check, (rules, _) in RULE_CHECKS.items():
            assert (check in names) == any(rule_applies(r, spec) for r in rules), (spec.name, check)
    assert "known_machines" not in {s.name for s in raw_check_specs(TABLES["machines"])}
    assert "timestamps_on_the_hour" in {s.name for s in raw_check_specs(TABLES["errors"])}
