"""Monitoring a window: drift, performance decay, alerts and the traffic light. No Dagster import.

For a monitoring date D (the end of a daily partition): the production window is the ``production_days`` days
ending at D, the reference window the ``reference_days`` days right before it. Only usable, scored snapshots are
compared; performance and failure rates use mature labels only. The alert rules and their defaults are those of
the monitoring notebook this project grew from, with these additions (each chosen by a field of
:class:`MonitoringParams`, its default justified in the README's "Monitoring" section):

- each feature is measured by its kind: continuous (reference-decile PSI, KS, Jensen-Shannon on the same bins) or
  discrete (at most ``discrete_max_values`` distinct values: PSI and Jensen-Shannon on one bin per value, and a
  chi-square test); ``drift_methods`` overrides the choice per feature. ``feature_drift_measure`` says which
  measure makes a feature "drifted" (PSI, the notebook's rule, by default).
- multivariate drift: the PCA reconstruction error of ``multivariate_features`` (:mod:`pm_assets.core.multivariate`),
  its own alert;
- sampling-error bands (``band_z`` standard errors) on AUC and AP, realized and estimated; the AP-drop alert fires
  only when the drop exceeds both its threshold and the band of the difference;
- the label-drift alert compares failure rates relatively (``label_drift_rule="relative"``) or absolutely (the
  notebook's rule, ``"absolute"``).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import chain

import numpy as np
import pandas as pd

from pm_assets.core.drift import (
    DISCRETE_MAX_VALUES,
    MIN_EDGES,
    MIN_SAMPLE,
    PSI_BINS,
    STATISTICS,
    BinnedColumn,
    average_precision_standard_error,
    expected_average_precision_sorted,
    expected_failure_rate,
    expected_roc_auc_sorted,
    roc_auc_and_average_precision_sorted,
    roc_auc_standard_error,
    sorted_window_statistics,
    window_statistics,
)
from pm_assets.core.features import feature_columns
from pm_assets.core.multivariate import PCA_SIGMA, PCA_VARIANCE, RECONSTRUCTION, BlockMoments, reconstruction_drift
from pm_assets.core.schema import SENSORS

LIGHTS = ("green", "yellow", "red")
#: The light from the number of alerts fired, and the retraining rule (the retraining sensor acts on it): the one
#: definition of each. The notebook's light was green up to one alert; with the rules of this module no alert fired
#: on any day of the simulated no-drift year, while a doubled failure rate or a correlation change fires one alert
#: only (README, "Monitoring"), so one alert is yellow.
YELLOW_FROM_ALERTS = 1
RED_FROM_ALERTS = 3
RETRAIN_FROM_ALERTS = 2
#: The light and the retraining rule in words, for descriptions.
LIGHT_RULE = (
    f"green 0, yellow {YELLOW_FROM_ALERTS}-{RED_FROM_ALERTS - 1}, red {RED_FROM_ALERTS}+ alerts; retraining "
    f"recommended from {RETRAIN_FROM_ALERTS}"
)
ACTIONS = {
    "green": "No action: the model and its inputs are stable.",
    "yellow": f"Investigate the alerts; retraining is recommended from {RETRAIN_FROM_ALERTS} alerts.",
    "red": f"Retrain now and review the data pipeline: {RED_FROM_ALERTS} or more alerts.",
}
#: The telemetry features of the multivariate drift: each sensor's mean and sd over the 3 h and 24 h windows (the
#: windows every usable snapshot has; the longer ones are often missing on partial telemetry).
MULTIVARIATE_FEATURES = tuple(f"{s}_{stat}_{w}" for s in SENSORS for w in ("3h", "24h") for stat in ("mean", "sd"))
FEATURE_MEASURES = {"psi": "psi", "jensen_shannon": "jensen_shannon"}
LABEL_DRIFT_RULES = ("relative", "absolute")


@dataclass(frozen=True)
class MonitoringParams:
    reference_days: int = 60
    production_days: int = 14
    score_psi_alert: float = 0.25
    feature_psi_alert: float = 0.20
    min_drifted_features: int = 8
    ap_drop_alert: float = 0.05
    failure_rate_change_alert: float = 0.10  # the "absolute" rule: in share of snapshots (0.10 = 10 points)
    min_segment_rows: int = 200
    #: a feature with at most this many distinct values over the monitored rows is discrete (one bin per value)
    discrete_max_values: int = DISCRETE_MAX_VALUES
    #: per-feature override of that choice: (feature, "discrete" or "continuous") pairs
    drift_methods: tuple[tuple[str, str], ...] = ()
    #: what makes a feature drifted: "psi" (>= feature_psi_alert, the notebook's) or "jensen_shannon"
    #: (>= feature_js_alert)
    feature_drift_measure: str = "psi"
    feature_js_alert: float = 0.10
    #: multivariate drift: these features' PCA reconstruction error (empty: off)
    multivariate_features: tuple[str, ...] = MULTIVARIATE_FEATURES
    pca_variance: float = PCA_VARIANCE
    pca_sigma: float = PCA_SIGMA
    #: "relative": |production / reference - 1| >= failure_rate_relative_alert, and significant: a two-proportion z
    #: test on the failures (positives / snapshots_per_failure) rejects equal rates at label_drift_alpha;
    #: "absolute": the notebook's rule (failure_rate_change_alert)
    label_drift_rule: str = "relative"
    failure_rate_relative_alert: float = 0.50
    label_drift_alpha: float = 0.01
    #: the bands: this many standard errors (1.96: 95 %), counting failures, not snapshots (below)
    band_z: float = 1.96
    #: positive snapshots one failure makes (24 h horizon / 3 h snapshots): they are not independent, so the bands'
    #: standard errors take positives / this (and negatives / this) as their sample sizes
    snapshots_per_failure: int = 8

    def __post_init__(self) -> None:
        if self.feature_drift_measure not in FEATURE_MEASURES:
            raise ValueError(f"feature_drift_measure must be one of {sorted(FEATURE_MEASURES)}")
        if self.label_drift_rule not in LABEL_DRIFT_RULES:
            raise ValueError(f"label_drift_rule must be one of {LABEL_DRIFT_RULES}")
        bad = sorted({m for _, m in self.drift_methods} - {"discrete", "continuous"})
        if bad:
            raise ValueError(f"drift_methods values must be 'discrete' or 'continuous', not {bad}")

    @property
    def drift_threshold(self) -> float:
        """The threshold of ``feature_drift_measure``."""
        return self.feature_psi_alert if self.feature_drift_measure == "psi" else self.feature_js_alert


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
    multivariate: dict | None = None  # the PCA reconstruction error (multivariate.RECONSTRUCTION), None when off
    #: the windows' rows as positions in the rows monitored ("reference", "production": slices), which the two
    #: frames above are taken from (what lets a report process take them from rows it already holds)
    spans: dict | None = None

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
            "retrain_recommended": retrain_recommended(self.alert_count),
            "top_weighted_drift": top_weighted.to_dict("records"),
            "multivariate": self.multivariate,
        }


def traffic_light(alert_count: int) -> str:
    return "red" if alert_count >= RED_FROM_ALERTS else "yellow" if alert_count >= YELLOW_FROM_ALERTS else "green"


def retrain_recommended(alert_count: int) -> bool:
    return alert_count >= RETRAIN_FROM_ALERTS


def monitored_features() -> list[str]:
    """The features monitoring compares: every feature but ``model`` (a category: its drift is the segments')."""
    return [f for f in feature_columns() if f != "model"]


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
            labels[keys + label_columns], on=keys, how="left"
        )
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
        return cls(
            rows=rows,
            times=rows["datetime"].to_numpy(),
            p_any=rows["p_any"].to_numpy(dtype=np.float64),
            y=rows["failure_within_horizon"].to_numpy(dtype=np.float64, na_value=np.nan),
            mature=rows["label_mature"].fillna(False).to_numpy(dtype=bool),
        )

    @cached_property
    def by_score(self) -> np.ndarray:
        """Row positions in order of p_any, ties by position (a stable sort, once for every date)."""
        return np.argsort(self.p_any, kind="stable")

    def in_score_order(self, span: slice, among: np.ndarray | None = None) -> np.ndarray:
        """The positions of ``span``'s rows in order of p_any, ties by position, taken from :attr:`by_score` in one
        pass instead of a sort per window; ``among``: from these positions instead (in that order, e.g. a larger
        window's, which holds ``span``: a week's rows from its window's, not from the whole chunk's)."""
        order = self.by_score if among is None else among
        return order[(order >= span.start) & (order < span.stop)]

    def sorted_by_score(self, span: slice, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the mature rows of ``span`` and of the immature ones, each in order of p_any with ties
        by position: what ``np.argsort(p_any[span][mask], kind="stable")`` gives (offset by ``span.start``); see
        :meth:`in_score_order`."""
        inside = self.in_score_order(span, among)
        mature = self.mature[inside]
        return inside[mature], inside[~mature]

    def span(self, start, end) -> slice:
        """The rows with start <= datetime < end (rows are sorted by time: two binary searches)."""
        return slice(
            int(np.searchsorted(self.times, np.datetime64(start), "left")),
            int(np.searchsorted(self.times, np.datetime64(end), "left")),
        )


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


def monitor(rows: pd.DataFrame, end, *args, **kwargs) -> MonitoringResult:
    """Everything monitored for the window ending at ``end``, from :func:`monitoring_rows`: :func:`monitor_days`
    (its other arguments: the feature names, the params, the importance) for that one end."""
    return next(monitor_days(rows, [end], *args, **kwargs))


def monitor_days(
    rows: pd.DataFrame,
    ends,
    feature_names: list[str],
    params: MonitoringParams = MonitoringParams(),
    importance: pd.Series | None = None,
    threads: int = 1,
):
    """Everything monitored for the window ending at each of ``ends``, in order (a generator), with the rows turned
    into arrays once and the drift of every date's windows computed column by column (:func:`window_drift`, on
    ``threads`` threads). ``importance``: permutation importance per feature (any scale; normalised here); None
    skips weighting."""
    prepared = PreparedRows.of(rows)
    ends = list(ends)
    if not ends:
        return
    names = numeric_features(rows, feature_names)
    drift = window_drift(
        prepared.times,
        ((f, _values(rows, f)) for f in names),
        prepared.p_any,
        _model_codes(rows["model"] if "model" in rows else None, len(rows)),
        ends,
        params,
        threads,
        multivariate_matrix(rows, params),
    )
    for day, end in enumerate(ends):
        yield monitor_prepared(prepared, end, params, importance, drift, day)


def multivariate_matrix(rows: pd.DataFrame, params: MonitoringParams) -> np.ndarray | None:
    """The rows x ``params.multivariate_features`` matrix of the multivariate drift (None: off or not all there)."""
    names = list(params.multivariate_features)
    if not names or not set(names) <= set(rows.columns):
        return None
    return rows[names].to_numpy(dtype=np.float64)


@dataclass
class WindowDrift:
    """The drift of each monitoring date's windows (rows: dates), from :func:`window_drift`."""

    features: list[str]
    stats: np.ndarray  # (dates, features then p_any, statistics): drift.STATISTICS
    segment_psi: np.ndarray  # (dates, machine models): PSI of p_any within each model
    segment_rows: np.ndarray  # (dates, machine models, 2): rows of each model in the reference, production window
    models: list[str]
    methods: list[str] = field(default_factory=list)  # each feature's: "discrete" or "continuous"
    multivariate: np.ndarray | None = None  # (dates, multivariate.RECONSTRUCTION), None when off

    def most_drifted(self, day: int, count: int) -> list[str]:
        """The ``count`` features of highest PSI on date ``day`` (the report draws them), NaN left out."""
        psi = self.stats[day, :-1, 0]
        return [self.features[i] for i in _psi_order(psi) if not np.isnan(psi[i])][:count]


def window_drift(
    times: np.ndarray,
    columns,
    p_any: np.ndarray,
    model: tuple[np.ndarray, list[str]],
    ends: list,
    params: MonitoringParams,
    threads: int = 1,
    multivariate=None,
) -> WindowDrift:
    """The drift statistics (``drift.STATISTICS``) of each feature (``columns``: (name, values) pairs, one at a
    time, rows as ``times``) and of p_any, p_any's PSI per machine model, and the reconstruction error of
    ``multivariate`` (rows x features, or a function that reads them; None: none), for the windows of each of
    ``ends``. Continuous columns are
    exact, equal to :func:`~pm_assets.core.drift.psi` and ``ks_statistic`` of the windows' values; a feature is
    discrete by ``params`` (``discrete_max_values``, ``drift_methods``); p_any is always continuous.

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

    cuts = np.array(
        [(at(w["reference"][0]), at(w["production"][0]), at(w["production"][1])) for w in spans], dtype=np.intp
    ).reshape(-1, 3)

    overrides = dict(params.drift_methods)

    def column(item: tuple[str | None, np.ndarray]) -> tuple[np.ndarray, bool]:
        name, values = item
        method = overrides.get(name) if name else "continuous"
        if len(cuts) <= SORTED_DATES:  # a few dates: sorting their windows costs less than binning the column
            return sorted_window_statistics(values, blocks, n_blocks, *cuts.T, method, params.discrete_max_values)
        binned = BinnedColumn.of(values, blocks, n_blocks, method, params.discrete_max_values)
        return window_statistics(binned, *cuts.T), binned.discrete

    codes, models = model
    names: list[str] = []

    def named():
        for name, values in columns:
            names.append(name)
            yield name, values

    everything = chain(
        named(), [(None, p_any)], ((None, np.where(codes == code, p_any, np.nan)) for code in range(len(models)))
    )
    results, discrete = zip(*_mapped(column, everything, threads))
    mv = None
    matrix = multivariate() if callable(multivariate) else multivariate
    if matrix is not None:  # the moments first, so the matrix is gone before the columns come
        moments = BlockMoments.of(matrix, blocks, n_blocks)
        del matrix
        mv = reconstruction_drift(moments, *cuts.T, variance=params.pca_variance, sigma=params.pca_sigma)
    counted = (blocks >= 0) & (codes >= 0)
    per_block = np.bincount(codes[counted] * n_blocks + blocks[counted], minlength=len(models) * n_blocks).reshape(
        len(models), n_blocks
    )
    before = np.concatenate([np.zeros((len(models), 1), dtype=np.int64), np.cumsum(per_block, axis=1)], axis=1)
    first, middle, stop = cuts.T
    rows = np.stack([(before[:, middle] - before[:, first]).T, (before[:, stop] - before[:, middle]).T], axis=2)
    n_stats = len(names) + 1
    return WindowDrift(
        features=list(names),
        stats=np.stack(results[:n_stats], axis=1),
        segment_psi=np.stack([r[:, 0] for r in results[n_stats:]], axis=1) if models else np.zeros((len(cuts), 0)),
        segment_rows=rows,
        models=list(models),
        methods=["discrete" if d else "continuous" for d in discrete[: len(names)]],
        multivariate=mv,
    )


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


def monitor_stored(
    rows: pd.DataFrame,
    ends: list,
    days,
    drift: WindowDrift,
    params: MonitoringParams,
    importance: pd.Series | None = None,
):
    """:func:`monitor` of the dates ``ends[day]`` for ``day`` in ``days``, their drift taken from ``drift`` (of all
    ``ends``), the rest from ``rows`` (which must cover those dates' windows)."""
    prepared = PreparedRows.of(rows)
    for day in days:
        yield monitor_prepared(prepared, ends[day], params, importance, drift, day)


#: Up to this many dates, :func:`window_drift` sorts each date's windows (``sorted_window_statistics``); from more
#: on it bins each column once (``BinnedColumn``), whose cost per date does not grow with the windows. The same
#: numbers either way.
SORTED_DATES = 4

#: Bytes of feature values :func:`stored_window_drift` reads at once (a group of columns of the whole range).
DRIFT_READ_BYTES = 256 * 2**20


def stored_window_drift(
    read_features,
    read_scores,
    feature_names: list[str],
    ends: list,
    params: MonitoringParams,
    threads: int = 1,
    group: int | None = None,
) -> WindowDrift:
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

    def columns():
        for i in range(0, len(names), group):
            frame = read_features(names[i : i + group])
            for name in names[i : i + group]:
                if name in frame and pd.api.types.is_numeric_dtype(frame[name]):
                    yield name, _values(frame, name)[scored]

    model = _model_codes(base["model"].iloc[scored] if "model" in base else None, len(times))

    def multivariate() -> np.ndarray | None:
        """The telemetry columns of the multivariate drift, filled in a group of columns at a time."""
        wanted = list(params.multivariate_features)
        if not wanted:
            return None
        matrix = np.empty((len(scored), len(wanted)))
        for i in range(0, len(wanted), group):
            frame = read_features(wanted[i : i + group])
            if not set(wanted[i : i + group]) <= set(frame.columns):
                return None
            for j, name in enumerate(wanted[i : i + group], start=i):
                matrix[:, j] = _values(frame, name)[scored]
        return matrix

    return window_drift(
        times, columns(), scores["p_any"].to_numpy(dtype=np.float64)[scored], model, ends, params, threads, multivariate
    )


def monitor_prepared(
    data: PreparedRows, end, params: MonitoringParams, importance: pd.Series | None, drift: WindowDrift, day: int
) -> MonitoringResult:
    """:func:`monitor` of rows prepared once; ``drift``: :func:`window_drift` of dates whose ``day``-th is end."""
    win = windows_for(end, params)
    ref, prod = data.span(*win["reference"]), data.span(*win["production"])
    stats = drift.stats[day]
    drift_features = feature_table(drift.features, drift.methods, stats[:-1], params)

    performance = _performance(data, win, ref, prod, params)
    perf = performance.set_index("period")
    drift_scores = pd.DataFrame(
        [
            {
                "score": "p_any",
                "psi": stats[-1, 0],
                "ks": stats[-1, 1],
                "reference_mean": stats[-1, 2],
                "production_mean": stats[-1, 3],
                "reference_failure_rate": perf.loc["reference", "failure_rate"],
                "production_failure_rate": perf.loc["production", "failure_rate"],
            }
        ]
    )
    drift_segments = _segments(drift.models, drift.segment_psi[day], drift.segment_rows[day], params)
    drift_weighted = _weighted(drift_features, importance)
    multivariate = None
    if drift.multivariate is not None:
        multivariate = {name: _num(v) for name, v in zip(RECONSTRUCTION, drift.multivariate[day], strict=True)}
        names = list(params.multivariate_features)
        pair = multivariate.pop("pair_a"), multivariate.pop("pair_b")
        multivariate["correlation_pair"] = f"{names[int(pair[0])]} ~ {names[int(pair[1])]}" if None not in pair else ""

    mature_rows = {name: int(data.mature[span].sum()) for name, span in (("reference", ref), ("production", prod))}
    result = MonitoringResult(
        windows={name: {"start": str(a), "end": str(b)} for name, (a, b) in win.items()}
        | {
            "rows": {
                "reference": ref.stop - ref.start,
                "production": prod.stop - prod.start,
                "reference_mature": mature_rows["reference"],
                "production_mature": mature_rows["production"],
            }
        },
        drift_features=drift_features,
        drift_scores=drift_scores,
        performance=performance,
        drift_segments=drift_segments,
        drift_weighted=drift_weighted,
        reference_rows=data.rows.iloc[ref],
        production_rows=data.rows.iloc[prod],
        multivariate=multivariate,
        spans={"reference": ref, "production": prod},
    )
    result.alerts = alerts(
        drift_scores.iloc[0], drift_features, perf.loc["reference"], perf.loc["production"], params, multivariate
    )
    return result


def feature_table(names: list[str], methods: list[str], stats: np.ndarray, params: MonitoringParams) -> pd.DataFrame:
    """The drift table of one date: a row per feature with its method, the :data:`~pm_assets.core.drift.STATISTICS`,
    ``drifted`` by ``params.feature_drift_measure`` and a ``note`` saying why a measure is undefined, by PSI
    (largest first, undefined last). Built from arrays: it is made once per day of a run."""
    columns = {
        "feature": np.asarray(names, dtype=object),
        "method": np.asarray(methods if methods else ["continuous"] * len(names), dtype=object),
    }
    columns |= {name: stats[:, i] for i, name in enumerate(STATISTICS)}
    for name in ("reference_n", "production_n"):
        columns[name] = columns[name].astype(np.int64)
    columns["drifted"] = columns[FEATURE_MEASURES[params.feature_drift_measure]] >= params.drift_threshold
    small = (columns["reference_n"] < MIN_SAMPLE) | (columns["production_n"] < MIN_SAMPLE)
    constant = np.isnan(columns["psi"]) & (columns["method"] == "continuous")
    columns["note"] = np.where(
        small,
        f"fewer than {MIN_SAMPLE} values in a window",
        np.where(
            constant,
            f"nearly constant reference: fewer than {MIN_EDGES} distinct decile edges of its {PSI_BINS} (set "
            "drift_methods to 'discrete' to measure it per value; KS is defined)",
            "",
        ),
    ).astype(object)
    order = _psi_order(columns["psi"])
    return pd.DataFrame({name: values[order] for name, values in columns.items()})


def drifted_features(table: pd.DataFrame, params: MonitoringParams) -> pd.Series:
    """The rule of a drifted feature: its ``feature_drift_measure`` at or above that measure's threshold."""
    return table[FEATURE_MEASURES[params.feature_drift_measure]] >= params.drift_threshold


def _psi_order(psi: np.ndarray) -> np.ndarray:
    """Rows by PSI, largest first, NaN last, ties in their order (stable)."""
    psi = np.asarray(psi, dtype=np.float64)
    return np.argsort(np.where(np.isnan(psi), np.inf, -psi), kind="stable")


def _by_psi(drift_features: pd.DataFrame) -> pd.DataFrame:
    """The drift table by PSI, largest first, NaN last (the order of the report and of its histograms)."""
    return drift_features.iloc[_psi_order(drift_features["psi"].to_numpy())].reset_index(drop=True)


def _performance(data: PreparedRows, win: dict, ref: slice, prod: slice, params: MonitoringParams) -> pd.DataFrame:
    """Realized AUC/AP per production week and for each window, with the label-free estimates beside them, and
    the half-widths of their bands (``params.band_z`` standard errors; :func:`bands`)."""
    rows = []

    def add(period: str, start, end, span: slice, among: np.ndarray | None = None):
        mature, immature = data.sorted_by_score(span, among)
        y, p_mature = data.y[mature], data.p_any[mature]  # mature rows sorted by score
        auc, ap = roc_auc_and_average_precision_sorted(y, p_mature)
        p_immature = data.p_any[immature]
        rows.append(
            {
                "period": period,
                "start": str(start),
                "end": str(end),
                "rows": span.stop - span.start,
                "mature_rows": len(y),
                "failure_rate": float(y.mean()) if len(y) else float("nan"),
                "roc_auc": auc,
                "average_precision": ap,
                # label-free estimates: on the mature rows (to show their error) and on the immature rest
                "estimated_roc_auc": expected_roc_auc_sorted(p_mature),
                "estimated_average_precision": expected_average_precision_sorted(p_mature),
                "estimated_failure_rate": expected_failure_rate(p_mature),
                "immature_rows": len(p_immature),
                "immature_estimated_roc_auc": expected_roc_auc_sorted(p_immature),
                "immature_estimated_average_precision": expected_average_precision_sorted(p_immature),
                "immature_estimated_failure_rate": expected_failure_rate(p_immature),
            }
        )
        rows[-1] |= bands(rows[-1], y.sum(), len(y) - y.sum(), p_mature, p_immature, params)

    add("reference", *win["reference"], ref)
    production = data.in_score_order(prod)
    add("production", *win["production"], prod, production)
    start, end = win["production"]
    week = start
    while week < end:  # a week's rows are among the production window's
        stop = min(week + pd.Timedelta(days=7), end)
        add(f"week of {week.date()}", week, stop, data.span(week, stop), production)
        week = stop
    return pd.DataFrame(rows)


def bands(
    row: dict,
    positives: float,
    negatives: float,
    p_mature: np.ndarray,
    p_immature: np.ndarray,
    params: MonitoringParams,
) -> dict:
    """Half-widths (``band_z`` standard errors) of a period's realized AUC and AP (its mature labels' counts) and of
    the estimates (the counts the probabilities expect). Each failure makes ``snapshots_per_failure`` positive
    snapshots that are not independent, so the counts are divided by it: the bands count failures."""
    k, z = params.snapshots_per_failure, params.band_z

    def auc_ap(auc: float, ap: float, pos: float, neg: float) -> tuple[float, float]:
        return z * roc_auc_standard_error(auc, pos / k, neg / k), z * average_precision_standard_error(ap, pos / k)

    out = {}
    out["roc_auc_band"], out["average_precision_band"] = auc_ap(
        row["roc_auc"], row["average_precision"], float(positives), float(negatives)
    )
    expected = float(p_mature.sum())
    out["estimated_roc_auc_band"], out["estimated_average_precision_band"] = auc_ap(
        row["estimated_roc_auc"], row["estimated_average_precision"], expected, len(p_mature) - expected
    )
    expected = float(p_immature.sum())
    out["immature_estimated_average_precision_band"] = auc_ap(
        row["immature_estimated_roc_auc"],
        row["immature_estimated_average_precision"],
        expected,
        len(p_immature) - expected,
    )[1]
    return out


def _segments(names: list[str], score_psi: np.ndarray, rows: np.ndarray, params: MonitoringParams) -> pd.DataFrame:
    """Score PSI within each machine model present in either window (``rows``: per model, reference and production
    rows)."""
    out = []
    for model, code in sorted((name, code) for code, name in enumerate(names) if rows[code].sum() > 0):
        r, p = (int(v) for v in rows[code])
        small = min(r, p) < params.min_segment_rows
        value = float("nan") if small else float(score_psi[code])
        reason = (
            f"skipped: fewer than {params.min_segment_rows} rows in a window"
            if small
            else "score PSI undefined (too few distinct reference scores)"
            if np.isnan(value)
            else ""
        )
        out.append(
            {
                "segment": f"model={model}",
                "reference_rows": r,
                "production_rows": p,
                "score_psi": value,
                "skipped_reason": reason,
            }
        )
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


def alerts(
    score_drift: pd.Series,
    drift_features: pd.DataFrame,
    ref_perf: pd.Series,
    prod_perf: pd.Series,
    params: MonitoringParams,
    multivariate: dict | None = None,
) -> list[Alert]:
    """The alert rules (four, five with the multivariate drift); each says why it fired or not, with its values
    and threshold."""
    out = []
    score_psi = score_drift["psi"]
    out.append(
        Alert(
            "score_drift",
            bool(score_psi >= params.score_psi_alert),
            _num(score_psi),
            params.score_psi_alert,
            f"score PSI {score_psi:.3f} vs threshold {params.score_psi_alert}",
        )
    )
    drifted = drift_features.loc[drifted_features(drift_features, params), "feature"].tolist()
    measured = int(drift_features[FEATURE_MEASURES[params.feature_drift_measure]].notna().sum())
    out.append(
        Alert(
            "feature_drift",
            len(drifted) >= params.min_drifted_features,
            float(len(drifted)),
            float(params.min_drifted_features),
            f"{len(drifted)} of {measured} features ({len(drifted) / max(measured, 1):.0%}) with "
            f"{params.feature_drift_measure} >= {params.drift_threshold} (alert from "
            f"{params.min_drifted_features})" + (f": {', '.join(drifted[:8])}" if drifted else ""),
        )
    )
    drop = ref_perf["average_precision"] - prod_perf["average_precision"]
    band = float(
        np.hypot(ref_perf.get("average_precision_band", np.nan), prod_perf.get("average_precision_band", np.nan))
    )
    fired = bool(drop >= params.ap_drop_alert and not drop <= band)  # an undefined band does not hold it back
    out.append(
        Alert(
            "performance_decay",
            fired,
            _num(drop),
            params.ap_drop_alert,
            f"AP {ref_perf['average_precision']:.3f} (reference) -> {prod_perf['average_precision']:.3f} "
            f"(production, mature labels): drop {drop:.3f} vs threshold {params.ap_drop_alert} and its "
            f"sampling band +-{band:.3f}"
            if not np.isnan(drop)
            else "AP undefined in a window (one class or no mature labels)",
        )
    )
    out.append(_label_drift(ref_perf, prod_perf, params))
    if multivariate is not None:
        out.append(_multivariate(multivariate, params))
    return out


def _multivariate(figures: dict, params: MonitoringParams) -> Alert:
    """Fires when the reconstruction error leaves its band or the largest correlation change passes its threshold
    (:mod:`pm_assets.core.multivariate`). Its value and threshold are the correlation change's; the reason gives
    both measures."""
    error, lower, upper = (figures.get(k) for k in ("production_error", "lower_threshold", "upper_threshold"))
    change, limit = figures.get("correlation_change"), figures.get("correlation_threshold")
    parts, fired = [], False
    if None not in (error, lower, upper):
        outside = error > upper or error < lower
        fired |= outside
        parts.append(
            f"PCA reconstruction error {error:.3f} vs band [{lower:.3f}, {upper:.3f}] (reference days' mean "
            f"+-{params.pca_sigma:g} sd)"
        )
    if None not in (change, limit):
        fired |= change > limit
        parts.append(
            f"largest correlation change {change:.3f} ({figures.get('correlation_pair', '')}) vs threshold {limit:.3f}"
        )
    return Alert(
        "multivariate_drift",
        bool(fired),
        change,
        float("nan") if limit is None else limit,
        "; ".join(parts) or "multivariate drift undefined (too few complete rows in a window)",
    )


def _label_drift(ref_perf: pd.Series, prod_perf: pd.Series, params: MonitoringParams) -> Alert:
    reference, production = ref_perf["failure_rate"], prod_perf["failure_rate"]
    rates = f"failure rate {reference:.4f} -> {production:.4f}"
    if params.label_drift_rule == "absolute":
        change = abs(production - reference)
        return Alert(
            "label_drift",
            bool(change >= params.failure_rate_change_alert),
            _num(change),
            params.failure_rate_change_alert,
            f"{rates}: change {change:.4f} vs threshold {params.failure_rate_change_alert}"
            if not np.isnan(change)
            else "failure rate undefined (no mature labels in a window)",
        )
    change = abs(production / reference - 1) if reference > 0 else float("nan")
    if np.isnan(change):
        return Alert(
            "label_drift",
            False,
            None,
            params.failure_rate_relative_alert,
            "relative change undefined (no mature labels or no failures in the reference window)",
        )
    k = params.snapshots_per_failure
    p_value = two_proportion_p_value(
        reference * ref_perf.get("mature_rows", np.nan) / k,
        ref_perf.get("mature_rows", np.nan) / k,
        production * prod_perf.get("mature_rows", np.nan) / k,
        prod_perf.get("mature_rows", np.nan) / k,
    )
    significant = not p_value >= params.label_drift_alpha  # unknown counts: the relative change alone decides
    return Alert(
        "label_drift",
        bool(change >= params.failure_rate_relative_alert and significant),
        _num(change),
        params.failure_rate_relative_alert,
        f"{rates}: relative change {change:.0%} vs threshold {params.failure_rate_relative_alert:.0%}, "
        f"p = {p_value:.2g} (two-proportion test on failures, alert below {params.label_drift_alpha:g})",
    )


def two_proportion_p_value(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion z test of x1 / n1 against x2 / n2 (NaN when undefined)."""
    from scipy.stats import norm

    if not (n1 > 0 and n2 > 0):
        return float("nan")
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if not se > 0:
        return float("nan") if np.isnan(se) else 1.0
    return float(2 * norm.sf(abs(x2 / n2 - x1 / n1) / se))


def _num(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
