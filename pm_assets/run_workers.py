"""Which process works on a run, whether it still does, and what marks a dead run failed.

Dagster's run monitoring (``run_monitoring`` in ``dagster.yaml``, run by the daemon) asks the run launcher about the
worker of every STARTED run, but only launchers that support worker health checks answer (Docker, Kubernetes, ECS):
the ``DefaultRunLauncher`` of a single machine does not, so a run whose process was killed stayed STARTED for ever.
:class:`LocalRunLauncher` is the default launcher plus that check for processes of this machine. Every run tags
itself with its worker (``pm_assets/worker_host``, ``pm_assets/worker_pid``) when its resources start, in the
process that runs it: runs launched by the daemon, by the webserver and by ``pm-assets main`` alike.
"""

from __future__ import annotations

import os

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from pm_assets.core.processes import HOST, worker_state

HOST_TAG = "pm_assets/worker_host"
PID_TAG = "pm_assets/worker_pid"


def tag_worker(instance: DagsterInstance, run: DagsterRun | None) -> None:
    """Record this process as the worker of ``run`` (once per process: resources of one run may start twice)."""
    if run is None or run.tags.get(PID_TAG) == str(os.getpid()):
        return
    instance.add_run_tags(run.run_id, {HOST_TAG: HOST, PID_TAG: str(os.getpid())})


def worker(instance: DagsterInstance, run: DagsterRun) -> tuple[str | None, int | None]:
    """(host, pid) of the run's worker: its tags, else the process that wrote its RUN_START (this machine)."""
    if PID_TAG in run.tags:
        return run.tags.get(HOST_TAG), int(run.tags[PID_TAG])
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    if records and records[0].event_log_entry.dagster_event is not None:
        return None, records[0].event_log_entry.dagster_event.pid
    return None, None


def worker_health(instance: DagsterInstance, run: DagsterRun) -> tuple[str, str]:
    """("alive" | "dead" | "unknown", why) of a run's worker; only a STARTED run has one to ask about."""
    record = instance.get_run_record_by_id(run.run_id)  # as stored now: the worker tags come after the run's start
    host, pid = worker(instance, record.dagster_run if record else run)
    return worker_state(host, pid, record.start_time if record else None)


def is_live(instance: DagsterInstance, run: DagsterRun) -> bool:
    """A queued or running run that still has a worker (or one this machine cannot check): a dead run is not."""
    return run.status != DagsterRunStatus.STARTED or worker_health(instance, run)[0] != "dead"


def dead_runs(instance: DagsterInstance, limit: int = 100) -> list[tuple[DagsterRun, str]]:
    """STARTED runs whose worker process on this machine is no longer running, with why."""
    out = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]), limit=limit):
        state, why = worker_health(instance, run)
        if state == "dead":
            out.append((run, why))
    return out


def mark_failed(instance: DagsterInstance, run: DagsterRun, why: str) -> None:
    instance.report_run_failed(run, f"Marked failed: {why}.")


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers are health-checked: with ``run_monitoring`` enabled, the daemon marks a
    STARTED run FAILED once its worker process on this machine is gone (``max_resume_run_attempts: 0``: a run in
    process cannot be resumed). A worker on another machine is reported running: it cannot be seen from here."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        state, why = worker_health(self._instance, run)
        status = {"dead": WorkerStatus.FAILED, "alive": WorkerStatus.RUNNING}.get(state, WorkerStatus.RUNNING)
        return CheckRunHealthResult(status, why)
