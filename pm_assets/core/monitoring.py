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
from sklearn.metrics import average_precision_score

from pm_assets.core.drift import (
    expected_average_precision_sorted,
    expected_failure_rate,
    SortedWindow,
    expected_roc_auc_sorted,
    ks_sorted,
    psi,
    psi_sorted,
    roc_auc_and_average_precision_sorted,
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


def monitoring_rows(features: pd.DataFrame, scores: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Scored snapshots with their features, p_any and (possibly immature) labels, sorted by time."""
    keys = ["machineID", "datetime"]
    score_columns, label_columns = ["p_any", "scored"], ["failure_within_horizon", "label_mature"]
    if _aligned(features, scores, keys) and _aligned(features, labels, keys):
        # the three come from the same stored partitions, row for row: the merge's result without its copies
        scored = scores["scored"].to_numpy(dtype=bool)
        rows = features[scored].reset_index(drop=True)
        for frame, columns in ((scores, score_columns), (labels, label_columns)):
            for column in columns:
                rows[column] = frame[column][scored].reset_index(drop=True)  # keeps the column's dtype
    else:
        rows = features.merge(scores[keys + score_columns], on=keys).merge(
            labels[keys + label_columns], on=keys, how="left")
        rows = rows[rows["scored"]]
    if rows["datetime"].is_monotonic_increasing:
        return rows.reset_index(drop=True)
    return rows.sort_values("datetime", kind="stable").reset_index(drop=True)


def _aligned(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> bool:
    return len(a) == len(b) and all(np.array_equal(a[k].to_numpy(), b[k].to_numpy()) for k in keys)


@dataclass
class PreparedRows:
    """:func:`monitoring_rows` as arrays, extracted once for any number of monitoring dates (see
    :func:`monitor_days`): times, the numeric features and p_any (last) as one column-major float matrix, p_any,
    labels, model."""

    rows: pd.DataFrame
    times: np.ndarray
    numeric: list[str]
    matrix: np.ndarray
    p_any: np.ndarray
    y: np.ndarray
    mature: np.ndarray
    model: tuple[np.ndarray, list[str]]  # (code per row, -1 when missing; the names of the codes)

    @classmethod
    def of(cls, rows: pd.DataFrame, feature_names: list[str]) -> PreparedRows:
        numeric = [f for f in feature_names if f in rows and pd.api.types.is_numeric_dtype(rows[f])]
        matrix = np.empty((len(rows), len(numeric) + 1), order="F")  # a feature's values are contiguous
        for j, f in enumerate([*numeric, "p_any"]):
            matrix[:, j] = rows[f].to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(rows=rows, times=rows["datetime"].to_numpy(), numeric=numeric, matrix=matrix,
                   p_any=rows["p_any"].to_numpy(dtype=np.float64),
                   y=rows["failure_within_horizon"].to_numpy(dtype=np.float64, na_value=np.nan),
                   mature=rows["label_mature"].fillna(False).to_numpy(dtype=bool),
                   model=_codes(rows["model"]) if "model" in rows else (np.full(len(rows), -1), []))

    def span(self, start, end) -> slice:
        """The rows with start <= datetime < end (rows are sorted by time: two binary searches)."""
        return slice(int(np.searchsorted(self.times, np.datetime64(start), "left")),
                     int(np.searchsorted(self.times, np.datetime64(end), "left")))


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a column's values as strings (-1 for missing), and the string of each code."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # missing values get -1
    return codes, [str(u) for u in uniques]


def monitor(rows: pd.DataFrame, end, feature_names: list[str], params: MonitoringParams = MonitoringParams(),
            importance: pd.Series | None = None) -> MonitoringResult:
    """Everything monitored for the window ending at ``end``, from :func:`monitoring_rows`.

    ``importance``: permutation importance per feature (any scale; normalised here); None skips weighting.
    """
    return monitor_prepared(PreparedRows.of(rows, feature_names), end, params, importance)


#: Consecutive days one task of :func:`monitor_days` monitors with windows moved day to day (each task sorts its
#: first windows in full).
SEGMENT_DAYS = 32


def monitor_days(rows: pd.DataFrame, ends, feature_names: list[str], params: MonitoringParams = MonitoringParams(),
                 importance: pd.Series | None = None, threads: int = 1):
    """:func:`monitor` for each of ``ends``, in order (a generator), with the rows turned into arrays once and each
    window's sorted columns carried from one day to the next (:class:`~pm_assets.core.drift.SortedWindow`).

    ``threads`` > 1 monitors that many segments of consecutive days at once (at most ``SEGMENT_DAYS``, fewer so
    that every thread has one; numpy's sorts and binary searches release the GIL). At most 2 x threads segments
    of results wait to be consumed.
    """
    prepared = PreparedRows.of(rows, feature_names)
    ends = list(ends)
    size = max(1, min(SEGMENT_DAYS, -(-len(ends) // max(threads, 1))))  # every thread gets a segment
    segments = [ends[i: i + size] for i in range(0, len(ends), size)]

    def segment(days) -> list[MonitoringResult]:
        windows = WindowColumns(prepared)
        return [monitor_prepared(prepared, end, params, importance, windows) for end in days]

    if threads <= 1:
        for days in segments:
            yield from segment(days)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = deque()
        for days in segments:
            pending.append(pool.submit(segment, days))
            if len(pending) >= 2 * threads:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


class WindowColumns:
    """The reference and production windows' sorted columns (features, then p_any), moved from day to day."""

    def __init__(self, data: PreparedRows):
        self.reference, self.production = SortedWindow(data.matrix), SortedWindow(data.matrix)


def monitor_prepared(data: PreparedRows, end, params: MonitoringParams = MonitoringParams(),
                     importance: pd.Series | None = None, windows: WindowColumns | None = None) -> MonitoringResult:
    win = windows_for(end, params)
    ref, prod = data.span(*win["reference"]), data.span(*win["production"])
    windows = windows or WindowColumns(data)
    ref_columns, prod_columns = windows.reference.move_to(ref), windows.production.move_to(prod)

    drift_features = _feature_drift(data.numeric, ref_columns[:-1], prod_columns[:-1])
    drift_features["drifted"] = drift_features["psi"] >= params.feature_psi_alert
    drift_features = drift_features.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)

    performance = _performance(data, win, ref, prod)
    perf = performance.set_index("period")
    ref_p, prod_p = ref_columns[-1], prod_columns[-1]
    drift_scores = pd.DataFrame([{
        "score": "p_any", "psi": psi_sorted(ref_p, prod_p), "ks": ks_sorted(ref_p, prod_p),
        "reference_mean": _mean(data.p_any[ref]), "production_mean": _mean(data.p_any[prod]),
        "reference_failure_rate": perf.loc["reference", "failure_rate"],
        "production_failure_rate": perf.loc["production", "failure_rate"],
    }])
    drift_segments = _segments(data, ref, prod, params)
    drift_weighted = _weighted(drift_features, importance)

    mature_rows = {name: int(data.mature[span].sum()) for name, span in (("reference", ref), ("production", prod))}
    result = MonitoringResult(
        windows={name: {"start": str(a), "end": str(b)} for name, (a, b) in win.items()}
        | {"rows": {"reference": ref.stop - ref.start, "production": prod.stop - prod.start,
                    "reference_mature": mature_rows["reference"], "production_mature": mature_rows["production"]}},
        drift_features=drift_features, drift_scores=drift_scores, performance=performance,
        drift_segments=drift_segments, drift_weighted=drift_weighted,
        reference_rows=data.rows.iloc[ref], production_rows=data.rows.iloc[prod],
    )
    result.alerts = alerts(drift_scores.iloc[0], drift_features, perf.loc["reference"], perf.loc["production"], params)
    return result


def _mean(values: np.ndarray) -> float:
    clean = values[~np.isnan(values)]
    return float(clean.mean()) if len(clean) else float("nan")


def _feature_drift(names: list[str], ref_columns: list[np.ndarray], prod_columns: list[np.ndarray]) -> pd.DataFrame:
    """PSI, KS and means per feature, from each window's sorted columns (NaN dropped)."""
    table = {"feature": names, "psi": [], "ks": [], "reference_mean": [], "production_mean": []}
    for r, p in zip(ref_columns, prod_columns, strict=True):
        table["psi"].append(psi_sorted(r, p))
        table["ks"].append(ks_sorted(r, p))
        table["reference_mean"].append(float(r.mean()) if len(r) else float("nan"))
        table["production_mean"].append(float(p.mean()) if len(p) else float("nan"))
    return pd.DataFrame(table)


def _performance(data: PreparedRows, win: dict, ref: slice, prod: slice) -> pd.DataFrame:
    """Realized AUC/AP per production week and for each window, with the label-free estimates beside them."""
    rows = []

    def add(period: str, start, end, span: slice):
        mature, p = data.mature[span], data.p_any[span]
        order = np.argsort(p[mature], kind="stable")
        y, p_mature = data.y[span][mature][order], p[mature][order]  # mature rows sorted by score
        auc, ap = roc_auc_and_average_precision_sorted(y, p_mature)
        p_immature = np.sort(p[~mature])
        rows.append({
            "period": period, "start": str(start), "end": str(end), "rows": len(p), "mature_rows": len(y),
            "failure_rate": float(y.mean()) if len(y) else float("nan"), "roc_auc": auc, "average_precision": ap,
            # label-free estimates: on the mature rows (to show their error) and on the immature rest
            "estimated_roc_auc": expected_roc_auc_sorted(p_mature),
            "estimated_average_precision": expected_average_precision_sorted(p_mature),
            "estimated_failure_rate": expected_failure_rate(p_mature),
            "immature_rows": len(p_immature),
            "immature_estimated_roc_auc": expected_roc_auc_sorted(p_immature),
            "immature_estimated_average_precision": expected_average_precision_sorted(p_immature),
            "immature_estimated_failure_rate": expected_failure_rate(p_immature),
        })

    add("reference", *win["reference"], ref)
    add("production", *win["production"], prod)
    start, end = win["production"]
    week = start
    while week < end:
        stop = min(week + pd.Timedelta(days=7), end)
        add(f"week of {week.date()}", week, stop, data.span(week, stop))
        week = stop
    return pd.DataFrame(rows)


def _segments(data: PreparedRows, ref: slice, prod: slice, params: MonitoringParams) -> pd.DataFrame:
    rows = []
    codes, names = data.model
    ref_code, prod_code = codes[ref], codes[prod]
    present = np.union1d(np.unique(ref_code), np.unique(prod_code))
    for model, code in sorted((names[c], c) for c in present if c >= 0):
        r, p = data.p_any[ref][ref_code == code], data.p_any[prod][prod_code == code]
        small = min(len(r), len(p)) < params.min_segment_rows
        value = float("nan") if small else psi(r, p)
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
        # the classifier's own p_any: the bundle's prior correction is increasing in it, so AP is the same
        return average_precision_score(y, 1.0 - estimator.predict_proba(X)[:, none])

    result = permutation_importance(bundle.classifier, feature_matrix(sample, bundle.features),
                                    sample["failure_within_horizon"].astype(int).to_numpy(), scoring=ap_of_p_any,
                                    n_repeats=params.importance_repeats, random_state=params.seed)
    return pd.Series(result.importances_mean, index=bundle.features)
