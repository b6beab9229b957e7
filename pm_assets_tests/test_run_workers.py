"""Dead runs: a STARTED run whose worker process is gone is found, reported FAILED by Dagster's own run monitoring
through this project's launcher, and marked by `pm-assets runs`; a live worker's run is left alone."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from pm_assets.core.processes import HOST, worker_state
from pm_assets.run_workers import HOST_TAG, PID_TAG, LocalRunLauncher, dead_runs

LAUNCHER = {
    "run_launcher": {"module": "pm_assets.run_workers", "class": "LocalRunLauncher"},
    "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0},
}


@pytest.fixture()
def instance(tmp_path):
    with DagsterInstance.local_temp(str(tmp_path), overrides=LAUNCHER) as instance:
        yield instance


@pytest.fixture()
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _started(instance, run_id: str, pid: int, host: str = HOST) -> DagsterRun:
    run = DagsterRun(
        job_name="main_job", run_id=run_id, status=DagsterRunStatus.STARTED, tags={PID_TAG: str(pid), HOST_TAG: host}
    )
    instance.add_run(run)
    return run


def test_the_worker_state_of_a_process(dead_pid, live_pid):
    assert worker_state(HOST, live_pid, None)[0] == "alive"
    assert worker_state(HOST, dead_pid, None)[0] == "dead"
    assert worker_state("another-machine", dead_pid, None)[0] == "unknown"  # not visible from here
    assert worker_state(None, None, None)[0] == "unknown"
    # a live process that started well after the run is not its worker (its pid was reused)
    assert worker_state(HOST, live_pid, 1_000_000.0)[0] == "dead"


def test_dagsters_run_monitoring_fails_a_run_whose_worker_died_and_keeps_a_live_one(instance, dead_pid, live_pid):
    assert (
        isinstance(instance.run_launcher, LocalRunLauncher) and instance.run_launcher.supports_check_run_worker_health
    )
    dead = _started(instance, "d" * 36, dead_pid)
    live = _started(instance, "e" * 36, live_pid)
    elsewhere = _started(instance, "f" * 36, dead_pid, host="another-machine")
    assert [r.run_id for r, _ in dead_runs(instance)] == [dead.run_id]
    for run in (dead, live, elsewhere):
        monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id), logging.getLogger("test"))
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(elsewhere.run_id).status == DagsterRunStatus.STARTED
    logs = " ".join(e.message or "" for e in instance.all_logs(dead.run_id))
    assert f"worker process {dead_pid} on {HOST} is no longer running" in logs


def test_pm_assets_runs_lists_and_marks_dead_runs(tmp_path, dead_pid):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        run = _started(instance, "a" * 36, dead_pid)
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    cli = str(__import__("pathlib").Path(sys.executable).with_name("pm-assets"))
    listed = subprocess.run([cli, "runs"], env=env, capture_output=True, text=True, check=True).stdout
    assert run.run_id in listed and "STARTED" in listed and "is no longer running" in listed
    marked = subprocess.run([cli, "runs", "--fail-dead"], env=env, capture_output=True, text=True, check=True).stdout
    assert "1 dead run(s) marked FAILED" in marked and "FAILURE" in marked
