"""benchmarks/compare_drift_tools.py: its pure helpers, on small hand-made inputs (no Evidently or NannyML needed)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.monitoring import MonitoringParams

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
sys.path.insert(0, BENCHMARKS)  # the benchmarks are top-level modules
try:
    import compare_drift_tools as cdt
finally:
    sys.path.remove(BENCHMARKS)

END = pd.Timestamp("2015-07-15")


def test_telemetry_features_are_the_sixteen_short_window_sensor_features_in_order():
    names = cdt.feature_names()
    tele = cdt.telemetry_features(names)
    assert len(tele) == 16
    assert tele == [n for n in names if n in tele]  # the features' own order
    assert {"volt_mean_3h", "volt_sd_24h", "vibration_sd_3h", "pressure_mean_24h"} <= set(tele)
    assert all(
        n.endswith(("_3h", "_24h")) and n.split("_")[0] in ("volt", "rotate", "pressure", "vibration") for n in tele
    )
    assert "error1_count_24h" in names and "error1_count_24h" not in tele  # a 24 h feature, but not a sensor's
    assert cdt.telemetry_features(["volt_mean_3d", "volt_trend_7d", "age"]) == []
    assert "model" not in names and "age" in names


def test_split_windows_cut_at_the_monitoring_windows_start_inclusive_end_exclusive():
    params = MonitoringParams()  # 60 + 14 days
    times = pd.to_datetime(
        [
            "2015-05-01 21:00",
            "2015-05-02 00:00",
            "2015-06-30 21:00",
            "2015-07-01 00:00",
            "2015-07-14 21:00",
            "2015-07-15 00:00",
        ]
    )
    rows = pd.DataFrame({"datetime": times, "machineID": 1, "x": np.arange(6.0)})
    ref, prod = cdt.split_windows(rows, END, params)
    assert ref["x"].tolist() == [1.0, 2.0]
    assert prod["x"].tolist() == [3.0, 4.0]
    assert cdt.window_rows(rows, END, params)["x"].tolist() == [1.0, 2.0, 3.0, 4.0]
    short = MonitoringParams(reference_days=1, production_days=1)
    ref, prod = cdt.split_windows(rows, END, short)
    assert ref.empty and prod["x"].tolist() == [4.0]


def test_scaled_is_a_larger_fleet_of_distinct_machines_sorted_by_time():
    rows = pd.DataFrame(
        {
            "machineID": np.array([1, 2, 1, 2], dtype=np.int32),
            "datetime": pd.to_datetime(
                ["2015-01-01 00:00", "2015-01-01 00:00", "2015-01-01 03:00", "2015-01-01 03:00"]
            ),
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    big = cdt.scaled(rows, 3)
    assert len(big) == 12
    assert sorted(big["machineID"].unique().tolist()) == [1, 2, 3, 4, 5, 6]
    assert not big.duplicated(["machineID", "datetime"]).any()
    assert big["datetime"].is_monotonic_increasing
    # every copy has the original values of its machine: the distributions are those of the original
    assert big["x"].value_counts().to_dict() == {1.0: 3, 2.0: 3, 3.0: 3, 4.0: 3}
    assert (big.loc[big["machineID"] % 2 == 1, "x"].isin([1.0, 3.0])).all()
    pd.testing.assert_frame_equal(cdt.scaled(rows, 1), rows)
    with pytest.raises(ValueError):
        cdt.scaled(rows, 0)


def test_tool_frame_predicts_from_the_medium_threshold_and_hides_immature_labels():
    rows = pd.DataFrame(
        {
            "machineID": [1, 1, 1],
            "datetime": pd.to_datetime(["2015-01-01"] * 3),
            "volt_mean_3h": [1.0, 2.0, 3.0],
            "p_any": [0.1, 0.2, 0.9],
            "failure_within_horizon": pd.array([True, pd.NA, True], dtype="boolean"),
            "label_mature": [True, False, False],
        }
    )
    out = cdt.tool_frame(rows, ["volt_mean_3h"])
    assert out["y_pred"].tolist() == [0, 1, 1]
    y = out["failure_within_horizon"].to_numpy()
    assert y[0] == 1.0 and np.isnan(y[1]) and np.isnan(y[2])  # immature: unknown even when a value is there
    assert list(out.columns) == ["machineID", "datetime", "volt_mean_3h", "p_any", "y_pred", "failure_within_horizon"]


def _metric(column, method, value, threshold=0.1):
    return {
        "id": column,
        "metric_name": f"ValueDrift(column={column})",
        "config": {
            "type": "evidently:metric_v2:ValueDrift",
            "column": column,
            "method": method,
            "threshold": threshold,
        },
        "value": value,
    }


def _test(params, status):
    return {"id": "drift", "name": "x", "status": status, "metric_config": {"metric_id": "m", "params": params}}


SNAPSHOT_METRICS = [
    {
        "id": "c",
        "metric_name": "DriftedColumnsCount(drift_share=0.5)",
        "config": {"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.5},
        "value": {"count": 2.0, "share": 2 / 3},
    },
    _metric("a", "Wasserstein distance (normed)", 1.06),
    _metric("b", "K-S p_value", 0.3, threshold=0.05),
    _metric("e", "Jensen-Shannon distance", 0.2),
]
SNAPSHOT_TESTS = [
    _test({"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.5}, "FAIL"),
    _test({"type": "evidently:metric_v2:ValueDrift", "column": "a"}, "FAIL"),
    _test({"type": "evidently:metric_v2:ValueDrift", "column": "b"}, "SUCCESS"),
    _test({"type": "evidently:metric_v2:ValueDrift", "column": "e"}, "FAIL"),
]


def test_evidently_columns_reads_tests_scores_and_verdicts_of_a_snapshot():
    per, dataset = cdt.evidently_columns(SNAPSHOT_METRICS, SNAPSHOT_TESTS)
    assert per.index.tolist() == ["a", "b", "e"]
    assert per.loc["b", "evidently_test"] == "K-S p_value"
    assert per.loc["b", "evidently_threshold"] == 0.05
    assert per.loc["a", "evidently_score"] == pytest.approx(1.06)
    assert per["evidently_drifted"].tolist() == [True, False, True]  # from the tests, not from the score
    assert dataset == {
        "drifted_count": 2.0,
        "drift_share": pytest.approx(2 / 3),
        "share_threshold": 0.5,
        "dataset_drift": True,
    }
    per, dataset = cdt.evidently_columns(SNAPSHOT_METRICS)  # without tests the verdicts are unknown
    assert per["evidently_drifted"].isna().all() and dataset["dataset_drift"] is None


def test_feature_comparison_keeps_every_pm_column_and_counts_agreement():
    drift_features = pd.DataFrame(
        {
            "feature": ["a", "b", "c", "e"],
            "method": ["continuous", "continuous", "continuous", "discrete"],
            "psi": [0.5, 0.3, 0.01, np.nan],
            "jensen_shannon": [0.3, 0.2, 0.01, 0.05],
            "drifted": [True, True, False, False],
        }
    )
    per, _ = cdt.evidently_columns(SNAPSHOT_METRICS, SNAPSHOT_TESTS)  # a: yes, b: no, e: yes; no c
    table = cdt.feature_comparison(drift_features, per)
    assert table["feature"].tolist() == ["a", "b", "c", "e"]  # pm_assets' order
    assert cdt.pm_statistic_columns(drift_features) == ["method", "psi", "jensen_shannon", "drifted"]
    assert table.loc[table["feature"] == "e", "method"].item() == "discrete"
    assert table["agree"].tolist() == [True, False, None, False]
    summary = cdt.drift_summary(table)
    assert summary == {
        "features": 4,
        "pm_drifted": 2,
        "evidently_drifted": 2,
        "both": 1,
        "only_pm": 1,
        "only_evidently": 1,
        "agree": 1,
        "compared": 3,
        "agreement": pytest.approx(1 / 3),
    }
    extra = pd.concat(
        [
            per,
            pd.DataFrame(
                {
                    "evidently_test": ["x"],
                    "evidently_score": [0.0],
                    "evidently_threshold": [0.1],
                    "evidently_drifted": [False],
                },
                index=["z"],
            ),
        ]
    )
    table = cdt.feature_comparison(drift_features, extra)
    assert table["feature"].tolist() == ["a", "b", "c", "e", "z"]  # a column only Evidently has comes last
    assert table["agree"].iloc[-1] is None


def test_nannyml_chunks_the_one_analysis_chunk_or_an_error():
    chunks = [
        {"chunk.period": "reference", "x.value": 1.0},
        {"chunk.period": "reference", "x.value": 2.0},
        {"chunk.period": "analysis", "x.value": 3.0},
    ]
    assert cdt.analysis_chunk(chunks)["x.value"] == 3.0
    assert cdt.reference_chunks(chunks, "x.value") == [1.0, 2.0]
    with pytest.raises(ValueError):
        cdt.analysis_chunk(chunks + [{"chunk.period": "analysis", "x.value": 4.0}])
    with pytest.raises(ValueError):
        cdt.analysis_chunk(chunks[:2])


def test_markdown_cells_and_ratios():
    assert cdt.fmt(np.nan) == "–" and cdt.fmt(None) == "–" and cdt.fmt(pd.NA) == "–"
    assert cdt.fmt(True) == "yes" and cdt.fmt(np.bool_(False)) == "no"
    assert cdt.fmt(np.int64(48000)) == "48000" and cdt.fmt(48000.0) == "48000" and cdt.fmt(0.123456) == "0.1235"
    assert cdt.fmt(1.5e-7) == "1.5e-07"
    table = cdt.markdown_table(["a", "b|c"], [[1, "x|y"], [np.nan, False]])
    assert table.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |", "| – | no |"]
    with pytest.raises(ValueError):
        cdt.markdown_table(["a"], [[1, 2]])
    assert "| features | 16: volt_mean_3h, volt_sd_3h … vibration_sd_24h |" in cdt.generic_table(
        {"features": cdt.telemetry_features(cdt.feature_names()), "components": 8}
    )
    assert cdt.speed_ratio(10.0, 0.5) == 20.0
    assert np.isnan(cdt.speed_ratio(10.0, 0.0)) and np.isnan(cdt.speed_ratio(None, 1.0))


def test_a_missing_tools_venv_is_reported_and_exits_non_zero_before_any_work(capsys):
    # not pytest's tmp_path: its session-end cleanup of old numbered folders can take a minute on a busy machine
    with tempfile.TemporaryDirectory() as folder:
        missing = str(Path(folder) / "nowhere" / "bin" / "python")
        assert "does not exist" in cdt.tools_problem(missing)
        assert cdt.tools_problem(sys.executable) is None
        assert cdt.main(["--tools-python", missing, "--machines", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "evidently==0.7.23" in err
