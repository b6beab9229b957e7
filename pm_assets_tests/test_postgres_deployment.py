"""The graph on the PostgreSQL instance (deploy/postgres/dagster.yaml) against a real server on 127.0.0.1.

1. ``pm-assets main`` over a small simulated fleet, on SQLite and then on PostgreSQL in the same data folder: the
   run succeeds on both and every stored file is the same, byte for byte.
2. Four ranged runs of ``downstream_job`` launched with ``dagster job launch`` wait in the run queue; the daemon,
   started then, dequeues them (``max_concurrent_runs: 4``): all succeed, and all four ran at the same moment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from pm_assets_tests.conftest import stored_digests
from pm_assets_tests.servers import wait_until

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START, END = "2015-01-01", "2015-03-02"  # 60 partitions
DAYS = list(pd.date_range(START, "2015-03-01").strftime("%Y-%m-%d"))
RANGES = [(DAYS[i], DAYS[i + 4]) for i in (35, 40, 45, 50)]  # four disjoint 5-day ranges


@pytest.fixture(scope="module")
def project(postgres_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("pg_project")
    landing = root / "landing"
    subprocess.run(
        [
            str(BIN / "pm-assets"),
            "simulate",
            "--machines",
            "20",
            "--start",
            START,
            "--end",
            END,
            "--out",
            str(landing),
            "--seed",
            "7",
        ],
        check=True,
        capture_output=True,
    )
    postgres_server.reset()
    homes = {"sqlite": root / "sqlite", "postgres": root / "postgres"}
    for name, config in (
        ("sqlite", REPO / "dagster.yaml"),
        ("postgres", REPO / "deploy" / "postgres" / "dagster.yaml"),
    ):
        homes[name].mkdir()
        shutil.copy(config, homes[name] / "dagster.yaml")
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DAGSTER_"))},
        **postgres_server.env,
        "PM_DATA_DIR": str(root / "data"),
        "PM_PARTITION_START": START,
        "PM_PARTITION_END": END,
        "OMP_NUM_THREADS": "1",
    }
    envs = {name: {**base, "DAGSTER_HOME": str(home)} for name, home in homes.items()}
    digests = {}
    for name in ("sqlite", "postgres"):  # the same folder, one after the other: stored frames hold its paths
        shutil.rmtree(root / "data", ignore_errors=True)
        shutil.copytree(landing, root / "data" / "landing")
        log = root / f"main-{name}.log"
        with open(log, "wb") as out:  # a file, not a pipe: Dagster's helper processes may hold a pipe open after
            done = subprocess.run(
                [str(BIN / "pm-assets"), "main"], env=envs[name], stdout=out, stderr=subprocess.STDOUT, timeout=300
            )
        assert done.returncode == 0, f"{name}:\n{log.read_text(errors='replace')[-3000:]}"
        digests[name] = stored_digests(root / "data")
    return {"root": root, "envs": envs, "homes": homes, "digests": digests, "server": postgres_server}


def _instance(project, monkeypatch) -> DagsterInstance:
    for key, value in project["envs"]["postgres"].items():
        if key.startswith("PM_PG_"):
            monkeypatch.setenv(key, value)
    return DagsterInstance.from_config(str(project["homes"]["postgres"]))


def test_the_main_job_on_postgres_stores_what_it_stores_on_sqlite(project, monkeypatch):
    digests = project["digests"]
    assert len(digests["sqlite"]) > 5 * len(DAYS), len(digests["sqlite"])  # every daily asset, every day
    assert digests["postgres"] == digests["sqlite"]
    instance = _instance(project, monkeypatch)
    try:
        (run,) = instance.get_runs(filters=RunsFilter(job_name="main_job"))
        assert run.status == DagsterRunStatus.SUCCESS
        assert instance.get_materialized_partitions(AssetKey("monitoring")) == set(DAYS)
        assert instance.get_materialized_partitions(AssetKey("features")) == set(DAYS)
    finally:
        instance.dispose()


def test_four_queued_runs_at_once_all_succeed_and_overlap(project, monkeypatch):
    env = project["envs"]["postgres"]
    home = project["homes"]["postgres"]
    instance = _instance(project, monkeypatch)
    daemon = None
    try:
        logs = [project["root"] / f"launch-{i}.log" for i in range(len(RANGES))]
        launches = [
            subprocess.Popen(
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
                        {
                            "dagster/asset_partition_range_start": first,
                            "dagster/asset_partition_range_end": last,
                            "test/range": f"{first}..{last}",
                        }
                    ),
                ],
                cwd=home,
                env=env,
                stdout=open(log, "wb"),
                stderr=subprocess.STDOUT,
            )
            for log, (first, last) in zip(logs, RANGES)
        ]
        for launch, log in zip(launches, logs):
            assert launch.wait(timeout=120) == 0, log.read_text(errors="replace")[-2000:]
        queued = instance.get_runs(filters=RunsFilter(job_name="downstream_job"))
        assert [r.status for r in queued] == [DagsterRunStatus.QUEUED] * 4  # no daemon yet: waiting in the queue
        # the daemon dequeues them (its run queue allows 4 at once) and the launcher starts their workers
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "pm_assets.definitions"],
            cwd=home,
            env=env,
            stdout=open(project["root"] / "daemon.log", "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ended():
            runs = instance.get_runs(filters=RunsFilter(job_name="downstream_job"))
            return runs if len(runs) == 4 and all(r.is_finished for r in runs) else None

        try:
            runs = wait_until(ended, timeout=300, interval=1.0)
        except TimeoutError:
            pytest.fail(
                "the four runs did not end within 300 s; daemon log:\n"
                + (project["root"] / "daemon.log").read_text(errors="replace")[-3000:]
            )
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 4, [
            (r.run_id, r.status, r.tags.get("test/range")) for r in runs
        ]
        records = [instance.get_run_record_by_id(r.run_id) for r in runs]
        assert max(r.start_time for r in records) < min(r.end_time for r in records), [
            (r.start_time, r.end_time) for r in records
        ]  # one moment when all four were running
        for first, last in RANGES:
            assert {first, last} <= instance.get_materialized_partitions(AssetKey("monitoring"))
    finally:
        instance.dispose()
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
