"""Evaluate the failure model on the Microsoft PdM guide's three splits, on simulated and real data, and measure
whether the anomaly score helps as a feature. Also times training on the full simulated year.

    .venv/bin/python benchmarks/evaluate_model.py [--real ../shared/data/azure_pm] [--skip-real]

Splits (as the guide): train on snapshots before cutoff - 24 h, test from the cutoff to the end of the data;
cutoffs 2015-08-01, 2015-09-01, 2015-10-01. Only usable snapshots with mature labels are used.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pm_assets.core.features import build_features, feature_columns
from pm_assets.core.labels import build_labels
from pm_assets.core.model import TrainParams, evaluate, fit_bundle, split_by_cutoff, training_rows
from pm_assets.core.parsing import read_source_csv
from pm_assets.core.schema import TABLES
from pm_assets.core.simulate import SimulationConfig, simulate
from pm_assets.core.validation import validate_rows

ROOT = Path(__file__).resolve().parents[1]
CUTOFFS = ("2015-08-01", "2015-09-01", "2015-10-01")
HORIZON = 24
THRESHOLD = 0.5


def dataset(tables: dict, end) -> pd.DataFrame:
    feats = build_features(
        tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], "2015-01-01", end
    )
    labels = build_labels(feats, tables["failures"], HORIZON, end)
    return training_rows(feats, labels)


def real_tables(real: Path) -> dict:
    """The real event files plus every real telemetry row available here (Q1 subset and the union file)."""
    machines = validate_rows(read_source_csv(real / "PdM_machines.csv.gz", TABLES["machines"]), TABLES["machines"]).kept
    ids = machines["machineID"]
    out = {"machines": machines}
    for name, file in (
        ("errors", "PdM_errors.csv.gz"),
        ("maintenance", "PdM_maint.csv.gz"),
        ("failures", "PdM_failures.csv.gz"),
    ):
        out[name] = validate_rows(read_source_csv(real / file, TABLES[name]), TABLES[name], ids).kept
    parts = [
        validate_rows(read_source_csv(real / "partial" / f, TABLES["telemetry"]), TABLES["telemetry"], ids).kept
        for f in ("PdM_telemetry_SUBSET_machines1-20_2015Q1.csv.gz", "PdM_telemetry_PARTIAL_union_144262rows.csv.gz")
    ]
    out["telemetry"] = (
        pd.concat(parts).drop_duplicates(["machineID", "datetime"]).sort_values(["machineID", "datetime"])
    )
    return out


def run_splits(rows: pd.DataFrame, label: str, with_anomaly_feature: bool = False) -> list[dict]:
    results = []
    for cutoff in CUTOFFS:
        train, test = split_by_cutoff(rows, cutoff, HORIZON)
        if with_anomaly_feature:
            base = fit_bundle(train)
            train = train.assign(anomaly=base.score(train)["anomaly_score"].to_numpy())
            test = test.assign(anomaly=base.score(test)["anomaly_score"].to_numpy())
            bundle = fit_bundle(train, features=[*feature_columns(), "anomaly"])
        else:
            bundle = fit_bundle(train)
        scores = bundle.score(test)
        m = evaluate(test, scores, THRESHOLD)
        per = m["per_class"].set_index("class")
        anomaly_auc = np.nan
        if m["positives"] and m["positives"] < len(test):
            from sklearn.metrics import roc_auc_score

            anomaly_auc = roc_auc_score((test["failure_component"].astype(str) != "none"), scores["anomaly_score"])
        results.append(
            {
                "data": label,
                "cutoff": cutoff,
                "train": len(train),
                "test": len(test),
                "positives": m["positives"],
                **{f"P {c}": per.loc[c, "precision"] for c in ("comp1", "comp2", "comp3", "comp4")},
                **{f"R {c}": per.loc[c, "recall"] for c in ("comp1", "comp2", "comp3", "comp4")},
                "macro F1": m["macro_f1_components"],
                "AUC": m["roc_auc"],
                "AP": m["average_precision"],
                "Brier": m["brier"],
                "ECE": m["ece"],
                "FPR@0.5": m["false_positive_rate"],
                "anomaly AUC": anomaly_auc,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "azure_pm")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)

    sim_rows = dataset(simulate(SimulationConfig()), "2016-01-01")
    started = time.perf_counter()
    fit_bundle(sim_rows, TrainParams())
    print(f"training on the full simulated year: {len(sim_rows):,} rows in {time.perf_counter() - started:.1f} s\n")

    results = run_splits(sim_rows, "simulated")
    ablation = run_splits(sim_rows, "simulated + anomaly as feature", with_anomaly_feature=True)
    if not args.skip_real:
        real_rows = dataset(real_tables(args.real), "2016-01-01 07:00")
        print(
            f"real data: {len(real_rows):,} usable snapshots with mature labels "
            f"({real_rows['failure_component'].astype(str).ne('none').sum():,} positive)\n"
        )
        results += run_splits(real_rows, "real")
    table = pd.DataFrame(results + ablation)
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
