"""The project's instances: the pooled SQLite event log of dagster.yaml, and the PostgreSQL variant
(deploy/postgres/dagster.yaml) on a real server. A real instance on each stores and reads every event."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as db
import yaml
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    InMemoryIOManager,
    Output,
    asset,
    define_asset_job,
)

from pm_assets.instance_storage import PooledSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[1]
DAYS = DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-02-01")


@asset(partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run(), io_manager_key="memory")
def daily(context):
    for key in context.partition_keys:
        context.add_asset_metadata({"n": int(key[-2:])}, partition_key=key)
    return 1


def _ranged_run(asset_def, instance):
    """One run of ``asset_def`` over every partition of DAYS; it must succeed."""
    job = Definitions(
        assets=[asset_def], jobs=[define_asset_job("j")], resources={"memory": InMemoryIOManager()}
    ).resolve_job_def("j")
    keys = DAYS.get_partition_keys()
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success
    return result


def _ranged_run_keeps_every_event(instance) -> None:
    _ranged_run(daily, instance)
    keys = DAYS.get_partition_keys()
    records = instance.fetch_materializations(AssetKey("daily"), limit=100).records
    assert sorted(r.partition_key for r in records) == keys
    assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {
        k: int(k[-2:]) for k in keys
    }


def test_project_instance_uses_the_pooled_storage_and_keeps_every_event(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    assert (
        yaml.safe_load((home / "dagster.yaml").read_text())["event_log_storage"]["class"]
        == "PooledSqliteEventLogStorage"
    )
    monkeypatch.chdir(home)  # the storage paths in dagster.yaml are relative
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        _ranged_run_keeps_every_event(instance)
        assert (home / ".dagster_home" / "storage" / "event_log.db").exists()
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert (
            not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present
        )  # misses are asked again
    finally:
        instance.dispose()


@pytest.mark.postgres
def test_the_postgres_variant_pools_connections_and_keeps_every_event(postgres_home):
    from pm_assets.instance_postgres import (
        PooledPostgresEventLogStorage,
        PooledPostgresRunStorage,
        PooledPostgresScheduleStorage,
    )

    instance = DagsterInstance.from_config(str(postgres_home))
    try:
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.run_storage, PooledPostgresRunStorage)
        assert isinstance(instance.schedule_storage, PooledPostgresScheduleStorage)
        opened = []
        for storage in (instance.event_log_storage, instance.run_storage):
            db.event.listen(storage._engine, "connect", lambda *_: opened.append(1))
        _ranged_run_keeps_every_event(instance)  # 31 partitions: 73 events
        events = len(instance.all_logs(instance.get_runs(limit=1)[0].run_id))
        assert events >= 70 and len(opened) <= 4, (events, len(opened))  # Dagster's NullPool: one connection each
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present
    finally:
        instance.dispose()


@pytest.mark.postgres
def test_an_engine_is_never_shared_across_a_fork(postgres_home):
    import os

    instance = DagsterInstance.from_config(str(postgres_home))
    try:
        storage = instance.event_log_storage
        parent = storage._engine
        assert storage._engine is parent  # one per process, kept
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own engine, which works
            ok = storage._engine is not parent and storage.has_table("event_logs")
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        assert storage._engine is parent and storage.has_table("event_logs")
    finally:
        instance.dispose()


@asset(
    partitions_def=DAYS,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="memory",
    check_specs=[AssetCheckSpec("positive", asset="checked")],
)
def checked(context):
    for key in context.partition_keys:
        context.add_asset_metadata({"n": int(key[-2:])}, partition_key=key)
    yield Output(1)
    yield AssetCheckResult(check_name="positive", passed=True)


def _tables(storage) -> dict[str, list[tuple]]:
    """Every row of the event log's tables, in id order, without the columns that differ between two stores of the
    same events (row creation times)."""
    engine = db.create_engine(f"sqlite:///{storage.get_db_path()}")
    out = {}
    with engine.connect() as conn:
        for table in ("event_logs", "asset_keys", "asset_event_tags", "asset_check_executions"):
            columns = [
                c["name"]
                for c in db.inspect(conn).get_columns(table)
                if c["name"] not in ("create_timestamp", "wipe_timestamp", "cached_status_data")
            ]
            out[table] = [
                tuple(row)
                for row in conn.execute(
                    db.text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns[:3])}")
                )
            ]
    engine.dispose()
    return out


def test_a_batch_of_events_is_stored_as_storing_them_one_by_one(tmp_path, monkeypatch):
    """The events of a ranged run with a check (planned materializations and checks per partition, materializations
    with metadata per partition, a check result) written by store_event one by one, and by store_event_batch in
    the batches Dagster forms: every row of every table equal."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    source = DagsterInstance.ephemeral()
    result = _ranged_run(checked, source)
    keys = DAYS.get_partition_keys()
    entries = list(source.all_logs(result.run_id))
    one_by_one = PooledSqliteEventLogStorage(str(tmp_path / "one"))
    batched = PooledSqliteEventLogStorage(str(tmp_path / "batch"))
    for entry in entries:
        one_by_one.store_event(entry)
    batchable = {
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        DagsterEventType.ASSET_MATERIALIZATION,
    }
    batch, batches = [], 0
    for entry in entries + [None]:
        if (
            entry is not None
            and entry.dagster_event_type in batchable
            and (
                not batch
                or batch[-1].dagster_event_type == entry.dagster_event_type
                or {batch[-1].dagster_event_type, entry.dagster_event_type}
                <= batchable - {DagsterEventType.ASSET_MATERIALIZATION}
            )
        ):
            batch.append(entry)
            continue
        if batch:
            batched.store_event_batch(batch)
            batches += 1
            batch = []
        if entry is not None:
            batched.store_event(entry)
    assert batches == 2  # the planned events, the materializations
    try:
        expected, got = _tables(one_by_one), _tables(batched)
        assert len(expected["event_logs"]) == len(entries)
        assert len(expected["asset_check_executions"]) >= len(keys)  # a planned row per partition, and the result's
        assert got == expected
        records = batched.fetch_materializations(AssetKey("checked"), limit=100).records
        assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {
            k: int(k[-2:]) for k in keys
        }
    finally:
        one_by_one.dispose()
        batched.dispose()
