"""Monitoring a window: drift, performance decay, alerts and the traffic light. No Dagster import.

For a monitoring date D (the end of a daily partition): the production window is the ``production_days`` days
ending at D, the reference window the ``reference_days`` days right before it. Only usable, scored snapshots are
compared; performance and failure rates use mature labels only. The alert rules and their defaults are those of
the monitoring notebook this project grew from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from pm_assets.core.drift import (
    expected_average_precision,
    expected_failure_rate,
    expected_roc_auc,
    ks_statistic,
    psi,
)

LIGHTS = ("green", "yellow", "red")
ACTIONS = {
    "green": "No action: the model and its inputs are stable.",
    "yellow": "Investigate the alerts; retraining is recommended (two alerts).",
    "red": "Retrain now and review the data pipeline: three or more alerts.",
}


@dataclass(frozen=True)
class MonitoringParams:
    reference_days: int = 60
    production_days: int = 14
    score_psi_alert: float = 0.25
    feature_psi_alert: float = 0.20
    min_drifted_features: int = 8
    ap_drop_alert: float = 0.05
    failure_rate_change_alert: float = 0.10  # absolute, in share of snapshots (0.10 = 10 percentage points)
    min_segment_rows: int = 200
    importance_sample: int = 2000
    importance_repeats: int = 3
    seed: int = 0


@dataclass
class Alert:
    name: str
    fired: bool
    value: float | None
    threshold: float
    reason: str


@dataclass
class MonitoringResult:
    windows: dict
    drift_features: pd.DataFrame
    drift_scores: pd.DataFrame
    performance: pd.DataFrame
    drift_segments: pd.DataFrame
    drift_weighted: pd.DataFrame
    alerts: list[Alert] = field(default_factory=list)
    reference_rows: pd.DataFrame | None = None  # the windows' rows, for histograms
    production_rows: pd.DataFrame | None = None

    @property
    def alert_count(self) -> int:
        return sum(a.fired for a in self.alerts)

    @property
    def light(self) -> str:
        return traffic_light(self.alert_count)

    def summary(self, top: int = 10) -> dict:
        top_weighted = self.drift_weighted.head(top)[["feature", "weighted_drift", "psi", "importance"]]
        return {
            "windows": self.windows,
            "rows": {k: int(v) for k, v in self.windows.get("rows", {}).items()},
            "alerts": [asdict(a) for a in self.alerts],
            "alert_count": self.alert_count,
            "traffic_light": self.light,
            "action": ACTIONS[self.light],
            "retrain_recommended": self.alert_count >= 2,
            "top_weighted_drift": top_weighted.to_dict("records"),
        }


def traffic_light(alert_count: int) -> str:
    return "green" if alert_count <= 1 else "yellow" if alert_count == 2 else "red"


def windows_for(end, params: MonitoringParams) -> dict:
    end = pd.Timestamp(end)
    production_start = end - pd.Timedelta(days=params.production_days)
    reference_start = production_start - pd.Timedelta(days=params.reference_days)
    return {"reference": (reference_start, production_start), "production": (production_start, end)}


def _auc_ap(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if len(y) == 0 or len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    return float(roc_auc_score(y, p)), float(average_precision_score(y, p))


def monitoring_rows(features: pd.DataFrame, scores: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Scored snapshots with their features, p_any and (possibly immature) labels, sorted by time."""
    keys = ["machineID", "datetime"]
    rows = features.merge(scores[keys + ["p_any", "scored"]], on=keys).merge(
        labels[keys + ["failure_within_horizon", "label_mature"]], on=keys, how="left")
    return rows[rows["scored"]].sort_values("datetime", kind="stable").reset_index(drop=True)


def monitor(rows: pd.DataFrame, end, feature_names: list[str], params: MonitoringParams = MonitoringParams(),
            importance: pd.Series | None = None) -> MonitoringResult:
    """Everything monitored for the window ending at ``end``, from :func:`monitoring_rows`.

    ``importance``: permutation importance per feature (any scale; normalised here); None skips weighting.
    """
    win = windows_for(end, params)
    times = rows["datetime"].to_numpy()
    in_window = {}
    for name, (a, b) in win.items():  # rows are sorted by time: two binary searches per window
        lo, hi = np.searchsorted(times, np.datetime64(a), "left"), np.searchsorted(times, np.datetime64(b), "left")
        in_window[name] = rows.iloc[lo:hi]
    ref, prod = in_window["reference"], in_window["production"]

    numeric = [f for f in feature_names if f in rows and pd.api.types.is_numeric_dtype(rows[f])]
    drift_features = pd.DataFrame({
        "feature": numeric,
        "psi": [psi(ref[f], prod[f]) for f in numeric],
        "ks": [ks_statistic(ref[f], prod[f]) for f in numeric],
        "reference_mean": [float(ref[f].mean()) for f in numeric],
        "production_mean": [float(prod[f].mean()) for f in numeric],
    })
    drift_features["drifted"] = drift_features["psi"] >= params.feature_psi_alert
    drift_features = drift_features.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)

    mature = {name: w[w["label_mature"].fillna(False).astype(bool)] for name, w in in_window.items()}
    rate = {name: float(m["failure_within_horizon"].astype(float).mean()) if len(m) else float("nan") for name, m in mature.items()}
    drift_scores = pd.DataFrame([{
        "score": "p_any", "psi": psi(ref["p_any"], prod["p_any"]), "ks": ks_statistic(ref["p_any"], prod["p_any"]),
        "reference_mean": float(ref["p_any"].mean()), "production_mean": float(prod["p_any"].mean()),
        "reference_failure_rate": rate["reference"], "production_failure_rate": rate["production"],
    }])

    performance = _performance(mature, in_window, win, params)
    drift_segments = _segments(ref, prod, params)
    drift_weighted = _weighted(drift_features, importance)

    ref_perf = performance[performance["period"] == "reference"].iloc[0]
    prod_perf = performance[performance["period"] == "production"].iloc[0]
    result = MonitoringResult(
        windows={name: {"start": str(a), "end": str(b)} for name, (a, b) in win.items()}
        | {"rows": {"reference": len(ref), "production": len(prod), "reference_mature": len(mature["reference"]),
                    "production_mature": len(mature["production"])}},
        drift_features=drift_features, drift_scores=drift_scores, performance=performance,
        drift_segments=drift_segments, drift_weighted=drift_weighted, reference_rows=ref, production_rows=prod,
    )
    result.alerts = alerts(drift_scores.iloc[0], drift_features, ref_perf, prod_perf, params)
    return result


def _performance(mature: dict, in_window: dict, win: dict, params: MonitoringParams) -> pd.DataFrame:
    """Realized AUC/AP per production week and for each window, with the label-free estimates beside them."""
    rows = []

    def add(period: str, start, end, labelled: pd.DataFrame, all_rows: pd.DataFrame):
        y = labelled["failure_within_horizon"].astype(float).to_numpy()
        auc, ap = _auc_ap(y, labelled["p_any"].to_numpy())
        immature = all_rows[~all_rows["label_mature"].fillna(False).astype(bool)]
        rows.append({
            "period": period, "start": str(start), "end": str(end), "rows": len(all_rows), "mature_rows": len(labelled),
            "failure_rate": float(y.mean()) if len(y) else float("nan"), "roc_auc": auc, "average_precision": ap,
            # label-free estimates: on the mature rows (to show their error) and on the immature rest
            "estimated_roc_auc": expected_roc_auc(labelled["p_any"]),
            "estimated_average_precision": expected_average_precision(labelled["p_any"]),
            "estimated_failure_rate": expected_failure_rate(labelled["p_any"]),
            "immature_rows": len(immature),
            "immature_estimated_roc_auc": expected_roc_auc(immature["p_any"]),
            "immature_estimated_average_precision": expected_average_precision(immature["p_any"]),
            "immature_estimated_failure_rate": expected_failure_rate(immature["p_any"]),
        })

    for name in ("reference", "production"):
        add(name, *win[name], mature[name], in_window[name])
    start, end = win["production"]
    week = start
    while week < end:
        stop = min(week + pd.Timedelta(days=7), end)
        pick = lambda f: f[(f["datetime"] >= week) & (f["datetime"] < stop)]  # noqa: E731
        add(f"week of {week.date()}", week, stop, pick(mature["production"]), pick(in_window["production"]))
        week = stop
    return pd.DataFrame(rows)


def _segments(ref: pd.DataFrame, prod: pd.DataFrame, params: MonitoringParams) -> pd.DataFrame:
    rows = []
    for model in sorted(set(ref["model"].dropna().astype(str)) | set(prod["model"].dropna().astype(str))):
        r, p = ref[ref["model"].astype(str) == model], prod[prod["model"].astype(str) == model]
        small = min(len(r), len(p)) < params.min_segment_rows
        value = float("nan") if small else psi(r["p_any"], p["p_any"])
        reason = (f"skipped: fewer than {params.min_segment_rows} rows in a window" if small
                  else "score PSI undefined (too few distinct reference scores)" if np.isnan(value) else "")
        rows.append({"segment": f"model={model}", "reference_rows": len(r), "production_rows": len(p),
                     "score_psi": value, "skipped_reason": reason})
    return pd.DataFrame(rows, columns=["segment", "reference_rows", "production_rows", "score_psi", "skipped_reason"])


def _weighted(drift_features: pd.DataFrame, importance: pd.Series | None) -> pd.DataFrame:
    out = drift_features[["feature", "psi"]].copy()
    if importance is None:
        out["importance"] = np.nan
    else:
        imp = importance.reindex(out["feature"]).clip(lower=0).fillna(0.0).to_numpy()
        out["importance"] = imp / imp.max() if imp.size and imp.max() > 0 else imp
    out["weighted_drift"] = out["importance"] * out["psi"]
    return out.sort_values("weighted_drift", ascending=False, na_position="last").reset_index(drop=True)


def alerts(score_drift: pd.Series, drift_features: pd.DataFrame, ref_perf: pd.Series, prod_perf: pd.Series,
           params: MonitoringParams) -> list[Alert]:
    """The four alert rules; each says why it fired or not, with its values and threshold."""
    out = []
    score_psi = score_drift["psi"]
    out.append(Alert("score_drift", bool(score_psi >= params.score_psi_alert), _num(score_psi), params.score_psi_alert,
                     f"score PSI {score_psi:.3f} vs threshold {params.score_psi_alert}"))
    drifted = drift_features.loc[drift_features["psi"] >= params.feature_psi_alert, "feature"].tolist()
    out.append(Alert("feature_drift", len(drifted) >= params.min_drifted_features, float(len(drifted)),
                     float(params.min_drifted_features),
                     f"{len(drifted)} features with PSI >= {params.feature_psi_alert} (alert from "
                     f"{params.min_drifted_features})" + (f": {', '.join(drifted[:8])}" if drifted else "")))
    drop = ref_perf["average_precision"] - prod_perf["average_precision"]
    out.append(Alert("performance_decay", bool(drop >= params.ap_drop_alert), _num(drop), params.ap_drop_alert,
                     f"AP {ref_perf['average_precision']:.3f} (reference) -> {prod_perf['average_precision']:.3f} "
                     f"(production, mature labels): drop {drop:.3f} vs threshold {params.ap_drop_alert}"
                     if not np.isnan(drop) else "AP undefined in a window (one class or no mature labels)"))
    change = abs(prod_perf["failure_rate"] - ref_perf["failure_rate"])
    out.append(Alert("label_drift", bool(change >= params.failure_rate_change_alert), _num(change),
                     params.failure_rate_change_alert,
                     f"failure rate {ref_perf['failure_rate']:.4f} -> {prod_perf['failure_rate']:.4f}: change "
                     f"{change:.4f} vs threshold {params.failure_rate_change_alert}"
                     if not np.isnan(change) else "failure rate undefined (no mature labels in a window)"))
    return out


def _num(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def permutation_importance_of(bundle, rows: pd.DataFrame, params: MonitoringParams = MonitoringParams()) -> pd.Series:
    """Permutation importance (sklearn) of the bundle's classifier for the average precision of p_any, on a seeded
    sample of ``rows`` (usable snapshots with mature labels)."""
    from sklearn.inspection import permutation_importance

    from pm_assets.core.model import feature_matrix

    if len(rows) == 0 or rows["failure_within_horizon"].astype(float).nunique() < 2:
        return pd.Series(np.nan, index=bundle.features)
    sample = rows.sample(min(params.importance_sample, len(rows)), random_state=params.seed)
    none = list(bundle.classifier.classes_).index("none")

    def ap_of_p_any(estimator, X, y):
        return average_precision_score(y, 1.0 - estimator.predict_proba(X)[:, none])

    result = permutation_importance(bundle.classifier, feature_matrix(sample, bundle.features),
                                    sample["failure_within_horizon"].astype(int).to_numpy(), scoring=ap_of_p_any,
                                    n_repeats=params.importance_repeats, random_state=params.seed)
    return pd.Series(result.importances_mean, index=bundle.features)
