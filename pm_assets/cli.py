"""Command line: ``simulate`` writes a simulated fleet, ``main`` runs the whole history, ``live`` plays a fleet
forward into the landing folder day by day, ``automation on|off`` starts or stops every schedule and sensor,
``predict`` scores one machine.

``main`` and ``live`` run through the real Dagster instance of this project (``dagster.yaml``; ``DAGSTER_HOME``
defaults to the project folder), so ``dagster dev -w workspace.yaml`` shows every materialization.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from pm_assets.core.landing import list_landed
from pm_assets.settings import LANDING_DIR, PARTITION_END, PARTITION_START, PROJECT_ROOT

#: The demo fleet of ``main`` and ``live``: 100 machines, seed 42 (README figures are of this fleet).
DEMO_MACHINES, DEMO_SEED = 100, 42
#: Drift the live demo injects when asked for one without details: two sensors +2 sd, failures x3.
DEFAULT_DRIFT_SHIFT = ("volt=2", "pressure=2")
DEFAULT_DRIFT_FAILURE_FACTOR = 3.0
#: The demo history of `pm-assets main` drifts (the defaults above) over its last days, so that a newcomer sees the
#: light turn yellow and red and, with automation on, a retraining (`--no-drift`: the steady fleet of the benchmarks).
DEMO_DRIFT_DAYS = 21


def _today() -> str:
    """00:00 UTC today: the exclusive end of simulated data, so that the last simulated day is yesterday."""
    import pandas as pd

    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")


def _default_end() -> str:
    return PARTITION_END or _today()


def _drift(start: str | None, shifts: list[str], factor: float):
    from pm_assets.core.simulate import DriftSpec

    if not start:
        return None
    pairs = dict((s.split("=")[0], float(s.split("=")[1])) for s in (shifts or DEFAULT_DRIFT_SHIFT))
    return DriftSpec(start=start, sensor_shift_sd=pairs, failure_rate_factor=factor)


def _simulate(args: argparse.Namespace) -> int:
    from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv

    drift = _drift(args.drift_start, args.drift_shift, args.drift_failure_factor)
    config = SimulationConfig(
        machines=args.machines, start=args.start, end=args.end or _default_end(), seed=args.seed, drift=drift
    )
    started = time.perf_counter()
    paths = write_kaggle_csv(simulate(config), args.out, compress=args.gzip)
    for name, path in paths.items():
        print(f"{name:12s} {path}")
    print(f"simulated {args.machines} machines {config.start}..{config.end} in {time.perf_counter() - started:.1f} s")
    return 0


def _use_project_instance() -> None:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    os.chdir(os.environ["DAGSTER_HOME"])  # dagster.yaml's storage paths are relative to the working directory


def _run_history(first: str | None = None, last: str | None = None):
    """``main_job`` over the partitions first..last (default: all that exist) as one run, on the project instance."""
    from dagster import DagsterInstance

    from pm_assets.definitions import defs
    from pm_assets.partitions import daily_partitions

    keys = [
        k
        for k in daily_partitions.get_partition_keys()
        if (first is None or k >= first) and (last is None or k <= last)
    ]
    instance = DagsterInstance.get()
    _fail_dead_runs(instance)
    print(
        f"materializing every asset over {keys[0]}..{keys[-1]} ({len(keys)} partitions) as one run "
        f"in {os.environ['DAGSTER_HOME']}"
    )
    started = time.perf_counter()
    result = _execute_with_progress(
        defs.resolve_job_def("main_job"),
        instance,
        # the console logger shows warnings and errors; the steps and their progress are printed below
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    return result, time.perf_counter() - started


def _fail_dead_runs(instance) -> int:
    """Mark FAILED the STARTED runs whose worker process on this machine is gone (a killed ``pm-assets main``: without
    the daemon nothing else would); prints each. Returns how many."""
    from pm_assets.run_workers import dead_runs, mark_failed

    found = dead_runs(instance)
    for run, why in found:
        mark_failed(instance, run, why)
        print(f"run {run.run_id} ({run.job_name}) was STARTED but {why}: marked FAILED")
    return len(found)


def _runs(args: argparse.Namespace) -> int:
    """List the latest runs with their status and worker; mark dead ones (or one named run) failed."""
    _use_project_instance()
    from dagster import DagsterInstance, DagsterRunStatus

    from pm_assets.run_workers import mark_failed, worker_health

    instance = DagsterInstance.get()
    if args.fail_dead:
        print(f"{_fail_dead_runs(instance)} dead run(s) marked FAILED")
    if args.fail:
        run = instance.get_run_by_id(args.fail)
        if run is None:
            print(f"no run {args.fail}", file=sys.stderr)
            return 2
        if run.is_finished:
            print(f"run {run.run_id} already ended: {run.status.value}", file=sys.stderr)
            return 2
        state, why = worker_health(instance, run)
        if state == "alive" and not args.force:
            print(f"run {run.run_id}: {why}; not marked (--force to mark it anyway)", file=sys.stderr)
            return 2
        mark_failed(instance, run, why if state != "alive" else "marked by hand")
        print(f"run {run.run_id} marked FAILED ({why})")
    records = instance.get_run_records(limit=args.limit)
    print(f"{'run':36}  {'job':15} {'status':9} {'started (UTC)':19} {'took':>8}  worker")
    for record in records:
        run = record.dagster_run
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.start_time)) if record.start_time else ""
        took = f"{(record.end_time or time.time()) - record.start_time:7.1f}s" if record.start_time else ""
        worker = worker_health(instance, run)[1] if run.status == DagsterRunStatus.STARTED else ""
        print(f"{run.run_id:36}  {run.job_name[:15]:15} {run.status.value:9} {started:19} {took:>8}  {worker}")
    return 0


_STEP_ENDS = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}


def _execute_with_progress(job, instance, run_config: dict, tags: dict):
    """Run ``job`` in process and, meanwhile, print each step as it finishes with its time (read from the run's
    event log: step events only), and the progress lines the long steps log ("progress: ..."), one line updated in
    place on a terminal (through a logger added to the job for this run, so no event is read back for them)."""
    import logging
    import threading

    from dagster import DagsterEventType, LoggerDefinition
    from dagster._core.utils import make_new_run_id

    lock, live, started = threading.Lock(), [False], time.perf_counter()
    terminal = sys.stdout.isatty()

    def show(line: str, in_place: bool = False) -> None:
        with lock:
            line = f"{time.perf_counter() - started:6.1f} s  {line}"
            if in_place and terminal:
                print("\r" + line[:150].ljust(150), end="", flush=True)
                live[0] = True
                return
            if live[0]:
                print()
                live[0] = False
            print(line, flush=True)

    class ProgressLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", None) or {}
            message = meta.get("orig_message") or ""
            if meta.get("dagster_event") is None and message.startswith("progress: "):
                show(f"{meta.get('step_key')}: {message.removeprefix('progress: ')}", in_place=True)

    def progress_logger(_init_context) -> logging.Logger:
        log = logging.Logger("pm_assets.progress", logging.INFO)
        log.addHandler(ProgressLines(logging.INFO))
        return log

    job = job.with_logger_defs({**job.loggers, "progress": LoggerDefinition(progress_logger)})
    run_id, box = make_new_run_id(), {}
    worker = threading.Thread(
        target=lambda: box.update(
            result=job.execute_in_process(
                instance=instance,
                run_config={**run_config, "loggers": {**run_config.get("loggers", {}), "progress": {}}},
                tags=tags,
                run_id=run_id,
                raise_on_error=False,
            )
        )
    )
    worker.start()
    cursor, steps = None, {}
    kinds = {DagsterEventType.STEP_START, *(DagsterEventType(kind) for kind in _STEP_ENDS)}
    while True:
        alive = worker.is_alive()
        try:
            page = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
        except Exception:  # noqa: BLE001 - the run is not in storage yet
            page = None
        for record in page.records if page else []:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event.event_type == DagsterEventType.STEP_START:
                steps[event.step_key] = entry.timestamp
            else:
                took = entry.timestamp - steps.get(event.step_key, entry.timestamp)
                show(f"{event.step_key:22s} {_STEP_ENDS[event.event_type_value]} in {took:5.1f} s")
        if page is not None:
            cursor = page.cursor
        if not alive:
            break
        worker.join(0.5)
    if live[0]:
        print()
    return box["result"]


def _main(args: argparse.Namespace) -> int:
    _use_project_instance()
    if not list_landed(LANDING_DIR)[0]:
        end = _default_end()
        print(
            f"no Azure PdM files in {LANDING_DIR}: simulating {DEMO_MACHINES} machines {PARTITION_START}..{end} "
            "(the last day is yesterday)"
        )
        import pandas as pd

        drift_start = None if args.no_drift else str((pd.Timestamp(end) - pd.Timedelta(days=DEMO_DRIFT_DAYS)).date())
        if drift_start:
            print(
                f"the demo fleet drifts from {drift_start} ({' '.join(DEFAULT_DRIFT_SHIFT)} sd, failures "
                f"x{DEFAULT_DRIFT_FAILURE_FACTOR:g}; --no-drift for a steady fleet)"
            )
        _simulate(
            argparse.Namespace(
                machines=DEMO_MACHINES,
                start=PARTITION_START,
                end=end,
                seed=DEMO_SEED,
                out=LANDING_DIR,
                gzip=False,
                drift_start=drift_start,
                drift_shift=[],
                drift_failure_factor=DEFAULT_DRIFT_FAILURE_FACTOR if drift_start else 1.0,
            )
        )
    result, elapsed = _run_history()
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
        print(
            f"champion model {champion}: macro F1 {metrics['macro_f1_components']:.4f}, AP "
            f"{metrics['average_precision']:.4f}, ECE {metrics['ece']:.4f} "
            f"(test window; card in {registry.root / champion})"
        )
    reports = sorted((OUTPUTS_DIR / "monitoring").glob("*/monitoring_summary.json"))
    if reports:
        latest = json.loads(reports[-1].read_text())
        print(
            f"latest monitoring {latest['date']}: {latest['traffic_light'].upper()} ({latest['alert_count']} alerts) "
            f"- {latest['action']}"
        )
        print(f"reports: {reports[-1].parent}/report.html ({len(reports)} days in {OUTPUTS_DIR / 'monitoring'})")


def _print_summary(result) -> None:
    """One line per asset: partitions materialized, rows stored and rows rejected over all of them."""
    totals: dict[str, list[int]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        line = totals.setdefault(mat.asset_key.to_user_string(), [0, 0, 0])
        line[0] += 1
        line[1] += int(meta.get("dagster/row_count", 1))  # monitoring: one row a day, no count shown
        line[2] += int(meta.get("rows_rejected", 0))
    for asset, (partitions, rows, rejected) in totals.items():
        print(f"  {asset:22s} partitions={partitions:4d}  rows={rows:>10,}  rejected={rejected:,}")
    failed = [
        e
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
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
    from pm_assets.core.locations import as_path
    from pm_assets.core.parquet_files import read_parquet

    files = sorted((as_path(args.warehouse or WAREHOUSE_DIR) / "features").glob("*.parquet"), reverse=True)
    if args.at:
        files = [f for f in files if f.stem <= pd.Timestamp(args.at).strftime("%Y-%m-%d")]
    for path in files[: args.days_back]:  # newest first: the current snapshot is in the latest day with data
        try:
            result = predict_one(bundle, read_parquet(path), args.machine, at=args.at)
        except LookupError:
            continue
        print(json.dumps({**result, "model_version": version}, indent=2))
        return 0
    print(
        f"machine {args.machine}: no usable snapshot in the last {args.days_back} feature partitions", file=sys.stderr
    )
    return 1


def _live(args: argparse.Namespace) -> int:
    """Play a fleet forward into the landing folder, one day every ``--every`` seconds, ending with yesterday."""
    import pandas as pd

    from pm_assets.core.landing import Staging
    from pm_assets.core.schema import DAILY_TABLES
    from pm_assets.core.simulate import SimulationConfig, day_tables, simulate, write_day_files, write_kaggle_csv
    from pm_assets.settings import STAGING_DIR

    _use_project_instance()
    end = _today()
    last_day = pd.Timestamp(end) - pd.Timedelta(days=1)
    days = list(pd.date_range(end=last_day, periods=args.days, freq="D").strftime("%Y-%m-%d"))
    if days[0] <= PARTITION_START:
        print(
            f"--days {args.days} reaches back to {days[0]}, at or before the first partition {PARTITION_START}",
            file=sys.stderr,
        )
        return 2
    drift_start = args.drift_start or (
        days[args.drift_after] if args.drift_after is not None and args.drift_after < len(days) else None
    )
    config = SimulationConfig(
        machines=args.machines,
        start=PARTITION_START,
        end=end,
        seed=args.seed,
        drift=_drift(drift_start, args.drift_shift, args.drift_failure_factor),
    )
    tables = simulate(config)
    if not list_landed(LANDING_DIR)[0]:
        history = {
            name: (t[t["datetime"] < pd.Timestamp(days[0])] if name in DAILY_TABLES else t)
            for name, t in tables.items()
        }
        print(
            f"live demo: history {PARTITION_START}..{(pd.Timestamp(days[0]) - pd.Timedelta(days=1)).date()} of "
            f"{args.machines} machines into {LANDING_DIR}, materialized as one run first"
        )
        write_kaggle_csv(history, LANDING_DIR)
        result, elapsed = _run_history(last=(pd.Timestamp(days[0]) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"))
        print(f"history run {result.run_id}: {'success' if result.success else 'FAILED'} in {elapsed:.1f} s")
        if not result.success:
            return 1
    else:
        delivered = Staging(STAGING_DIR).days("telemetry")
        if not delivered:
            print(f"{LANDING_DIR} holds files nobody ingested yet: run `pm-assets main` first", file=sys.stderr)
            return 2
        days = [
            d
            for d in pd.date_range(pd.Timestamp(delivered[-1]) + pd.Timedelta(days=1), last_day, freq="D").strftime(
                "%Y-%m-%d"
            )
        ]
        if not days:
            print(
                f"the landing folder already reaches {delivered[-1]} (yesterday): nothing to play. For the live demo "
                "start from an empty data folder, e.g. `PM_DATA_DIR=$PWD/demo DAGSTER_HOME=... pm-assets live` or "
                "delete data/ and .dagster_home/storage (see README)",
                file=sys.stderr,
            )
            return 2
        print(f"live demo: continuing after {delivered[-1]} (same seed and fleet settings as before)")
    print(
        f"playing {len(days)} days {days[0]}..{days[-1]} into {LANDING_DIR}, one every {args.every:g} s"
        + (f"; drift from {drift_start}" if drift_start else "")
    )
    for i, day in enumerate(days):
        if i:
            time.sleep(args.every)
        write_day_files(tables, day, LANDING_DIR)
        rows = day_tables(tables, day)
        drifted = " (drifted)" if drift_start and day >= drift_start[:10] else ""
        print(
            f"  {day}{drifted}: {len(rows['telemetry']):,} readings, {len(rows['errors'])} errors, "
            f"{len(rows['maintenance'])} replacements, {len(rows['failures'])} failures",
            flush=True,
        )
    return 0


def _automation(args: argparse.Namespace) -> int:
    """Start (or stop) every schedule and sensor of the code location, through Dagster's own CLI."""
    import subprocess

    from pm_assets.automation import schedules, sensors

    base = ["-w", str(Path(args.workspace).resolve())]  # before the working directory changes
    _use_project_instance()
    dagster = str(Path(sys.executable).parent / "dagster")
    if args.state == "on":
        commands = [
            [dagster, "sensor", "start", "--start-all", *base],
            [dagster, "schedule", "start", "--start-all", *base],
        ]
    else:
        commands = [[dagster, "sensor", "stop", s.name, *base] for s in sensors]
        commands += [[dagster, "schedule", "stop", s.name, *base] for s in schedules]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr.strip().splitlines()[-1])
        if done.returncode:
            return done.returncode
    return 0


def _add_fleet_arguments(parser: argparse.ArgumentParser, drift_start_help: str, failure_factor: float) -> None:
    """The options ``simulate`` and ``live`` share: the fleet's size and seed, and its drift (see :func:`_drift`)."""
    parser.add_argument("--machines", type=int, default=DEMO_MACHINES)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--drift-start", help=drift_start_help)
    parser.add_argument(
        "--drift-shift",
        action="append",
        default=[],
        metavar="SENSOR=SD",
        help=f"sensor shift in sds from the drift start (repeatable; default {' '.join(DEFAULT_DRIFT_SHIFT)})",
    )
    parser.add_argument(
        "--drift-failure-factor", type=float, default=failure_factor, help="multiply failure rates from the drift start"
    )


RUNS_HELP = (
    "list the latest runs with their status and worker process; mark dead runs failed (a killed run stays STARTED "
    "until run monitoring, the next `main` or this marks it)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pm-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated Azure PdM dataset in the Kaggle CSV format")
    sim.add_argument("--start", default=PARTITION_START, help="first telemetry hour (00:00 of this day)")
    sim.add_argument(
        "--end", default=None, help="end, exclusive (default: PM_PARTITION_END, else today: data up to yesterday)"
    )
    sim.add_argument("--out", default=str(LANDING_DIR))
    sim.add_argument("--gzip", action="store_true", help="write .csv.gz instead of .csv")
    _add_fleet_arguments(sim, "inject drift from this timestamp", failure_factor=1.0)
    sim.set_defaults(func=_simulate)

    run = sub.add_parser(
        "main", help="simulate data if the landing folder has none, then materialize the whole history"
    )
    run.add_argument(
        "--no-drift",
        action="store_true",
        help=f"simulate a steady fleet (default: it drifts over its last {DEMO_DRIFT_DAYS} days)",
    )
    run.set_defaults(func=_main)

    live = sub.add_parser(
        "live",
        help="play a fleet forward into the landing folder, one day every few seconds, "
        "ending with yesterday (run it beside `dagster dev` with automation on)",
    )
    live.add_argument("--days", type=int, default=14, help="days to play (the last of them is yesterday)")
    live.add_argument("--every", type=float, default=5.0, help="seconds between two days")
    live.add_argument("--drift-after", type=int, help="start the drift after this many played days")
    _add_fleet_arguments(live, "start the drift at this timestamp instead", failure_factor=DEFAULT_DRIFT_FAILURE_FACTOR)
    live.set_defaults(func=_live)

    auto = sub.add_parser("automation", help="start (on) or stop (off) every schedule and sensor")
    auto.add_argument("state", choices=["on", "off"])
    auto.add_argument("-w", "--workspace", default=str(PROJECT_ROOT / "workspace.yaml"), help="workspace file")
    auto.set_defaults(func=_automation)

    runs = sub.add_parser("runs", help=RUNS_HELP)
    runs.add_argument("--limit", type=int, default=20, help="how many runs to list, newest first")
    runs.add_argument("--fail-dead", action="store_true", help="mark FAILED every STARTED run whose worker is gone")
    runs.add_argument("--fail", metavar="RUN_ID", help="mark this run FAILED (refused while its worker runs)")
    runs.add_argument("--force", action="store_true", help="with --fail: mark it even though its worker runs")
    runs.set_defaults(func=_runs)

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
