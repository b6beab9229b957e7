"""The pooled SQLite event log of dagster.yaml: a real instance on it stores and reads every event."""

from __future__ import annotations

import shutil
from pathlib import Path

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


def test_project_instance_uses_the_pooled_storage_and_keeps_every_event(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    assert yaml.safe_load((home / "dagster.yaml").read_text())["event_log_storage"]["class"] == "PooledSqliteEventLogStorage"
    monkeypatch.chdir(home)  # the storage paths in dagster.yaml are relative
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        job = Definitions(assets=[daily], jobs=[define_asset_job("j")],
                          resources={"memory": InMemoryIOManager()}).resolve_job_def("j")
        keys = DAYS.get_partition_keys()
        result = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                                                 "dagster/asset_partition_range_end": keys[-1]})
        assert result.success
        records = instance.fetch_materializations(AssetKey("daily"), limit=100).records
        assert sorted(r.partition_key for r in records) == keys
        assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {k: int(k[-2:]) for k in keys}
        assert (home / ".dagster_home" / "storage" / "event_log.db").exists()
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present  # misses are asked again
    finally:
        instance.dispose()
