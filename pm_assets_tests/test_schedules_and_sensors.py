"""Every schedule and sensor evaluated as the daemon evaluates them (``evaluate_tick``), at realistic times: mid-
history, the day after the last data, years later, and before any partition exists; each asserts what is requested
or why the tick skips. The partitions are the deployed open-ended ones, starting 2015-01-01 (conftest)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_schedule_context,
    build_sensor_context,
)

from pm_assets.automation import daily_schedule, downstream_sensor, landing_sensor, weekly_retraining_schedule
from pm_assets.core.landing import list_landed
from pm_assets.core.simulate import SimulationConfig, day_tables, simulate, write_day_files, write_kaggle_csv
from pm_assets.definitions import defs
from pm_assets.resources import LandingResource

UTC = UTC


@pytest.fixture()
def fresh_instance(tmp_path):
    # persistent (schedule contexts need an instance reference), in a temporary folder
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        yield instance


@pytest.fixture(scope="module")
def fleet():
    return simulate(SimulationConfig(machines=3, start="2015-01-01", end="2015-02-01", seed=3))


@pytest.fixture()
def landing(tmp_path) -> LandingResource:
    return LandingResource(
        landing_dir=str(tmp_path / "landing"),
        staging_dir=str(tmp_path / "staging"),
        quarantine_dir=str(tmp_path / "quarantine"),
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def materialize_runless(instance, asset: str, *days: str) -> None:
    for day in days:
        instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=day))


def schedule_tick(schedule, instance, when: str, resources=None):
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=at(when),
        resources=resources,
        repository_def=defs.get_repository_def(),
    )
    return schedule.evaluate_tick(context)


def sensor_tick(sensor, instance, resources=None, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
    return sensor.evaluate_tick(context)


# --- weekly_retraining_schedule ------------------------------------------------------------------------------


def test_weekly_retraining_before_any_partition_skips(fresh_instance):
    data = schedule_tick(weekly_retraining_schedule, fresh_instance, "2014-12-28 02:00")
    assert not data.run_requests and "no daily partition has ended yet" in data.skip_message


def test_weekly_retraining_without_features_skips(fresh_instance):
    data = schedule_tick(weekly_retraining_schedule, fresh_instance, "2015-06-14 02:00")
    assert not data.run_requests and "no features materialized" in data.skip_message


@pytest.mark.parametrize(
    "when, expected",
    [
        ("2015-06-14 02:00", "2015-06-13"),  # mid-history: the day before the Sunday tick
        ("2015-08-02 02:00", "2015-07-31"),  # the day after the last data (features end 2015-07-31)
        ("2026-11-29 02:00", "2015-07-31"),  # years later: still the latest day with features, not a day without data
    ],
)
def test_weekly_retraining_requests_the_latest_day_with_features(fresh_instance, when, expected):
    materialize_runless(fresh_instance, "features", *pd.date_range("2015-06-01", "2015-07-31").strftime("%Y-%m-%d"))
    data = schedule_tick(weekly_retraining_schedule, fresh_instance, when)
    (request,) = data.run_requests
    assert request.partition_key == expected and request.job_name in (None, "retrain_job")
    assert request.run_key == f"weekly-{when[:10]}"


# --- daily_schedule --------------------------------------------------------------------------------------------


def test_daily_schedule_before_the_first_partition_skips(fresh_instance, landing):
    data = schedule_tick(daily_schedule, fresh_instance, "2015-01-01 00:30", {"landing": landing})
    assert not data.run_requests and "2014-12-31 is not a daily partition" in data.skip_message


def test_daily_schedule_with_nothing_staged_says_the_day_is_missing(fresh_instance, landing):
    data = schedule_tick(daily_schedule, fresh_instance, "2026-12-01 00:30", {"landing": landing})
    assert not data.run_requests and "2026-11-30: no rows staged" in data.skip_message


def test_daily_schedule_builds_a_staged_day_never_materialized_and_skips_it_after(fresh_instance, landing, fleet):
    write_day_files(fleet, "2015-01-14", landing.landing_dir)
    for file in list_landed(landing.landing_dir)[0]:
        landing.staging().stage(file)
    data = schedule_tick(daily_schedule, fresh_instance, "2015-01-15 00:30", {"landing": landing})
    (request,) = data.run_requests
    assert request.partition_key == "2015-01-14" and request.run_key == "close-2015-01-14"
    assert {k.to_user_string() for k in request.asset_selection} == {"telemetry", "errors", "maintenance", "failures"}
    materialize_runless(fresh_instance, "telemetry", "2015-01-14")
    data = schedule_tick(daily_schedule, fresh_instance, "2015-01-15 00:30", {"landing": landing})
    (request,) = data.run_requests
    assert {k.to_user_string() for k in request.asset_selection} == {"errors", "maintenance", "failures"}
    materialize_runless(fresh_instance, "errors", "2015-01-14")
    materialize_runless(fresh_instance, "maintenance", "2015-01-14")
    materialize_runless(fresh_instance, "failures", "2015-01-14")
    data = schedule_tick(daily_schedule, fresh_instance, "2015-01-15 00:30", {"landing": landing})
    assert not data.run_requests and "already materialized" in data.skip_message
    # mid-history with nothing staged for that day, and years later
    assert (
        "no rows staged"
        in schedule_tick(daily_schedule, fresh_instance, "2015-06-15 00:30", {"landing": landing}).skip_message
    )


# --- landing_sensor ----------------------------------------------------------------------------------------------


def _selection(request) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection}


def _range(request) -> tuple[str | None, str | None]:
    return request.tags.get("dagster/asset_partition_range_start"), request.tags.get(
        "dagster/asset_partition_range_end"
    )


def test_landing_sensor_on_an_empty_folder_skips(fresh_instance, landing):
    data = sensor_tick(landing_sensor, fresh_instance, {"landing": landing})
    assert not data.run_requests and "no new file" in data.skip_message


def test_landing_sensor_requests_one_ingest_run_for_a_day_and_nothing_for_a_copy(fresh_instance, landing, fleet):
    write_day_files(fleet, "2015-01-20", landing.landing_dir)
    (Path(landing.landing_dir) / "notes.txt").write_text("not a table")
    data = sensor_tick(landing_sensor, fresh_instance, {"landing": landing})
    (request,) = data.run_requests
    assert _selection(request) == {"source_files", "telemetry", "errors", "maintenance", "failures"}
    assert _range(request) == ("2015-01-20", "2015-01-20")
    assert request.run_key.startswith("landing-")
    assert sorted(request.run_config["ops"]["source_files"]["config"]["files"]) == sorted(
        f"{stem}_2015-01-20.csv" for stem in ("PdM_errors", "PdM_failures", "PdM_maint", "PdM_telemetry")
    )
    # once staged (what the run does), the same files start nothing, and neither does a copy under another name
    for file in list_landed(landing.landing_dir)[0]:
        landing.staging().stage(file)
    shutil.copy(
        Path(landing.landing_dir) / "PdM_telemetry_2015-01-20.csv",
        Path(landing.landing_dir) / "copy of PdM_telemetry_2015-01-20.csv",
    )
    again = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}, cursor=data.cursor)
    assert not again.run_requests and "no new file" in again.skip_message and "notes.txt" in again.skip_message


def test_landing_sensor_groups_touching_days_and_keeps_a_late_day_apart(fresh_instance, landing, fleet):
    for day in ("2015-01-20", "2015-01-21", "2015-01-05"):
        write_day_files(fleet, day, landing.landing_dir)
    requests = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}).run_requests
    assert sorted(_range(r) for r in requests) == [("2015-01-05", "2015-01-05"), ("2015-01-20", "2015-01-21")]


def _table_days(requests) -> list[tuple[str, str]]:
    """Every (raw table, day) the requests would build, once per request that builds it."""
    return sorted(
        (table, day)
        for r in requests
        for table in _selection(r) & {"telemetry", "errors", "maintenance", "failures"}
        for day in pd.date_range(*_range(r)).strftime("%Y-%m-%d")
    )


def test_landing_sensor_builds_each_table_day_once_when_a_tick_sees_half_a_drop(fresh_instance, landing, fleet):
    # a tick that lands between two files of a drop: both days' telemetry and 01-20's errors, not yet the rest
    days = ("2015-01-20", "2015-01-21")
    parts = {day: day_tables(fleet, day) for day in days}
    for day in days:
        write_kaggle_csv({"telemetry": parts[day]["telemetry"]}, landing.landing_dir, suffix=f"_{day}")
    write_kaggle_csv({"errors": parts[days[0]]["errors"]}, landing.landing_dir, suffix=f"_{days[0]}")
    first = sensor_tick(landing_sensor, fresh_instance, {"landing": landing})
    # exactly what landed: the telemetry of both days and the errors of one, not a rectangle of tables x days
    assert _table_days(first.run_requests) == [
        ("errors", days[0]),
        ("telemetry", days[0]),
        ("telemetry", days[1]),
    ]
    for file in list_landed(landing.landing_dir)[0]:  # what those runs do
        landing.staging().stage(file)
    for day in days:
        write_day_files(fleet, day, landing.landing_dir)  # the rest of the drop (the same bytes for what was there)
    rest = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}, cursor=first.cursor).run_requests
    assert _table_days(rest) == sorted(
        [("errors", days[1])] + [(t, d) for t in ("failures", "maintenance") for d in days]
    )
    # one run for the tables whose days are the same (maintenance and failures of both days)
    assert sorted(_range(r) for r in rest) == [(days[0], days[1]), (days[1], days[1])]
    files = sorted(f for r in rest for f in r.run_config["ops"]["source_files"]["config"]["files"])
    assert files == sorted(
        [f"PdM_errors_{days[1]}.csv"] + [f"PdM_{stem}_{d}.csv" for stem in ("failures", "maint") for d in days]
    )


def test_landing_sensor_gives_an_unreadable_file_a_run_of_its_own(fresh_instance, landing, fleet):
    write_day_files(fleet, "2015-01-20", landing.landing_dir)
    bad = Path(landing.landing_dir) / "PdM_errors_2015-01-21.csv"
    bad.write_text('"datetime";"machineID";"errorID"\n2015-01-21 06:00:00;1;"error1"\n')  # not comma-separated
    data = sensor_tick(landing_sensor, fresh_instance, {"landing": landing})
    alone = [r for r in data.run_requests if r.run_config["ops"]["source_files"]["config"]["files"] == [bad.name]]
    # its table's asset for the day its name declares: that run fails there naming the file (the errors of other
    # days and the other tables are not held back)
    assert len(alone) == 1 and _selection(alone[0]) == {"source_files", "errors"}
    assert _range(alone[0]) == ("2015-01-21", "2015-01-21")
    others = [r for r in data.run_requests if r is not alone[0]]
    assert len(others) == 1 and _range(others[0]) == ("2015-01-20", "2015-01-20")


def test_landing_sensor_waits_for_the_active_ingest_run_and_plans_only_the_files_it_did_not_take(
    fresh_instance, landing, fleet
):
    # a drop lands file by file: the first tick sees part of it and requests a run for those files
    write_day_files(fleet, "2015-01-20", landing.landing_dir)
    first = sensor_tick(landing_sensor, fresh_instance, {"landing": landing})
    (request,) = first.run_requests
    fresh_instance.add_run(DagsterRun(job_name="ingest_job", run_id="c" * 36, status=DagsterRunStatus.STARTED))
    write_day_files(fleet, "2015-01-21", landing.landing_dir)
    # while that run has not staged its files, planning would group them again with the new ones under a new run
    # key and ingest 01-20 twice: the tick waits
    waiting = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}, cursor=first.cursor)
    assert not waiting.run_requests and "ingest_job run" in waiting.skip_message
    for file in list_landed(landing.landing_dir)[0]:
        if "2015-01-20" in file.name:  # what the run does
            landing.staging().stage(file)
    fresh_instance.delete_run("c" * 36)
    (after,) = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}, cursor=first.cursor).run_requests
    assert _range(after) == ("2015-01-21", "2015-01-21") and after.run_key != request.run_key


def test_landing_sensor_stages_todays_hours_without_a_partition_and_history_before_the_first(
    fresh_instance, landing, tmp_path
):
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    fleet = simulate(
        SimulationConfig(
            machines=2,
            start=(today - pd.Timedelta(days=2)).strftime("%Y-%m-%d"),
            end=(today + pd.Timedelta(hours=6)).strftime("%Y-%m-%d %H:00"),
            seed=1,
        )
    )
    today_only = {"telemetry": fleet["telemetry"][fleet["telemetry"]["datetime"] >= today]}
    write_kaggle_csv(today_only, landing.landing_dir, suffix="_today")
    (request,) = sensor_tick(landing_sensor, fresh_instance, {"landing": landing}).run_requests
    assert _selection(request) == {"source_files"} and _range(request) == (None, None)  # today is no partition yet


# --- downstream_sensor ---------------------------------------------------------------------------------------------

DAYS = list(pd.date_range("2015-03-01", "2015-03-05").strftime("%Y-%m-%d"))
CHAIN = (
    "telemetry",
    "errors",
    "maintenance",
    "failures",
    "features",
    "scores",
    "maintenance_worklist",
    "labels",
    "monitoring",
)


def _stage(data) -> tuple[set[str], list[tuple[str, str]]]:
    return (
        {k.to_user_string() for k in data.run_requests[0].asset_selection},
        sorted(_range(r) for r in data.run_requests),
    )


def test_downstream_sensor_brings_a_new_day_up_to_date_in_two_stages(fresh_instance):
    for asset in CHAIN:
        materialize_runless(fresh_instance, asset, *DAYS)
    data = sensor_tick(downstream_sensor, fresh_instance)
    assert not data.run_requests and "up to date" in data.skip_message
    for asset in CHAIN[:4]:
        materialize_runless(fresh_instance, asset, "2015-03-06")  # a new day arrives
    assert _stage(sensor_tick(downstream_sensor, fresh_instance)) == (
        {"features", "scores", "maintenance_worklist"},
        [("2015-03-06", "2015-03-06")],
    )
    for asset in ("features", "scores", "maintenance_worklist"):
        materialize_runless(fresh_instance, asset, "2015-03-06")
    # labels mature for the two days before (failures of 03-06 are in their horizon), and monitoring reads them; the
    # history (unpartitioned) is rebuilt in the same run
    assert _stage(sensor_tick(downstream_sensor, fresh_instance)) == (
        {"labels", "monitoring", "monitoring_history"},
        [("2015-03-04", "2015-03-06")],
    )


def test_downstream_sensor_reruns_a_late_days_dependents_only(fresh_instance):
    for asset in CHAIN:
        materialize_runless(fresh_instance, asset, *DAYS)
    materialize_runless(fresh_instance, "errors", "2015-03-02")  # a late errors file for an old day
    # features of 03-02 and of the day after read those errors (24 h windows), and so do their scores, worklist
    # and labels; monitoring reads 74 days of them: every later day
    assert _stage(sensor_tick(downstream_sensor, fresh_instance)) == (
        {"features", "scores", "maintenance_worklist", "labels"},
        [("2015-03-02", "2015-03-03")],
    )
    for asset in ("features", "scores", "maintenance_worklist", "labels"):
        materialize_runless(fresh_instance, asset, "2015-03-02", "2015-03-03")
    assert _stage(sensor_tick(downstream_sensor, fresh_instance)) == (
        {"monitoring", "monitoring_history"},
        [("2015-03-02", "2015-03-05")],
    )
    for day in DAYS[1:]:
        materialize_runless(fresh_instance, "monitoring", day)
    assert not sensor_tick(downstream_sensor, fresh_instance).run_requests


def test_downstream_sensor_waits_while_a_pipeline_run_is_active(fresh_instance):
    materialize_runless(fresh_instance, "telemetry", "2015-03-01")
    fresh_instance.add_run(DagsterRun(job_name="ingest_job", run_id="b" * 36, status=DagsterRunStatus.STARTED))
    data = sensor_tick(downstream_sensor, fresh_instance)
    assert not data.run_requests and "waiting for run" in data.skip_message


# --- late data ---------------------------------------------------------------------------------------------------


def _expected_latest_day(now: pd.Timestamp) -> str:
    """The day the freshness checks expect a partition for: the last day that ended before the latest 06:00 UTC."""
    deadline = now.normalize() + pd.Timedelta(hours=6)
    if now < deadline:
        deadline -= pd.Timedelta(days=1)
    return (deadline.normalize() - pd.Timedelta(days=1)).strftime("%Y-%m-%d")


def test_a_day_whose_data_did_not_arrive_by_the_deadline_is_late(fresh_instance, landing):
    from dagster import AssetSelection, Definitions, define_asset_job, load_assets_from_modules

    from pm_assets.assets import ingestion
    from pm_assets.automation import freshness_checks

    job = Definitions(
        assets=load_assets_from_modules([ingestion]),
        asset_checks=freshness_checks,
        resources={"landing": landing},
        jobs=[define_asset_job("fresh", selection=AssetSelection.checks(*freshness_checks))],
    ).resolve_job_def("fresh")

    def evaluate() -> dict[str, bool]:
        result = job.execute_in_process(instance=fresh_instance, raise_on_error=False)
        return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}

    assert evaluate() == {t: False for t in ("telemetry", "errors", "maintenance", "failures")}
    day = _expected_latest_day(pd.Timestamp.now(tz="UTC").tz_localize(None))
    materialize_runless(fresh_instance, "telemetry", day)
    materialize_runless(fresh_instance, "errors", day)
    checks = evaluate()
    assert checks["telemetry"] and checks["errors"] and not checks["maintenance"] and not checks["failures"]


def test_freshness_sensor_requests_the_overdue_checks(fresh_instance):
    from pm_assets.automation import freshness_sensor

    data = sensor_tick(freshness_sensor, fresh_instance)
    (request,) = data.run_requests
    assert {k.asset_key.to_user_string() for k in request.asset_check_keys} == {
        "telemetry",
        "errors",
        "maintenance",
        "failures",
    }
    assert {k.name for k in request.asset_check_keys} == {"freshness_check"}
