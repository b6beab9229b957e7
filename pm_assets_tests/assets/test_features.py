"""Features and labels assets through Dagster: partition lookback, real-data label counts, gappy telemetry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import load_assets_from_modules

from pm_assets.assets import features as features_module
from pm_assets.assets import ingestion
from pm_assets.core.features import feature_columns
from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv
from pm_assets_tests.conftest import (
    Q1_SUBSET,
    UNION_PARTIAL,
    check_evaluations,
    materialization_metadata,
    run_assets,
    stored_partitions,
)

ASSETS = load_assets_from_modules([ingestion, features_module])


def run(instance, raw_dir, out: Path, first: str, last: str | None = None, selection=None, telemetry_file=None):
    """The raw, features and labels assets (``selection`` of them, default all) for the day ``first``, or the days
    ``first`` to ``last`` in one run, every store under ``out``."""
    days = None if last is None else (first, last)
    return run_assets(
        instance,
        out,
        raw_dir=raw_dir,
        telemetry=telemetry_file,
        assets=ASSETS,
        selection=selection,
        days=days,
        partition_key=first if last is None else None,
    )


#: The history of the partition-by-partition test: 35 days, every one of them run alone. The first 14 build up the
#: 14-day lookback (each day reads every earlier day there is), 01-15 is the first with all of it, the ranged run
#: starts its second chunk on 01-31 (``PM_CHUNK_DAYS`` 30), and the last days' labels look past the ingested
#: failures: every case a day's lookback or look-ahead can meet, which a longer history (it was 73 days) repeats.
HISTORY = ("2015-01-01", "2015-02-04")


@pytest.fixture(scope="module")
def simulated_raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("sim") / "raw"
    end = (pd.Timestamp(HISTORY[1]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")  # the data ends with the history
    write_kaggle_csv(simulate(SimulationConfig(machines=6, start=HISTORY[0], end=end, seed=7)), raw)
    return raw


def test_partition_by_partition_equals_one_run_over_the_history(simulated_raw, instance, tmp_path):
    ranged, single = tmp_path / "ranged", tmp_path / "single"
    assert run(instance, simulated_raw, ranged, *HISTORY).success
    # the one-by-one run starts from the same raw tables, then builds features and labels a day at a time
    shutil.copytree(
        ranged / "warehouse",
        single / "warehouse",
        ignore=lambda _folder, names: [n for n in names if n in ("features", "labels")],
    )
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range(*HISTORY)]
    for day in days:
        assert run(instance, simulated_raw, single, day, selection=["features", "labels"]).success
    for asset in ("features", "labels"):
        pd.testing.assert_frame_equal(
            stored_partitions(ranged, asset, days), stored_partitions(single, asset, days), check_exact=True
        )
    feats = stored_partitions(ranged, "features", days)
    assert len(feats) == 6 * 8 * len(days)
    # the first days lack 14 days of history: flagged, and their long windows are not invented
    first = feats[feats["datetime"] < "2015-01-02"]
    assert not first["complete"].any() and first["volt_mean_14d"].isna().all()
    assert feats.loc[feats["datetime"] >= "2015-01-16", "complete"].mean() > 0.95


@pytest.fixture(scope="module")
def real_q1(real_data_dir, instance, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_q1_features")
    result = run(instance, real_data_dir, out, "2015-01-01", "2015-04-03", telemetry_file=Q1_SUBSET)
    assert result.success
    return out


def test_real_failures_with_a_day_of_telemetry_are_exactly_the_positively_labelled_ones(real_q1, real_data_dir):
    features, labels = stored_partitions(real_q1, "features"), stored_partitions(real_q1, "labels")
    telemetry = stored_partitions(real_q1, "telemetry")
    failures = pd.read_csv(real_data_dir / "PdM_failures.csv.gz", parse_dates=["datetime"])
    failures = failures[(failures["datetime"] >= "2015-01-01") & (failures["datetime"] < "2015-04-04")]

    # expected, from the raw files alone: failures with every one of the 24 hours before them in the telemetry
    hours = set(zip(telemetry["machineID"], telemetry["datetime"]))

    def has_day_of_telemetry(row) -> bool:
        return all((row.machineID, row.datetime - pd.Timedelta(hours=h)) in hours for h in range(1, 25))

    expected = {(r.machineID, r.datetime, r.failure) for r in failures.itertuples() if has_day_of_telemetry(r)}

    # received: failure events with a positive label on a usable snapshot in the 24 h before them
    snaps = labels.merge(features[["machineID", "datetime", "usable"]], on=["machineID", "datetime"])
    snaps = snaps[snaps["usable"]]
    received = set()
    for r in failures.itertuples():
        before = snaps[
            (snaps["machineID"] == r.machineID)
            & (snaps["datetime"] >= r.datetime - pd.Timedelta(hours=24))
            & (snaps["datetime"] < r.datetime)
        ]
        if before[f"fails_{r.failure}"].any():
            received.add((r.machineID, r.datetime, r.failure))
    assert len(expected) > 30  # the Q1 window holds dozens of real failures of machines 1-20
    assert received == expected


def test_real_q1_labels_are_mature_except_at_the_edge_of_the_data(real_q1):
    labels = stored_partitions(real_q1, "labels")
    assert labels.loc[labels["datetime"] < "2015-04-02", "label_mature"].all()
    last_day = labels[labels["datetime"] >= "2015-04-03"]
    assert not last_day["label_mature"].all()  # failures after 2015-04-03 were not ingested in this run
    immature = labels[~labels["label_mature"]]
    assert immature["failure_component"].isna().all() and immature["failure_within_horizon"].isna().all()


#: The gappy test's days: the first four months of the union file. Machines 1-20 have every hour until 04-01 05:00
#: and then gaps, the 80 others gaps throughout (windows before failures): complete and incomplete snapshots side by
#: side, most 14-day windows partly covered, those of machines 1-20 going from complete to gappy in April. Every
#: complete snapshot of the whole year is in these months (12,503, when the test ran all of 2015); the other eight
#: have gaps of the same kind, only sparser, and no complete snapshot.
GAPPY = ("2015-01-01", "2015-04-30")


def test_gappy_real_telemetry_reports_coverage_and_keeps_nan_out_of_complete_snapshots(
    real_data_dir, instance, tmp_path
):
    result = run(
        instance,
        real_data_dir,
        tmp_path,
        *GAPPY,
        telemetry_file=UNION_PARTIAL,
        selection=["source_files", "machines", "telemetry", "errors", "maintenance", "maintenance_history", "features"],
    )
    assert result.success
    feats = stored_partitions(tmp_path, "features")
    complete = feats[feats["complete"]]
    assert 0 < len(complete) < len(feats)
    assert not complete[feature_columns()].isna().any().any()
    assert feats["coverage_14d"].between(0, 1).all() and feats["coverage_14d"].mean() < 0.5
    assert check_evaluations(result)[("features", "complete_snapshots_have_no_nan")].passed
    mats = materialization_metadata(result, "features")
    assert len(mats) == len(pd.date_range(*GAPPY))
    shares = np.array([m["share_complete"] for m in mats.values()])
    assert shares.min() >= 0 and shares.max() <= 1 and 0 < shares.mean() < 1
