"""The monitoring asset through Dagster: reports on disk, metadata for the UI, WARN checks."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetRecordsFilter

from pm_assets.assets.monitoring import ALERT_CHECKS
from pm_assets.core.registry import LocalRegistry
from pm_assets_tests.conftest import PIPELINE_DAYS, check_evaluations, materialization_metadata, run_assets

REPORT_FILES = {
    "drift_features.csv",
    "drift_scores.csv",
    "performance.csv",
    "drift_weighted.csv",
    "drift_segments.csv",
    "monitoring_summary.json",
    "report.html",
}
MONITORED = ("2015-04-25", "2015-04-30")


@pytest.fixture(scope="module")
def monitored(simulated_pipeline, instance):
    """The module's copy of the simulated pipeline with a model trained, every day scored and the last six days
    monitored; and the monitoring run's result."""
    root = simulated_pipeline
    assert run_assets(instance, root, selection=["failure_model"]).success
    assert run_assets(instance, root, selection=["scores"], days=PIPELINE_DAYS).success
    result = run_assets(instance, root, selection=["monitoring"], days=MONITORED)
    assert result.success
    return root, result


def test_every_partition_writes_its_reports(monitored):
    root, _ = monitored
    for day in pd.date_range(*MONITORED):
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


def test_metadata_per_partition_and_warn_checks(monitored, instance):
    root, result = monitored
    mats = materialization_metadata(result, "monitoring")
    assert sorted(mats) == [d.strftime("%Y-%m-%d") for d in pd.date_range(*MONITORED)]
    champion = LocalRegistry(root / "models").champion()
    for day, meta in mats.items():
        # the model version is lineage: failure_model's data version, recorded on each partition, and in its metadata
        (record,) = instance.fetch_materializations(AssetRecordsFilter(AssetKey("monitoring"), [day]), limit=1).records
        assert record.asset_materialization.tags["dagster/input_data_version/failure_model"] == champion
        assert meta["model_version"] == champion
        assert meta["light_code"] in (0, 1, 2) and isinstance(meta["score_psi"], float)
        assert meta["report"].endswith("report.html")
        assert not math.isnan(meta["ap_reference"])
    checks = {check: e for (_, check), e in check_evaluations(result).items()}
    assert set(checks) == set(ALERT_CHECKS.values())
    assert all(c.severity == AssetCheckSeverity.WARN for c in checks.values())
    table = pd.read_parquet(root / "warehouse" / "monitoring" / "2015-04-30.parquet")
    assert len(table) == 1 and table["traffic_light"].iloc[0] == mats["2015-04-30"]["traffic_light"]


def test_the_history_collects_every_monitored_day_with_its_chart_and_index(monitored, instance):
    root, result = monitored
    history_run = run_assets(instance, root, selection=["monitoring_history"])
    assert history_run.success
    history = pd.read_parquet(root / "warehouse" / "monitoring_history.parquet")
    days = materialization_metadata(result, "monitoring")
    assert history["date"].dt.strftime("%Y-%m-%d").tolist() == sorted(days)
    for row in history.itertuples(index=False):
        meta = days[row.date.strftime("%Y-%m-%d")]
        assert row.traffic_light == meta["traffic_light"] and row.alert_count == meta["alert_count"]
        assert row.score_psi == pytest.approx(meta["score_psi"], rel=1e-3)  # the metadata shows 4 digits
    meta = materialization_metadata(history_run, "monitoring_history")[None]
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
