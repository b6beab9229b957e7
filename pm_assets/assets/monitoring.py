"""Monitoring: drift and performance of the champion's inputs and scores, a traffic light, reports, and the
history of every monitored day (``monitoring_history``: a table, a trend chart, an index page).

Partitioned by day, so its history is a time series in the UI. For partition D the production window is the 14
days ending with D and the reference window the 60 days before (``MonitoringConfig``). Every partition writes
``data/outputs/monitoring/<D>/``: drift_features.csv, drift_scores.csv, performance.csv, drift_weighted.csv,
drift_segments.csv, monitoring_summary.json and report.html (self-contained).
"""

import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Config,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)
from pydantic import Field

from pm_assets.assets.common import (
    Progress,
    chunked_in,
    chunks_of,
    code_version,
    column_schema,
    daily_partitioned,
    naive_utc,
    params_of,
    run_summary,
    shown,
)
from pm_assets.core.atomic import atomic_dir, write_bytes_atomic
from pm_assets.core.chunks import ChunkedFrames, StoredPartitions, shift_key
from pm_assets.core.history import history_table, index_html, svg_data_uri, trend_svg
from pm_assets.core.html_report import render
from pm_assets.core.json_safe import to_json_safe
from pm_assets.core.markdown import markdown_table
from pm_assets.core.monitoring import (
    LIGHTS,
    MonitoringParams,
    monitor_stored,
    monitored_features,
    monitoring_rows,
    retrain_recommended,
    stored_window_drift,
)
from pm_assets.partitions import daily_partitions
from pm_assets.resources import ModelRegistryResource, OutputsResource

#: Changes with this module and the pm_assets code it uses (see ``code_version``).
CODE_VERSION = code_version(__name__)

MONITORING_GROUP = "monitoring"
_DEFAULTS = MonitoringParams()
#: Earlier partitions read: the reference and production windows at their longest.
MONITORING_LOOKBACK_DAYS = _DEFAULTS.reference_days + _DEFAULTS.production_days - 1
ALERT_CHECKS = {
    "score_drift": "no_score_drift",
    "feature_drift": "no_feature_drift",
    "performance_decay": "no_performance_decay",
    "label_drift": "no_label_drift",
    "multivariate_drift": "no_multivariate_drift",
}
HISTOGRAM_FEATURES = 4
REPORT_PAGE = "report.html"


class MonitoringConfig(Config):
    """Windows, measures and alert thresholds. Defaults: ``MonitoringParams``' (the notebook's windows and PSI rule,
    with the rules the README's "Monitoring" section justifies); every field is a field of ``MonitoringParams`` of
    the same name, passed on by :meth:`params`."""

    reference_days: int = Field(default=_DEFAULTS.reference_days, ge=1)
    production_days: int = Field(default=_DEFAULTS.production_days, ge=1)
    score_psi_alert: float = Field(
        default=_DEFAULTS.score_psi_alert, description="Alert when the score PSI is at least this."
    )
    feature_psi_alert: float = Field(default=_DEFAULTS.feature_psi_alert, description="A feature drifts at this PSI.")
    min_drifted_features: int = Field(
        default=_DEFAULTS.min_drifted_features, description="Alert from this many drifted features."
    )
    ap_drop_alert: float = Field(
        default=_DEFAULTS.ap_drop_alert,
        description="Alert when AP drops this much from the reference, and by more than its band.",
    )
    failure_rate_change_alert: float = Field(
        default=_DEFAULTS.failure_rate_change_alert,
        description="The 'absolute' label rule: alert when the failure rate moves this much (0.10 = 10 points).",
    )
    min_segment_rows: int = Field(default=_DEFAULTS.min_segment_rows, description="Smallest segment window compared.")
    discrete_max_values: int = Field(
        default=_DEFAULTS.discrete_max_values,
        ge=1,
        description=(
            "A feature with at most this many distinct values is discrete: PSI and Jensen-Shannon on one bin per "
            "value, "
            "and a chi-square test."
        ),
    )
    drift_methods: dict[str, str] = Field(
        default_factory=dict,
        description=("Per-feature override of that choice: {feature: 'discrete' or 'continuous'}."),
    )
    feature_drift_measure: str = Field(
        default=_DEFAULTS.feature_drift_measure,
        description=(
            "What makes a feature drifted: 'psi' (>= feature_psi_alert, the notebook's) or 'jensen_shannon' "
            "(>= feature_js_alert)."
        ),
    )
    feature_js_alert: float = Field(
        default=_DEFAULTS.feature_js_alert,
        description="A feature drifts at this Jensen-Shannon distance (that measure).",
    )
    multivariate_features: list[str] = Field(
        default_factory=lambda: list(_DEFAULTS.multivariate_features),
        description="Features of the multivariate drift (empty: off).",
    )
    pca_variance: float = Field(
        default=_DEFAULTS.pca_variance,
        gt=0,
        lt=1,
        description="Share of the reference's variance the PCA components keep.",
    )
    pca_sigma: float = Field(
        default=_DEFAULTS.pca_sigma,
        gt=0,
        description="The multivariate thresholds: reference days' mean +- this many sds.",
    )
    label_drift_rule: str = Field(
        default=_DEFAULTS.label_drift_rule,
        description=(
            "'relative' (relative change >= failure_rate_relative_alert and significant at label_drift_alpha) or "
            "'absolute' (the notebook's: failure_rate_change_alert)."
        ),
    )
    failure_rate_relative_alert: float = Field(
        default=_DEFAULTS.failure_rate_relative_alert,
        gt=0,
        description="The 'relative' label rule's change (0.5 = 50 %).",
    )
    label_drift_alpha: float = Field(
        default=_DEFAULTS.label_drift_alpha, gt=0, lt=1, description="The 'relative' label rule's significance level."
    )
    band_z: float = Field(default=_DEFAULTS.band_z, ge=0, description="Bands of AUC and AP: this many standard errors.")
    snapshots_per_failure: int = Field(
        default=_DEFAULTS.snapshots_per_failure,
        ge=1,
        description=(
            "Positive snapshots one failure makes (horizon / snapshot interval): the bands and the label test count "
            "failures."
        ),
    )
    threads: int = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)),
        ge=1,
        description="Days monitored at once in a ranged run (default: the CPUs this process may use).",
    )

    def params(self) -> MonitoringParams:
        if self.reference_days + self.production_days - 1 > MONITORING_LOOKBACK_DAYS:
            raise ValueError(
                f"reference_days + production_days must be at most {MONITORING_LOOKBACK_DAYS + 1} "
                "(the partitions the monitoring asset reads)"
            )
        return params_of(
            self,
            MonitoringParams,
            drift_methods=tuple(sorted(self.drift_methods.items())),
            multivariate_features=tuple(self.multivariate_features),
        )


def _lookback() -> AssetIn:
    return chunked_in(
        TimeWindowPartitionMapping(start_offset=-MONITORING_LOOKBACK_DAYS, allow_nonexistent_upstream_partitions=True),
        allow_missing_partitions=True,
    )


#: Days of monitoring history the report's trend panel shows.
TREND_DAYS = 90


def past_figures(outputs: OutputsResource, first: str, days: int = TREND_DAYS - 1) -> list[dict]:
    """The monitoring figures of the ``days`` days before ``first``, from their summaries on disk (days never
    monitored are skipped): the start of the reports' trend panel in a run that begins at ``first``."""
    rows = []
    root = outputs.monitoring_root()
    monitored = {p.name for p in root.iterdir()} if root.exists() else set()  # one listing, not a check per day
    for day in pd.date_range(end=pd.Timestamp(first) - pd.Timedelta(days=1), periods=days).strftime("%Y-%m-%d"):
        path = outputs.monitoring_folder(day) / "monitoring_summary.json"
        if day in monitored and path.exists():
            figures = json.loads(path.read_text()).get("figures")
            if figures:
                rows.append(figures | {"date": pd.Timestamp(figures["date"])})
    return rows


def write_reports(
    folder: Path,
    date: str,
    result,
    params: MonitoringParams,
    figures: dict | None = None,
    trend: pd.DataFrame | None = None,
) -> Path:
    """The partition's CSVs, JSON summary (with the day's ``figures``, the row of the monitoring table) and HTML
    report (with the trend of ``trend``, the figures of the last 90 days), written as one folder that replaces the
    day's previous one whole."""
    with atomic_dir(folder) as out:  # the folder appears whole or not at all
        tables = {
            "drift_features": result.drift_features,
            "drift_scores": result.drift_scores,
            "performance": result.performance,
            "drift_weighted": result.drift_weighted,
            "drift_segments": result.drift_segments,
        }
        for name, table in tables.items():
            write_bytes_atomic(out / f"{name}.csv", table.to_csv(index=False).encode())
        summary = result.summary() | {
            "date": date,
            "feature_psi_alert": params.drift_threshold,
            "feature_drift_measure": params.feature_drift_measure,
        }
        if figures is not None:
            summary["figures"] = figures | {"date": date}
        write_bytes_atomic(
            out / "monitoring_summary.json", json.dumps(to_json_safe(summary), indent=2, allow_nan=False).encode()
        )
        top = result.drift_features.dropna(subset=["psi"]).head(HISTOGRAM_FEATURES)["feature"].tolist()
        ref, prod = result.reference_rows, result.production_rows
        samples = {f: (ref[f].to_numpy(), prod[f].to_numpy()) for f in top}
        samples["p_any (score)"] = (ref["p_any"].to_numpy(), prod["p_any"].to_numpy())
        chart = (
            trend_svg(trend, params.score_psi_alert, width=1180, title=f"The last {TREND_DAYS} days")
            if trend is not None and len(trend)
            else None
        )
        page = render(
            date,
            to_json_safe(summary),
            result.drift_features,
            result.drift_scores,
            result.performance,
            result.drift_segments,
            samples,
            trend_svg=chart,
            score_psi_alert=params.score_psi_alert,
        )
        write_bytes_atomic(out / REPORT_PAGE, page.encode())
    return folder / REPORT_PAGE


@asset(
    code_version=CODE_VERSION,
    group_name=MONITORING_GROUP,
    kinds={"pandas", "html"},
    **daily_partitioned("date"),
    ins={"features": _lookback(), "scores": _lookback(), "labels": _lookback()},
    deps=["failure_model"],
    check_specs=[
        AssetCheckSpec(
            name,
            asset="monitoring",
            description=f"Fails (WARN) when the {alert} alert fires on the latest partition of the run.",
        )
        for alert, name in ALERT_CHECKS.items()
    ],
    description="Drift and performance monitoring of the champion: feature PSI/KS, score PSI/KS, failure rate, AUC/AP "
    "per week on mature labels with label-free estimates beside them, segment drift per machine model, "
    "importance-weighted drift, multivariate drift (PCA reconstruction error, correlation change); five alerts and a "
    "traffic light (green 0, yellow 1-2, red 3+; retraining recommended from 2). One row per day; reports and an "
    "HTML page in data/outputs/monitoring/<date>/.",
)
def monitoring(
    context: AssetExecutionContext,
    config: MonitoringConfig,
    features: StoredPartitions,
    scores: StoredPartitions,
    labels: StoredPartitions,
    model_registry: ModelRegistryResource,
    outputs: OutputsResource,
):
    params = config.params()
    registry = model_registry.registry()
    champion = registry.champion()
    importance = None
    if champion is not None:
        values = registry.card(champion).get("permutation_importance", {}).get("values")
        importance = pd.Series(values, dtype=float) if values else None
    names = monitored_features()
    keys = list(context.partition_keys)
    ends = [naive_utc(daily_partitions.time_window_for_partition_key(key).end) for key in keys]
    first, last = shift_key(keys[0], -MONITORING_LOOKBACK_DAYS), keys[-1]
    # the drift of every day first, a few feature columns of the whole range at a time
    drift = stored_window_drift(
        lambda columns: features.read(first, last, columns),
        lambda columns: scores.read(first, last, columns),
        names,
        ends,
        params,
        config.threads,
    )
    progress = Progress(context.log, len(keys))
    recent = deque(past_figures(outputs, keys[0]), maxlen=TREND_DAYS)  # the reports' trend panel
    state = {"done": 0, "last": None}

    def chunks():
        with ThreadPoolExecutor(max_workers=1) as writer:  # report files are written while the next days are monitored
            for chunk in chunks_of(context):
                start = keys.index(chunk[0])
                days = range(start, start + len(chunk))
                # the features the chunk's reports draw (the most drifted), not the others
                shown_features = sorted({f for day in days for f in drift.most_drifted(day, HISTOGRAM_FEATURES)})
                chunk_first = shift_key(chunk[0], -MONITORING_LOOKBACK_DAYS)
                rows = monitoring_rows(
                    features.read(chunk_first, chunk[-1], ["machineID", "datetime", "model", *shown_features]),
                    scores.read_window(chunk_first, chunk[-1], "datetime"),
                    labels.read_window(chunk_first, chunk[-1], "datetime"),
                )
                summaries, written = [], []
                for key, result in zip(chunk, monitor_stored(rows, ends, days, drift, params, importance), strict=True):
                    state["done"] += 1
                    progress.update(state["done"])
                    folder = outputs.monitoring_folder(key)
                    row = day_figures(key, result, champion, folder / REPORT_PAGE)
                    summaries.append(row)
                    recent.append(row)
                    figures = {k: (v if not isinstance(v, pd.Timestamp) else str(v.date())) for k, v in row.items()}
                    written.append(
                        writer.submit(
                            write_reports,
                            folder,
                            key,
                            result,
                            params,
                            to_json_safe(figures),
                            history_table(pd.DataFrame(list(recent))),
                        )
                    )
                    context.add_asset_metadata(day_metadata(row, result), partition_key=key)
                    state["last"] = result
                for future in written:
                    future.result()  # a failed write fails the step
                table = pd.DataFrame(summaries)
                state["schema"] = table.head(0)
                yield chunk, table

    def metadata() -> dict:
        return shown(
            {
                "dagster/column_schema": column_schema(state["schema"]),
                "run": run_summary(partitions=len(keys), latest_light=state["last"].light),
                "latest_report": MetadataValue.path(str(outputs.monitoring_folder(keys[-1]) / REPORT_PAGE)),
            }
        )

    yield Output(ChunkedFrames(chunks(), metadata))
    fired = {alert.name: alert for alert in state["last"].alerts}
    for name, check in ALERT_CHECKS.items():
        alert = fired.get(name)
        if alert is None:  # the multivariate drift with no features configured
            yield AssetCheckResult(check_name=check, passed=True, description=f"{name} is not measured (off)")
            continue
        yield AssetCheckResult(
            check_name=check,
            passed=not alert.fired,
            severity=AssetCheckSeverity.WARN,
            description=alert.reason,
            metadata=shown({"value": _float(alert.value), "threshold": alert.threshold, "partition": keys[-1]}),
        )


def day_figures(key: str, result, champion: str | None, report: Path) -> dict:
    """The day's row of the monitoring table."""
    perf = result.performance.set_index("period")
    return {
        "date": pd.Timestamp(key),
        "traffic_light": result.light,
        "light_code": LIGHTS.index(result.light),
        "alert_count": result.alert_count,
        "retrain_recommended": retrain_recommended(result.alert_count),
        "score_psi": result.drift_scores["psi"].iloc[0],
        "n_drifted_features": int(result.drift_features["drifted"].sum()),
        "auc_reference": perf.loc["reference", "roc_auc"],
        "auc_production": perf.loc["production", "roc_auc"],
        "top_drifted": ", ".join(
            f"{f} {v:.3g}"
            for f, v in result.drift_features.dropna(subset=["psi"]).head(3)[["feature", "psi"]].itertuples(index=False)
        ),
        "ap_reference": perf.loc["reference", "average_precision"],
        "ap_production": perf.loc["production", "average_precision"],
        "failure_rate_reference": perf.loc["reference", "failure_rate"],
        "failure_rate_production": perf.loc["production", "failure_rate"],
        "estimated_ap_immature": perf.loc["production", "immature_estimated_average_precision"],
        "drifted_share": _share(int(result.drift_features["drifted"].sum()), len(result.drift_features)),
        "reconstruction_error": (result.multivariate or {}).get("production_error"),
        "correlation_change": (result.multivariate or {}).get("correlation_change"),
        "alerts": ", ".join(a.name for a in result.alerts if a.fired),
        "model_version": champion or "none",
        "report": str(report),
    }


def day_metadata(row: dict, result) -> dict:
    """The day's materialization metadata: its figures (plotted by the UI) and the alerts and tables as text."""
    return shown(
        {
            "traffic_light": result.light,
            "light_code": row["light_code"],
            "alert_count": row["alert_count"],
            "retrain_recommended": row["retrain_recommended"],
            "score_psi": _float(row["score_psi"]),
            "n_drifted_features": row["n_drifted_features"],
            "ap_reference": _float(row["ap_reference"]),
            "ap_production": _float(row["ap_production"]),
            "drifted_share": _float(row["drifted_share"]),
            "reconstruction_error": _float(row["reconstruction_error"]),
            "correlation_change": _float(row["correlation_change"]),
            "report": MetadataValue.path(row["report"]),
            "alerts": MetadataValue.md(
                markdown_table(
                    pd.DataFrame([{"alert": a.name, "fired": a.fired, "reason": a.reason} for a in result.alerts])
                )
            ),
            "top_drifted_features": MetadataValue.md(markdown_table(result.drift_features.head(10))),
            "performance": MetadataValue.md(
                markdown_table(
                    result.performance[
                        [
                            "period",
                            "rows",
                            "mature_rows",
                            "failure_rate",
                            "roc_auc",
                            "average_precision",
                            "estimated_average_precision",
                            "immature_rows",
                            "immature_estimated_average_precision",
                        ]
                    ]
                )
            ),
        }
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def _float(value) -> float:
    """Metadata floats for the UI's plots (NaN stays NaN: the point is missing, not zero)."""
    return float("nan") if value is None else float(value)


@asset(
    code_version=CODE_VERSION,
    group_name=MONITORING_GROUP,
    kinds={"pandas", "html", "svg"},
    ins={"monitoring": AssetIn(metadata={"allow_missing_partitions": True}, partition_mapping=AllPartitionMapping())},
    description="Monitoring over time: one row per monitored day (light, alerts and which, score PSI, drifted features "
    "and the top three, AUC and AP of reference and production, the label-free AP estimate, failure rates, model "
    "version, report). Its trend chart is in the metadata and on data/outputs/monitoring/index.html, which links "
    "every day's report with its light.",
)
def monitoring_history(context: AssetExecutionContext, monitoring: pd.DataFrame, outputs: OutputsResource):
    history = history_table(monitoring)
    folder = outputs.monitoring_root()
    threshold = MonitoringConfig().score_psi_alert
    write_bytes_atomic(folder / "index.html", index_html(history, folder, threshold).encode())
    svg = trend_svg(history, threshold)
    write_bytes_atomic(folder / "trend.svg", svg.encode())
    counts = history["traffic_light"].value_counts()
    recent = history.tail(14)[["date", "traffic_light", "alert_count", "alerts", "score_psi", "ap_production"]]
    yield Output(
        history,
        metadata=shown(
            {
                "dagster/column_schema": column_schema(history),
                "dagster/row_count": len(history),
                "trend": MetadataValue.md(f"![monitoring trend]({svg_data_uri(svg)})"),
                "index": MetadataValue.path(str(folder / "index.html")),
                "days": run_summary(
                    first=history["date"].min().date() if len(history) else "none",
                    last=history["date"].max().date() if len(history) else "none",
                    **{light: int(counts.get(light, 0)) for light in LIGHTS},
                ),
                "last_14_days": MetadataValue.md(markdown_table(recent.iloc[::-1])),
            }
        ),
    )
