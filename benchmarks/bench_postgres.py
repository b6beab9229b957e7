"""The project on PostgreSQL against SQLite, on this machine, one after the other.

    .venv/bin/python benchmarks/bench_postgres.py [--machines 100] [--days 365] [--stock] [--skip-main]

A PostgreSQL server is started on 127.0.0.1 with its default (durable) settings (pm_assets_tests/servers.py).

1. Per event: one ranged run of a 366-partition asset that only reports metadata, on each instance: SQLite
   (dagster.yaml), PostgreSQL with the project's pooled storages (deploy/postgres/dagster.yaml) and, with
   ``--stock``, Dagster's own Postgres storages (``storage: postgres``, a new connection per event).
2. ``pm-assets main`` over the simulated fleet on SQLite, then on pooled PostgreSQL (and stock with ``--stock``), in
   the same data folder; the run's own duration (start to end in the run storage) and the process's wall time.
3. Concurrency on PostgreSQL: one ``downstream_job`` run over 30 days alone, then four over four other 30-day
   ranges queued at once and dequeued by the daemon: the wall time from launch to the last end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from pm_assets_tests.servers import PostgresServer, wait_until  # noqa: E402

STOCK = """telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      scheme: postgresql+psycopg2
      hostname: {env: PM_PG_HOST}
      port: {env: PM_PG_PORT}
      username: {env: PM_PG_USER}
      password: {env: PM_PG_PASSWORD}
      db_name: {env: PM_PG_DB}
"""

EVENTS = """
import sys, time
from dagster import (BackfillPolicy, DagsterInstance, DailyPartitionsDefinition, Definitions, InMemoryIOManager, asset,
                     define_asset_job)
days = DailyPartitionsDefinition(start_date="2015-01-01", end_date="2016-01-02")
@asset(partitions_def=days, backfill_policy=BackfillPolicy.single_run(), io_manager_key="memory")
def daily(context):
    for key in context.partition_keys:
        context.add_asset_metadata({"n": int(key[-2:])}, partition_key=key)
    return 1
job = Definitions(
    assets=[daily], jobs=[define_asset_job("j")], resources={"memory": InMemoryIOManager()}
).resolve_job_def("j")
keys = days.get_partition_keys()
instance = DagsterInstance.get()
started = time.perf_counter()
result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                                         "dagster/asset_partition_range_end": keys[-1]})
seconds = time.perf_counter() - started
events = len(instance.all_logs(result.run_id))
print(events, seconds)
"""


def _home(root: Path, name: str, config: str | Path) -> Path:
    home = root / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    if isinstance(config, Path):
        shutil.copy(config, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(config)
    return home


def _run_seconds(env: dict, home: Path, job: str) -> list[tuple[float, float]]:
    code = (
        "from dagster import DagsterInstance, RunsFilter\n"
        f"for r in DagsterInstance.get().get_run_records(filters=RunsFilter(job_name={job!r})):\n"
        "    print(r.start_time or 0, r.end_time or 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=home, env=env, capture_output=True, text=True, check=True)
    return [tuple(map(float, line.split())) for line in out.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--stock", action="store_true", help="also Dagster's own Postgres storages (slow)")
    parser.add_argument("--skip-main", action="store_true", help="only the per-event and concurrency parts")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    import pandas as pd

    start = "2015-01-01"
    end = str((pd.Timestamp(start) + pd.Timedelta(days=args.days)).date())
    root = Path(tempfile.mkdtemp(prefix="pm_bench_pg_"))
    with PostgresServer(durable=True) as pg:
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DAGSTER_"))},
            **pg.env,
            "PM_DATA_DIR": str(root / "data"),
            "PM_PARTITION_START": start,
            "PM_PARTITION_END": end,
        }
        instances = {
            "sqlite": REPO / "dagster.yaml",
            "postgres (pooled)": REPO / "deploy" / "postgres" / "dagster.yaml",
        }
        if args.stock:
            instances["postgres (Dagster's stock)"] = STOCK

        print("1. per event: a ranged run of 366 partitions reporting metadata")
        for name, config in instances.items():
            pg.reset()
            home = _home(root, "events", config)
            out = subprocess.run(
                [sys.executable, "-c", EVENTS],
                cwd=home,
                env={**base, "DAGSTER_HOME": str(home)},
                capture_output=True,
                text=True,
                check=True,
            )
            events, seconds = out.stdout.split()
            print(
                f"   {name:28s} {int(events):6d} events in {float(seconds):6.2f} s: "
                f"{1000 * float(seconds) / int(events):5.2f} ms an event"
            )

        landing = root / "landing"
        subprocess.run(
            [
                str(BIN / "pm-assets"),
                "simulate",
                "--machines",
                str(args.machines),
                "--start",
                start,
                "--end",
                end,
                "--out",
                str(landing),
                "--seed",
                "7",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if not args.skip_main:
            print(f"2. pm-assets main, {args.machines} machines x {args.days} days, one run")
            for name, config in instances.items():
                pg.reset()
                home = _home(root, "main", config)
                env = {**base, "DAGSTER_HOME": str(home)}
                shutil.rmtree(root / "data", ignore_errors=True)
                shutil.copytree(landing, root / "data" / "landing")
                started = time.perf_counter()
                log = root / "main.log"
                with open(log, "wb") as out:  # a file, not a pipe (Dagster's helper processes may keep a pipe open)
                    done = subprocess.run(
                        [str(BIN / "pm-assets"), "main"], env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                wall = time.perf_counter() - started
                if done.returncode:
                    sys.exit(f"{name}: pm-assets main failed\n{log.read_text(errors='replace')[-3000:]}")
                ((first, last),) = _run_seconds(env, home, "main_job")
                print(f"   {name:28s} run {last - first:6.1f} s   process {wall:6.1f} s")

        print("3. PostgreSQL: downstream_job over 30 days, one alone, then four at once through the queue")
        pg.reset()
        home = _home(root, "queue", instances["postgres (pooled)"])
        env = {**base, "DAGSTER_HOME": str(home)}
        shutil.rmtree(root / "data", ignore_errors=True)
        shutil.copytree(landing, root / "data" / "landing")
        with open(root / "main.log", "wb") as out:
            subprocess.run([str(BIN / "pm-assets"), "main"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        days = list(pd.date_range(start, periods=args.days).strftime("%Y-%m-%d"))
        ranges = [(days[i], days[i + 29]) for i in range(args.days - 150, args.days - 29, 30)][:5]
        for label, batch in (("one run", ranges[:1]), ("four runs", ranges[1:5])):
            for first, last in batch:  # queued: no daemon runs yet
                subprocess.run(
                    [
                        str(BIN / "dagster"),
                        "job",
                        "launch",
                        "-m",
                        "pm_assets.definitions",
                        "-j",
                        "downstream_job",
                        "--tags",
                        json.dumps(
                            {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
                        ),
                    ],
                    cwd=home,
                    env=env,
                    capture_output=True,
                    check=True,
                )
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-m", "pm_assets.definitions"],
                cwd=home,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            cpu_before = _cpu()
            try:
                runs = wait_until(
                    lambda: (lambda r: r if r and all(e for _, e in r) else None)(
                        _run_seconds(env, home, "downstream_job")
                    ),
                    timeout=1800,
                    interval=2.0,
                )
            finally:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(30)
            busy, total = (a - b for a, b in zip(_cpu(), cpu_before, strict=True))
            mine = sorted(runs)[-len(batch) :]  # this batch's runs: the latest starts
            print(
                f"   {label:10s} {max(e for _, e in mine) - min(s for s, _ in mine):6.1f} s from the first start to "
                f"the last end; the machine's cores {100 * busy / total:.0f} % busy from the daemon's start"
            )
    shutil.rmtree(root, ignore_errors=True)


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot (/proc/stat): how much of the machine the runs used."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


if __name__ == "__main__":
    main()
