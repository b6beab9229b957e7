"""Monitoring a window: windows, drift tables, performance on mature labels, segments, weighted drift, alerts and
the traffic light, against slices, sklearn and scipy computed here.

The synthetic ``rows`` frame (8 machines, 80 days, 3-hourly; one machine daily) is built so that every branch shows:
a drifting feature, a constant one, integer ties, NaN values, a non-numeric column, a production week whose mature
labels are all negative, immature and unlabelled rows, a segment below ``min_segment_rows`` and one whose reference
scores are constant. A small bundle trained on the simulator serves the permutation importance tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.metrics import average_precision_score, roc_auc_score

from pm_assets.core.drift import (
    expected_average_precision,
    expected_failure_rate,
    expected_roc_auc,
    ks_statistic,
    psi,
)
from pm_assets.core.json_safe import to_json_safe
from pm_assets.core.monitoring import (
    ACTIONS,
    LIGHTS,
    Alert,
    MonitoringParams,
    MonitoringResult,
    PreparedRows,
    alerts,
    monitor,
    monitor_days,
    monitor_stored,
    monitoring_rows,
    stored_window_drift,
    traffic_light,
    windows_for,
)

END = pd.Timestamp("2015-03-25")
PARAMS = MonitoringParams()
PROD_START = END - pd.Timedelta(days=14)
REF_START = PROD_START - pd.Timedelta(days=60)
WEEK2 = PROD_START + pd.Timedelta(days=7)
FEATURES = ["stable", "shifted", "counts", "with_nan", "constant", "status", "not_in_rows"]
NUMERIC = ["stable", "shifted", "counts", "with_nan", "constant"]
MODELS = {1: "model1", 2: "model1", 3: "model1", 4: "model2", 5: "model2", 6: "model3", 7: "model3", 8: "model4"}


def build_rows(label_kind: str = "boolean", seed: int = 0) -> pd.DataFrame:
    """Rows as monitoring_rows() returns them, from 3 days before the reference window to 3 days after ``END``.

    ``label_kind``: "boolean" is what the pipeline produces (nullable boolean, missing when immature); "decoy" puts
    1.0 on every immature row, so including immature rows anywhere would show.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for machine in MODELS:
        times = pd.date_range(
            REF_START - pd.Timedelta(days=3),
            END + pd.Timedelta(days=3),
            freq="24h" if machine == 8 else "3h",
            inclusive="left",
        )
        frames.append(pd.DataFrame({"machineID": machine, "datetime": times}))
    rows = pd.concat(frames).sort_values("datetime", kind="stable").reset_index(drop=True)
    n = len(rows)
    rows["model"] = pd.Categorical([MODELS[m] for m in rows["machineID"]], categories=sorted(set(MODELS.values())))
    in_prod = (rows["datetime"] >= PROD_START).to_numpy()
    rows["stable"] = rng.normal(0, 1, n)
    rows["shifted"] = rng.normal(0, 1, n) + 1.5 * in_prod
    rows["counts"] = rng.poisson(3 + in_prod).astype(float)
    with_nan = rng.normal(0, 1, n)
    with_nan[rng.random(n) < 0.2] = np.nan
    rows["with_nan"] = with_nan
    rows["constant"] = 1.0
    rows["status"] = "ok"
    p = rng.beta(1.5, 4.0, n)
    in_ref = ((rows["datetime"] >= REF_START) & (rows["datetime"] < PROD_START)).to_numpy()
    p[in_ref & (rows["model"] == "model3").to_numpy()] = 0.2  # a segment whose reference scores are constant
    rows["p_any"] = p
    rows["scored"] = True
    y = rng.random(n) < p
    y[(rows["datetime"] >= WEEK2).to_numpy()] = False  # the second production week: one class among mature labels
    mature = y | (rows["datetime"] <= END - pd.Timedelta(days=2)).to_numpy()
    mature &= ~((rng.random(n) < 0.05) & ~y)  # scattered immature negatives everywhere
    unlabelled = rng.random(n) < 0.02  # snapshots with no label row at all (left merge): label_mature missing
    rows["label_mature"] = pd.Series(np.where(unlabelled, None, mature), dtype=object)
    if label_kind == "boolean":
        rows["failure_within_horizon"] = pd.array(np.where(mature & ~unlabelled, y, None), dtype="boolean")
    else:
        rows["failure_within_horizon"] = np.where(unlabelled, np.nan, np.where(mature, y.astype(float), 1.0))
    return rows


def window(rows: pd.DataFrame, start, end) -> pd.DataFrame:
    return rows[(rows["datetime"] >= start) & (rows["datetime"] < end)]


def mature_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["label_mature"].eq(True)]


def same(a, b, tol=0.0) -> bool:
    """Equal within ``tol``, NaN equal to NaN."""
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def per_value_psi(ref: pd.Series, prod: pd.Series, epsilon: float = 1e-4) -> float:
    """PSI on one bin per value, a naive loop over the values of either window."""
    r, q = ref.dropna(), prod.dropna()
    total = 0.0
    for v in sorted(set(r) | set(q)):
        a, b = max((r == v).mean(), epsilon), max((q == v).mean(), epsilon)
        total += (b - a) * math.log(b / a)
    return total


IMPORTANCE = pd.Series({"stable": 0.5, "shifted": 2.0, "counts": -0.3, "constant": 4.0, "elsewhere": 10.0})


@pytest.fixture(scope="module", params=["boolean", "decoy"])
def case(request):
    rows = build_rows(request.param)
    return rows, monitor(rows, END, FEATURES, PARAMS, IMPORTANCE)


# --- windows ------------------------------------------------------------------------------------------------


def test_windows_for_are_the_production_days_and_the_reference_days_before():
    win = windows_for("2015-03-25", PARAMS)
    assert win == {"reference": (REF_START, PROD_START), "production": (PROD_START, END)}
    other = windows_for(END, MonitoringParams(reference_days=10, production_days=3))
    assert other["production"] == (END - pd.Timedelta(days=3), END)
    assert other["reference"] == (END - pd.Timedelta(days=13), END - pd.Timedelta(days=3))


def test_result_windows_and_row_counts(case):
    rows, result = case
    ref, prod = window(rows, REF_START, PROD_START), window(rows, PROD_START, END)
    assert len(ref) > 0 and len(prod) > 0 and len(ref) + len(prod) < len(rows)  # rows outside both windows exist
    assert result.windows["reference"] == {"start": str(REF_START), "end": str(PROD_START)}
    assert result.windows["production"] == {"start": str(PROD_START), "end": str(END)}
    assert result.windows["rows"] == {
        "reference": len(ref),
        "production": len(prod),
        "reference_mature": len(mature_of(ref)),
        "production_mature": len(mature_of(prod)),
    }


# --- drift --------------------------------------------------------------------------------------------------


def test_feature_drift_equals_psi_and_ks_on_the_window_slices(case):
    rows, result = case
    ref, prod = window(rows, REF_START, PROD_START), window(rows, PROD_START, END)
    table = result.drift_features.set_index("feature")
    assert sorted(table.index) == sorted(NUMERIC)  # non-numeric and absent names are left out
    assert table["method"].to_dict() == {
        "stable": "continuous",
        "shifted": "continuous",
        "with_nan": "continuous",
        "counts": "discrete",
        "constant": "discrete",
    }  # <= 25 distinct values
    for f in NUMERIC:
        row = table.loc[f]
        expected = per_value_psi(ref[f], prod[f]) if row["method"] == "discrete" else psi(ref[f], prod[f])
        assert same(row["psi"], expected, tol=1e-12), f
        assert (row["reference_n"], row["production_n"]) == (ref[f].notna().sum(), prod[f].notna().sum())
        assert row["note"] == ""  # every measure defined here
        assert same(row["ks"], ks_statistic(ref[f], prod[f]))
        assert row["ks"] == pytest.approx(ks_2samp(ref[f].dropna(), prod[f].dropna()).statistic, abs=1e-12)
        assert row["reference_mean"] == pytest.approx(ref[f].dropna().mean(), abs=1e-12)
        assert row["production_mean"] == pytest.approx(prod[f].dropna().mean(), abs=1e-12)
        assert bool(row["drifted"]) == (not math.isnan(row["psi"]) and row["psi"] >= PARAMS.feature_psi_alert)
    assert table.loc["shifted", "drifted"] and not table.loc["stable", "drifted"]
    assert table.loc["counts", "drifted"]  # Poisson 3 -> 4: decile PSI would blur it, per value it shows
    # constant: one value in both windows, so no drift (decile PSI would be undefined)
    assert table.loc["constant", "psi"] == 0.0 and table.loc["constant", "ks"] == 0.0
    assert table.loc["constant", "jensen_shannon"] == 0.0 and table.loc["constant", "chi2_p_value"] == 1.0
    # sorted by PSI, largest first, NaN last
    values = result.drift_features["psi"].to_numpy()
    finite = values[~np.isnan(values)]
    assert (np.diff(finite) <= 0).all() and np.isnan(values[len(finite) :]).all()


def test_score_drift_and_failure_rates(case):
    rows, result = case
    ref, prod = window(rows, REF_START, PROD_START), window(rows, PROD_START, END)
    assert len(result.drift_scores) == 1
    row = result.drift_scores.iloc[0]
    assert row["score"] == "p_any"
    assert same(row["psi"], psi(ref["p_any"], prod["p_any"]))
    assert row["ks"] == pytest.approx(ks_2samp(ref["p_any"], prod["p_any"]).statistic, abs=1e-12)
    assert row["reference_mean"] == pytest.approx(ref["p_any"].mean(), abs=1e-12)
    assert row["production_mean"] == pytest.approx(prod["p_any"].mean(), abs=1e-12)
    for name, frame in (("reference", ref), ("production", prod)):
        y = mature_of(frame)["failure_within_horizon"].astype(float)
        assert y.notna().all()
        assert row[f"{name}_failure_rate"] == pytest.approx(y.mean(), abs=1e-12)


# --- performance --------------------------------------------------------------------------------------------


def test_performance_rows_and_metrics_on_mature_labels(case):
    rows, result = case
    periods = {
        "reference": (REF_START, PROD_START),
        "production": (PROD_START, END),
        f"week of {PROD_START.date()}": (PROD_START, WEEK2),
        f"week of {WEEK2.date()}": (WEEK2, END),
    }
    perf = result.performance
    assert perf["period"].tolist() == list(periods)
    for _, row in perf.iterrows():
        start, end = periods[row["period"]]
        frame = window(rows, start, end)
        labelled = mature_of(frame)
        immature = frame[~frame["label_mature"].eq(True)]
        y = labelled["failure_within_horizon"].astype(float).to_numpy()
        p = labelled["p_any"].to_numpy()
        assert (row["start"], row["end"]) == (str(start), str(end))
        assert (row["rows"], row["mature_rows"], row["immature_rows"]) == (len(frame), len(labelled), len(immature))
        assert row["rows"] == row["mature_rows"] + row["immature_rows"]
        assert row["failure_rate"] == pytest.approx(y.mean(), abs=1e-12)
        if len(np.unique(y)) == 2:
            assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
            assert row["average_precision"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        else:
            assert math.isnan(row["roc_auc"]) and math.isnan(row["average_precision"])
        assert same(row["estimated_roc_auc"], expected_roc_auc(p), 1e-12)
        assert same(row["estimated_average_precision"], expected_average_precision(p), 1e-12)
        assert same(row["estimated_failure_rate"], expected_failure_rate(p), 1e-12)
        q = immature["p_any"].to_numpy()
        assert same(row["immature_estimated_roc_auc"], expected_roc_auc(q), 1e-12)
        assert same(row["immature_estimated_average_precision"], expected_average_precision(q), 1e-12)
        assert same(row["immature_estimated_failure_rate"], expected_failure_rate(q), 1e-12)
    week2 = perf.set_index("period").loc[f"week of {WEEK2.date()}"]
    assert week2["mature_rows"] > 0 and week2["failure_rate"] == 0.0  # the fixture's one-class week
    assert math.isnan(week2["roc_auc"]) and math.isnan(week2["average_precision"])
    assert week2["immature_rows"] > 0 and not math.isnan(week2["immature_estimated_failure_rate"])


def test_immature_rows_would_change_the_metrics_if_included():
    """With decoy labels (1.0 on immature rows) the realized metrics equal those on mature rows only, and would
    visibly differ had the immature rows been used: the exclusion is real, not an artefact of missing labels."""
    rows = build_rows("decoy")
    result = monitor(rows, END, FEATURES, PARAMS)
    prod = window(rows, PROD_START, END)
    everything = prod[prod["failure_within_horizon"].notna()]
    wrong_rate = everything["failure_within_horizon"].mean()
    row = result.performance.set_index("period").loc["production"]
    assert abs(row["failure_rate"] - wrong_rate) > 0.05
    assert row["failure_rate"] == pytest.approx(mature_of(prod)["failure_within_horizon"].mean(), abs=1e-12)


# --- segments -----------------------------------------------------------------------------------------------


def test_segments_score_psi_and_skips(case):
    rows, result = case
    ref, prod = window(rows, REF_START, PROD_START), window(rows, PROD_START, END)
    seg = result.drift_segments.set_index("segment")
    assert list(seg.index) == [f"model={m}" for m in ("model1", "model2", "model3", "model4")]
    for model in ("model1", "model2", "model3", "model4"):
        r, p = ref[ref["model"] == model], prod[prod["model"] == model]
        row = seg.loc[f"model={model}"]
        assert (row["reference_rows"], row["production_rows"]) == (len(r), len(p))
        if min(len(r), len(p)) < PARAMS.min_segment_rows:
            assert model == "model4"
            assert math.isnan(row["score_psi"])
            assert "skipped" in row["skipped_reason"] and str(PARAMS.min_segment_rows) in row["skipped_reason"]
        else:
            assert same(row["score_psi"], psi(r["p_any"], p["p_any"]))
            if model == "model3":  # constant reference scores
                assert math.isnan(row["score_psi"]) and "undefined" in row["skipped_reason"]
            else:
                assert np.isfinite(row["score_psi"]) and row["skipped_reason"] == ""


def test_segment_skip_threshold_is_strictly_below_min_segment_rows():
    rows = build_rows()
    ref, prod = window(rows, REF_START, PROD_START), window(rows, PROD_START, END)
    smallest = min((ref["model"] == "model2").sum(), (prod["model"] == "model2").sum())
    at = monitor(rows, END, FEATURES, replace(PARAMS, min_segment_rows=int(smallest))).drift_segments
    above = monitor(rows, END, FEATURES, replace(PARAMS, min_segment_rows=int(smallest) + 1)).drift_segments
    at, above = at.set_index("segment").loc["model=model2"], above.set_index("segment").loc["model=model2"]
    assert at["skipped_reason"] == "" and np.isfinite(at["score_psi"])
    assert above["skipped_reason"].startswith("skipped") and math.isnan(above["score_psi"])


# --- importance-weighted drift ------------------------------------------------------------------------------


def test_weighted_drift_is_normalised_importance_times_psi(case):
    _, result = case
    psi_of = result.drift_features.set_index("feature")["psi"]
    clipped = {f: max(float(IMPORTANCE.get(f, 0.0)), 0.0) for f in NUMERIC}
    top = max(clipped.values())
    assert top == 4.0  # "elsewhere" (not a feature) does not set the scale
    weighted = result.drift_weighted.set_index("feature")
    assert sorted(weighted.index) == sorted(NUMERIC)
    for f in NUMERIC:
        assert weighted.loc[f, "importance"] == pytest.approx(clipped[f] / top, abs=1e-15)
        assert same(weighted.loc[f, "psi"], psi_of[f])
        assert same(weighted.loc[f, "weighted_drift"], clipped[f] / top * psi_of[f], 1e-15)
    assert weighted.loc["counts", "importance"] == 0.0 and weighted.loc["with_nan", "importance"] == 0.0
    values = result.drift_weighted["weighted_drift"].to_numpy()
    finite = values[~np.isnan(values)]
    assert (np.diff(finite) <= 0).all() and np.isnan(values[len(finite) :]).all()


def test_weighted_drift_without_importance_or_with_no_positive_importance():
    rows = build_rows()
    none = monitor(rows, END, FEATURES, PARAMS, None).drift_weighted
    assert none["importance"].isna().all() and none["weighted_drift"].isna().all()
    negative = monitor(rows, END, FEATURES, PARAMS, pd.Series(-1.0, index=NUMERIC)).drift_weighted.set_index("feature")
    assert (negative["importance"] == 0.0).all()
    for f in NUMERIC:
        assert same(negative.loc[f, "weighted_drift"], 0.0 * negative.loc[f, "psi"])


@pytest.mark.parametrize("importance", [None, IMPORTANCE])
def test_monitor_with_no_numeric_feature(importance):
    """Only non-numeric or absent names: empty feature tables, with or without importance (this used to raise on
    the max of an empty importance array)."""
    result = monitor(build_rows(), END, ["status", "not_in_rows"], PARAMS, importance)
    assert result.drift_features.empty and result.drift_weighted.empty
    named = {a.name: a for a in result.alerts}
    assert named["feature_drift"].value == 0.0 and not named["feature_drift"].fired
    json.dumps(to_json_safe(result.summary()), allow_nan=False)


def test_monitor_on_a_window_without_rows_is_green_and_undefined():
    result = monitor(build_rows(), pd.Timestamp("2014-01-01"), FEATURES, PARAMS, IMPORTANCE)
    assert result.windows["rows"] == {"reference": 0, "production": 0, "reference_mature": 0, "production_mature": 0}
    assert result.drift_features["psi"].isna().all() and result.drift_features["ks"].isna().all()
    assert result.performance[["roc_auc", "average_precision", "failure_rate"]].isna().all().all()
    assert result.alert_count == 0 and result.light == "green"
    assert result.drift_segments.empty
    json.dumps(to_json_safe(result.summary()), allow_nan=False)


# --- alerts and traffic light -------------------------------------------------------------------------------


def _features_frame(psis) -> pd.DataFrame:
    return pd.DataFrame({"feature": [f"f{i}" for i in range(len(psis))], "psi": psis})


QUIET = dict(
    score=0.0,
    features=[0.0],
    ref_ap=0.5,
    prod_ap=0.5,
    ref_rate=0.1,
    prod_rate=0.1,
    ref_band=float("nan"),
    prod_band=float("nan"),
    ref_mature=float("nan"),
    prod_mature=float("nan"),
    multivariate=None,
)
ABSOLUTE = replace(PARAMS, label_drift_rule="absolute")


def _alerts(params=PARAMS, **kw):
    v = QUIET | kw
    perf = [
        pd.Series(
            {
                "average_precision": v[f"{w}_ap"],
                "failure_rate": v[f"{w}_rate"],
                "average_precision_band": v[f"{w}_band"],
                "mature_rows": v[f"{w}_mature"],
            }
        )
        for w in ("ref", "prod")
    ]
    return {
        a.name: a
        for a in alerts(
            pd.Series({"psi": v["score"]}), _features_frame(v["features"]), *perf, params, v["multivariate"]
        )
    }


def test_alert_names_and_quiet_inputs():
    fired = _alerts()
    assert list(fired) == ["score_drift", "feature_drift", "performance_decay", "label_drift"]
    assert not any(a.fired for a in fired.values())
    for a in fired.values():
        assert isinstance(a.fired, bool)


def test_score_drift_fires_at_its_threshold():
    t = PARAMS.score_psi_alert
    assert _alerts(score=t)["score_drift"].fired
    assert not _alerts(score=np.nextafter(t, 0))["score_drift"].fired
    assert _alerts(score=t)["score_drift"].value == t and _alerts(score=t)["score_drift"].threshold == t
    nan = _alerts(score=float("nan"))["score_drift"]
    assert not nan.fired and nan.value is None


def test_feature_drift_fires_from_min_drifted_features_at_the_psi_threshold():
    t, k = PARAMS.feature_psi_alert, PARAMS.min_drifted_features
    at = _alerts(features=[t] * k + [0.01, float("nan")])["feature_drift"]
    assert at.fired and at.value == float(k) and at.threshold == float(k)
    # one feature just below the PSI threshold: k - 1 drifted features, no alert
    below = _alerts(features=[t] * (k - 1) + [np.nextafter(t, 0), float("nan")])["feature_drift"]
    assert not below.fired and below.value == float(k - 1)
    assert not _alerts(features=[float("nan")] * 20)["feature_drift"].fired


def test_performance_decay_fires_at_its_threshold():
    t = PARAMS.ap_drop_alert
    assert _alerts(ref_ap=t, prod_ap=0.0)["performance_decay"].fired
    assert not _alerts(ref_ap=np.nextafter(t, 0), prod_ap=0.0)["performance_decay"].fired
    dyadic = replace(PARAMS, ap_drop_alert=0.0625)  # exact in binary: 0.5625 - 0.5 == 0.0625
    assert _alerts(dyadic, ref_ap=0.5625, prod_ap=0.5)["performance_decay"].fired
    assert not _alerts(dyadic, ref_ap=0.5625, prod_ap=0.5 + 2**-30)["performance_decay"].fired
    assert not _alerts(ref_ap=0.5, prod_ap=0.9)["performance_decay"].fired  # an improvement is no decay
    undefined = _alerts(prod_ap=float("nan"))["performance_decay"]
    assert not undefined.fired and undefined.value is None and "undefined" in undefined.reason


@pytest.mark.parametrize("direction", [1, -1])
def test_absolute_label_drift_fires_at_its_threshold_in_both_directions(direction):
    t = ABSOLUTE.failure_rate_change_alert
    base = 0.25
    exact = (
        _alerts(ABSOLUTE, ref_rate=0.0, prod_rate=t) if direction == 1 else _alerts(ABSOLUTE, ref_rate=t, prod_rate=0.0)
    )
    assert exact["label_drift"].fired and exact["label_drift"].value == t
    just_below = np.nextafter(t, 0)
    below = (
        _alerts(ABSOLUTE, ref_rate=0.0, prod_rate=just_below)
        if direction == 1
        else _alerts(ABSOLUTE, ref_rate=just_below, prod_rate=0.0)
    )
    assert not below["label_drift"].fired
    dyadic = replace(ABSOLUTE, failure_rate_change_alert=0.125)
    assert _alerts(dyadic, ref_rate=base, prod_rate=base + direction * 0.125)["label_drift"].fired
    assert not _alerts(dyadic, ref_rate=base, prod_rate=base + direction * (0.125 - 2**-30))["label_drift"].fired
    undefined = _alerts(ABSOLUTE, prod_rate=float("nan"))["label_drift"]
    assert not undefined.fired and undefined.value is None and "undefined" in undefined.reason


@pytest.mark.parametrize("direction", [1, -1])
def test_relative_label_drift_fires_at_its_share_of_the_reference_rate(direction):
    """The default rule: |production / reference - 1| >= 50 %. On a 2.5 % base rate a doubling fires, where the
    absolute rule (10 points) would need a rate of 12.5 %."""
    t = PARAMS.failure_rate_relative_alert
    base = 0.25  # dyadic: 0.25 * 1.5 and 0.25 * 0.5 are exact
    assert _alerts(ref_rate=base, prod_rate=base * (1 + direction * t))["label_drift"].fired
    assert not _alerts(ref_rate=base, prod_rate=base * (1 + direction * t) - direction * 2**-30)["label_drift"].fired
    doubled = _alerts(ref_rate=0.025, prod_rate=0.05)["label_drift"]
    assert doubled.fired and doubled.value == pytest.approx(1.0) and "100%" in doubled.reason
    assert not _alerts(ABSOLUTE, ref_rate=0.025, prod_rate=0.05)["label_drift"].fired
    for ref_rate, prod_rate in ((0.0, 0.1), (float("nan"), 0.1), (0.1, float("nan"))):
        undefined = _alerts(ref_rate=ref_rate, prod_rate=prod_rate)["label_drift"]
        assert not undefined.fired and undefined.value is None and "undefined" in undefined.reason


def test_relative_label_drift_needs_a_significant_change_in_failures():
    """On a small fleet a 64 % rise can be chance: 27 failures in the reference against 10 in production (6.3
    expected) is p = 0.17, no alert; the same rates on ten times the rows are significant."""

    def counted(rows):
        return dict(ref_rate=0.0149, prod_rate=0.0244, ref_mature=14_400 * rows, prod_mature=3_360 * rows)

    small, large = (_alerts(**counted(rows))["label_drift"] for rows in (1, 10))
    assert not small.fired and "p = 0.17" in small.reason
    assert large.fired and small.value == large.value == pytest.approx(0.0244 / 0.0149 - 1)


def test_performance_decay_waits_for_the_drop_to_exceed_its_band():
    """A drop past the threshold but within the sampling band of the difference (sqrt(ref^2 + prod^2) of the
    bands) does not fire; past both it does; an undefined band does not hold the alert back."""
    t = PARAMS.ap_drop_alert
    drop = dict(ref_ap=0.5, prod_ap=0.5 - 2 * t)
    assert _alerts(**drop)["performance_decay"].fired
    assert not _alerts(**drop, ref_band=0.08, prod_band=0.06)["performance_decay"].fired  # band 0.1 = the drop
    assert _alerts(**drop, ref_band=0.06, prod_band=0.06)["performance_decay"].fired  # band 0.085 < 0.1
    assert "+-0.100" in _alerts(**drop, ref_band=0.08, prod_band=0.06)["performance_decay"].reason


def test_multivariate_drift_fires_outside_the_error_band_or_past_the_correlation_threshold():
    def mv(error, change=0.1):
        return {
            "production_error": error,
            "lower_threshold": 1.0,
            "upper_threshold": 2.0,
            "correlation_change": change,
            "correlation_threshold": 0.2,
            "correlation_pair": "a ~ b",
        }

    assert "multivariate_drift" not in _alerts()
    for error, change, fired in (
        (2.5, 0.1, True),
        (0.5, 0.1, True),
        (2.0, 0.1, False),
        (1.0, 0.1, False),
        (1.5, 0.25, True),
        (1.5, 0.2, False),
    ):
        alert = _alerts(multivariate=mv(error, change))["multivariate_drift"]
        assert alert.fired is fired, (error, change)
        assert alert.value == change and alert.threshold == 0.2 and "a ~ b" in alert.reason
    undefined = _alerts(multivariate=mv(None, None))["multivariate_drift"]
    assert not undefined.fired and "undefined" in undefined.reason


def test_each_alert_reason_states_its_value_and_threshold():
    everything = _alerts(
        score=0.3125,
        features=[0.5] * 9,
        ref_ap=0.75,
        prod_ap=0.5,
        ref_rate=0.0625,
        prod_rate=0.25,
        multivariate={
            "production_error": 2.5,
            "lower_threshold": 1.0,
            "upper_threshold": 2.0,
            "correlation_change": 0.5,
            "correlation_threshold": 0.2,
        },
    )
    assert all(a.fired for a in everything.values())
    for a in everything.values():
        assert f"{a.threshold:g}" in a.reason or f"{a.threshold:.3f}" in a.reason or f"{a.threshold:.0%}" in a.reason
        assert any(
            text in a.reason for text in (f"{a.value:.3f}", f"{a.value:.4f}", f"{a.value:g}", f"{a.value:.0%}")
        ), a.reason
    assert "f0" in everything["feature_drift"].reason  # names the drifted features


@pytest.mark.parametrize("count, light", [(0, "green"), (1, "yellow"), (2, "yellow"), (3, "red"), (4, "red")])
def test_traffic_light_and_retrain_recommendation(count, light):
    assert traffic_light(count) == light
    assert light in LIGHTS
    result = MonitoringResult(
        windows={
            "reference": {"start": "a", "end": "b"},
            "production": {"start": "b", "end": "c"},
            "rows": {"reference": 3, "production": 2},
        },
        drift_features=pd.DataFrame(),
        drift_scores=pd.DataFrame(),
        performance=pd.DataFrame(),
        drift_segments=pd.DataFrame(),
        drift_weighted=pd.DataFrame(
            {
                "feature": ["a", "b"],
                "psi": [0.3, float("nan")],
                "importance": [1.0, 0.5],
                "weighted_drift": [0.3, float("nan")],
            }
        ),
        alerts=[Alert(f"rule{i}", i < count, 0.0, 0.0, "") for i in range(4)],
    )
    assert result.alert_count == count and result.light == light
    summary = result.summary()
    assert summary["traffic_light"] == light and summary["alert_count"] == count
    assert summary["retrain_recommended"] is (count >= 2)
    assert summary["action"] == ACTIONS[light]
    assert summary["rows"] == {"reference": 3, "production": 2}
    json.dumps(to_json_safe(summary), allow_nan=False)


def test_monitor_alerts_agree_with_its_tables(case):
    _, result = case
    named = {a.name: a for a in result.alerts}
    score_psi = result.drift_scores["psi"].iloc[0]
    assert named["score_drift"].fired == bool(score_psi >= PARAMS.score_psi_alert)
    n_drifted = int((result.drift_features["psi"] >= PARAMS.feature_psi_alert).sum())
    assert named["feature_drift"].value == n_drifted == result.drift_features["drifted"].sum()
    assert named["feature_drift"].fired == (n_drifted >= PARAMS.min_drifted_features)
    perf = result.performance.set_index("period")
    drop = perf.loc["reference", "average_precision"] - perf.loc["production", "average_precision"]
    band = math.hypot(perf.loc["reference", "average_precision_band"], perf.loc["production", "average_precision_band"])
    assert named["performance_decay"].value == pytest.approx(drop, abs=1e-15)
    assert named["performance_decay"].fired == bool(drop >= PARAMS.ap_drop_alert and drop > band)
    rates = perf.loc["reference", "failure_rate"], perf.loc["production", "failure_rate"]
    change = abs(rates[1] / rates[0] - 1)
    assert named["label_drift"].value == pytest.approx(change, abs=1e-15)
    k = PARAMS.snapshots_per_failure
    counts = [
        (perf.loc[w, "failure_rate"] * perf.loc[w, "mature_rows"] / k, perf.loc[w, "mature_rows"] / k)
        for w in ("reference", "production")
    ]
    table = [[x, n - x] for x, n in counts]
    p_value = chi2_contingency(table, correction=False).pvalue  # the z test squared is this chi-square
    assert named["label_drift"].fired == bool(
        change >= PARAMS.failure_rate_relative_alert and p_value < PARAMS.label_drift_alpha
    )
    assert f"p = {p_value:.2g}" in named["label_drift"].reason
    assert result.alert_count == sum(a.fired for a in result.alerts)
    assert result.light == traffic_light(result.alert_count)


def test_monitor_days_equals_monitor_on_each_day():
    """The ranged path (arrays extracted once) gives exactly what one call per day gives."""
    rows = build_rows()
    ends = [END - pd.Timedelta(days=d) for d in (5, 4, 3, 2, 1, 0)]
    importance = pd.Series({"stable": 0.1, "shifted": 2.0, "counts": 0.5})
    threaded = list(monitor_days(rows, ends, FEATURES, PARAMS, importance, threads=2))
    for end, ranged, parallel in zip(
        ends, monitor_days(rows, ends, FEATURES, PARAMS, importance), threaded, strict=True
    ):
        pd.testing.assert_frame_equal(parallel.drift_features, ranged.drift_features, check_exact=True)
        pd.testing.assert_frame_equal(parallel.performance, ranged.performance, check_exact=True)
        assert parallel.windows == ranged.windows
        single = monitor(rows, end, FEATURES, PARAMS, importance)
        for table in ("drift_features", "drift_scores", "performance", "drift_segments", "drift_weighted"):
            pd.testing.assert_frame_equal(getattr(ranged, table), getattr(single, table), check_exact=True)
        assert json.dumps(to_json_safe(ranged.summary())) == json.dumps(to_json_safe(single.summary()))  # NaN-safe
        pd.testing.assert_frame_equal(ranged.production_rows, single.production_rows)


@pytest.mark.parametrize("group", [1, 4])
def test_the_stored_path_equals_monitor_days(group):
    """The asset's path: drift from stored columns read ``group`` at a time (rows in stored order, machine by
    machine within a day, unscored rows among them), the rest from monitoring_rows. Every table equals
    monitor_days on the same rows, exactly."""
    rows = build_rows()
    stored = rows.sample(frac=1.0, random_state=1).sort_values(["datetime"], kind="stable")
    stored = stored.assign(day=stored["datetime"].dt.floor("D")).sort_values(["day", "machineID"], kind="stable")
    stored = stored.drop(columns="day").reset_index(drop=True)
    stored.loc[stored.index % 17 == 3, "scored"] = False  # unscored rows are not monitored
    keys = ["machineID", "datetime"]
    features = stored[keys + ["model", "stable", "shifted", "counts", "with_nan", "constant", "status"]]
    scores = stored[keys + ["p_any", "scored"]]
    labels = stored[keys + ["failure_within_horizon", "label_mature"]]
    reads = []

    def read_features(columns):
        reads.append(columns)
        return features[[c for c in dict.fromkeys(keys + list(columns)) if c in features]]

    ends = [END - pd.Timedelta(days=d) for d in (8, 6, 4, 2, 1, 0)]  # more than SORTED_DATES: the binned path
    params = replace(PARAMS, multivariate_features=("stable", "shifted", "with_nan", "counts"))
    drift = stored_window_drift(read_features, lambda columns: scores[columns], FEATURES, ends, params, group=group)
    assert max(len(c) for c in reads[1:]) <= group  # a few feature columns at a time
    in_memory = list(monitor_days(monitoring_rows(features, scores, labels), ends, FEATURES, params, IMPORTANCE))
    from_storage = monitor_stored(
        monitoring_rows(features, scores, labels), ends, range(len(ends)), drift, params, IMPORTANCE
    )
    for expected, got in zip(in_memory, from_storage, strict=True):
        for table in ("drift_features", "drift_scores", "performance", "drift_segments", "drift_weighted"):
            pd.testing.assert_frame_equal(getattr(got, table), getattr(expected, table), check_exact=True)
        assert [a.fired for a in got.alerts] == [a.fired for a in expected.alerts]
        assert got.multivariate == expected.multivariate and got.multivariate["production_rows"] > 0


def test_summary_is_json_serialisable(case):
    _, result = case
    summary = result.summary(top=3)
    text = json.dumps(to_json_safe(summary), allow_nan=False)
    back = json.loads(text)
    assert back["traffic_light"] == result.light
    assert back["retrain_recommended"] == (result.alert_count >= 2)
    assert len(back["top_weighted_drift"]) == 3
    assert set(back["top_weighted_drift"][0]) == {"feature", "weighted_drift", "psi", "importance"}
    assert [a["name"] for a in back["alerts"]] == [a.name for a in result.alerts]
    for a in back["alerts"]:
        assert set(a) == {"name", "fired", "value", "threshold", "reason"} and a["reason"]
    assert back["windows"]["production"]["end"] == str(END)


# --- monitoring_rows ----------------------------------------------------------------------------------------


def test_monitoring_rows_keeps_scored_rows_sorted_with_their_labels():
    times = pd.to_datetime(["2015-01-03", "2015-01-01", "2015-01-02", "2015-01-01"])
    features = pd.DataFrame({"machineID": [1, 1, 1, 2], "datetime": times, "x": [3.0, 1.0, 2.0, 4.0]})
    scores = pd.DataFrame(
        {
            "machineID": [1, 1, 1, 2],
            "datetime": times,
            "p_any": [0.3, 0.1, 0.2, 0.4],
            "scored": [True, True, False, True],
            "other": 0,
        }
    )
    labels = pd.DataFrame(
        {
            "machineID": [1, 2],
            "datetime": times[[1, 3]],
            "failure_within_horizon": pd.array([True, False], dtype="boolean"),
            "label_mature": [True, True],
        }
    )
    out = monitoring_rows(features, scores, labels)
    assert out["x"].tolist() == [1.0, 4.0, 3.0]  # the unscored row is gone; time order, ties in input order
    assert out["p_any"].tolist() == [0.1, 0.4, 0.3]
    assert out["label_mature"].eq(True).tolist() == [True, True, False]
    assert out["failure_within_horizon"].isna().tolist() == [False, False, True]
    assert "other" not in out and list(out.index) == [0, 1, 2]


def test_monitoring_rows_of_aligned_frames_equal_the_merge_of_the_same_frames():
    """Features, scores and labels of the same stored partitions are aligned row for row: the rows built without
    the merge are the merge's, dtypes included; shuffled frames still go through the merge."""
    rows = build_rows()
    keys = ["machineID", "datetime"]
    features = rows.drop(columns=["p_any", "scored", "failure_within_horizon", "label_mature"])
    scores = rows[keys + ["p_any", "scored"]].copy()
    scores.loc[scores.index[::7], "scored"] = False
    labels = rows[keys + ["failure_within_horizon", "label_mature"]]
    merged = features.merge(scores, on=keys).merge(labels, on=keys, how="left")
    merged = merged[merged["scored"]].sort_values("datetime", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(monitoring_rows(features, scores, labels), merged, check_exact=True)
    shuffled = scores.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(monitoring_rows(features, shuffled, labels), merged, check_exact=True)


def test_rows_in_score_order_equal_a_stable_sort_of_each_window():
    rng = np.random.default_rng(3)
    n = 2_000
    p = np.round(rng.random(n), 2)  # many ties
    p[rng.random(n) < 0.01] = np.nan
    rows = pd.DataFrame(
        {
            "datetime": pd.date_range("2015-01-01", periods=n, freq="h"),
            "p_any": p,
            "failure_within_horizon": (rng.random(n) < 0.1).astype(float),
            "label_mature": rng.random(n) < 0.8,
        }
    )
    data = PreparedRows.of(rows)
    for span in (slice(0, n), slice(17, 1_203), slice(500, 501), slice(900, 900)):
        mature, immature = data.sorted_by_score(span)
        in_span = data.mature[span]
        expected = np.flatnonzero(in_span)[np.argsort(p[span][in_span], kind="stable")] + span.start
        assert np.array_equal(mature, expected)
        expected = np.flatnonzero(~in_span)[np.argsort(p[span][~in_span], kind="stable")] + span.start
        assert np.array_equal(immature, expected)
        # from a larger span's rows in score order: the same
        larger = data.in_score_order(slice(max(0, span.start - 40), span.stop + 40))
        for got, want in zip(data.sorted_by_score(span, larger), (mature, immature), strict=True):
            assert np.array_equal(got, want)
