"""The retraining sensor's decisions, and the jobs and schedules the UI shows."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    RunRequest,
    SkipReason,
    asset,
    build_sensor_context,
    define_asset_job,
)
from dagster._core.storage.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    MAX_RETRIES_TAG,
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from pm_assets.automation import RETRAIN_TAGS, retrain_job, retraining_sensor
from pm_assets.core.processes import HOST
from pm_assets.definitions import defs
from pm_assets.partitions import daily_partitions
from pm_assets.run_workers import HOST_TAG, PID_TAG


@pytest.fixture()
def fresh_instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


def report_monitoring(instance, partition: str, alerts: int) -> int:
    instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key="monitoring",
            partition=partition,
            metadata={
                "alert_count": alerts,
                "retrain_recommended": alerts >= 2,
                "traffic_light": ["green", "green", "yellow", "red"][min(alerts, 3)],
            },
        )
    )
    return instance.fetch_materializations(AssetKey("monitoring"), limit=1).records[0].storage_id


def tick(instance, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return retraining_sensor(context), context.cursor


def test_no_monitoring_result_skips_with_a_reason(fresh_instance):
    result, _ = tick(fresh_instance)
    assert isinstance(result, SkipReason) and "no monitoring result" in result.skip_message


def test_green_result_is_handled_without_a_run(fresh_instance):
    event_id = report_monitoring(fresh_instance, "2015-07-01", alerts=1)
    result, cursor = tick(fresh_instance)
    assert isinstance(result, SkipReason) and "1 alert(s)" in result.skip_message
    assert cursor == str(event_id)


def test_two_alerts_request_one_retraining_run_and_never_twice(fresh_instance):
    event_id = report_monitoring(fresh_instance, "2015-07-14", alerts=3)
    result, cursor = tick(fresh_instance)
    assert isinstance(result, RunRequest)
    assert result.run_key == f"monitoring-{event_id}" and result.partition_key == "2015-07-14"
    again, same_cursor = tick(fresh_instance, cursor)
    assert isinstance(again, SkipReason) and "already handled" in again.skip_message
    assert same_cursor == cursor


def _retraining_run(instance, run_id: str, pid: int, parent: str | None = None, **tags) -> DagsterRun:
    run = DagsterRun(
        job_name=retrain_job.name,
        run_id=run_id,
        status=DagsterRunStatus.STARTED,
        tags={
            **tags,
            PID_TAG: str(pid),
            HOST_TAG: HOST,
            **({PARENT_RUN_ID_TAG: parent, ROOT_RUN_ID_TAG: parent} if parent else {}),
        },
        parent_run_id=parent,
        root_run_id=parent,
    )
    instance.add_run(run)
    return run


@pytest.fixture()
def project_instance(tmp_path):
    """An instance with the project's run launcher, run monitoring and run retries (from dagster.yaml)."""
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    overrides = {key: config[key] for key in ("run_launcher", "run_monitoring", "run_retries")}
    with DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        yield instance


def test_a_killed_retraining_is_retried_once_and_the_recommendation_waits_for_it(project_instance):
    """The issue's scenario: a retraining killed (STARTED for ever until run monitoring fails it), then a result
    recommending retraining. The result waits while the daemon fails and retries the dead run, and is carried out
    exactly once when no retraining remains under way."""
    instance = project_instance
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    killed = _retraining_run(instance, "c" * 36, worker.pid, **RETRAIN_TAGS)
    event_id = report_monitoring(instance, "2015-07-15", alerts=2)
    result, cursor = tick(instance)
    assert isinstance(result, SkipReason) and cursor is None
    assert (
        f"run {killed.run_id} (worker process {worker.pid} on {HOST} is no longer running) is failed by run "
        "monitoring and then retried" in result.skip_message
    )
    # Dagster's run monitoring (the daemon's function) fails it; the run is then due for a retry
    monitor_started_run(instance, None, instance.get_run_record_by_id(killed.run_id), logging.getLogger("test"))
    failed = instance.get_run_by_id(killed.run_id)
    assert failed.status == DagsterRunStatus.FAILURE and failed.tags[WILL_RETRY_TAG] == "true"
    result, cursor = tick(instance, cursor)
    assert (
        isinstance(result, SkipReason)
        and f"run {killed.run_id} failed and the daemon is retrying it" in result.skip_message
        and cursor is None
    )
    # the daemon's retry (same tags, linked as Dagster's retry daemon links it) runs ...
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        retry = _retraining_run(
            instance,
            "d" * 36,
            alive.pid,
            parent=killed.run_id,
            **{k: v for k, v in failed.tags.items() if not k.startswith("dagster/will")},
        )
        instance.add_run_tags(killed.run_id, {AUTO_RETRY_RUN_ID_TAG: retry.run_id})
        result, cursor = tick(instance, cursor)
        assert isinstance(result, SkipReason) and f"run {retry.run_id} (STARTED) is retraining" in result.skip_message
    finally:
        alive.kill()
        alive.wait()
    # ... and fails too (a second death is not retried: one retry per request), so the recommendation is requested
    instance.report_run_failed(instance.get_run_by_id(retry.run_id), "killed again")
    assert not instance.get_run_by_id(retry.run_id).is_complete_and_waiting_to_retry
    result, cursor = tick(instance, cursor)
    assert isinstance(result, RunRequest) and result.run_key == f"monitoring-{event_id}"
    assert result.tags[MAX_RETRIES_TAG] == "1"
    assert isinstance(tick(instance, cursor)[0], SkipReason)  # exactly once


def test_a_recommendation_is_deferred_while_a_retraining_runs_and_requested_once_it_has_ended(fresh_instance):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = _retraining_run(fresh_instance, "a" * 36, worker.pid)
        event_id = report_monitoring(fresh_instance, "2015-07-15", alerts=2)
        result, cursor = tick(fresh_instance)
        assert isinstance(result, SkipReason) and "deferred while run " + "a" * 36 in result.skip_message
        assert cursor is None  # not handled: decided again on the next tick
        again, cursor = tick(fresh_instance, cursor)
        assert isinstance(again, SkipReason) and "deferred" in again.skip_message and cursor is None
    finally:
        worker.kill()
        worker.wait()
    fresh_instance.report_run_failed(run, "killed")  # what run monitoring does once the worker is gone
    result, cursor = tick(fresh_instance, cursor)
    assert isinstance(result, RunRequest) and result.run_key == f"monitoring-{event_id}"
    assert cursor == str(event_id)
    assert isinstance(tick(fresh_instance, cursor)[0], SkipReason)  # exactly once


def test_a_retraining_whose_worker_was_killed_holds_nothing_back(fresh_instance):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker.kill()
    worker.wait()
    _retraining_run(fresh_instance, "b" * 36, worker.pid)  # STARTED for ever: its process is gone
    report_monitoring(fresh_instance, "2015-07-15", alerts=2)
    result, _ = tick(fresh_instance)
    assert isinstance(result, RunRequest) and result.partition_key == "2015-07-15"


def _monitoring_run(instance, job_name: str) -> None:
    """A real run named ``job_name`` that materializes an asset keyed 'monitoring' recommending retraining."""

    @asset(name="monitoring", partitions_def=daily_partitions)
    def stub():
        return MaterializeResult(metadata={"alert_count": 3, "retrain_recommended": True, "traffic_light": "red"})

    job = Definitions(assets=[stub], jobs=[define_asset_job(job_name, selection=[stub])]).resolve_job_def(job_name)
    assert job.execute_in_process(instance=instance, partition_key="2015-07-16").success


def test_monitoring_written_by_a_retraining_run_does_not_retrain_again(fresh_instance):
    _monitoring_run(fresh_instance, retrain_job.name)
    result, cursor = tick(fresh_instance)
    assert isinstance(result, SkipReason) and "no monitoring result of a daily run" in result.skip_message
    _monitoring_run(fresh_instance, "downstream_job")  # the next daily result decides
    result, _ = tick(fresh_instance, cursor)
    assert isinstance(result, RunRequest) and result.partition_key == "2015-07-16"


def test_a_result_from_a_run_still_in_progress_waits_for_the_run_to_end(fresh_instance):
    """A ranged run writes one monitoring result per day; the sensor decides on the run's last one, after the run."""
    seen = []

    @asset(name="monitoring", partitions_def=daily_partitions)
    def stub():
        return MaterializeResult(metadata={"alert_count": 3, "retrain_recommended": True, "traffic_light": "red"})

    @asset(deps=[stub], partitions_def=daily_partitions)
    def probe(context):
        seen.append(tick(context.instance))  # the run that wrote monitoring is still STARTED here

    job = Definitions(
        assets=[stub, probe], jobs=[define_asset_job("downstream_job", selection=[stub, probe])]
    ).resolve_job_def("downstream_job")
    assert job.execute_in_process(instance=fresh_instance, partition_key="2015-07-16").success
    ((during, cursor_during),) = seen
    assert isinstance(during, SkipReason) and "deciding when it has finished" in during.skip_message
    assert cursor_during is None  # nothing handled yet
    after, _ = tick(fresh_instance)
    assert isinstance(after, RunRequest) and after.partition_key == "2015-07-16"


def test_a_second_recommendation_within_one_production_window_does_not_retrain_again(fresh_instance):
    fresh_instance.add_run(
        DagsterRun(
            job_name=retrain_job.name,
            run_id="c" * 36,
            status=DagsterRunStatus.SUCCESS,
            tags={"pm_assets/trigger": "retraining_sensor", "pm_assets/monitoring_partition": "2015-07-10"},
        )
    )
    report_monitoring(fresh_instance, "2015-07-23", alerts=3)  # 13 days later: the same drift
    result, cursor = tick(fresh_instance)
    assert isinstance(result, SkipReason) and "retraining for 2015-07-10" in result.skip_message
    report_monitoring(fresh_instance, "2015-07-24", alerts=3)  # 14 days later: a new production window
    result, _ = tick(fresh_instance, cursor)
    assert isinstance(result, RunRequest) and result.partition_key == "2015-07-24"


def test_jobs_schedules_and_sensors_are_visible_with_descriptions_and_documented_defaults():
    repo = defs.get_repository_def()
    assert {"main_job", "ingest_job", "downstream_job", "retrain_job"} <= set(repo.job_names)
    assert {s.name for s in repo.schedule_defs} == {"daily_schedule", "weekly_retraining_schedule"}
    assert {s.name for s in repo.sensor_defs} == {
        "landing_sensor",
        "downstream_sensor",
        "retraining_sensor",
        "freshness_sensor",
    }
    for definition in [*repo.schedule_defs, *repo.sensor_defs]:
        assert definition.description, definition.name
        assert definition.default_status.value == "STOPPED", definition.name  # PM_AUTOMATION is not set here
