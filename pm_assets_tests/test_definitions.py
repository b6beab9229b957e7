"""The code location loads, and every asset is documented the way the UI needs."""

import os
import subprocess
import sys

import pandas as pd
from dagster import AssetsDefinition, BackfillPolicy

from pm_assets.assets.common import code_modules, code_version
from pm_assets.definitions import defs
from pm_assets.partitions import daily_partitions


def _assets() -> list[AssetsDefinition]:
    return [a for a in defs.assets if isinstance(a, AssetsDefinition)]


def test_definitions_load_and_main_job_resolves():
    repo = defs.get_repository_def()
    assert repo.get_job("main_job") is not None
    assert {"io_manager", "landing", "model_registry", "outputs"} <= set(defs.resources)


def test_every_asset_has_description_group_and_kinds():
    for asset in _assets():
        for spec in asset.specs:
            assert spec.description and len(spec.description) > 30, spec.key
            assert spec.group_name and spec.group_name != "default", spec.key
            assert spec.kinds, spec.key


def test_the_readme_names_the_asset_groups_the_code_has():
    import re

    from pm_assets_tests.conftest import REPO_ROOT

    (line,) = [t for t in (REPO_ROOT / "README.md").read_text().splitlines() if t.startswith("Groups: ")]
    named = re.findall(r"`(\w+)`", line.split(". ")[0])
    groups = {spec.group_name for asset in _assets() for spec in asset.specs}
    assert sorted(named) == sorted(groups), (named, groups)


def test_every_asset_declares_the_code_version_of_the_code_it_runs():
    for asset in _assets():
        for spec in asset.specs:
            assert spec.code_version and len(spec.code_version) == 12, spec.key
    used = code_modules("pm_assets.assets.features")
    assert {
        "pm_assets.assets.features",
        "pm_assets.core.features",
        "pm_assets.core.labels",
        "pm_assets.resources",
        "pm_assets.core.parquet_files",
    } <= set(used)
    assert "pm_assets.core.drift" not in used and "pm_assets.core.model" not in used  # other stages' code
    assert code_version("pm_assets.assets.features") != code_version("pm_assets.assets.scoring")


def test_a_change_to_a_core_module_is_a_new_code_version(tmp_path, monkeypatch):
    import pm_assets.core.features as core_features

    before = code_version("pm_assets.assets.features")
    changed = tmp_path / "features.py"
    changed.write_text(open(core_features.__file__).read() + "\n# one more line\n")
    monkeypatch.setattr(core_features, "__file__", str(changed))
    assert code_version("pm_assets.assets.features") != before
    assert code_version("pm_assets.assets.training") == code_version("pm_assets.assets.training")


def test_partitioned_assets_share_daily_partitions_and_run_backfills_as_one_run():
    partitioned = [a for a in _assets() if a.partitions_def is not None]
    assert {a.key.to_user_string() for a in partitioned} >= {"telemetry", "errors", "maintenance", "failures"}
    for asset in partitioned:
        assert asset.partitions_def == daily_partitions
        assert asset.backfill_policy == BackfillPolicy.single_run()
        assert asset.metadata_by_key[asset.key]["partition_expr"] in ("datetime", "date")


def _partitions_in_a_fresh_process(env: dict) -> list[str]:
    """first key, last key and count of the daily partitions a process with ``env`` loads (settings are read at
    import)."""
    code = (
        "from pm_assets.partitions import daily_partitions as p; k = p.get_partition_keys(); print(k[0], k[-1], len(k))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PM_")}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_partitions_are_open_ended_up_to_yesterday_by_default():
    yesterday = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    first, last, count = _partitions_in_a_fresh_process({})
    assert first == "2025-12-01" and last == yesterday
    assert int(count) == len(pd.date_range("2025-12-01", yesterday))
    keys = daily_partitions.get_partition_keys()  # the tests' own: open-ended from 2015-01-01 (conftest)
    assert keys[0] == "2015-01-01" and keys[-1] == yesterday


def test_an_end_date_stays_possible_for_the_kaggle_year():
    assert _partitions_in_a_fresh_process({"PM_PARTITION_START": "2015-01-01", "PM_PARTITION_END": "2016-01-02"}) == [
        "2015-01-01",
        "2016-01-01",
        "366",
    ]


def test_every_job_runs_its_steps_in_process():
    """Runs launched from the UI, the schedules and the sensor use the in-process executor (one process per run)."""
    repo = defs.get_repository_def()
    names = {"main_job", "ingest_job", "downstream_job", "retrain_job", *(j.name for j in repo.get_all_jobs())}
    for name in names:
        assert repo.get_job(name).executor_def.name == "in_process", name
