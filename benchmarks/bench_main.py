"""Benchmark: the main command (`pm-assets main`) over the full simulated year, stage by stage.

    .venv/bin/python benchmarks/bench_main.py [--keep DIR] [--skip-direct] [--drift]
    .venv/bin/python benchmarks/bench_main.py --direct-only LANDING FIRST_DAY END_DAY

Runs in a temporary project folder (its own data/ and a copy of dagster.yaml, so the SQLite instance is the
real one): simulates the year, runs ``pm-assets main`` (one run over every partition, in-process executor),
then reads the run's event log for the time of each step and the number of events Dagster wrote. Prints the
same stages computed by calling the core functions directly, without Dagster, so the difference is Dagster's
overhead (events, IO manager, metadata).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dagster_run(drift: bool = False) -> tuple[float, dict]:
    """``pm-assets main`` in this process: its wall time, and the run's step times, events and partition range."""
    from dagster import DagsterEventType, DagsterInstance

    from pm_assets.cli import main
    from pm_assets.partitions import partition_range

    started = time.perf_counter()
    code = main(["main"] if drift else ["main", "--no-drift"])
    wall = time.perf_counter() - started
    if code:
        sys.exit(f"pm-assets main failed ({code})")
    instance = DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    records = instance.all_logs(run.run_id)
    steps, kinds = {}, Counter()
    for record in records:
        if record.dagster_event is None:
            kinds["log message"] += 1
            continue
        event = record.dagster_event
        kinds[event.event_type_value] += 1
        if event.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
            steps.setdefault(event.step_key, {})[event.event_type_value] = record.timestamp
    first, last = records[0].timestamp, records[-1].timestamp
    step_times = {k: v["STEP_SUCCESS"] - v["STEP_START"] for k, v in steps.items() if len(v) == 2}
    return wall, {"run_seconds": last - first, "steps": step_times, "events": kinds, "range": partition_range()}


def direct_run(raw_dir: Path, reports_dir: Path, first_day: str, end_day: str) -> dict[str, float]:
    """The same computation as plain function calls, in memory, over the days from ``first_day`` to ``end_day``
    (exclusive; the Dagster run's partitions): parse + validate, features, labels, training (with its evaluation and
    permutation importance, as the asset), scoring, and monitoring of every day with its report files. What this
    does not do is Dagster's part: events, metadata, per-partition parquet files; it imports no Dagster module."""
    import pandas as pd

    from pm_assets.core.features import build_features
    from pm_assets.core.history import history_table
    from pm_assets.core.labels import DEFAULT_HORIZON_HOURS, build_labels
    from pm_assets.core.model import (
        TrainParams,
        evaluate,
        fit_bundle,
        permutation_importance_of,
        split_by_cutoff,
        training_rows,
    )
    from pm_assets.core.monitoring import MonitoringParams, monitor_days, monitored_features, monitoring_rows
    from pm_assets.core.parsing import find_source_file, read_source_csv
    from pm_assets.core.reports import REPORT_PAGE, TREND_DAYS, ReportWriter, day_figures
    from pm_assets.core.schema import TABLES
    from pm_assets.core.scoring import score_snapshots
    from pm_assets.core.validation import validate_rows

    times, tables = {}, {}
    started = time.perf_counter()
    parsed = {name: read_source_csv(find_source_file(raw_dir, spec), spec) for name, spec in TABLES.items()}
    machines = validate_rows(parsed["machines"], TABLES["machines"]).kept
    for name, spec in TABLES.items():
        if name != "machines":
            tables[name] = validate_rows(parsed[name], spec, machines["machineID"]).kept
    times["parse + validate"] = time.perf_counter() - started
    start, end = pd.Timestamp(first_day), pd.Timestamp(end_day)

    started = time.perf_counter()
    feats = build_features(tables["telemetry"], tables["errors"], tables["maintenance"], machines, start, end)
    times["features"] = time.perf_counter() - started
    started = time.perf_counter()
    labels = build_labels(feats[["machineID", "datetime"]], tables["failures"], DEFAULT_HORIZON_HOURS, end)
    times["labels"] = time.perf_counter() - started
    started = time.perf_counter()
    rows = training_rows(feats, labels)
    train, test = split_by_cutoff(rows, rows["datetime"].max() - pd.Timedelta(days=30), DEFAULT_HORIZON_HOURS)
    bundle = fit_bundle(train, TrainParams())
    evaluate(test, bundle.score(test), 0.5)
    importance = permutation_importance_of(bundle, test)
    times["training"] = time.perf_counter() - started
    started = time.perf_counter()
    scores = score_snapshots(feats, bundle, "direct")
    times["scoring"] = time.perf_counter() - started
    started = time.perf_counter()
    # as the monitoring asset does it: the drift on as many threads, the reports (with the day's figures and the
    # trend panel) in report processes that get the rows once, the next days monitored meanwhile
    monitored = monitoring_rows(feats, scores, labels)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    params = MonitoringParams()
    names = monitored_features()
    threads = len(os.sched_getaffinity(0))  # the asset's default (MonitorConfig.threads)
    recent = deque(maxlen=TREND_DAYS)
    results = monitor_days(monitored, days + pd.Timedelta(days=1), names, params, importance, threads)
    with ReportWriter(process=True) as writer:
        writer.share(monitored, [c for c in monitored.columns if c in {*names, "p_any"}])
        for day, result in zip(days.strftime("%Y-%m-%d"), results):
            folder = reports_dir / day
            row = day_figures(day, result, "direct", folder / REPORT_PAGE)
            recent.append(row)
            writer.submit(folder, day, result, params, row, history_table(pd.DataFrame(list(recent))))
    times["monitoring (+ reports)"] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="project folder to use and keep (default: a temporary one)")
    parser.add_argument("--skip-direct", action="store_true")
    parser.add_argument("--drift", action="store_true", help="the demo's drift episode (default: a steady fleet)")
    parser.add_argument(
        "--direct-only",
        nargs=3,
        metavar=("LANDING", "FIRST_DAY", "END_DAY"),
        help="only the direct calls, over the files of LANDING from FIRST_DAY to END_DAY (exclusive); prints the "
        "stage times as JSON (what bench_scale.py --direct runs)",
    )
    args = parser.parse_args()
    if args.direct_only:
        import json

        landing, first_day, end_day = args.direct_only
        with tempfile.TemporaryDirectory(prefix="pm_direct_reports_") as reports:
            print(json.dumps(direct_run(Path(landing), Path(reports), first_day, end_day)))
        return
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pm_bench_main_"))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    os.environ.update(DAGSTER_HOME=str(folder), PM_DATA_DIR=str(folder / "data"))

    wall, dagster = dagster_run(args.drift)
    print(f"\npm-assets main: {wall:.1f} s wall (simulation included), run {dagster['run_seconds']:.1f} s")
    print("step                                   seconds")
    for step, seconds in sorted(dagster["steps"].items(), key=lambda kv: -kv[1]):
        print(f"  {step:36s} {seconds:7.1f}")
    print("events written:", ", ".join(f"{k} {v}" for k, v in dagster["events"].most_common()))
    history = dagster["steps"].get("monitoring_history")
    if history is not None:  # the in-process executor runs the steps one after the other: this is what it adds
        print(f"monitoring history and index page: {history:.2f} s, {history / dagster['run_seconds']:.1%} of the run")
    if not args.skip_direct:
        direct = direct_run(folder / "data" / "landing", folder / "direct_reports", *dagster["range"])
        print("\ndirect core calls (no Dagster)          seconds")
        for stage, seconds in direct.items():
            print(f"  {stage:36s} {seconds:7.1f}")
        print(f"  {'total':36s} {sum(direct.values()):7.1f}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
