"""The landing folder and the staging of its files (pure core, no Dagster)."""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

from pm_assets.core.landing import (
    Staging,
    buckets,
    declared_day,
    file_id,
    inventory,
    list_landed,
    rows_per_day,
    table_for_name,
)
from pm_assets.core.locations import sha256_of
from pm_assets.core.schema import TELEMETRY
from pm_assets.core.simulate import SimulationConfig, simulate, write_day_files, write_kaggle_csv
from pm_assets.core.validation import validate_rows


@pytest.mark.parametrize(
    "name, table",
    [
        ("PdM_telemetry.csv", "telemetry"),
        ("PdM_telemetry_2026-11-30.csv.gz", "telemetry"),
        ("export PdM_maint 2026-11.csv", "maintenance"),
        ("pdm_failures_x.CSV".replace("CSV", "csv"), "failures"),
        ("PdM_machines.csv", "machines"),
        ("PdM_errors.csv", "errors"),
        ("PdM_telemetry.parquet", None),
        ("readme.csv", None),
        (".PdM_telemetry.csv.tmp", None),
    ],
)
def test_a_file_name_says_its_table(name, table):
    spec = table_for_name(name)
    assert (spec.name if spec else None) == table


def test_declared_day():
    assert declared_day("PdM_failures_2026-11-30.csv") == "2026-11-30"
    assert declared_day("PdM_failures.csv") is None and declared_day("PdM_failures_2026-13-45.csv") is None


@pytest.fixture(scope="module")
def fleet():
    return simulate(SimulationConfig(machines=3, start="2015-01-01", end="2015-01-06", seed=2))


def test_staging_splits_by_day_once_per_identity(tmp_path, fleet):
    write_kaggle_csv({"telemetry": fleet["telemetry"]}, tmp_path / "landing")
    staging = Staging(tmp_path / "staging")
    (file,) = list_landed(tmp_path / "landing")[0]
    entry = staging.stage(file)
    assert entry["status"] == "ingested" and entry["rows"] == len(fleet["telemetry"]) == 5 * 24 * 3
    assert entry["days"] == {f"2015-01-0{d}": 72 for d in range(1, 6)}
    assert staging.days("telemetry") == [f"2015-01-0{d}" for d in range(1, 6)]
    day = staging.read("telemetry", ["2015-01-03"])
    assert len(day) == 72 and (day["datetime"].dt.strftime("%Y-%m-%d") == "2015-01-03").all()
    assert set(day["source_file"]) == {"PdM_telemetry.csv"}
    # the same bytes under another name: no second staging, the name is remembered
    shutil.copy(file.path, tmp_path / "landing" / "PdM_telemetry copy.csv")
    copy = next(f for f in list_landed(tmp_path / "landing")[0] if f.name != file.name)
    assert staging.stage(copy)["ingested_ns"] == entry["ingested_ns"]
    assert staging.entry(entry["id"])["names"] == ["PdM_telemetry.csv", "PdM_telemetry copy.csv"]
    assert len(staging.chunks("telemetry", "2015-01-03")) == 1


def test_a_file_staged_in_pieces_gives_the_days_staged_in_one(tmp_path, fleet, monkeypatch):
    from pm_assets.core import parsing

    write_kaggle_csv({"telemetry": fleet["telemetry"]}, tmp_path / "landing")
    (file,) = list_landed(tmp_path / "landing")[0]
    whole = Staging(tmp_path / "whole")
    entry = whole.stage(file)
    monkeypatch.setattr(parsing.read_source_pieces, "__defaults__", (2_000,))  # ~45 lines a piece
    pieces = Staging(tmp_path / "pieces")
    again = pieces.stage(file)
    assert (again["rows"], again["days"], again["implausible_times"]) == (
        entry["rows"],
        entry["days"],
        entry["implausible_times"],
    )
    assert len(pieces.chunks("telemetry", "2015-01-03")) > 1  # the day's rows came in several pieces
    days = list(entry["days"])
    pd.testing.assert_frame_equal(pieces.read("telemetry", days), whole.read("telemetry", days), check_exact=True)
    # a second staging (the ledger entry lost) replaces every piece: no row doubled
    pieces.ledger_path(again["id"]).unlink()
    pieces.stage(file)
    pd.testing.assert_frame_equal(pieces.read("telemetry", days), whole.read("telemetry", days), check_exact=True)


def test_a_staging_killed_before_its_ledger_entry_is_redone_without_doubling_rows(tmp_path, fleet):
    write_kaggle_csv({"telemetry": fleet["telemetry"]}, tmp_path / "landing")
    staging = Staging(tmp_path / "staging")
    (file,) = list_landed(tmp_path / "landing")[0]
    entry = staging.stage(file)
    staging.ledger_path(entry["id"]).unlink()  # what a kill between the chunks and the ledger entry leaves
    again = staging.stage(file)
    assert again["ingested_ns"] != entry["ingested_ns"]  # staged anew (the ledger did not have it)
    for day in again["days"]:
        assert len(staging.chunks("telemetry", day)) == 1, day
    assert len(staging.read("telemetry", list(again["days"]))) == len(fleet["telemetry"])


def test_two_empty_exports_of_different_days_are_two_files(tmp_path, fleet):
    empty = {"failures": fleet["failures"].iloc[:0]}
    write_kaggle_csv(empty, tmp_path, suffix="_2015-01-02")
    write_kaggle_csv(empty, tmp_path, suffix="_2015-01-03")
    a, b = list_landed(tmp_path)[0]
    assert sha256_of(a.path) == sha256_of(b.path) and file_id(sha256_of(a.path), a.name) != file_id(
        sha256_of(b.path), b.name
    )
    staging = Staging(tmp_path / "staging")
    assert staging.stage(a)["days"] == {"2015-01-02": 0} and staging.stage(b)["days"] == {"2015-01-03": 0}


def test_a_late_file_adds_to_its_day_and_repeats_are_duplicates_naming_the_first_file(tmp_path, fleet):
    landing = tmp_path / "landing"
    write_day_files(fleet, "2015-01-02", landing)
    staging = Staging(tmp_path / "staging")
    for f in list_landed(landing)[0]:
        staging.stage(f)
    late = fleet["telemetry"][fleet["telemetry"]["datetime"].dt.strftime("%Y-%m-%d") == "2015-01-02"].head(5).copy()
    late["volt"] += 1.0
    write_kaggle_csv({"telemetry": late}, landing, suffix="_resent")
    resent = next(f for f in list_landed(landing)[0] if "resent" in f.name)
    staging.stage(resent)
    rows = staging.read("telemetry", ["2015-01-02"])
    assert list(dict.fromkeys(rows["source_file"])) == ["PdM_telemetry_2015-01-02.csv", resent.name]
    result = validate_rows(rows, TELEMETRY, range(1, 4))
    assert len(result.kept) == 72 and len(result.rejected) == 5  # nothing lost: the repeats are quarantined
    assert result.rejected["reason"].str.startswith("duplicate of PdM_telemetry_2015-01-02.csv line ").all()
    assert set(result.rejected["source_file"]) == {resent.name}


def test_an_unreadable_file_is_recorded_with_file_and_line_and_stages_nothing(tmp_path):
    path = tmp_path / "PdM_errors_2015-01-02.csv.gz"
    path.write_bytes(gzip.compress(b'"datetime","machineID","errorID"\n')[:-3])  # truncated gzip
    (file,), _ = list_landed(tmp_path)
    staging = Staging(tmp_path / "staging")
    entry = staging.stage(file)
    assert entry["status"] == "failed" and "PdM_errors_2015-01-02.csv.gz" in entry["error"]
    assert staging.days("errors") == []
    table = inventory(staging.entries(), "2015-01-01", "2016-01-01")
    assert table.loc[0, "status"] == "failed" and table.loc[0, "days"] == 0


def test_inventory_counts_rows_outside_the_partitions(tmp_path, fleet):
    write_kaggle_csv({"telemetry": fleet["telemetry"]}, tmp_path)
    staging = Staging(tmp_path / "staging")
    staging.stage(list_landed(tmp_path)[0][0])
    row = inventory(staging.entries(), "2015-01-02", "2015-01-05").iloc[0]
    assert (row["rows_before_partitions"], row["rows_after_partitions"]) == (72, 72)
    assert (row["first_day"], row["last_day"], row["days"]) == ("2015-01-01", "2015-01-05", 5)


def test_rows_per_day_counts_by_utc_day():
    frame = pd.DataFrame({"datetime": pd.to_datetime(["2015-01-01 23:00", "2015-01-02 00:00", "2015-01-02 01:00"])})
    assert rows_per_day(frame, TELEMETRY) == {"2015-01-01": 1, "2015-01-02": 2}


@pytest.mark.parametrize("name", ["PdM_telemetry.csv", "PdM_telemetry_2015-01-03.csv"])
def test_buckets_are_each_rows_day_its_declared_day_or_unplaced(name):
    """Against a row-by-row reference: a row's UTC day; a row without a time or with a time problem goes to the day
    the file's name declares, else to ``unplaced``; days far apart, before 1970 and the declared day among them."""
    times = pd.to_datetime(
        ["2015-01-02 23:59", None, "1969-12-31 01:00", "2015-01-01 00:00", "2031-06-01 12:00", "2015-01-02 00:00"]
    )
    frame = pd.DataFrame({"datetime": times, "time_problem": ["", "", "", "implausible", "", ""]})
    declared = declared_day(name)
    expected = [
        (declared or "unplaced") if pd.isna(t) or problem else t.strftime("%Y-%m-%d")
        for t, problem in zip(frame["datetime"], frame["time_problem"], strict=True)
    ]
    assert buckets(frame, TELEMETRY, name).tolist() == expected
    counts = {key: expected.count(key) for key in sorted(set(expected) | ({declared} if declared else set()))}
    assert rows_per_day(frame, TELEMETRY, name) == counts


def _stage_in_a_process(staging_root, landing_dir):
    staging = Staging(staging_root)
    for f in list_landed(landing_dir)[0]:
        staging.stage(f)


def test_two_processes_staging_the_same_file_at_once_stage_it_once(tmp_path, fleet):
    import multiprocessing

    write_kaggle_csv({"telemetry": fleet["telemetry"]}, tmp_path / "landing")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_stage_in_a_process, args=(tmp_path / "staging", tmp_path / "landing")) for _ in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    staging = Staging(tmp_path / "staging")
    assert len(staging.entries()) == 1
    assert all(len(staging.chunks("telemetry", d)) == 1 for d in staging.days("telemetry"))
