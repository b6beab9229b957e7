"""What every stored column means: one place for the column descriptions the UI shows (``dagster/column_schema``).

Exact names first, then the families of generated names (``volt_mean_24h``, ``error3_count_24h``, ...). Pure
Python, no Dagster import. :func:`describe` raises for a column nobody described, so a new column cannot reach the UI
without a description (a test materializes every asset and describes all of its columns).
"""

from __future__ import annotations

import re

from pm_assets.core.monitoring import RETRAIN_FROM_ALERTS
from pm_assets.core.schema import SENSORS

WINDOW_WORDS = {"3h": "3 hours", "24h": "24 hours", "3d": "3 days", "7d": "7 days", "14d": "14 days"}

EXACT: dict[str, str] = {
    # the Kaggle tables
    "datetime": "UTC timestamp of the row (tz-naive; for features, scores and labels: the snapshot time)",
    "machineID": "Machine id (1..N), the key into the machines table",
    "errorID": "Error type, error1..error5",
    "comp": "Component replaced, comp1..comp4",
    "failure": "Component that failed, comp1..comp4",
    "model": "Machine model, model1..model4",
    "age": "Machine age in years",
    **{s: f"Hourly {s} reading" for s in SENSORS},
    # features and labels
    "usable": "True when the 3 h and 24 h telemetry windows have enough readings to score the snapshot",
    "complete": "True when every window is covered and no feature is missing",
    "failure_component": "Label: the first component failing within the horizon, 'none', or missing while immature",
    "failure_within_horizon": "Label: any failure within the horizon (missing while immature)",
    "hours_to_failure": "Hours from the snapshot to the first failure within the horizon (NaN: none)",
    "label_mature": "True once the horizon after the snapshot has been observed (or a failure occurred in it)",
    # scores and the worklist
    "p_none": "Calibrated probability of no failure within the horizon",
    "p_any": "Probability of any failure within the horizon, 1 - p_none",
    "likely_component": "Component with the highest failure probability",
    "predicted_class": "Most probable class (none, comp1..comp4)",
    "anomaly_score": "IsolationForest anomaly score of the telemetry features (higher: more unusual)",
    "risk_level": "low / medium / high from p_any and the RiskConfig thresholds",
    "model_version": "Registry version of the model that produced the row",
    "scored": "True when the snapshot was scored (usable)",
    "date": "UTC day (partition) the row belongs to",
    "rank": "Position in the day's worklist, by expected saving",
    "worst_snapshot": "The machine's snapshot with the highest p_any that day",
    "expected_failure_cost": "p_any x failure cost: the expected cost of waiting",
    "expected_saving": "Expected failure cost minus the inspection cost: positive means inspect",
    "action": "inspect (expected saving > 0) or monitor",
    # monitoring
    "traffic_light": "green (no alert), yellow (1-2 alerts), red (3+)",
    "light_code": "Traffic light as a number: 0 green, 1 yellow, 2 red",
    "alert_count": "How many of the five alerts fired",
    "drifted_share": "Share of the measured features that drifted (the dataset-level figure)",
    "reconstruction_error": "PCA reconstruction error of the telemetry features in the production window",
    "correlation_change": "Largest change of a correlation between two telemetry features, production vs reference",
    "retrain_recommended": f"True from {RETRAIN_FROM_ALERTS} alerts: the retraining sensor acts on it",
    "score_psi": "Population stability index of p_any, production vs reference window",
    "n_drifted_features": "Features whose drift measure (PSI by default) reached its alert threshold",
    "ap_reference": "Average precision on mature labels of the reference window",
    "ap_production": "Average precision on mature labels of the production window",
    "auc_reference": "ROC AUC on mature labels of the reference window",
    "auc_production": "ROC AUC on mature labels of the production window",
    "estimated_ap_immature": "Label-free estimate of the average precision on the production window's immature rows",
    "failure_rate_reference": "Share of mature reference snapshots followed by a failure within the horizon",
    "failure_rate_production": "Share of mature production snapshots followed by a failure within the horizon",
    "alerts": "The alerts that fired, comma-separated",
    "top_drifted": "The three features with the highest PSI, with their PSI",
    "report": "Path of the day's HTML monitoring report",
    # the landing inventory
    "table": "Table the file holds (from its name)",
    "name": "File name in the landing folder",
    "id": "The file's identity: sha256 of its bytes (and the day its name declares)",
    "sha256": "sha256 of the file's bytes",
    "bytes": "Size of the file",
    "ingested_at": "When the file was staged (UTC)",
    "status": "ingested, or failed (see error)",
    "rows": "Rows read from the file",
    "first_day": "First day the file brought rows for",
    "last_day": "Last day the file brought rows for",
    "days": "Days the file brought rows for",
    "rows_before_partitions": "Rows dated before the first daily partition (the opening history)",
    "rows_after_partitions": "Rows dated after the last partition (e.g. today's hours)",
    "rows_unplaced": "Rows without a readable or plausible timestamp and no day in the name (quarantined)",
    "rows_implausible": "Rows dated outside the plausible range (quarantined)",
    "days_replaced": "Days of this version replaced by a newer version of the same file",
    "error": "Why the file could not be read: file, line and problem",
    "extra_columns": "Columns of the file the table does not use (ignored)",
}

PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(rf"^({'|'.join(SENSORS)})_mean_(\w+)$"), "Mean {0} over the last {1} (NaN below the coverage minimum)"),
    (re.compile(rf"^({'|'.join(SENSORS)})_sd_(\w+)$"), "Standard deviation of {0} over the last {1} (ddof=1)"),
    (re.compile(rf"^({'|'.join(SENSORS)})_trend_(\w+)$"), "Least-squares slope of {0} over the last {1}, per day"),
    (re.compile(r"^(error\d)_count_(\w+)$"), "Number of {0} errors in the last {1}"),
    (re.compile(r"^(comp\d)_days_since_replacement$"), "Days since {0} was last replaced"),
    (re.compile(r"^coverage_(\w+)$"), "Share of the last {0} with a telemetry reading"),
    (re.compile(r"^fails_(comp\d)$"), "Label: {0} fails within the horizon"),
    (re.compile(r"^p_(comp\d)$"), "Calibrated probability that {0} fails within the horizon"),
]


def describe(column: str) -> str:
    """The description of a stored column; KeyError for a column nobody described."""
    if column in EXACT:
        return EXACT[column]
    for pattern, text in PATTERNS:
        match = pattern.match(column)
        if match:
            return text.format(*(WINDOW_WORDS.get(g, g) for g in match.groups()))
    raise KeyError(f"no description for column {column!r}: add it to pm_assets/core/columns.py")
