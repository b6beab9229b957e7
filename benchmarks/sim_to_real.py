"""Sim-to-real: train the failure model on simulated machines only and score it on the real Azure PdM data.

    .venv/bin/python benchmarks/sim_to_real.py [--real ../shared/data/azure_pm] [--seed 42] [--machines 100]
                                               [--threshold 0.5] [--threads 1] [--complete]

Protocol (everything the project's own: ``build_features``, ``build_labels`` with the 24 h horizon,
``training_rows``, ``split_by_cutoff``, default ``TrainParams``, ``fit_bundle``, ``model.evaluate``; the tables and
rows are built as ``benchmarks/evaluate_model.py`` builds them, by its ``real_tables`` and ``dataset``):

- simulated -> real: simulate the fleet (default ``observed_config()``: ``SimulationConfig`` with its defaults,
  100 machines, 2015, seed 42, and ``observation=ObservationSpec()``: only the telemetry hours the public copy of the
  real file would hold, as the real snapshots scored here are observed; ``--complete``: every hour, as before),
  keep its usable snapshots with mature labels before 2015-08-01 minus the horizon, fit one bundle on them.
- real -> real: the same, on the real usable snapshots with mature labels before 2015-08-01 minus the horizon.
- real tables: the four complete event files and, as telemetry, the union of the two real subsets (Q1 of
  machines 1-20 and the gappy union file). A snapshot whose 3 h or 24 h window has less than 90 % of its hours is
  not ``usable`` (features.py) and is never scored: most real snapshots are not, since the telemetry is partial.
- test rows (both models, the same rows): the real usable snapshots with mature labels from 2015-08-01 on
  (labels observed until 2016-01-01 07:00, after the last real failure and the last real telemetry hour).
- per class: recall of comp1..comp4 and macro F1 over the four components (``macro_f1_components``: sklearn's
  ``f1_score(labels=comp1..comp4, average="macro")`` of the predicted class, the arg-max of the five classes
  none/comp1..comp4); ECE of ``p_any`` = 1 - P(none) against "a failure within 24 h" (10 equal-width bins,
  ``expected_calibration_error``).
- alert: ``p_any >= 0.5``, the project's operating threshold (``TrainingConfig.operating_threshold``, the point at
  which ``model.evaluate`` counts an alert for its FPR and recall, and ``HIGH_RISK`` of scoring.py), not the
  medium risk level ``MEDIUM_RISK`` = 0.2 (``--threshold 0.2`` uses that instead).
- per failure event: the real failure rows (a failure of two components at once counts twice, as the README's
  "560 of the 761 failures") that have a real telemetry reading in each of the 48 hours before them, on their
  machine. An event is alerted when some scored (usable) snapshot of that machine in ``[t - 48 h, t)`` has p_any
  at or above the threshold (scored: the usable snapshots with mature labels; the immature ones, from
  2015-12-31 09:00, lie after the last failure). Over all of 2015 for simulated -> real (it trained on no real
  row), and over the events whose 48 h lie from the cutoff on for both models.
- false-positive rate: among real usable snapshots with a mature "none" label (no failure within 24 h), the share
  with p_any at or above the threshold: on the test rows for both models, over all of 2015 for simulated -> real.

``evaluate`` returns every figure (and the test predictions); the real tables, rows and the real -> real model are
built once per folder, the simulated model once per configuration (the last one), so tuning the simulator against
``evaluate(SimulationConfig(...))`` only re-simulates.
"""

from __future__ import annotations

import argparse
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from evaluate_model import HORIZON, dataset, real_tables
from threadpoolctl import threadpool_limits

from pm_assets.core.labels import NO_FAILURE
from pm_assets.core.model import TrainParams, fit_bundle, split_by_cutoff
from pm_assets.core.model import evaluate as model_metrics
from pm_assets.core.profile import readings_before
from pm_assets.core.schema import COMPONENTS
from pm_assets.core.simulate import ObservationSpec, SimulationConfig, simulate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "azure_pm"
CUTOFF = pd.Timestamp("2015-08-01")
REAL_END = "2016-01-01 07:00"  # as evaluate_model.py: past the last real failure (2015-12-31 06:00)
EVENT_HOURS = 48
THRESHOLD = 0.5
_HOUR = pd.Timedelta(hours=1)


def observed_config(seed: int = 42, machines: int = 100, complete: bool = False) -> SimulationConfig:
    """The simulated fleet of the protocol: defaults, its telemetry observed as the real copy (unless ``complete``)."""
    return SimulationConfig(machines=machines, seed=seed, observation=None if complete else ObservationSpec())


def events_with_history(telemetry: pd.DataFrame, failures: pd.DataFrame, hours: int = EVENT_HOURS) -> pd.DataFrame:
    """The failure rows whose machine has a telemetry reading in each of the ``hours`` hours before the failure."""
    return failures[readings_before(telemetry, failures, hours)].reset_index(drop=True)


def alerted(events: pd.DataFrame, scored: pd.DataFrame, threshold: float, hours: int = EVENT_HOURS) -> np.ndarray:
    """For each event (machineID, datetime t): whether a row of ``scored`` (machineID, datetime, p_any) of its
    machine in ``[t - hours, t)`` has p_any >= ``threshold``."""
    hits = scored.loc[scored["p_any"].to_numpy() >= threshold, ["machineID", "datetime"]].astype(
        {"machineID": np.int64}
    )
    pairs = pd.DataFrame(
        {
            "event": np.arange(len(events)),
            "machineID": events["machineID"].to_numpy(np.int64),
            "failed": events["datetime"].to_numpy("datetime64[ns]"),
        }
    ).merge(hits, on="machineID")
    inside = (pairs["datetime"] >= pairs["failed"] - hours * _HOUR) & (pairs["datetime"] < pairs["failed"])
    return np.isin(np.arange(len(events)), pairs.loc[inside, "event"].to_numpy())


def false_positive_rate(rows: pd.DataFrame, p_any: np.ndarray, threshold: float) -> tuple[int, int]:
    """(alerts, rows) among ``rows`` labelled "none" (no failure within the horizon)."""
    negative = rows["failure_component"].astype(str).to_numpy() == NO_FAILURE
    return int((np.asarray(p_any)[negative] >= threshold).sum()), int(negative.sum())


def figures(test: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> dict:
    """The table's figures of one model on the test rows, by the project's ``model.evaluate``."""
    m = model_metrics(test, scores, threshold)
    per = m["per_class"].set_index("class")
    return {
        "recall": {c: float(per.loc[c, "recall"]) for c in COMPONENTS},
        "macro_f1": m["macro_f1_components"],
        "ece": m["ece"],
        "false_positive_rate": m["false_positive_rate"],
        "roc_auc": m["roc_auc"],
        "average_precision": m["average_precision"],
    }


@lru_cache(maxsize=2)
def real_data(real: Path) -> dict:
    """The real tables, their usable snapshots with mature labels (``rows``), the events with 48 h of telemetry
    before them, and the real -> real model (trained before the cutoff minus the horizon)."""
    tables = real_tables(Path(real))
    rows = dataset(tables, REAL_END)
    train, _ = split_by_cutoff(rows, CUTOFF, HORIZON)
    return {
        "tables": tables,
        "rows": rows,
        "events": events_with_history(tables["telemetry"], tables["failures"]),
        "train_rows": len(train),
        "bundle": fit_bundle(train, TrainParams()),
    }


_SIMULATED: dict[str, tuple[object, int]] = {}


def simulated_model(config: SimulationConfig):
    """(bundle, training rows) of the model trained on the simulated fleet before the cutoff minus the horizon."""
    key = repr(config)
    if key not in _SIMULATED:
        train, _ = split_by_cutoff(dataset(simulate(config), config.end), CUTOFF, HORIZON)
        _SIMULATED.clear()  # the simulated rows are large: keep only the last model
        _SIMULATED[key] = (fit_bundle(train, TrainParams()), len(train))
    return _SIMULATED[key]


def evaluate(config: SimulationConfig | None = None, real: Path = DEFAULT_REAL, threshold: float = THRESHOLD) -> dict:
    """Every figure of the sim-to-real comparison (see the module docstring), and the test predictions."""
    started = time.perf_counter()
    config = config or observed_config()
    data = real_data(Path(real))
    sim_bundle, sim_train_rows = simulated_model(config)
    rows, events = data["rows"], data["events"]
    year = sim_bundle.score(rows)  # every real usable snapshot with a mature label, scored by the simulated model
    is_test = (rows["datetime"] >= CUTOFF).to_numpy()
    test = rows[is_test].reset_index(drop=True)
    scores = {"sim": year[is_test].reset_index(drop=True), "real": data["bundle"].score(test)}
    test_events = events[events["datetime"] - EVENT_HOURS * _HOUR >= CUTOFF].reset_index(drop=True)
    out = {
        "cutoff": str(CUTOFF.date()),
        "threshold": threshold,
        "simulation": config,
        "test_rows": len(test),
        "test_positives": int((test["failure_component"].astype(str) != NO_FAILURE).sum()),
        "train_rows": {"sim": sim_train_rows, "real": data["train_rows"]},
        "test_events": len(test_events),
    }
    for name, s in scores.items():
        keys = test[["machineID", "datetime"]].assign(p_any=s["p_any"].to_numpy())
        out[name] = figures(test, s, threshold) | {"events_alerted": int(alerted(test_events, keys, threshold).sum())}
    year_keys = rows[["machineID", "datetime"]].assign(p_any=year["p_any"].to_numpy())
    fp, negatives = false_positive_rate(rows, year["p_any"].to_numpy(), threshold)
    hit = alerted(events, year_keys, threshold)
    out["sim_year"] = {
        "events": len(events),
        "events_alerted": int(hit.sum()),
        "alert_rate": float(hit.mean()),
        "missed": events[~hit].reset_index(drop=True),
        "negatives": negatives,
        "false_positives": fp,
        "false_positive_rate": fp / negatives,
    }
    out["predictions"] = test[["machineID", "datetime", "failure_component"]].assign(
        **{f"{name}_{col}": scores[name][col].to_numpy() for name in scores for col in ("p_any", "predicted_class")}
    )
    out["seconds"] = time.perf_counter() - started
    return out


def markdown(result: dict) -> str:
    sim, real, year, thr = result["sim"], result["real"], result["sim_year"], result["threshold"]

    def recall(r):
        return " / ".join(f"{r['recall'][c]:.3f}".lstrip("0") for c in COMPONENTS)

    n = result["test_events"]
    lines = [
        "| | simulated -> real | real -> real (same test rows) |",
        "|---|---|---|",
        f"| recall comp1..comp4 | {recall(sim)} | {recall(real)} |",
        f"| macro F1 | {sim['macro_f1']:.3f} | {real['macro_f1']:.3f} |",
        f"| ECE of `p_any` | {sim['ece']:.4f} | {real['ece']:.4f} |",
        f"| false-positive rate at p_any >= {thr} | {sim['false_positive_rate']:.4f} | "
        f"{real['false_positive_rate']:.4f} |",
        f"| failures alerted in the 48 h before (test period) | {sim['events_alerted']} / {n} | "
        f"{real['events_alerted']} / {n} |",
        "",
        f"Per failure event (simulated -> real, all of 2015): alerts on {year['events_alerted']} of the "
        f"{year['events']} "
        f"real failures with 48 h of real telemetry before them ({year['alert_rate']:.1%}).",
        f"False positives (simulated -> real, all of 2015): {year['false_positives']:,} of the "
        f"{year['negatives']:,} real "
        f"usable snapshots with no failure within 24 h have p_any >= {thr} ({year['false_positive_rate']:.2%}).",
        f"Test rows: {result['test_rows']:,} real usable snapshots with mature labels from {result['cutoff']} "
        f"({result['test_positives']:,} positive), {n} failure events with their 48 h in the test period. "
        f"Training rows: {result['train_rows']['sim']:,} simulated, {result['train_rows']['real']:,} real.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="alert when p_any >= this (default 0.5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit OpenMP/BLAS threads (same figures; 1 is ~3x faster on a busy 2-core machine)",
    )
    parser.add_argument(
        "--complete", action="store_true", help="train on every simulated telemetry hour (no ObservationSpec)"
    )
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        config = observed_config(args.seed, args.machines, args.complete)
        result = evaluate(config, args.real, args.threshold)
    print(markdown(result))
    print(f"\nrun time: {result['seconds']:.1f} s")


if __name__ == "__main__":
    main()
