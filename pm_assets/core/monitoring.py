"""Monitoring a window: drift, performance decay, alerts and the traffic light. No Dagster import.

For a monitoring date D (the end of a daily partition): the production window is the ``production_days`` days
ending at D, the reference window the ``reference_days`` days right before it. Only usable, scored snapshots are
compared; performance and failure rates use mature labels only. The alert rules and their defaults are those of
the monitoring notebook this project grew from.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import chain

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from pm_assets.core.drift import (
    BinnedColumn,
    expected_average_precision_sorted,
    expected_failure_rate,
    expected_roc_auc_sorted,
    roc_auc_and_average_precision_sorted,
    window_statistics,
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
    :func:`monitor_days`): times, p_any, labels."""

    rows: pd.DataFrame
    times: np.ndarray
    p_any: np.ndarray
    y: np.ndarray
    mature: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> PreparedRows:
        return cls(rows=rows, times=rows["datetime"].to_numpy(), p_any=rows["p_any"].to_numpy(dtype=np.float64),
                   y=rows["failure_within_horizon"].to_numpy(dtype=np.float64, na_value=np.nan),
                   mature=rows["label_mature"].fillna(False).to_numpy(dtype=bool))

    def span(self, start, end) -> slice:
        """The rows with start <= datetime < end (rows are sorted by time: two binary searches)."""
        return slice(int(np.searchsorted(self.times, np.datetime64(start), "left")),
                     int(np.searchsorted(self.times, np.datetime64(end), "left")))


def numeric_features(rows: pd.DataFrame, feature_names: list[str]) -> list[str]:
    """The names of ``feature_names`` that are numeric columns of ``rows`` (those whose drift is measured)."""
    return [f for f in feature_names if f in rows and pd.api.types.is_numeric_dtype(rows[f])]


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _model_codes(values: pd.Series | None, rows: int) -> tuple[np.ndarray, list[str]]:
    """Integer codes of the machine models as strings (-1 for missing; all -1 without the column), and the string
    of each code."""
    if values is None:
        return np.full(rows, -1), []
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # missing values get -1
    return codes, [str(u) for u in uniques]


def monitor(rows: pd.DataFrame, end, feature_names: list[str], params: MonitoringParams = MonitoringParams(),
            importance: pd.Series | None = None) -> MonitoringResult:
    """Everything monitored for the window ending at ``end``, from :func:`monitoring_rows`.

    ``importance``: permutation importance per feature (any scale; normalised here); None skips weighting.
    """
    return next(monitor_days(rows, [end], feature_names, params, importance))


def monitor_days(rows: pd.DataFrame, ends, feature_names: list[str], params: MonitoringParams = MonitoringParams(),
                 importance: pd.Series | None = None, threads: int = 1):
    """:func:`monitor` for each of ``ends``, in order (a generator), with the rows turned into arrays once and the
    drift of every date's windows computed column by column (:func:`window_drift`, on ``threads`` threads)."""
    prepared = PreparedRows.of(rows)
    ends = list(ends)
    if not ends:
        return
    names = numeric_features(rows, feature_names)
    drift = window_drift(prepared.times, names, (_values(rows, f) for f in names), prepared.p_any,
                         _model_codes(rows["model"] if "model" in rows else None, len(rows)), ends, params, threads)
    for day, end in enumerate(ends):
        yield monitor_prepared(prepared, end, params, importance, drift, day)


@dataclass
class WindowDrift:
    """The drift of each monitoring date's windows (rows: dates), from :func:`window_drift`."""

    features: list[str]
    stats: np.ndarray  # (dates, features then p_any, 4): PSI, KS, reference mean, production mean
    segment_psi: np.ndarray  # (dates, machine models): PSI of p_any within each model
    segment_rows: np.ndarray  # (dates, machine models, 2): rows of each model in the reference, production window
    models: list[str]

    def most_drifted(self, day: int, count: int) -> list[str]:
        """The ``count`` features of highest PSI on date ``day`` (the report draws them), NaN left out."""
        table = pd.DataFrame({"feature": self.features, "psi": self.stats[day, :-1, 0]})
        return _by_psi(table).dropna(subset=["psi"]).head(count)["feature"].tolist()


def window_drift(times: np.ndarray, names: list[str], columns, p_any: np.ndarray,
                 model: tuple[np.ndarray, list[str]], ends: list, params: MonitoringParams,
                 threads: int = 1) -> WindowDrift:
    """PSI, KS and means of each feature (``columns``: the values of ``names``, one array at a time, rows as
    ``times``) and of p_any, and p_any's PSI per machine model, for the windows of each of ``ends``: exact, equal
    to :func:`~pm_assets.core.drift.psi` and ``ks_statistic`` of the windows' values.

    The rows are cut into blocks at every midnight and window boundary. Each column is binned once
    (:class:`~pm_assets.core.drift.BinnedColumn`), so a date costs O(bins) per column plus sorts of a few bins,
    however long its windows; ``threads`` columns are done at once, and at most twice as many are held.
    """
    spans = [windows_for(end, params) for end in ends]
    bounds = np.array([np.datetime64(t, "ns") for w in spans for pair in w.values() for t in pair])
    # blocks are days (and the windows' own boundaries): a date's statistics do not depend on the other dates
    midnights = np.arange(bounds.min().astype("datetime64[D]"), bounds.max(), np.timedelta64(1, "D"))
    bounds = np.unique(np.concatenate([bounds, midnights.astype("datetime64[ns]")]))
    blocks = np.searchsorted(bounds, times, side="right") - 1
    blocks[blocks >= len(bounds) - 1] = -1  # rows at or after the last boundary
    n_blocks = len(bounds) - 1

    def at(t) -> int:
        return int(np.searchsorted(bounds, np.datetime64(t, "ns")))

    cuts = np.array([(at(w["reference"][0]), at(w["production"][0]), at(w["production"][1])) for w in spans],
                    dtype=np.intp).reshape(-1, 3)

    def column(values: np.ndarray) -> np.ndarray:
        return window_statistics(BinnedColumn(values, blocks, n_blocks), *cuts.T)

    codes, models = model
    everything = chain(columns, [p_any], (np.where(codes == code, p_any, np.nan) for code in range(len(models))))
    results = list(_mapped(column, everything, threads))
    counted = (blocks >= 0) & (codes >= 0)
    per_block = np.bincount(codes[counted] * n_blocks + blocks[counted],
                            minlength=len(models) * n_blocks).reshape(len(models), n_blocks)
    before = np.concatenate([np.zeros((len(models), 1), dtype=np.int64), np.cumsum(per_block, axis=1)], axis=1)
    first, middle, stop = cuts.T
    rows = np.stack([(before[:, middle] - before[:, first]).T, (before[:, stop] - before[:, middle]).T], axis=2)
    n_stats = len(names) + 1
    return WindowDrift(features=list(names), stats=np.stack(results[:n_stats], axis=1),
                       segment_psi=np.stack([r[:, 0] for r in results[n_stats:]], axis=1) if models else
                       np.zeros((len(cuts), 0)), segment_rows=rows, models=list(models))


def _mapped(function, items, threads: int):
    """``map(function, items)`` on ``threads`` threads, in order, with at most 2 x threads items taken ahead."""
    if threads <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def monitor_stored(rows: pd.DataFrame, ends: list, days, drift: WindowDrift, params: MonitoringParams,
                   importance: pd.Series | None = None):
    """:func:`monitor` of the dates ``ends[day]`` for ``day`` in ``days``, their drift taken from ``drift`` (of all
    ``ends``), the rest from ``rows`` (which must cover those dates' windows)."""
    prepared = PreparedRows.of(rows)
    for day in days:
        yield monitor_prepared(prepared, ends[day], params, importance, drift, day)


#: Bytes of feature values :func:`stored_window_drift` reads at once (a group of columns of the whole range).
DRIFT_READ_BYTES = 256 * 2**20


def stored_window_drift(read_features, read_scores, feature_names: list[str], ends: list,
                        params: MonitoringParams, threads: int = 1, group: int | None = None) -> WindowDrift:
    """:func:`window_drift` of the scored rows stored: ``read_scores(columns)`` and ``read_features(columns)`` read
    the same stored partitions (row for row) with only those columns. The features are read ``group`` columns at a
    time (default: as many as fit in ``DRIFT_READ_BYTES``; each read opens every file once), so memory holds some
    columns of the history, not its rows."""
    keys = ["machineID", "datetime"]
    scores = read_scores(keys + ["p_any", "scored"])
    base = read_features(keys + ["model"])
    if not _aligned(base, scores, keys):
        raise ValueError("features and scores are not the same rows (their partitions differ): rematerialize scores")
    times = scores["datetime"].to_numpy()
    scored = np.flatnonzero(scores["scored"].to_numpy(dtype=bool))
    if not (np.diff(times[scored]) >= np.timedelta64(0)).all():  # monitoring_rows' order: by time, stable
        scored = scored[np.argsort(times[scored], kind="stable")]
    times = times[scored]
    names = list(feature_names)  # the non-numeric ones (model) are left out as they are read
    group = group or max(1, DRIFT_READ_BYTES // (8 * max(len(scores), 1)))
    found: list[str] = []

    def columns():
        for i in range(0, len(names), group):
            frame = read_features(names[i: i + group])
            for name in names[i: i + group]:
                if name in frame and pd.api.types.is_numeric_dtype(frame[name]):
                    found.append(name)
                    yield _values(frame, name)[scored]

    model = _model_codes(base["model"].iloc[scored] if "model" in base else None, len(times))
    return window_drift(times, found, columns(), scores["p_any"].to_numpy(dtype=np.float64)[scored], model, ends,
                        params, threads)


def monitor_prepared(data: PreparedRows, end, params: MonitoringParams, importance: pd.Series | None,
                     drift: WindowDrift, day: int) -> MonitoringResult:
    """:func:`monitor` of rows prepared once; ``drift``: :func:`window_drift` of dates whose ``day``-th is end."""
    win = windows_for(end, params)
    ref, prod = data.span(*win["reference"]), data.span(*win["production"])
    stats = drift.stats[day]
    drift_features = pd.DataFrame({"feature": drift.features, "psi": stats[:-1, 0], "ks": stats[:-1, 1],
                                   "reference_mean": stats[:-1, 2], "production_mean": stats[:-1, 3]})
    drift_features["drifted"] = drift_features["psi"] >= params.feature_psi_alert
    drift_features = _by_psi(drift_features)

    performance = _performance(data, win, ref, prod)
    perf = performance.set_index("period")
    drift_scores = pd.DataFrame([{
        "score": "p_any", "psi": stats[-1, 0], "ks": stats[-1, 1],
        "reference_mean": stats[-1, 2], "production_mean": stats[-1, 3],
        "reference_failure_rate": perf.loc["reference", "failure_rate"],
        "production_failure_rate": perf.loc["production", "failure_rate"],
    }])
    drift_segments = _segments(drift.models, drift.segment_psi[day], drift.segment_rows[day], params)
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


def _by_psi(drift_features: pd.DataFrame) -> pd.DataFrame:
    """The drift table by PSI, largest first, NaN last (the order of the report and of its histograms)."""
    return drift_features.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


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


def _segments(names: list[str], score_psi: np.ndarray, rows: np.ndarray, params: MonitoringParams) -> pd.DataFrame:
    """Score PSI within each machine model present in either window (``rows``: per model, reference and production
    rows)."""
    out = []
    for model, code in sorted((name, code) for code, name in enumerate(names) if rows[code].sum() > 0):
        r, p = (int(v) for v in rows[code])
        small = min(r, p) < params.min_segment_rows
        value = float("nan") if small else float(score_psi[code])
        reason = (f"skipped: fewer than {params.min_segment_rows} rows in a window" if small
                  else "score PSI undefined (too few distinct reference scores)" if np.isnan(value) else "")
        out.append({"segment": f"model={model}", "reference_rows": r, "production_rows": p,
                    "score_psi": value, "skipped_reason": reason})
    return pd.DataFrame(out, columns=["segment", "reference_rows", "production_rows", "score_psi", "skipped_reason"])


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
