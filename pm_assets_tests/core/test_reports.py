"""The monitoring reports without Dagster: a day's row of the monitoring table, its folder of CSVs, JSON summary
and HTML page (whole, replaced whole, strict JSON), the trend read back from earlier summaries, and the features a
chunk must read for its pages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.history import history_table
from pm_assets.core.monitoring import (
    LIGHTS,
    MonitoringParams,
    monitor,
    monitor_stored,
    stored_window_drift,
)
from pm_assets.core.reports import (
    HISTOGRAM_FEATURES,
    REPORT_PAGE,
    REPORT_TABLES,
    SUMMARY_FILE,
    ReportWriter,
    day_figures,
    drawn_features,
    drawn_rows,
    past_figures,
    write_reports,
)

END = pd.Timestamp("2015-03-25")
PARAMS = MonitoringParams(reference_days=30, production_days=7, multivariate_features=(), min_segment_rows=20)
FEATURES = ["stable", "shifted", "noisy", "counts", "constant", "with_nan"]
FILES = {f"{name}.csv" for name in REPORT_TABLES} | {SUMMARY_FILE, REPORT_PAGE}


def build_rows(seed: int = 0) -> pd.DataFrame:
    """Scored, labelled snapshots of 6 machines every 3 h, from 45 days before ``END`` to 5 days after it: one
    feature shifts in the last 10 days, one is constant, one has NaN."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(END - pd.Timedelta(days=45), END + pd.Timedelta(days=5), freq="3h", inclusive="left")
    rows = pd.DataFrame(
        {"machineID": np.repeat(np.arange(1, 7), len(times)), "datetime": np.tile(times, 6)}
    ).sort_values("datetime", kind="stable", ignore_index=True)
    n = len(rows)
    late = (rows["datetime"] >= END - pd.Timedelta(days=10)).to_numpy()
    rows["model"] = pd.Categorical(np.where(rows["machineID"] <= 3, "model1", "model2"))
    rows["stable"] = rng.normal(0, 1, n)
    rows["shifted"] = rng.normal(0, 1, n) + 2.0 * late
    rows["noisy"] = rng.normal(0, 1, n) * (1 + late)
    rows["counts"] = rng.poisson(2, n).astype(float)
    rows["constant"] = 1.0
    with_nan = rng.normal(0, 1, n)
    with_nan[rng.random(n) < 0.3] = np.nan
    rows["with_nan"] = with_nan
    p = rng.beta(1.5, 5.0, n)
    rows["p_any"] = p
    rows["scored"] = True
    y = rng.random(n) < p
    mature = (rows["datetime"] <= END - pd.Timedelta(days=1)).to_numpy() | y
    rows["label_mature"] = pd.Series(mature, dtype=object)
    rows["failure_within_horizon"] = pd.array(np.where(mature, y, None), dtype="boolean")
    return rows


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return build_rows()


@pytest.fixture(scope="module")
def result(rows):
    return monitor(rows, END, FEATURES, PARAMS)


def _strict(text: str):
    """JSON as the summary must be: no NaN or Infinity (``json`` would accept them)."""

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_day_figures_are_the_days_light_alerts_and_figures(result, tmp_path):
    row = day_figures("2015-03-24", result, "v7", tmp_path / REPORT_PAGE)
    fired = [a.name for a in result.alerts if a.fired]
    assert row["date"] == pd.Timestamp("2015-03-24")
    assert row["alert_count"] == len(fired) and row["alerts"] == ", ".join(fired)
    assert LIGHTS[row["light_code"]] == row["traffic_light"] == result.light
    assert row["retrain_recommended"] == (len(fired) >= 2)
    drifted = result.drift_features["drifted"]
    assert row["n_drifted_features"] == int(drifted.sum()) and row["drifted_share"] == pytest.approx(drifted.mean())
    perf = result.performance.set_index("period")
    assert row["ap_production"] == perf.loc["production", "average_precision"]
    assert row["failure_rate_reference"] == perf.loc["reference", "failure_rate"]
    top = result.drift_features.dropna(subset=["psi"]).nlargest(3, "psi")
    assert row["top_drifted"].split(", ") == [f"{f} {v:.3g}" for f, v in zip(top["feature"], top["psi"])]
    assert row["top_drifted"].startswith("shifted ")  # the feature that moved drifts most
    assert row["reconstruction_error"] is None  # the multivariate drift is off
    assert row["model_version"] == "v7" and row["report"] == str(tmp_path / REPORT_PAGE)
    assert day_figures("2015-03-24", result, None, tmp_path)["model_version"] == "none"


def test_the_folder_holds_the_tables_the_summary_with_the_figures_and_the_page(result, tmp_path):
    folder = tmp_path / "2015-03-24"
    row = day_figures("2015-03-24", result, "v7", folder / REPORT_PAGE)
    trend = history_table(pd.DataFrame([row | {"date": pd.Timestamp("2015-03-23")}, row]))
    page = write_reports(folder, "2015-03-24", result, PARAMS, row, trend)
    assert page == folder / REPORT_PAGE
    assert {p.name for p in folder.iterdir()} == FILES
    for name in REPORT_TABLES:
        written, table = pd.read_csv(folder / f"{name}.csv"), getattr(result, name)
        assert list(written.columns) == list(table.columns) and len(written) == len(table)
    written = pd.read_csv(folder / "drift_features.csv")
    assert written["psi"].to_numpy() == pytest.approx(result.drift_features["psi"].to_numpy(), nan_ok=True)
    summary = _strict((folder / SUMMARY_FILE).read_text())
    assert summary["date"] == "2015-03-24" and summary["traffic_light"] == result.light
    assert summary["feature_psi_alert"] == PARAMS.feature_psi_alert
    assert summary["feature_drift_measure"] == PARAMS.feature_drift_measure
    assert [a["name"] for a in summary["alerts"]] == [a.name for a in result.alerts]
    figures = summary["figures"]
    assert figures["date"] == "2015-03-24"
    assert set(figures) == set(row)
    assert figures["score_psi"] == pytest.approx(row["score_psi"])
    assert figures["alert_count"] == row["alert_count"] and figures["top_drifted"] == row["top_drifted"]
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "The last 90 days" in html and "<script" not in html
    assert "shifted" in html  # the most drifted feature's histogram


def test_without_figures_or_trend_there_is_no_figures_entry_and_no_trend_panel(result, tmp_path):
    write_reports(tmp_path / "day", "2015-03-24", result, PARAMS)
    assert "figures" not in _strict((tmp_path / "day" / SUMMARY_FILE).read_text())
    assert "The last 90 days" not in (tmp_path / "day" / REPORT_PAGE).read_text()


def test_a_rewrite_replaces_the_folder_whole(result, tmp_path):
    folder = tmp_path / "2015-03-24"
    row = day_figures("2015-03-24", result, "v1", folder / REPORT_PAGE)
    write_reports(folder, "2015-03-24", result, PARAMS, row)
    (folder / "stale.csv").write_text("from an older version")
    write_reports(folder, "2015-03-24", result, PARAMS, row | {"model_version": "v2"})
    assert {p.name for p in folder.iterdir()} == FILES
    assert _strict((folder / SUMMARY_FILE).read_text())["figures"]["model_version"] == "v2"
    assert not [p for p in tmp_path.iterdir() if p.name != folder.name]  # no temporary folder left beside it


def test_nan_and_infinite_figures_are_null_in_strict_json(result, tmp_path):
    row = day_figures("2015-03-24", result, "v7", tmp_path / REPORT_PAGE)
    odd = row | {"score_psi": float("nan"), "ap_production": np.float64("inf"), "drifted_share": np.nan}
    write_reports(tmp_path / "d", "2015-03-24", result, PARAMS, odd)
    text = (tmp_path / "d" / SUMMARY_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    figures = _strict(text)["figures"]
    assert figures["score_psi"] is None and figures["ap_production"] is None and figures["drifted_share"] is None
    assert figures["alert_count"] == row["alert_count"]  # the rest as it was


def test_past_figures_reads_the_days_before_the_run_from_their_summaries(result, tmp_path):
    root = tmp_path / "monitoring"
    assert past_figures(root, "2015-03-10") == []  # nothing monitored yet (no folder)
    written = ["2015-03-01", "2015-03-03", "2015-03-04", "2015-03-09", "2015-03-10", "2015-03-12"]
    for i, day in enumerate(written):
        row = day_figures(day, result, f"v{i}", root / day / REPORT_PAGE)
        write_reports(root / day, day, result, PARAMS, row)
    write_reports(root / "2015-03-05", "2015-03-05", result, PARAMS)  # a summary without figures
    (root / "2015-03-06").mkdir()  # a folder without a summary
    got = past_figures(root, "2015-03-10", days=8)  # 2015-03-02 .. 2015-03-09
    assert [r["date"] for r in got] == [pd.Timestamp(d) for d in ("2015-03-03", "2015-03-04", "2015-03-09")]
    assert [r["model_version"] for r in got] == ["v1", "v2", "v3"]
    assert all(isinstance(r["date"], pd.Timestamp) for r in got)
    assert len(past_figures(root, "2015-03-10")) == 4  # the default: the 89 days before


def test_a_chunk_reads_every_feature_its_pages_draw(rows):
    ends = list(pd.date_range(END - pd.Timedelta(days=3), END + pd.Timedelta(days=2)))
    drift = stored_window_drift(lambda c: rows[c], lambda c: rows[c], FEATURES, ends, PARAMS)
    days = range(1, 5)
    drawn = drawn_features(drift, days)
    assert drawn == sorted(set(drawn)) and len(drawn) >= HISTOGRAM_FEATURES
    for result in monitor_stored(rows, ends, days, drift, PARAMS):
        top = result.drift_features.dropna(subset=["psi"]).head(HISTOGRAM_FEATURES)["feature"]
        assert set(top) <= set(drawn)


def _folder_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_drawn_rows_keeps_the_columns_the_page_draws_and_the_page_is_the_same(result, tmp_path):
    slim = drawn_rows(result)
    top = result.drift_features.dropna(subset=["psi"]).head(HISTOGRAM_FEATURES)["feature"].tolist()
    assert list(slim.reference_rows.columns) == [*top, "p_any"] == list(slim.production_rows.columns)
    assert len(slim.reference_rows) == len(result.reference_rows) and set(top) < set(result.reference_rows.columns)
    write_reports(tmp_path / "whole", "2015-03-24", result, PARAMS)
    write_reports(tmp_path / "slim", "2015-03-24", slim, PARAMS)
    assert _folder_bytes(tmp_path / "whole") == _folder_bytes(tmp_path / "slim")


@pytest.mark.parametrize("process", [True, False])
def test_the_report_writer_writes_what_write_reports_writes(result, tmp_path, process):
    days = ["2015-03-22", "2015-03-23", "2015-03-24"]
    with ReportWriter(process=process, ahead=1) as writer:  # ahead=1: each submit waits for the one before
        for i, day in enumerate(days):
            row = day_figures(day, result, f"v{i}", tmp_path / "bg" / day / REPORT_PAGE)
            writer.submit(tmp_path / "bg" / day, day, result, PARAMS, row)
            write_reports(tmp_path / "direct" / day, day, result, PARAMS, row)
    for day in days:
        assert _folder_bytes(tmp_path / "bg" / day) == _folder_bytes(tmp_path / "direct" / day)


@pytest.mark.parametrize("process", [True, False])
def test_a_failed_report_write_is_raised(result, tmp_path, process):
    (tmp_path / "file").write_text("not a folder")
    with ReportWriter(process=process) as writer:
        writer.submit(tmp_path / "file" / "2015-03-24", "2015-03-24", result, PARAMS)
        with pytest.raises(OSError, match="file"):
            writer.wait()
    with pytest.raises(OSError), ReportWriter(process=process) as failing:  # leaving the block raises it too
        failing.submit(tmp_path / "file" / "2015-03-24", "2015-03-24", result, PARAMS)


@pytest.mark.parametrize("process", [True, False])
@pytest.mark.parametrize("shared_columns", ["drawn", "too few"])
def test_reports_from_shared_rows_are_those_of_each_days_rows(rows, tmp_path, process, shared_columns):
    """A chunk's rows shared once, each day's windows taken from them by position: the same files as each day's
    result written with its own rows; rows without a drawn column are not used (the day's own rows are sent)."""
    ends = list(pd.date_range(END - pd.Timedelta(days=3), END + pd.Timedelta(days=2)))
    drift = stored_window_drift(lambda c: rows[c], lambda c: rows[c], FEATURES, ends, PARAMS)
    days = range(1, 5)
    drawn = drawn_features(drift, days)
    shared = [*drawn, "p_any"] if shared_columns == "drawn" else ["p_any"]
    results = list(monitor_stored(rows, ends, days, drift, PARAMS))
    with ReportWriter(process=process, ahead=2) as writer:
        writer.share(rows, shared)
        for day, result in zip(days, results, strict=True):
            key = ends[day].strftime("%Y-%m-%d")
            assert result.reference_rows.equals(rows.iloc[result.spans["reference"]])
            writer.submit(tmp_path / "shared" / key, key, result, PARAMS)
    for day, result in zip(days, results, strict=True):
        key = ends[day].strftime("%Y-%m-%d")
        write_reports(tmp_path / "own" / key, key, result, PARAMS)
        assert _folder_bytes(tmp_path / "shared" / key) == _folder_bytes(tmp_path / "own" / key)
