"""Malformed variants of the real Kaggle files, through the raw assets: one defect per case, exact outcomes.

The fixture is derived from the real files of ``../shared/data/azure_pm``: the four complete event files and the
real Q1 telemetry of machines 1-3 for the first ten days (2015-01-01 06:00 to 2015-01-10 23:00, 234 hours each:
702 rows). Each case changes one thing and compares the run with the run of the unchanged files: what is stored,
what is quarantined (rows, rules, reasons, raw text), or which asset fails with which message.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity

from pm_assets.core.parquet_files import read_partitions
from pm_assets_tests.assets.test_ingestion import run_raw
from pm_assets_tests.conftest import Q1_SUBSET, check_evaluations, step_failures, stored_partitions

DAYS = ("2015-01-01", "2015-01-10")
TELEMETRY = "PdM_telemetry.csv"
EVENT_FILES = ("PdM_errors.csv", "PdM_maint.csv", "PdM_failures.csv", "PdM_machines.csv")
TABLES = ("telemetry", "errors", "maintenance", "failures")


@pytest.fixture(scope="module")
def real_files(real_data_dir) -> dict[str, str]:
    """The text of each file of the fixture (the real bytes: CRLF and quoted strings in the event files)."""
    files = {name: gzip.decompress((real_data_dir / f"{name}.gz").read_bytes()).decode() for name in EVENT_FILES}
    lines = gzip.decompress((real_data_dir / Q1_SUBSET).read_bytes()).decode().splitlines()
    keep = [line for line in lines[1:] if line.split(",")[1] in ("1", "2", "3") and line < "2015-01-11"]
    files[TELEMETRY] = "\n".join([lines[0], *keep]) + "\n"
    assert len(keep) == 702
    return files


def ingest(instance, tmp: Path, files: dict[str, str | bytes]):
    raw = tmp / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (raw / name).write_bytes(content.encode() if isinstance(content, str) else content)
    out = tmp / "out"
    return run_raw(instance, raw, out, *DAYS), out


def quarantined(out: Path, table: str) -> pd.DataFrame:
    paths = sorted((out / "quarantine" / table).glob("*.parquet"))
    return read_partitions(paths) if paths else pd.DataFrame()


@pytest.fixture(scope="module")
def reference(real_files, instance, tmp_path_factory):
    result, out = ingest(instance, tmp_path_factory.mktemp("reference"), real_files)
    assert result.success
    kept = {t: stored_partitions(out, t) for t in TABLES} | {
        "machines": pd.read_parquet(out / "warehouse" / "machines.parquet")
    }
    assert len(kept["telemetry"]) == 702 and len(kept["machines"]) == 100
    assert all(quarantined(out, t).empty for t in TABLES)
    return kept


def with_line(text: str, index: int, line: str | None = None, insert: bool = False) -> str:
    """``text`` with its data line ``index`` (1 = the first after the header) replaced by ``line`` (removed when
    None), or ``line`` inserted before it."""
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    if insert:
        lines.insert(index, line)
    elif line is None:
        del lines[index]
    else:
        lines[index] = line
    return eol.join(lines)


def line_of(text: str, index: int) -> str:
    return text.replace("\r\n", "\n").split("\n")[index]


def without(frame: pd.DataFrame, line: str) -> pd.DataFrame:
    """``frame`` without the row that a line of its file gives (matched on its timestamp and machine)."""
    stamp, machine = line.split(",")[:2]
    drop = (frame["datetime"] == pd.Timestamp(stamp)) & (frame["machineID"] == int(machine))
    assert drop.sum() == 1
    return frame[~drop].reset_index(drop=True)


# --- one bad line costs only its row ----------------------------------------------------------------------------

ROW_DEFECTS = [
    # (case, replacement of data line 100 given its text, quarantine file, reason)
    (
        "impossible timestamp",
        lambda line: "2015-13-45 99:00:00" + line[19:],
        "unplaced",
        "datetime: not a timestamp '2015-13-45 99:00:00'",
    ),
    ("one field too few", lambda line: line.rsplit(",", 1)[0], "2015-01-05", "expected 6 fields, found 5: "),
    ("one field too many", lambda line: line + ",9.9", "2015-01-05", "expected 6 fields, found 7: "),
    (
        "text for a number",
        lambda line: line.rsplit(",", 1)[0] + ",n.a.",
        "2015-01-05",
        "vibration: not a number 'n.a.'",
    ),
]


@pytest.mark.parametrize(("make", "partition", "reason"), [c[1:] for c in ROW_DEFECTS], ids=[c[0] for c in ROW_DEFECTS])
def test_one_bad_line_costs_only_its_row(real_files, reference, instance, tmp_path, make, partition, reason):
    bad_line = make(line_of(real_files[TELEMETRY], 100))
    result, out = ingest(instance, tmp_path, {**real_files, TELEMETRY: with_line(real_files[TELEMETRY], 100, bad_line)})
    assert result.success
    kept = stored_partitions(out, "telemetry")
    assert len(kept) == 701
    expected = without(reference["telemetry"], line_of(real_files[TELEMETRY], 100))
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), expected)
    for table in ("errors", "maintenance", "failures"):
        pd.testing.assert_frame_equal(stored_partitions(out, table), reference[table])
    rejected = pd.read_parquet(out / "quarantine" / "telemetry" / f"{partition}.parquet")
    assert len(rejected) == 1 and len(quarantined(out, "telemetry")) == 1
    row = rejected.iloc[0]
    assert row["source_file"] == TELEMETRY and row["source_line"] == 101 and row["raw_line"] == bad_line
    assert row["rules"] == "unparseable_value" and row["reason"].startswith(reason)
    accounted = check_evaluations(result)[("telemetry", "rows_accounted")]
    # a run over ten days says on which day the check found the row
    check = check_evaluations(result)[("telemetry", "no_missing_or_unparseable_values")]
    assert check.metadata["days"].value == ("none" if partition == "unplaced" else partition)
    # a row without a readable time is in no partition: source_files quarantined it (unplaced)
    assert accounted.passed and accounted.metadata["rows_in"].value == (701 if partition == "unplaced" else 702)


def test_blank_lines_anywhere_are_quarantined_as_such(real_files, reference, instance, tmp_path):
    text = with_line(real_files[TELEMETRY], 50, "", insert=True) + "\n"  # one in the middle, one trailing
    result, out = ingest(instance, tmp_path, {**real_files, TELEMETRY: text})
    assert result.success
    pd.testing.assert_frame_equal(stored_partitions(out, "telemetry"), reference["telemetry"])
    rejected = pd.read_parquet(out / "quarantine" / "telemetry" / "unplaced.parquet")
    assert rejected["source_line"].tolist() == [51, 705] and (rejected["reason"] == "blank line").all()


def test_a_fixed_quarantined_line_dropped_again_is_ingested(real_files, reference, instance, tmp_path):
    """Recovery: the raw text kept in the quarantine, fixed in the file, the file dropped again under its name: the
    new version replaces the old one's rows of those days, the row is stored and the quarantine is empty."""
    bad_line = line_of(real_files[TELEMETRY], 100).rsplit(",", 1)[0]
    result, out = ingest(instance, tmp_path, {**real_files, TELEMETRY: with_line(real_files[TELEMETRY], 100, bad_line)})
    row = pd.read_parquet(out / "quarantine" / "telemetry" / "2015-01-05.parquet").iloc[0]
    fixed = row["raw_line"] + "," + line_of(real_files[TELEMETRY], 100).rsplit(",", 1)[1]
    text = (tmp_path / "raw" / TELEMETRY).read_text()
    (tmp_path / "raw" / TELEMETRY).write_text(text.replace(row["raw_line"] + "\n", fixed + "\n"))
    again = run_raw(instance, tmp_path / "raw", out, *DAYS)
    assert again.success
    pd.testing.assert_frame_equal(stored_partitions(out, "telemetry"), reference["telemetry"])
    assert quarantined(out, "telemetry").empty
    inventory = pd.read_parquet(out / "warehouse" / "source_files.parquet")
    assert inventory[inventory["name"] == TELEMETRY]["days_replaced"].tolist() == [10, 0]


# --- tolerant headers and timestamps ---------------------------------------------------------------------------


def test_a_byte_order_mark_changes_nothing(real_files, reference, instance, tmp_path):
    files = {name: b"\xef\xbb\xbf" + text.encode() for name, text in real_files.items()}
    result, out = ingest(instance, tmp_path, files)
    assert result.success
    for table in TABLES:
        pd.testing.assert_frame_equal(stored_partitions(out, table), reference[table])


def test_iso_8601_timestamps_with_offsets_are_stored_in_utc(real_files, reference, instance, tmp_path):
    """Every telemetry row in ISO 8601: T and Z, +00:00, and +02:00 two hours ahead (the same instant)."""
    lines = real_files[TELEMETRY].splitlines()
    forms = [
        lambda t: t.replace(" ", "T") + "Z",
        lambda t: t + "+00:00",
        lambda t: (pd.Timestamp(t) + pd.Timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
    ]
    iso = [lines[0]] + [forms[i % 3](line[:19]) + line[19:] for i, line in enumerate(lines[1:])]
    result, out = ingest(instance, tmp_path, {**real_files, TELEMETRY: "\n".join(iso) + "\n"})
    assert result.success
    pd.testing.assert_frame_equal(stored_partitions(out, "telemetry"), reference["telemetry"])
    assert quarantined(out, "telemetry").empty


def test_columns_in_another_order_and_an_extra_column(real_files, reference, instance, tmp_path):
    order = [1, 5, 0, 3, 2, 4]
    lines = [line.split(",") for line in real_files[TELEMETRY].splitlines()]
    moved = [
        ",".join([*(f[i] for i in order), extra])
        for f, extra in zip(lines, ["humidity", *(f"{40 + i % 7}.5" for i in range(len(lines) - 1))])
    ]
    result, out = ingest(instance, tmp_path, {**real_files, TELEMETRY: "\n".join(moved) + "\n"})
    assert result.success
    pd.testing.assert_frame_equal(stored_partitions(out, "telemetry"), reference["telemetry"])
    check = check_evaluations(result)[("source_files", "no_unexpected_columns")]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.description == "PdM_telemetry.csv: humidity"


def test_a_row_dated_2031_is_quarantined_as_implausible(real_files, reference, instance, tmp_path):
    errors = real_files["PdM_errors.csv"]
    line = line_of(errors, 1)
    result, out = ingest(instance, tmp_path, {**real_files, "PdM_errors.csv": with_line(errors, 1, "2031" + line[4:])})
    assert result.success
    pd.testing.assert_frame_equal(stored_partitions(out, "errors"), without(reference["errors"], line))
    rejected = pd.read_parquet(out / "quarantine" / "errors" / "unplaced.parquet")
    assert len(rejected) == 1 and rejected["rules"].iloc[0] == "implausible_time"
    assert rejected["reason"].iloc[0].startswith(f"datetime: 2031{line[4:19]} is after the plausible range (ends ")
    assert rejected["reason"].iloc[0].endswith(": now + 24 h)")
    assert rejected["raw_line"].iloc[0] == "2031" + line[4:]
    inventory = pd.read_parquet(out / "warehouse" / "source_files.parquet").set_index("name")
    assert inventory.loc["PdM_errors.csv", "rows_implausible"] == 1
    assert inventory.loc["PdM_errors.csv", "rows_after_partitions"] == 0


# --- machines: truthful cascades ------------------------------------------------------------------------------


def test_a_machine_with_an_impossible_age_takes_its_rows_with_the_true_reason(
    real_files, reference, instance, tmp_path
):
    machines = with_line(real_files["PdM_machines.csv"], 2, '2,"model4",-7')
    result, out = ingest(instance, tmp_path, {**real_files, "PdM_machines.csv": machines})
    assert result.success
    assert 2 not in pd.read_parquet(out / "warehouse" / "machines.parquet")["machineID"].tolist()
    reason = "machine 2 was rejected: age: -7.0 outside [0, 100] (PdM_machines.csv line 3)"
    # its 234 hours of telemetry and its 4 replacements of the opening history (none in the ten days)
    for table, rows in (("telemetry", 234), ("maintenance", 4)):
        rejected = quarantined(out, table)
        assert len(rejected) == rows and (rejected["machineID"] == 2).all(), table
        assert (rejected["reason"] == reason).all() and (rejected["rules"] == "rejected_machine").all()
    pd.testing.assert_frame_equal(
        stored_partitions(out, "telemetry"),
        reference["telemetry"][reference["telemetry"]["machineID"] != 2].reset_index(drop=True),
    )
    assert not (quarantined(out, "telemetry")["reason"].str.contains("not in the machines table")).any()


def test_conflicting_rows_of_a_machine_are_an_error_naming_both_lines(real_files, reference, instance, tmp_path):
    machines = real_files["PdM_machines.csv"].rstrip("\r\n") + '\r\n1,"model1",3\r\n'
    result, out = ingest(instance, tmp_path, {**real_files, "PdM_machines.csv": machines})
    conflict = check_evaluations(result)[("machines", "no_conflicting_rows")]
    assert not conflict.passed and conflict.severity == AssetCheckSeverity.ERROR
    message = (
        "machineID 1 is listed with different values: PdM_machines.csv line 2 (model 'model3', age 18); "
        "PdM_machines.csv line 102 (model 'model1', age 3); which is right cannot be told"
    )
    rejected = pd.read_parquet(out / "quarantine" / "machines" / "all.parquet")
    assert rejected["source_line"].tolist() == [2, 102] and (rejected["reason"] == message).all()
    assert 1 not in pd.read_parquet(out / "warehouse" / "machines.parquet")["machineID"].tolist()
    telemetry = quarantined(out, "telemetry")
    assert len(telemetry) == 234 and (telemetry["reason"] == f"machine 1 was rejected: {message}").all()


# --- a file that cannot be read fails only its table --------------------------------------------------------------

FILE_DEFECTS = [
    # (case, file, its bytes given the real text, asset that fails, words of the message)
    (
        "truncated gzip",
        "PdM_failures.csv.gz",
        lambda text: gzip.compress(text.encode())[:-200],
        "failures",
        "PdM_failures.csv.gz: cannot decompress",
    ),
    (
        "missing column",
        "PdM_errors.csv",
        lambda text: text.replace('"datetime","machineID","errorID"', '"datetime","machineID","error"'),
        "errors",
        "PdM_errors.csv, line 1: header ['datetime', 'machineID', 'error'] lacks the required column(s) ['errorID']",
    ),
    (
        "empty file",
        "PdM_maint.csv",
        lambda text: b"",
        "maintenance",
        "PdM_maint.csv, line 1: empty file: expected the header datetime,machineID,comp",
    ),
    (
        "Windows-1252 text",
        "PdM_errors.csv",
        lambda text: with_line(text, 3, '2015-01-03 07:00:00,1,"erreur é"').encode("cp1252"),
        "errors",
        "PdM_errors.csv, line 4: not UTF-8 text",
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "asset", "message"), [c[1:] for c in FILE_DEFECTS], ids=[c[0] for c in FILE_DEFECTS]
)
def test_an_unreadable_file_fails_only_its_tables_asset(
    real_files, reference, instance, tmp_path, name, make, asset, message
):
    plain = name.removesuffix(".gz")
    files = {n: t for n, t in real_files.items() if n != plain} | {name: make(real_files[plain])}
    result, out = ingest(instance, tmp_path, files)
    failures = step_failures(result)
    failed_steps = {"maintenance", "maintenance_history"} if asset == "maintenance" else {asset}
    assert set(failures) == failed_steps
    assert message in failures[asset]
    assert check_evaluations(result)[("source_files", "landed_files_readable")].severity == AssetCheckSeverity.ERROR
    for table in (t for t in TABLES if t != asset):
        pd.testing.assert_frame_equal(stored_partitions(out, table), reference[table])
