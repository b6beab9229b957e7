"""The monitoring asset through Dagster: reports on disk, metadata for the UI, WARN checks."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, load_assets_from_modules, materialize

from pm_assets.assets import features as features_module
from pm_assets.assets import ingestion, monitoring, scoring, training
from pm_assets.assets.monitoring import ALERT_CHECKS
from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv
from pm_assets.resources import ModelRegistryResource, OutputsResource, ParquetIOManager
from pm_assets_tests.conftest import landing_resource

ASSETS = load_assets_from_modules([ingestion, features_module, training, scoring, monitoring])
REPORT_FILES = {
    "drift_features.csv",
    "drift_scores.csv",
    "performance.csv",
    "drift_weighted.csv",
    "drift_segments.csv",
    "monitoring_summary.json",
    "report.html",
}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, instance):
    root = tmp_path_factory.mktemp("monitoring")
    write_kaggle_csv(
        simulate(SimulationConfig(machines=15, start="2015-01-01", end="2015-05-01", seed=5)), root / "raw"
    )
    resources = {
        "landing": landing_resource(root, root / "raw"),
        "io_manager": ParquetIOManager(base_dir=str(root / "warehouse")),
        "model_registry": ModelRegistryResource(root=str(root / "models")),
        "outputs": OutputsResource(root=str(root / "outputs")),
    }

    def run(first, last, selection, run_config=None):
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        return materialize(
            ASSETS, instance=instance, resources=resources, tags=tags, selection=selection, run_config=run_config
        )

    upstream = [
        "source_files",
        "machines",
        "telemetry",
        "errors",
        "maintenance",
        "maintenance_history",
        "failures",
        "features",
        "labels",
    ]
    assert run("2015-01-01", "2015-04-30", upstream).success
    assert materialize(ASSETS, instance=instance, resources=resources, selection=["failure_model"]).success
    assert run("2015-01-01", "2015-04-30", ["scores"]).success
    result = run("2015-04-25", "2015-04-30", ["monitoring"])
    assert result.success
    return root, result


def test_every_partition_writes_its_reports(monitored):
    root, _ = monitored
    for day in pd.date_range("2015-04-25", "2015-04-30"):
        folder = root / "outputs" / "monitoring" / day.strftime("%Y-%m-%d")
        assert {p.name for p in folder.iterdir()} == REPORT_FILES
        summary = json.loads((folder / "monitoring_summary.json").read_text())  # strict JSON: no NaN
        assert summary["traffic_light"] in ("green", "yellow", "red")
        assert summary["retrain_recommended"] == (summary["alert_count"] >= 2)
        assert {a["name"] for a in summary["alerts"]} == set(ALERT_CHECKS)
        assert summary["windows"]["production"]["end"] == str(day + pd.Timedelta(days=1))
        page = (folder / "report.html").read_text()
        assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
        features = pd.read_csv(folder / "drift_features.csv")
        assert len(features) > 40 and {"psi", "ks", "reference_mean", "production_mean"} <= set(features.columns)
        weighted = pd.read_csv(folder / "drift_weighted.csv")
        assert weighted["importance"].max() == pytest.approx(1.0)  # from the champion's card, normalised


def test_metadata_per_partition_and_warn_checks(monitored):
    root, result = monitored
    mats = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("monitoring")
    }
    assert sorted(mats) == [d.strftime("%Y-%m-%d") for d in pd.date_range("2015-04-25", "2015-04-30")]
    for meta in mats.values():
        assert meta["light_code"] in (0, 1, 2) and isinstance(meta["score_psi"], float)
        assert meta["report"].endswith("report.html")
        assert not math.isnan(meta["ap_reference"])
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert set(checks) == set(ALERT_CHECKS.values())
    assert all(c.severity == AssetCheckSeverity.WARN for c in checks.values())
    table = pd.read_parquet(root / "warehouse" / "monitoring" / "2015-04-30.parquet")
    assert len(table) == 1 and table["traffic_light"].iloc[0] == mats["2015-04-30"]["traffic_light"]


def test_the_history_collects_every_monitored_day_with_its_chart_and_index(monitored, instance):
    root, result = monitored
    resources = {
        "io_manager": ParquetIOManager(base_dir=str(root / "warehouse")),
        "outputs": OutputsResource(root=str(root / "outputs")),
        "landing": landing_resource(root, root / "raw"),
        "model_registry": ModelRegistryResource(root=str(root / "models")),
    }
    history_run = materialize(ASSETS, instance=instance, resources=resources, selection=["monitoring_history"])
    assert history_run.success
    history = pd.read_parquet(root / "warehouse" / "monitoring_history.parquet")
    days = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("monitoring")
    }
    assert history["date"].dt.strftime("%Y-%m-%d").tolist() == sorted(days)
    for row in history.itertuples(index=False):
        meta = days[row.date.strftime("%Y-%m-%d")]
        assert row.traffic_light == meta["traffic_light"] and row.alert_count == meta["alert_count"]
        assert row.score_psi == pytest.approx(meta["score_psi"], rel=1e-3)  # the metadata shows 4 digits
    meta = {
        k: v.value for k, v in history_run.asset_materializations_for_node("monitoring_history")[0].metadata.items()
    }
    assert meta["trend"].startswith("![monitoring trend](data:image/svg+xml;base64,")
    index = (root / "outputs" / "monitoring" / "index.html").read_text()
    for day in days:
        assert f'href="{day}/report.html"' in index


def test_the_index_page_and_a_report_load_in_a_browser(monitored, browser):
    from pm_assets_tests.conftest import open_page

    root, _ = monitored
    folder = root / "outputs" / "monitoring"
    page, errors = open_page(browser, (folder / "index.html").as_uri())
    assert errors == []
    assert page.locator("#trend svg rect title").count() == 6  # one day of the light strip per monitored day
    assert page.locator("#days tbody tr").count() == 6
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # fits the screen
    page.locator("#days a").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("2015-04-30/report.html")
    page.close()
