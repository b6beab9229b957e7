"""Jobs, schedules and the retraining sensor.

- ``daily_job``: one day through the pipeline (raw tables -> features -> labels -> scores -> worklist -> monitoring),
  scheduled each night for the day that just ended (``daily_schedule``).
- ``retrain_job``: a new model version (``failure_model`` and its champion gate), then scores, worklist and
  monitoring of one day with the champion; weekly (``weekly_retraining_schedule``, Sunday 02:00 UTC, as the
  original Azure ML design) and whenever monitoring asks for it (``retraining_sensor``).

The sensor is created STOPPED: turning on automatic retraining is a decision a team takes in the UI (or with
``dagster sensor start retraining_sensor``), not a side effect of deploying the code.
"""

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    schedule,
    sensor,
)

from pm_assets.partitions import daily_partitions
from pm_assets.settings import SENSOR_INTERVAL_SECONDS

MONITORING = AssetKey("monitoring")
ACTIVE_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                   DagsterRunStatus.STARTED]

main_job = define_asset_job(
    "main_job",
    selection=AssetSelection.all(),
    description="Materialize the whole graph; launch it over a partition range to process history in one run.",
)
daily_job = define_asset_job(
    "daily_job",
    selection=AssetSelection.assets("telemetry", "errors", "maintenance", "failures", "features", "labels", "scores",
                                    "maintenance_worklist", "monitoring"),
    description="One day through the pipeline: raw tables, features, labels, scores, worklist, monitoring.",
)
retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.assets("failure_model", "scores", "maintenance_worklist", "monitoring"),
    description="Train a challenger (promoted only through the champion gate), then score, rank and monitor the day.",
)

daily_schedule = build_schedule_from_partitioned_job(
    daily_job, minute_of_hour=30, hour_of_day=0, description="Every night at 00:30 UTC: the day that just ended.")


@schedule(job=retrain_job, cron_schedule="0 2 * * 0", execution_timezone="UTC",
          description="Weekly retraining, Sunday 02:00 UTC (the original Azure ML design), scoring the latest day.")
def weekly_retraining_schedule(context):
    key = daily_partitions.get_last_partition_key(current_time=context.scheduled_execution_time)
    if key is None:
        return SkipReason("no partition has ended yet")
    return RunRequest(run_key=f"weekly-{key}", partition_key=key)


@sensor(job=retrain_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=DefaultSensorStatus.STOPPED,
        description="Retrains when the latest monitoring result recommends it (two or more alerts): one request per "
        "monitoring materialization, decided once the run that wrote it has ended, never while a retraining run "
        "is queued or running.")
def retraining_sensor(context: SensorEvaluationContext):
    records = context.instance.fetch_materializations(MONITORING, limit=1).records
    if not records:
        return SkipReason("no monitoring result yet")
    storage_id = records[0].storage_id
    handled = int(context.cursor) if context.cursor else 0
    mat = records[0].asset_materialization
    if storage_id <= handled:
        return SkipReason(f"latest monitoring result (partition {mat.partition}, event {storage_id}) already handled")
    meta = {k: v.value for k, v in mat.metadata.items()}
    alerts, light = meta.get("alert_count", 0), meta.get("traffic_light", "unknown")
    source = context.instance.get_run_by_id(records[0].run_id) if records[0].run_id else None
    if source is not None and not source.is_finished:
        # a ranged run writes one monitoring result per day: decide on its last one, once the run has ended
        return SkipReason(f"monitoring {mat.partition} is from run {source.run_id}, still {source.status.value}: "
                          "deciding when it has finished")
    if source is not None and source.job_name == retrain_job.name:
        # a retraining run monitors its day again; acting on that would retrain in a loop while the drift stays
        # in the reference window. The next daily monitoring result decides.
        context.update_cursor(str(storage_id))
        return SkipReason(f"monitoring {mat.partition} came from retraining run {source.run_id}: "
                          "waiting for the next daily monitoring result")
    if not meta.get("retrain_recommended", False):
        context.update_cursor(str(storage_id))
        return SkipReason(f"monitoring {mat.partition}: {alerts} alert(s), light {light}: no retraining needed")
    active = context.instance.get_runs(filters=RunsFilter(job_name=retrain_job.name, statuses=ACTIVE_STATUSES), limit=1)
    if active:
        context.update_cursor(str(storage_id))
        return SkipReason(f"monitoring {mat.partition} recommends retraining, but run {active[0].run_id} "
                          f"({active[0].status.value}) is already retraining")
    context.update_cursor(str(storage_id))
    return RunRequest(run_key=f"monitoring-{storage_id}", partition_key=mat.partition,
                      tags={"pm_assets/trigger": "retraining_sensor", "pm_assets/monitoring_partition": mat.partition,
                            "pm_assets/alerts": str(alerts)})
