"""The code location loads, and every asset is documented the way the UI needs."""

from dagster import AssetsDefinition, BackfillPolicy

from pm_assets.definitions import defs
from pm_assets.partitions import daily_partitions


def _assets() -> list[AssetsDefinition]:
    return [a for a in defs.assets if isinstance(a, AssetsDefinition)]


def test_definitions_load_and_main_job_resolves():
    repo = defs.get_repository_def()
    assert repo.get_job("main_job") is not None
    assert {"io_manager", "raw_files"} <= set(defs.resources)


def test_every_asset_has_description_group_and_kinds():
    for asset in _assets():
        for spec in asset.specs:
            assert spec.description and len(spec.description) > 30, spec.key
            assert spec.group_name and spec.group_name != "default", spec.key
            assert spec.kinds, spec.key


def test_partitioned_assets_share_daily_partitions_and_run_backfills_as_one_run():
    partitioned = [a for a in _assets() if a.partitions_def is not None]
    assert {a.key.to_user_string() for a in partitioned} >= {"telemetry", "errors", "maintenance", "failures"}
    for asset in partitioned:
        assert asset.partitions_def == daily_partitions
        assert asset.backfill_policy == BackfillPolicy.single_run()
        assert asset.metadata_by_key[asset.key]["partition_expr"] in ("datetime", "date")


def test_default_partitions_cover_the_real_dataset_span():
    keys = daily_partitions.get_partition_keys()
    assert keys[0] == "2015-01-01" and keys[-1] == "2016-01-01" and len(keys) == 366


def test_every_job_runs_its_steps_in_process():
    """Runs launched from the UI, the schedules and the sensor use the in-process executor (one process per run)."""
    repo = defs.get_repository_def()
    names = {"main_job", "daily_job", "retrain_job", *(j.name for j in repo.get_all_jobs())}
    for name in names:
        assert repo.get_job(name).executor_def.name == "in_process", name
