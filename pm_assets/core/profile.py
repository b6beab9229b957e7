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


def _hourly(telemetry: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Machine ids, hour numbers (hours since the first reading) and sensor values, sorted by machine and hour."""
    ordered = telemetry.assign(datetime=pd.to_datetime(telemetry["datetime"])).sort_values(
        ["machineID", "datetime"], kind="stable"
    )
    times = ordered["datetime"].to_numpy(dtype="datetime64[ns]")
    hours = ((times - times.min()) // _HOUR).astype(np.int64) if len(times) else np.zeros(0, np.int64)
    return ordered["machineID"].to_numpy(dtype=np.int64), hours, ordered[list(SENSORS)]


def lag1_autocorrelation(telemetry: pd.DataFrame) -> pd.Series:
    """Correlation of each sensor's reading with the same machine's reading one hour later (pairs of consecutive
    hours only; index: sensors)."""
    machine, hours, values = _hourly(telemetry)
    pairs = (machine[1:] == machine[:-1]) & (hours[1:] - hours[:-1] == 1)
    return pd.Series(
        {
            s: float(np.corrcoef(values[s].to_numpy()[:-1][pairs], values[s].to_numpy()[1:][pairs])[0, 1])
            for s in SENSORS
        },
        name="lag1",
    ).rename_axis("sensor")


def clean_24h_means(telemetry: pd.DataFrame, failures: pd.DataFrame, clear_hours: int = 72) -> pd.DataFrame:
    """Each sensor's mean over the 24 h up to every 3-hourly snapshot with 24 complete hours and no failure of the
    machine from it to ``clear_hours`` after it ("clean" snapshots; columns: sensors)."""
    machine, hours, values = _hourly(telemetry)
    out = []
    for m in np.unique(machine):
        own = machine == m
        grid = np.full((hours[own].max() + 1, len(SENSORS)), np.nan)
        grid[hours[own]] = values[own].to_numpy()
        sums = np.nancumsum(np.vstack([np.zeros((1, len(SENSORS))), grid]), axis=0)
        counts = np.cumsum(np.concatenate([[0], ~np.isnan(grid[:, 0])]))
        ends = np.arange(23, len(grid))  # a snapshot at hour h averages hours h-23 .. h
        complete = counts[ends + 1] - counts[ends - 23] == 24
        start = pd.to_datetime(telemetry["datetime"]).min().to_datetime64()
        ends = ends[complete & (pd.DatetimeIndex(start + ends * _HOUR).hour.to_numpy() % 3 == 0)]
        times = start + ends * _HOUR
        own_failures = np.sort(
            pd.to_datetime(failures.loc[failures["machineID"] == m, "datetime"]).to_numpy(dtype="datetime64[ns]")
        )
        clear = np.ones(len(times), dtype=bool)
        if len(own_failures):
            later = np.searchsorted(own_failures, times, side="left")  # the first failure at or after each snapshot
            ahead = own_failures[np.minimum(later, len(own_failures) - 1)] - times
            clear = (later >= len(own_failures)) | (ahead >= clear_hours * _HOUR)
        means = (sums[ends[clear] + 1] - sums[ends[clear] - 23]) / 24
        out.append(pd.DataFrame(means, columns=list(SENSORS)))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=list(SENSORS))


#: A 24 h mean this far from the sensor's overall mean, towards its precursor shift, is "precursor-sized": half
#: the real precursor shifts (volt +0.66 sd, rotate -0.77, pressure +1.18, vibration +0.97 hourly sds).
EXCURSION_THRESHOLD = {"volt": 181.0, "rotate": 410.0, "pressure": 113.8, "vibration": 45.6}


def excursion_share(means: pd.DataFrame) -> pd.Series:
    """Share of clean snapshots (:func:`clean_24h_means`) whose 24 h mean is beyond ``EXCURSION_THRESHOLD``, per
    sensor and for any sensor."""
    beyond = pd.DataFrame(
        {s: means[s] < EXCURSION_THRESHOLD[s] if s == "rotate" else means[s] > EXCURSION_THRESHOLD[s] for s in SENSORS}
    )
    return pd.concat([beyond.mean(), pd.Series({"any": beyond.any(axis=1).mean()})]).rename("excursion_share")


def co_failure_share(failures: pd.DataFrame) -> float:
    """Share of failures that share their (machine, hour) with a failure of another component."""
    size = failures.groupby(["machineID", "datetime"])["failure"].transform("size")
    return float((size > 1).mean()) if len(failures) else float("nan")


AGE_BANDS = (-1, 4, 9, 14, 20)


def failures_by_age_band(failures: pd.DataFrame, machines: pd.DataFrame) -> pd.DataFrame:
    """Failures per machine of each age band (rows: (-1, 4], (4, 9], (9, 14], (14, 20] years) and component."""
    band = pd.cut(machines.set_index("machineID")["age"], AGE_BANDS)
    counts = pd.crosstab(failures["machineID"].map(band), failures["failure"].astype(str))
    counts = counts.reindex(index=band.cat.categories, columns=list(COMPONENTS), fill_value=0)
    return counts.div(band.value_counts().reindex(band.cat.categories), axis=0)


def components_by_model(failures: pd.DataFrame, machines: pd.DataFrame) -> pd.DataFrame:
    """Failures per machine of each model (rows) and component (columns)."""
    model = machines.set_index("machineID")["model"].astype(str)
    counts = pd.crosstab(failures["machineID"].map(model), failures["failure"].astype(str))
    counts = counts.reindex(index=list(MODELS), columns=list(COMPONENTS), fill_value=0)
    return counts.div(model.value_counts().reindex(list(MODELS)), axis=0)


def observed_runs(telemetry: pd.DataFrame, failures: pd.DataFrame, machines: int) -> pd.Series:
    """How a (partial) telemetry copy is observed: its runs of consecutive hours, and where they lie against failures.

    - ``rows_per_machine``: readings per machine (``machines`` machines);
    - ``failures_with_48h_before``: share of the failure rows with a reading in each of the 48 hours before them;
    - ``median_hours_before_failure`` / ``median_hours_after_failure``: over the failure hours that have a reading,
      the median count of consecutive observed hours just before (``t - 1``, ``t - 2``, ...) and just after them;
    - ``runs_without_failure_per_machine``: runs of at least 2 hours holding no failure hour (nor ending just
      before one), per machine; ``single_hours_per_machine``: runs of one hour, per machine.
    """
    hour = telemetry["datetime"].to_numpy(dtype="datetime64[ns]").astype("datetime64[h]").astype(np.int64)
    keys = pd.DataFrame({"m": telemetry["machineID"].to_numpy(np.int64), "h": hour}).drop_duplicates()
    keys = keys.sort_values(["m", "h"], kind="stable")
    m, h = keys["m"].to_numpy(), keys["h"].to_numpy()
    new = np.r_[True, (m[1:] != m[:-1]) | (h[1:] - h[:-1] != 1)]
    run = np.cumsum(new) - 1
    runs = pd.DataFrame({"m": m[new], "first": h[new], "last": pd.Series(h).groupby(run).max().to_numpy()})
    fail_hour = failures["datetime"].to_numpy(dtype="datetime64[ns]").astype("datetime64[h]").astype(np.int64)
    fails = pd.DataFrame({"m": failures["machineID"].to_numpy(np.int64), "h": fail_hour})
    hours = fails.drop_duplicates().merge(runs, on="m")
    inside = hours[(hours["h"] >= hours["first"]) & (hours["h"] <= hours["last"])]
    near = hours[(hours["h"] >= hours["first"]) & (hours["h"] <= hours["last"] + 1)]
    with_failure = set(zip(near["m"], near["first"]))
    length = runs["last"] - runs["first"] + 1
    no_failure = ~pd.Series(list(zip(runs["m"], runs["first"]))).isin(with_failure).to_numpy()
    return pd.Series(
        {
            "rows_per_machine": len(keys) / machines,
            "failures_with_48h_before": float(readings_before(telemetry, failures, 48).mean()),
            "median_hours_before_failure": float((inside["h"] - inside["first"]).median()),
            "median_hours_after_failure": float((inside["last"] - inside["h"]).median()),
            "runs_without_failure_per_machine": float(((length >= 2).to_numpy() & no_failure).sum() / machines),
            "single_hours_per_machine": float((length == 1).sum() / machines),
        },
        name="observed_runs",
    )


def readings_before(telemetry: pd.DataFrame, failures: pd.DataFrame, hours: int) -> np.ndarray:
    """For each failure row: whether its machine has a telemetry reading at each of the ``hours`` hours before it
    (``t - 1 h`` .. ``t - hours``)."""
    have = pd.MultiIndex.from_arrays(
        [telemetry["machineID"].to_numpy(np.int64), telemetry["datetime"].to_numpy("datetime64[ns]")]
    )
    machine = np.repeat(failures["machineID"].to_numpy(np.int64), hours)
    lags = np.tile(np.arange(1, hours + 1), len(failures)) * np.timedelta64(1, "h")
    before = np.repeat(failures["datetime"].to_numpy("datetime64[ns]"), hours) - lags
    return pd.MultiIndex.from_arrays([machine, before]).isin(have).reshape(len(failures), hours).all(axis=1)
