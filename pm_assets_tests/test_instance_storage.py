"""The project's instances: the pooled SQLite event log of dagster.yaml, and the PostgreSQL variant
(deploy/postgres/dagster.yaml) on a real server. A real instance on each stores and reads every event."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as db
import yaml
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    InMemoryIOManager,
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


def _ranged_run_keeps_every_event(instance) -> None:
    job = Definitions(assets=[daily], jobs=[define_asset_job("j")],
                      resources={"memory": InMemoryIOManager()}).resolve_job_def("j")
    keys = DAYS.get_partition_keys()
    result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                                             "dagster/asset_partition_range_end": keys[-1]})
    assert result.success
    records = instance.fetch_materializations(AssetKey("daily"), limit=100).records
    assert sorted(r.partition_key for r in records) == keys
    assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {k: int(k[-2:]) for k in keys}


def test_project_instance_uses_the_pooled_storage_and_keeps_every_event(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    assert yaml.safe_load((home / "dagster.yaml").read_text())["event_log_storage"]["class"] == "PooledSqliteEventLogStorage"
    monkeypatch.chdir(home)  # the storage paths in dagster.yaml are relative
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        _ranged_run_keeps_every_event(instance)
        assert (home / ".dagster_home" / "storage" / "event_log.db").exists()
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present  # misses are asked again
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
