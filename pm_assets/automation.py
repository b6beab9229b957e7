"""Jobs, schedules and sensors: the fleet carried day by day without anyone launching runs.

The live path, each step a Dagster mechanism a user sees in the UI:

1. ``landing_sensor`` watches the landing folder. Every file whose sha256 is not in the ledger is one run of
   ``ingest_job`` (``source_files`` stages it, then the raw partitions of the days it brought), with a run key of the
   files' hashes: a re-copied file starts nothing. Files whose days touch or overlap go in one run.
2. ``downstream_sensor`` brings ``features``, ``scores``, ``maintenance_worklist``, ``labels`` and ``monitoring``
   up to date with the raw partitions (:mod:`pm_assets.core.catchup`): a partition is out of date when a partition
   it reads was materialized after it. It requests the first such assets that are out of date on the same days,
   one run per contiguous range, and the rest when that run has ended. So labels mature when the next day's
   failures arrive, and a late file for an old day re-runs that day and exactly what reads it.
3. ``retraining_sensor`` reads the latest monitoring result and requests ``retrain_job`` when it recommends it.

Why sensors and not Declarative Automation for step 2: in Dagster 1.13 an automation condition sensor launches
one run per partition key (a new day would be 7 runs: labels and monitoring of three days each, 3-5 s of process
start each here), or with ``emit_backfills`` a backfill that the backfill daemon advances every 30 s, one
dependency level at a time. The sensor above gives two runs a day with exactly the partitions that changed.

Schedules: ``daily_schedule`` closes the day that ended (its raw partitions, when rows for it were staged but never
materialized, e.g. from a file that also held hours of the day after); ``weekly_retraining_schedule`` retrains on
Sunday for the latest day with features. Freshness checks mark a raw table late when the day that ended has no
partition by ``PM_DATA_DEADLINE_CRON``.

Every schedule and sensor starts STOPPED (``PM_AUTOMATION=on``: RUNNING), so deploying code never starts
automation by itself; ``pm-assets automation on`` turns all of it on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence

import numpy as np
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSelection,
    DagsterEventType,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    SupersessionWarning,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
    schedule,
    sensor,
)
from dagster._core.storage.tags import MAX_RETRIES_TAG

from pm_assets.assets import features as features_module
from pm_assets.assets import ingestion, monitoring, scoring
from pm_assets.core.catchup import Dependency, content_changes, next_stage, out_of_date
from pm_assets.core.landing import ALL_ROWS, declared_day, file_id, rows_per_day
from pm_assets.core.locations import sha256_of
from pm_assets.core.monitoring import RETRAIN_FROM_ALERTS
from pm_assets.core.parsing import SourceFileError, read_source_csv
from pm_assets.core.schema import DAILY_TABLES as RAW_TABLES
from pm_assets.core.schema import TABLES
from pm_assets.partitions import daily_partitions, partition_range
from pm_assets.resources import CONTENT_SHA, LandingResource
from pm_assets.run_workers import is_live, worker_health
from pm_assets.settings import AUTOMATION_ON, DATA_DEADLINE_CRON, LIVE_INTERVAL_SECONDS, SENSOR_INTERVAL_SECONDS

MONITORING = AssetKey("monitoring")
ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
SENSOR_STATUS = DefaultSensorStatus.RUNNING if AUTOMATION_ON else DefaultSensorStatus.STOPPED
SCHEDULE_STATUS = DefaultScheduleStatus.RUNNING if AUTOMATION_ON else DefaultScheduleStatus.STOPPED
#: The daily assets downstream of the raw tables, in the topological order the catch-up groups them in.
DOWNSTREAM = ("features", "scores", "maintenance_worklist", "labels", "monitoring")
TRIGGER_TAG = "pm_assets/trigger"
#: Days after a sensor-requested retraining during which further alerts do not retrain again: one production window.
RETRAIN_COOLDOWN_DAYS = monitoring.MonitoringConfig().production_days
#: Tags of every retraining request: a retraining whose worker died (killed, out of memory, machine restarted) is
#: run again once by the daemon's run retries (``run_retries`` in dagster.yaml, which retries no other job and never
#: a run whose step failed): the request is carried out, not dropped.
RETRAIN_TAGS = {MAX_RETRIES_TAG: "1"}

main_job = define_asset_job(
    "main_job",
    selection=AssetSelection.all(),
    description="Materialize the whole graph; launch it over a partition range to process history in one run.",
)
ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets("source_files", "machines", "maintenance_history", *RAW_TABLES),
    description="Stage landed files (source_files) and build the raw partitions of the days they brought.",
)
#: Unpartitioned, rebuilt from every monitoring day whenever a run monitors (the UI's and index page's history).
HISTORY = "monitoring_history"
downstream_job = define_asset_job(
    "downstream_job",
    selection=AssetSelection.assets(*DOWNSTREAM, HISTORY),
    description="Features, scores, worklist, labels and monitoring of the days whose inputs changed.",
)
retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.assets("failure_model", "scores", "maintenance_worklist", "monitoring", HISTORY),
    description="Train a challenger (promoted only through the champion gate), then score, rank and monitor the day.",
)
PIPELINE_JOBS = (main_job.name, ingest_job.name, downstream_job.name, retrain_job.name)


def _active_runs(instance, job_names: Sequence[str]):
    """Queued or running runs of these jobs, except STARTED runs whose worker process is dead (a killed run that
    run monitoring has not yet marked failed holds nothing back)."""
    return [
        r
        for name in job_names
        for r in instance.get_runs(filters=RunsFilter(job_name=name, statuses=ACTIVE_STATUSES), limit=5)
        if is_live(instance, r)
    ]


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


# --- 1. files that land -------------------------------------------------------------------------------------


def _group_by_days(files: list[dict]) -> list[list[dict]]:
    """The new files as run groups: per table, files whose partition-day spans touch or overlap; then the tables
    whose spans are the same days, together (a day's complete drop is one run). Each run builds exactly the table
    days its files bring: a drop that a tick saw half of (a day's telemetry, not yet its errors) is not built again
    for the half it already had when the rest arrives. Files with no day inside the partitions (the machines
    table, history, the hours of today) join the first group."""
    spans: dict[tuple[str, str], list[dict]] = {}
    for table in sorted({f["table"] for f in files if f["first"] is not None}):
        for first, last, run in _touching([f for f in files if f["table"] == table and f["first"] is not None]):
            spans.setdefault((first, last), []).extend(run)
    groups = [sorted(spans[span], key=lambda f: f["name"]) for span in sorted(spans)]
    undated = [f for f in files if f["first"] is None]
    if undated:
        if groups:
            groups[0] = undated + groups[0]
        else:
            groups.append(undated)
    return groups


def _touching(files: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(first day, last day, files) of each group of ``files`` whose day spans touch or overlap, in day order."""
    groups: list[tuple[str, str, list[dict]]] = []
    for f in sorted(files, key=lambda f: f["first"]):
        if groups and f["first"] <= _next_day(groups[-1][1]):
            first, last, run = groups[-1]
            run.append(f)
            groups[-1] = (first, max(last, f["last"]), run)
        else:
            groups.append((f["first"], f["last"], [f]))
    return groups


def _next_day(day: str) -> str:
    return (np.datetime64(day) + np.timedelta64(1, "D")).astype(str)


def _previous_day(day: str) -> str:
    return (np.datetime64(day) - np.timedelta64(1, "D")).astype(str)


def plan_landing(landing: LandingResource, cursor: dict, now=None) -> tuple[list[RunRequest], list[str], dict]:
    """(run requests for the new landed files, notes on what the tick saw, the new cursor).

    Reads the landing folder, the ledger and ``cursor`` = {name: [size, mtime_ns, sha, plan]}: a file is hashed
    and read again only when its size or mtime changed; ``plan`` is "done" once the ledger has the file, else what
    reading it found (kept while its run is still to come)."""
    staging = landing.staging()
    first_day, end_day = partition_range(daily_partitions, now)
    landed, ignored = landing.landed()
    seen = {}
    new, notes = [], []
    for file in landed:
        known = cursor.get(file.name)
        unchanged = bool(known) and known[:2] == [file.size, file.mtime_ns]
        sha = known[2] if unchanged else sha256_of(file.path)
        identity = file_id(sha, file.name)
        if staging.ledger_path(identity).exists():  # a stat, not a read: a long history costs little per tick
            seen[file.name] = [file.size, file.mtime_ns, sha, "done"]
            continue
        info = known[3] if unchanged and isinstance(known[3], dict) else _read_days(file, sha, first_day, end_day)
        seen[file.name] = [file.size, file.mtime_ns, sha, info]
        new.append(info)
    if ignored:
        notes.append(f"ignored (no table in the name): {', '.join(ignored)}")
    good = [f for f in new if f["error"] is None]
    requests = []
    for f in (f for f in new if f["error"] is not None):
        # its own run: source_files records it, and its table's asset fails naming the file, the line and the problem
        # (for the day the name declares, else the latest day)
        notes.append(f"{f['name']} cannot be read: {f['error']}")
        day = declared_day(f["name"])
        if f["table"] != "machines" and first_day < end_day:
            day = day if day is not None and first_day <= day < end_day else _previous_day(end_day)
            f = {**f, "first": day, "last": day}
        requests.append(_ingest_request([f]))
    for group in _group_by_days(good):
        requests.append(_ingest_request(group))
    return requests, notes, seen


def _read_days(file, sha: str, first_day: str, end_day: str) -> dict:
    """What a new file holds: its table, the partition days it touches (first, last), whether it has rows before
    the first partition, or why it cannot be read."""
    info = {
        "name": file.name,
        "sha": sha,
        "table": file.table,
        "first": None,
        "last": None,
        "history": False,
        "error": None,
    }
    try:
        days = rows_per_day(read_source_csv(file.path, TABLES[file.table]), TABLES[file.table], file.name)
    except SourceFileError as exc:  # its own run fails with this message; nothing else waits for it
        info["error"] = str(exc)
        return info
    inside = sorted(d for d in days if first_day <= d < end_day)
    info.update(
        first=inside[0] if inside else None,
        last=inside[-1] if inside else None,
        history=any(d < first_day for d in days if d != ALL_ROWS),
    )
    return info


def _ingest_request(files: list[dict]) -> RunRequest:
    names = sorted(f["name"] for f in files)
    key = hashlib.sha256(",".join(sorted(f["sha"] for f in files)).encode()).hexdigest()[:16]
    selection = ["source_files"]
    tags = {TRIGGER_TAG: "landing_sensor", "pm_assets/files": ",".join(names)[:1000]}
    dated = [f for f in files if f["first"] is not None]
    if any(f["table"] == "machines" for f in files):
        selection.append("machines")
    if any(f["history"] and f["table"] == "maintenance" for f in files):
        selection.append("maintenance_history")
    if dated:  # the tables of the files with days, over those days (_group_by_days: the same days for each)
        selection += [t for t in RAW_TABLES if t in {f["table"] for f in dated}]
        tags.update(_range_tags(min(f["first"] for f in dated), max(f["last"] for f in dated)))
    return RunRequest(
        run_key=f"landing-{key}",
        job_name=ingest_job.name,
        asset_selection=[AssetKey(a) for a in selection],
        run_config={"ops": {"source_files": {"config": {"files": names}}}},
        tags=tags,
    )


@sensor(
    job=ingest_job,
    minimum_interval_seconds=LIVE_INTERVAL_SECONDS,
    default_status=SENSOR_STATUS,
    description="Watches the landing folder: each file whose sha256 is not in the ledger is staged and its days' "
    "raw partitions built, in one ingest_job run per group of files with touching days (run key: their hashes, "
    "so a re-copied file starts nothing). A file that cannot be read gets a run of its own, in which its table's "
    "asset fails naming the file and line; it is tried again only when its bytes change. Waits while an ingest_job "
    "or main_job run is queued or running.",
)
def landing_sensor(context: SensorEvaluationContext, landing: LandingResource):
    active = _active_runs(context.instance, [main_job.name, ingest_job.name])
    if active:
        # main_job stages every file of the landing folder itself. An ingest_job run's files reach the ledger only
        # when its first step runs: planning now would group them again with files that landed since, under a
        # new run key, and ingest their days twice.
        return SkipReason(
            f"{active[0].job_name} run {active[0].run_id} is ingesting ({active[0].status.value}): "
            "new files are planned once it has ended"
        )
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, notes, seen = plan_landing(landing, cursor)
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("; ".join(["no new file in " + landing.landing_dir, *notes])),
            cursor=json.dumps(seen),
        )
    for note in notes:
        context.log.warning(note)
    return SensorResult(run_requests=requests, cursor=json.dumps(seen))


# --- 2. everything downstream of the raw tables ----------------------------------------------------------------


def _dependencies() -> dict[str, list[Dependency]]:
    """Each downstream asset's daily parents and the days it reads of them, from the asset definitions' own
    partition mappings (one definition of every lookback)."""
    defs = {
        a.key.to_user_string(): a
        for module in (features_module, scoring, monitoring)
        for a in module.__dict__.values()
        if isinstance(a, AssetsDefinition)
    }
    daily = {*RAW_TABLES, *DOWNSTREAM}
    out = {}
    for name in DOWNSTREAM:
        assets_def = defs[name]
        deps = []
        for parent in sorted(assets_def.asset_deps[AssetKey(name)], key=lambda k: k.to_user_string()):
            if parent.to_user_string() not in daily:
                continue  # unpartitioned parents (machines, the model) do not make past days stale
            mapping = assets_def.get_partition_mapping_for_dep(parent)
            deps.append(
                Dependency(
                    parent.to_user_string(), getattr(mapping, "start_offset", 0), getattr(mapping, "end_offset", 0)
                )
            )
        out[name] = deps
    return out


DEPENDENCIES = _dependencies()


def plan_downstream(
    instance, now=None, state: dict | None = None
) -> tuple[list[str], list[tuple[str, str]], int, dict]:
    """(assets, day ranges, newest upstream event id, new ``state``) of the next catch-up stage, from the event log.

    ``state`` (the sensor's cursor) = {asset: {"after": event id, "days": {day: [content hash, id]}}}: the content
    of each day's latest materialization and the event at which it appeared, read incrementally (only events after
    ``after``). A day is out of date when a day it reads *changed* after it (``out_of_date``)."""
    days = daily_partitions.get_partition_keys(current_time=now)
    index = {d: i for i, d in enumerate(days)}
    state = {} if state is None else state
    latest, changed, newest = {}, {}, 0
    for name in (*RAW_TABLES, *DOWNSTREAM):
        ids = np.zeros(len(days), np.int64)
        by_partition = instance.get_latest_storage_id_by_partition(
            AssetKey(name), DagsterEventType.ASSET_MATERIALIZATION
        )
        for key, storage_id in by_partition.items():
            if key in index:
                ids[index[key]] = storage_id
        latest[name] = ids
        newest = max(newest, int(ids.max()) if len(ids) else 0)
        entry = state.setdefault(name, {"after": 0, "days": {}})
        _read_content_changes(instance, name, entry)
        first_ids = np.zeros(len(days), np.int64)
        for key, (_, storage_id) in entry["days"].items():
            if key in index:
                first_ids[index[key]] = storage_id
        changed[name] = np.minimum(first_ids, ids)
    stale = out_of_date(len(days), latest, DEPENDENCIES, DOWNSTREAM, changed)
    assets, ranges = next_stage(days, stale, DOWNSTREAM)
    return assets, ranges, newest, state


def _read_content_changes(instance, name: str, entry: dict, page: int = 2000) -> None:
    """Fold the materializations of ``name`` after ``entry["after"]`` into ``entry["days"]`` (``content_changes``)."""
    cursor = None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), after_storage_id=entry["after"] or None),
            limit=page,
            cursor=cursor,
            ascending=True,
        )
        records = [r for r in result.records if r.partition_key is not None]
        if records:
            shas = []
            for r in records:
                value = r.asset_materialization.metadata.get(CONTENT_SHA)
                shas.append(str(value.value)[:12] if value is not None else None)
            content_changes(
                np.array([r.storage_id for r in records]), [r.partition_key for r in records], shas, entry["days"]
            )
        if result.records:
            entry["after"] = max(entry["after"], max(r.storage_id for r in result.records))
        if not result.has_more:
            return
        cursor = result.cursor


@sensor(
    job=downstream_job,
    minimum_interval_seconds=LIVE_INTERVAL_SECONDS,
    default_status=SENSOR_STATUS,
    description="Brings features, scores, worklist, labels and monitoring up to date with the raw partitions: a "
    "partition is out of date when a partition it reads was materialized after it (labels mature when the next "
    "day's failures arrive; a late file re-runs its day and what reads it). One downstream_job run per "
    "contiguous range of the first assets out of date on the same days; the rest once that run has ended. "
    "Waits while any pipeline run is queued or running.",
)
def downstream_sensor(context: SensorEvaluationContext):
    active = _active_runs(context.instance, PIPELINE_JOBS)
    if active:
        return SkipReason(f"waiting for run {active[0].run_id} ({active[0].job_name}, {active[0].status.value})")
    state = json.loads(context.cursor) if context.cursor else None
    assets, ranges, newest, state = plan_downstream(context.instance, state=state)
    cursor = json.dumps(state, separators=(",", ":"))
    if not assets:
        return SensorResult(
            skip_reason=SkipReason("every daily partition is up to date with its inputs' content"), cursor=cursor
        )
    requests = []
    for first, last in ranges:
        key = hashlib.sha256(f"{','.join(assets)}|{first}|{last}|{newest}".encode()).hexdigest()[:16]
        selection = [*assets, HISTORY] if "monitoring" in assets else assets
        requests.append(
            RunRequest(
                run_key=f"downstream-{key}",
                asset_selection=[AssetKey(a) for a in selection],
                tags={**_range_tags(first, last), TRIGGER_TAG: "downstream_sensor"},
            )
        )
    return SensorResult(run_requests=requests, cursor=cursor)


# --- 3. retraining -------------------------------------------------------------------------------------------


@sensor(
    job=retrain_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=SENSOR_STATUS,
    description=f"Retrains when the latest monitoring result recommends it ({RETRAIN_FROM_ALERTS} or more alerts): one "
    "request per "
    "monitoring materialization, decided once the run that wrote it has ended, never while a retraining run "
    "is queued or running, and at most once per production window (14 days) for the same drift.",
)
def retraining_sensor(context: SensorEvaluationContext):
    found = _latest_daily_monitoring(context.instance)
    if found is None:
        return SkipReason("no monitoring result of a daily run yet")
    record, source = found
    storage_id = record.storage_id
    handled = int(context.cursor) if context.cursor else 0
    mat = record.asset_materialization
    if storage_id <= handled:
        return SkipReason(f"latest monitoring result (partition {mat.partition}, event {storage_id}) already handled")
    meta = {k: v.value for k, v in mat.metadata.items()}
    alerts, light = meta.get("alert_count", 0), meta.get("traffic_light", "unknown")
    if source is not None and not source.is_finished and is_live(context.instance, source):
        # a ranged run writes one monitoring result per day: decide on its last one, once the run has ended
        return SkipReason(
            f"monitoring {mat.partition} is from run {source.run_id}, still {source.status.value}: "
            "deciding when it has finished"
        )
    if not meta.get("retrain_recommended", False):
        context.update_cursor(str(storage_id))
        return SkipReason(f"monitoring {mat.partition}: {alerts} alert(s), light {light}: no retraining needed")
    busy = _retraining_in_progress(context.instance)
    if busy:  # deferred, not dropped: the cursor stays, and the result is decided again once that run has ended
        return SkipReason(f"monitoring {mat.partition} recommends retraining; deferred while {busy}")
    recent = _recent_sensor_retraining(context.instance, mat.partition)
    if recent is not None:
        # the drift that triggered that retraining stays in the production window for up to its length: acting on
        # every daily result until then would retrain every day for the same drift
        context.update_cursor(str(storage_id))
        return SkipReason(
            f"monitoring {mat.partition} recommends retraining, but the retraining for {recent} is "
            f"less than {RETRAIN_COOLDOWN_DAYS} days before it (one production window)"
        )
    context.update_cursor(str(storage_id))
    return RunRequest(
        run_key=f"monitoring-{storage_id}",
        partition_key=mat.partition,
        tags={
            TRIGGER_TAG: "retraining_sensor",
            "pm_assets/monitoring_partition": mat.partition,
            "pm_assets/alerts": str(alerts),
            **RETRAIN_TAGS,
        },
    )


def _retraining_in_progress(instance) -> str | None:
    """Why a retraining is under way, or None: a queued or running retraining with a live worker, a dead one that
    run monitoring will fail and the daemon retry, or a failed one whose retry is not launched yet. A dead run that
    nothing will retry (monitoring or retries off, or its retry spent) is not under way: it holds nothing back."""
    retrying = instance.run_retries_enabled
    for run in instance.get_runs(filters=RunsFilter(job_name=retrain_job.name), limit=10):
        if run.status == DagsterRunStatus.FAILURE and run.is_complete_and_waiting_to_retry:
            return f"run {run.run_id} failed and the daemon is retrying it"
        if run.status not in ACTIVE_STATUSES:
            continue
        if is_live(instance, run):
            return f"run {run.run_id} ({run.status.value}) is retraining"
        if retrying and instance.run_monitoring_enabled and int(run.tags.get(MAX_RETRIES_TAG, "0")) > 0:
            return f"run {run.run_id} ({worker_health(instance, run)[1]}) is failed by run monitoring and then retried"
    return None


def _latest_daily_monitoring(instance, look_back: int = 50):
    """(record, its run) of the newest monitoring result not written by a retraining run. A retraining run monitors
    its day again; acting on that would retrain in a loop while the drift stays in the reference window, and
    taking it as the latest would hide a daily result still to be decided (one deferred while a retraining ran)."""
    for record in instance.fetch_materializations(MONITORING, limit=look_back).records:
        run = instance.get_run_by_id(record.run_id) if record.run_id else None
        if run is None or run.job_name != retrain_job.name:
            return record, run
    return None


def _recent_sensor_retraining(instance, partition: str) -> str | None:
    """The monitoring day of the latest sensor-requested retraining, if it is less than one production window before
    ``partition``. A retraining the champion gate refused counts: a new challenger on the same drift would be
    judged on the same window (the weekly schedule still retrains). A failed or canceled run does not count: it
    trained nothing."""
    runs = instance.get_runs(
        filters=RunsFilter(job_name=retrain_job.name, tags={TRIGGER_TAG: "retraining_sensor"}), limit=10
    )
    days = [
        r.tags.get("pm_assets/monitoring_partition")
        for r in runs
        if r.status not in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
    ]
    days = [d for d in days if d and d <= partition]
    if not days:
        return None
    latest = max(days)
    gap = (np.datetime64(partition) - np.datetime64(latest)).astype(int)
    return latest if gap < RETRAIN_COOLDOWN_DAYS else None


# --- schedules -----------------------------------------------------------------------------------------------


def _day_before(context: ScheduleEvaluationContext) -> str:
    return _previous_day(context.scheduled_execution_time.strftime("%Y-%m-%d"))


@schedule(
    job=ingest_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=SCHEDULE_STATUS,
    description="Every night at 00:30 UTC, closes the day that ended: builds its raw partitions when rows for it "
    "were staged but never materialized (e.g. a file that also held hours of the next day); otherwise skips.",
)
def daily_schedule(context: ScheduleEvaluationContext, landing: LandingResource):
    day = _day_before(context)
    first, end = partition_range(daily_partitions, context.scheduled_execution_time)
    if not first <= day < end:
        return SkipReason(f"{day} is not a daily partition (partitions {first} .. {end}, end exclusive)")
    staging = landing.staging()
    staged = [t for t in RAW_TABLES if staging.chunks(t, day)]
    pending = [t for t in staged if day not in context.instance.get_materialized_partitions(AssetKey(t))]
    if not pending:
        return SkipReason(
            f"{day}: every table with staged rows ({', '.join(staged)}) is already materialized"
            if staged
            else f"{day}: no rows staged for it yet (its freshness checks fail after the deadline)"
        )
    return RunRequest(
        run_key=f"close-{day}",
        partition_key=day,
        asset_selection=[AssetKey(t) for t in pending],
        tags={TRIGGER_TAG: "daily_schedule"},
    )


@schedule(
    job=retrain_job,
    cron_schedule="0 2 * * 0",
    execution_timezone="UTC",
    default_status=SCHEDULE_STATUS,
    description="Weekly retraining, Sunday 02:00 UTC (the original Azure ML design), scoring the latest day "
    "whose features exist.",
)
def weekly_retraining_schedule(context: ScheduleEvaluationContext):
    first, end = partition_range(daily_partitions, context.scheduled_execution_time)
    if first == end:
        return SkipReason(f"no daily partition has ended yet (the first is {first})")
    done = [k for k in context.instance.get_materialized_partitions(AssetKey("features")) if first <= k < end]
    if not done:
        return SkipReason("no features materialized yet: nothing to train on")
    key = max(done)
    return RunRequest(
        run_key=f"weekly-{context.scheduled_execution_time:%Y-%m-%d}",
        partition_key=key,
        tags={TRIGGER_TAG: "weekly_retraining_schedule", **RETRAIN_TAGS},
    )


# --- late data -----------------------------------------------------------------------------------------------

# Dagster 1.13 calls these superseded by the new FreshnessPolicy, but that policy is evaluated per asset, not per
# partition: a backfill of an old day would make a table look fresh. The time-partition check asks exactly "does
# the day that ended have a partition by the deadline?", so it is used, and only its supersession notice silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=SupersessionWarning)
    freshness_checks = build_time_partition_freshness_checks(
        assets=list(ingestion.raw_table_assets), deadline_cron=DATA_DEADLINE_CRON, timezone="UTC"
    )
    freshness_sensor = build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        minimum_interval_seconds=60,
        name="freshness_sensor",
        default_status=SENSOR_STATUS,
    )

sensors = [landing_sensor, downstream_sensor, retraining_sensor, freshness_sensor]
schedules = [daily_schedule, weekly_retraining_schedule]
jobs = [main_job, ingest_job, downstream_job, retrain_job]
