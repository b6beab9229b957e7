"""Drift scenarios on simulated data and how the monitoring light answers them. No Dagster import.

Each scenario is a :class:`~pm_assets.core.simulate.DriftSpec` from ``start`` on: a sensor shift (+1.5 noise sds on
volt and pressure), a doubled failure rate, and a correlation-only change (rotate's and vibration's hourly noise
correlated at 0.9, every marginal unchanged); "none" is the no-drift year. The fleet is simulated, its features,
labels and a model trained before ``train_cutoff`` built with the project's own functions, every snapshot scored,
and the light of each day computed by :func:`~pm_assets.core.monitoring.monitor_days`: what
``benchmarks/monitoring_scenario.py`` reports and ``test_monitoring_scenario.py`` checks.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from threadpoolctl import threadpool_limits

from pm_assets.core.features import build_features
from pm_assets.core.labels import build_labels
from pm_assets.core.model import fit_bundle, split_by_cutoff, training_rows
from pm_assets.core.monitoring import MonitoringParams, monitor_days, monitored_features, monitoring_rows
from pm_assets.core.scoring import score_snapshots
from pm_assets.core.simulate import DriftSpec, SimulationConfig, simulate

DRIFT_START = "2015-07-01"
HORIZON_HOURS = 24


def scenarios(start: str = DRIFT_START) -> dict[str, DriftSpec | None]:
    return {
        "none": None,
        "sensor shift": DriftSpec(start=start, sensor_shift_sd={"volt": 1.5, "pressure": 1.5}),
        "failure rate x2": DriftSpec(start=start, failure_rate_factor=2.0),
        "correlation only": DriftSpec(start=start, correlated_noise=("rotate", "vibration", 0.9)),
    }


def fleet(config: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated fleet's features and labels, as the pipeline builds them."""
    tables = simulate(config)
    features = build_features(
        tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], config.start, config.end
    )
    return features, build_labels(features, tables["failures"], HORIZON_HOURS, config.end)


def train(features: pd.DataFrame, labels: pd.DataFrame, cutoff):
    """The failure model trained on the rows before ``cutoff`` (less the label horizon), on one thread."""
    train_rows, _ = split_by_cutoff(training_rows(features, labels), pd.Timestamp(cutoff), HORIZON_HOURS)
    with threadpool_limits(1):  # deterministic and fair on a shared machine
        return fit_bundle(train_rows)


def scored_rows(features: pd.DataFrame, labels: pd.DataFrame, bundle) -> pd.DataFrame:
    """The monitoring rows: every usable snapshot scored by ``bundle``, with its labels."""
    return monitoring_rows(features, score_snapshots(features, bundle, "scenario"), labels)


def light_days(rows: pd.DataFrame, days, params: MonitoringParams = MonitoringParams()) -> pd.DataFrame:
    """The light of each monitoring day (the partition: its production window ends at the next midnight), the
    alerts that fired, and the figures behind them."""
    days = pd.DatetimeIndex(days)
    names = monitored_features()
    out = []
    for day, result in zip(days, monitor_days(rows, days + pd.Timedelta(days=1), names, params), strict=True):
        named = {a.name: a for a in result.alerts}
        out.append(
            {
                "date": day,
                "light": result.light,
                "alerts": result.alert_count,
                "fired": ",".join(a.name for a in result.alerts if a.fired),
                "score_psi": result.drift_scores["psi"].iloc[0],
                "drifted": int(result.drift_features["drifted"].sum()),
                "label_change": named["label_drift"].value,
                "reconstruction_error": (result.multivariate or {}).get("production_error"),
                "reconstruction_threshold": (result.multivariate or {}).get("upper_threshold"),
                "correlation_change": (result.multivariate or {}).get("correlation_change"),
                "correlation_threshold": (result.multivariate or {}).get("correlation_threshold"),
            }
        )
    return pd.DataFrame(out)


def days_to_alarm(table: pd.DataFrame, start: str = DRIFT_START) -> int | None:
    """Days from ``start`` to the first day on or after it that is not green (0: the start day itself); None: never."""
    after = table[(table["date"] >= pd.Timestamp(start)) & (table["light"] != "green")]
    return int((after["date"].iloc[0] - pd.Timestamp(start)).days) if len(after) else None


def notebook_params(params: MonitoringParams = MonitoringParams()) -> MonitoringParams:
    """The rules before the monitoring-depth changes, for comparison: the absolute label rule, no multivariate
    drift, no sampling band (the band_z of 0 makes every band 0)."""
    return replace(params, label_drift_rule="absolute", multivariate_features=(), band_z=0.0)
