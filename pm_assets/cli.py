"""Command line: ``pm-assets simulate`` writes a simulated dataset, ``pm-assets main`` runs the whole history.

``main`` runs through the real Dagster instance of this project (``dagster.yaml``; ``DAGSTER_HOME`` defaults to
the project folder), so ``dagster dev -w workspace.yaml`` afterwards shows every materialization.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from pm_assets.core.parsing import find_source_file
from pm_assets.core.schema import TABLES
from pm_assets.settings import PARTITION_END, PARTITION_START, PROJECT_ROOT, RAW_DIR


def _simulate(args: argparse.Namespace) -> int:
    from pm_assets.core.simulate import DriftSpec, SimulationConfig, simulate, write_kaggle_csv

    drift = None
    if args.drift_start:
        shifts = dict((s.split("=")[0], float(s.split("=")[1])) for s in args.drift_shift)
        drift = DriftSpec(start=args.drift_start, sensor_shift_sd=shifts, failure_rate_factor=args.drift_failure_factor)
    config = SimulationConfig(machines=args.machines, start=args.start, end=args.end, seed=args.seed, drift=drift)
    started = time.perf_counter()
    paths = write_kaggle_csv(simulate(config), args.out, compress=args.gzip)
    for name, path in paths.items():
        print(f"{name:12s} {path}")
    print(f"simulated {args.machines} machines {args.start}..{args.end} in {time.perf_counter() - started:.1f} s")
    return 0


def _has_raw_data(raw_dir: Path) -> bool:
    try:
        return all(find_source_file(raw_dir, spec) for spec in TABLES.values())
    except FileNotFoundError:
        return False


def _main(args: argparse.Namespace) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    os.chdir(os.environ["DAGSTER_HOME"])  # dagster.yaml's storage paths are relative to the working directory
    raw_dir = RAW_DIR
    if not _has_raw_data(raw_dir):
        print(f"no Azure PdM files in {raw_dir}: simulating 100 machines {PARTITION_START}..{PARTITION_END}")
        _simulate(argparse.Namespace(machines=100, start=PARTITION_START, end=PARTITION_END, seed=42, out=raw_dir,
                                     gzip=False, drift_start=None, drift_shift=[], drift_failure_factor=1.0))
    from dagster import DagsterInstance

    from pm_assets.definitions import defs
    from pm_assets.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys()
    instance = DagsterInstance.get()
    print(f"materializing every asset over {keys[0]}..{keys[-1]} ({len(keys)} partitions) as one run "
          f"in {os.environ['DAGSTER_HOME']}")
    started = time.perf_counter()
    result = defs.resolve_job_def("main_job").execute_in_process(
        instance=instance,
        # INFO on the console: step starts/ends and the assets' own messages, not one DEBUG line per event
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )
    elapsed = time.perf_counter() - started
    print(f"run {result.run_id}: {'success' if result.success else 'FAILED'} in {elapsed:.1f} s")
    _print_summary(result)
    _print_outcome()
    return 0 if result.success else 1


def _print_outcome() -> None:
    """The champion's test metrics, the latest traffic light and where the reports are."""
    import json

    from pm_assets.core.registry import LocalRegistry
    from pm_assets.settings import MODELS_DIR, OUTPUTS_DIR

    registry = LocalRegistry(MODELS_DIR)
    champion = registry.champion()
    if champion:
        metrics = registry.card(champion)["metrics"]
        print(f"champion model {champion}: macro F1 {metrics['macro_f1_components']:.4f}, AP "
              f"{metrics['average_precision']:.4f}, ECE {metrics['ece']:.4f} (test window; card in {registry.root / champion})")
    reports = sorted((OUTPUTS_DIR / "monitoring").glob("*/monitoring_summary.json"))
    if reports:
        latest = json.loads(reports[-1].read_text())
        print(f"latest monitoring {latest['date']}: {latest['traffic_light'].upper()} ({latest['alert_count']} alerts) "
              f"- {latest['action']}")
        print(f"reports: {reports[-1].parent}/report.html ({len(reports)} days in {OUTPUTS_DIR / 'monitoring'})")


def _print_summary(result) -> None:
    """One line per asset: partitions materialized, rows stored and rows rejected over all of them."""
    totals: dict[str, list[int]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        line = totals.setdefault(mat.asset_key.to_user_string(), [0, 0, 0])
        line[0] += 1
        line[1] += int(meta.get("dagster/row_count", 0))
        line[2] += int(meta.get("rows_rejected", 0))
    for asset, (partitions, rows, rejected) in totals.items():
        print(f"  {asset:22s} partitions={partitions:4d}  rows={rows:>10,}  rejected={rejected:,}")
    failed = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and not e.event_specific_data.passed]
    for event in failed:
        data = event.event_specific_data
        print(f"  check {data.asset_key.to_user_string()}.{data.check_name}: {data.severity.value} failed")


def _predict(args: argparse.Namespace) -> int:
    """Score one machine's latest snapshot with the champion model."""
    import json

    import pandas as pd

    from pm_assets.core.model import predict_one
    from pm_assets.core.registry import LocalRegistry
    from pm_assets.settings import MODELS_DIR, WAREHOUSE_DIR

    registry = LocalRegistry(args.registry or MODELS_DIR)
    version = registry.champion()
    if version is None:
        print(f"no champion model in {registry.root}: run `pm-assets main` first", file=sys.stderr)
        return 2
    bundle = registry.load(version)
    files = sorted((Path(args.warehouse or WAREHOUSE_DIR) / "features").glob("*.parquet"), reverse=True)
    if args.at:
        files = [f for f in files if f.stem <= pd.Timestamp(args.at).strftime("%Y-%m-%d")]
    for path in files[: args.days_back]:  # newest first: the current snapshot is in the latest day with data
        try:
            result = predict_one(bundle, pd.read_parquet(path), args.machine, at=args.at)
        except LookupError:
            continue
        print(json.dumps({**result, "model_version": version}, indent=2))
        return 0
    print(f"machine {args.machine}: no usable snapshot in the last {args.days_back} feature partitions", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pm-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated Azure PdM dataset in the Kaggle CSV format")
    sim.add_argument("--machines", type=int, default=100)
    sim.add_argument("--start", default=PARTITION_START, help="first telemetry hour (00:00 of this day)")
    sim.add_argument("--end", default=PARTITION_END, help="end, exclusive")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--out", default=str(RAW_DIR))
    sim.add_argument("--gzip", action="store_true", help="write .csv.gz instead of .csv")
    sim.add_argument("--drift-start", help="inject drift from this timestamp")
    sim.add_argument("--drift-shift", action="append", default=[], metavar="SENSOR=SD",
                     help="shift a sensor by SD standard deviations from --drift-start (repeatable)")
    sim.add_argument("--drift-failure-factor", type=float, default=1.0, help="multiply failure rates from --drift-start")
    sim.set_defaults(func=_simulate)

    run = sub.add_parser("main", help="simulate data if there is none (in $PM_RAW_DIR), then materialize the whole history")
    run.set_defaults(func=_main)

    pred = sub.add_parser("predict", help="score one machine's current snapshot with the champion model")
    pred.add_argument("--machine", type=int, required=True)
    pred.add_argument("--at", help="score the latest snapshot at or before this time (default: the latest)")
    pred.add_argument("--days-back", type=int, default=3, help="feature partitions to search, newest first")
    pred.add_argument("--registry", help="model registry folder (default data/models)")
    pred.add_argument("--warehouse", help="warehouse folder (default data/warehouse)")
    pred.set_defaults(func=_predict)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
