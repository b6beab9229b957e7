"""Monitoring: drift and performance of the champion's inputs and scores, a traffic light, reports, and the
history of every monitored day (``monitoring_history``: a table, a trend chart, an index page).

Partitioned by day, so its history is a time series in the UI. For partition D the production window is the 14
days ending with D and the reference window the 60 days before (``MonitoringConfig``). Every partition writes
``data/outputs/monitoring/<D>/``: drift_features.csv, drift_scores.csv, performance.csv, drift_weighted.csv,
drift_segments.csv, monitoring_summary.json and report.html (self-contained).
"""

import os
from collections import deque

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
    params_of,
    run_summary,
    shown,
)
from pm_assets.core.atomic import write_bytes_atomic
from pm_assets.core.chunks import ChunkedFrames, StoredPartitions, shift_key
from pm_assets.core.history import history_table, index_html, svg_data_uri, trend_svg
from pm_assets.core.markdown import markdown_table
from pm_assets.core.monitoring import (
    LIGHT_RULE,
    LIGHTS,
    MonitoringParams,
    monitor_stored,
    monitored_features,
    monitoring_rows,
    stored_window_drift,
)
from pm_assets.core.reports import REPORT_PAGE, TREND_DAYS, ReportWriter, day_figures, drawn_features, past_figures
from pm_assets.partitions import naive_window
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
    report_process_days: int = Field(
        default=30,
        ge=1,
        description="A run of at least this many days writes its reports in a separate process, on another CPU "
        "(a shorter one in a thread: the process takes about a second to start).",
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
    f"traffic light ({LIGHT_RULE}). One row per day; reports and an HTML page in data/outputs/monitoring/<date>/.",
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
    champion, importance = _champion_of(model_registry)
    keys = list(context.partition_keys)
    ends = [naive_window(key)[1] for key in keys]
    drift = _drift_of_run(features, scores, keys, ends, params, config.threads)
    progress = Progress(context.log, len(keys))
    recent = deque(past_figures(outputs.monitoring_root(), keys[0]), maxlen=TREND_DAYS)  # the reports' trend panel
    state = {"done": 0, "last": None}

    def chunks():
        # report files are written while the next days are monitored
        with ReportWriter(process=len(keys) >= config.report_process_days) as writer:
            for chunk in chunks_of(context):
                days = range(keys.index(chunk[0]), keys.index(chunk[0]) + len(chunk))
                drawn = drawn_features(drift, days)
                rows = _chunk_rows(features, scores, labels, chunk, drawn)
                writer.share(rows, [*drawn, "p_any"])  # the days' results give their windows by position in these
                summaries = []
                for key, result in zip(chunk, monitor_stored(rows, ends, days, drift, params, importance), strict=True):
                    state["done"] += 1
                    progress.update(state["done"])
                    folder = outputs.monitoring_folder(key)
                    row = day_figures(key, result, champion, folder / REPORT_PAGE)
                    summaries.append(row)
                    recent.append(row)
                    trend = history_table(pd.DataFrame(list(recent)))
                    writer.submit(folder, key, result, params, row, trend)
                    context.add_asset_metadata(day_metadata(row, result), partition_key=key)
                    state["last"] = result
                writer.wait()  # a day is stored with its reports written: a failed write fails the step
                table = pd.DataFrame(summaries)
                state["schema"] = table.head(0)
                yield chunk, table

    def metadata() -> dict:
        return _run_metadata(state["schema"], len(keys), state["last"], outputs.monitoring_folder(keys[-1]))

    yield Output(ChunkedFrames(chunks(), metadata))
    yield from _alert_check_results(state["last"], keys[-1])


def _champion_of(model_registry: ModelRegistryResource) -> tuple[str | None, pd.Series | None]:
    """The champion's version (None without one) and its permutation importance per feature (None without)."""
    registry = model_registry.registry()
    champion = registry.champion()
    if champion is None:
        return None, None
    values = registry.card(champion).get("permutation_importance", {}).get("values")
    return champion, pd.Series(values, dtype=float) if values else None


def _drift_of_run(features: StoredPartitions, scores: StoredPartitions, keys: list[str], ends, params, threads: int):
    """The drift of every day of the run first, a few feature columns of the whole range (with the lookback) at a
    time."""
    first, last = shift_key(keys[0], -MONITORING_LOOKBACK_DAYS), keys[-1]
    return stored_window_drift(
        lambda columns: features.read(first, last, columns),
        lambda columns: scores.read(first, last, columns),
        monitored_features(),
        ends,
        params,
        threads,
    )


def _chunk_rows(features, scores, labels, chunk: list[str], feature_names: list[str]) -> pd.DataFrame:
    """The monitoring rows of a chunk's windows, with only the feature columns its reports draw."""
    first = shift_key(chunk[0], -MONITORING_LOOKBACK_DAYS)
    return monitoring_rows(
        features.read(first, chunk[-1], ["machineID", "datetime", "model", *feature_names]),
        scores.read_window(first, chunk[-1], "datetime"),
        labels.read_window(first, chunk[-1], "datetime"),
    )


def _run_metadata(schema: pd.DataFrame, partitions: int, last, last_folder) -> dict:
    """The run's metadata: the table's schema, what it did, the latest day's report."""
    return shown(
        {
            "dagster/column_schema": column_schema(schema),
            "run": run_summary(partitions=partitions, latest_light=last.light),
            "latest_report": MetadataValue.path(str(last_folder / REPORT_PAGE)),
        }
    )


def _alert_check_results(result, partition: str):
    """One check a day's alert: fails (WARN) when it fired on ``partition``, the run's latest day."""
    fired = {alert.name: alert for alert in result.alerts}
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
            metadata=shown({"value": _float(alert.value), "threshold": alert.threshold, "partition": partition}),
        )


#: The performance table's columns shown in a day's metadata.
PERFORMANCE_SHOWN = [
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


def day_metadata(row: dict, result) -> dict:
    """The day's materialization metadata: its figures (plotted by the UI) and the alerts and tables as text."""
    alerts = pd.DataFrame([{"alert": a.name, "fired": a.fired, "reason": a.reason} for a in result.alerts])
    return shown(
        {
            "traffic_light": result.light,
            "model_version": row["model_version"],
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
            "alerts": MetadataValue.md(markdown_table(alerts)),
            "top_drifted_features": MetadataValue.md(markdown_table(result.drift_features.head(10))),
            "performance": MetadataValue.md(markdown_table(result.performance[PERFORMANCE_SHOWN])),
        }
    )


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
