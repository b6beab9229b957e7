"""Measurements that compare a (simulated or real) fleet with the real Azure PdM data.

Pure pandas/numpy, no Dagster. Inputs are the tables as read from the Kaggle files (``pd.read_csv`` with
``parse_dates=["datetime"]``) or as returned by :func:`pm_assets.core.simulate.simulate`; extra columns are
ignored and category columns may be plain strings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.schema import COMPONENT_SENSOR, COMPONENTS, ERROR_IDS, MODELS, SENSORS

_HOUR = np.timedelta64(1, "h")


def sensor_stats(telemetry: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample sd (ddof=1) of each sensor: index sensor, columns ``mean``, ``sd``."""
    values = telemetry[list(SENSORS)]
    return pd.DataFrame({"mean": values.mean(), "sd": values.std()}).rename_axis("sensor")


def _window_keys(failures: pd.DataFrame, comp: str, lags: np.ndarray) -> pd.DataFrame:
    """(failure number, machineID, datetime) of the hours ``t - lag`` for each failure of ``comp`` at ``t``."""
    own = failures.loc[failures["failure"].astype(str) == comp]
    times = own["datetime"].to_numpy(dtype="datetime64[ns]")
    return pd.DataFrame(
        {
            "failure_no": np.repeat(np.arange(len(own)), len(lags)),
            "machineID": np.repeat(own["machineID"].to_numpy(dtype=np.int64), len(lags)),
            "datetime": np.repeat(times, len(lags)) - np.tile(lags, len(own)) * _HOUR,
        }
    )


def precursor_zshift(telemetry: pd.DataFrame, failures: pd.DataFrame, hours: int = 48) -> pd.Series:
    """Mean shift of each component's sensor before its failures, in sds of normal operation (index comp1..4).

    For a failure at ``t`` the shift is the mean of the matching sensor (``COMPONENT_SENSOR``) over the
    telemetry hours in ``[t - hours, t)``, minus the reference mean, divided by the reference sd; the result
    averages over the failures with at least one reading in that window (NaN if none).

    The reference is the sensor's readings outside every ``[t - hours, t]`` window of that component's
    failures (the failure hour itself is shifted too in the real data). Using all the telemetry given instead
    depends on how it was sampled: the real union file is a quarter precursor windows, which inflates its sd and
    moves its mean towards the shift (comp4 +1.68 instead of +1.94), while the complete simulated telemetry is
    1 % windows.
    """
    tele = pd.DataFrame(
        {
            "machineID": telemetry["machineID"].to_numpy(dtype=np.int64),
            "datetime": telemetry["datetime"].to_numpy(dtype="datetime64[ns]"),
        }
    )
    tele_key = pd.MultiIndex.from_frame(tele)
    result = {}
    for comp in COMPONENTS:
        sensor = COMPONENT_SENSOR[comp]
        values = telemetry[sensor].to_numpy(dtype=float)
        in_windows = _window_keys(failures, comp, np.arange(0, hours + 1))[["machineID", "datetime"]]
        excluded = tele_key.isin(pd.MultiIndex.from_frame(in_windows))
        reference = values[~excluded]
        window = _window_keys(failures, comp, np.arange(1, hours + 1)).merge(
            tele.assign(value=values), on=["machineID", "datetime"], how="inner"
        )
        per_failure = (window.groupby("failure_no")["value"].mean() - reference.mean()) / reference.std(ddof=1)
        result[comp] = per_failure.mean() if len(per_failure) else np.nan
    return pd.Series(result, name="zshift").rename_axis("comp")


def failure_counts(failures: pd.DataFrame) -> pd.Series:
    """Number of failures per component (index comp1..comp4, zeros included)."""
    return failures["failure"].astype(str).value_counts().reindex(list(COMPONENTS), fill_value=0).rename("failures")


def error_counts(errors: pd.DataFrame) -> pd.Series:
    """Number of errors per type (index error1..error5, zeros included)."""
    return errors["errorID"].astype(str).value_counts().reindex(list(ERROR_IDS), fill_value=0).rename("errors")


def failures_per_machine_by_model(failures: pd.DataFrame, machines: pd.DataFrame) -> pd.Series:
    """Failures per machine of each model over the whole period (index model1..model4; NaN for absent models)."""
    model = machines.set_index("machineID")["model"].astype(str)
    fails = failures["machineID"].map(model).value_counts().reindex(list(MODELS), fill_value=0)
    n_machines = model.value_counts().reindex(list(MODELS))
    return (fails / n_machines).rename("failures_per_machine")


def error_rate_per_machine_day(errors: pd.DataFrame, machines: int, days: float) -> float:
    """Errors per machine per day, for ``machines`` machines observed ``days`` days."""
    return len(errors) / (machines * days)


def replacement_gap_median_days(maintenance: pd.DataFrame) -> float:
    """Median of the days between consecutive replacements of the same (machine, component)."""
    ordered = maintenance.assign(comp=maintenance["comp"].astype(str)).sort_values(["machineID", "comp", "datetime"])
    gaps = ordered.groupby(["machineID", "comp"])["datetime"].diff().dropna()
    return float((gaps / pd.Timedelta(days=1)).median())
