"""Leak-free snapshot features: one row per machine per snapshot time, from data at or before that time.

Families (every window is the ``w`` hours ending at the snapshot, ``(t - w, t]``):

- telemetry mean and sd (ddof=1) per sensor over 3 h, 24 h (the Microsoft PdM guide's features), 3, 7, 14 days:
  ``volt_mean_24h``, ``volt_sd_14d``;
- telemetry trend: least-squares slope over 7 days, in sensor units per day: ``volt_trend_7d``;
- error counts per type over 24 h: ``error1_count_24h``;
- days since the last replacement of each component, at or before ``t`` and within ``replacement_lookback_days``:
  ``comp1_days_since_replacement``. A replacement recorded at a failure's own timestamp is after every snapshot
  that predicts that failure (labels look at ``(t, t + horizon]``), so it cannot leak into them;
- machine ``model`` (categorical) and ``age``.

Gaps are not filled. Each window has a coverage column (readings present / hours in the window); a window's mean
and sd are NaN when its coverage is below ``min_coverage`` (and the sd also when fewer than 2 readings). A snapshot
is ``usable`` when its 3 h and 24 h windows are covered, and ``complete`` when every window is covered and no
feature is NaN.

Implementation: telemetry is laid on a dense (hour x machine) grid, NaN where a reading is missing, and pandas'
rolling window kernels (compensated sums) compute every window for all machines at once; snapshots are then
picked from the grid. The reference implementation in the tests is a plain loop over one machine's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

import numpy as np
import pandas as pd

from pm_assets.core.schema import COMPONENTS, ERROR_IDS, MODELS, SENSORS

#: Window name -> hours. The order is the column order.
WINDOWS: dict[str, int] = {"3h": 3, "24h": 24, "3d": 72, "7d": 168, "14d": 336}
SHORT_WINDOWS: tuple[str, ...] = ("3h", "24h")  # what makes a snapshot usable
TREND_WINDOW = "7d"
ERROR_WINDOW_HOURS = 24
KEY = ["machineID", "datetime"]


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the feature computation (the Dagster ``FeatureConfig`` mirrors these)."""

    snapshot_every_hours: int = 3  # snapshots at 00:00, 03:00, ... of every day
    min_coverage: float = 0.9  # share of a window's hours that must have a reading
    replacement_lookback_days: int = 366  # older replacements count as unknown (NaN)
    windows: dict[str, int] = field(default_factory=lambda: dict(WINDOWS))

    @property
    def lookback_hours(self) -> int:
        return max(self.windows.values())


def snapshot_times(start, end, every_hours: int) -> pd.DatetimeIndex:
    """Snapshot times in [start, end): every ``every_hours`` hours from midnight."""
    if every_hours < 1 or 24 % every_hours:
        raise ValueError(f"snapshot_every_hours must divide 24, got {every_hours}")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    first = start.ceil(f"{every_hours}h")
    return pd.date_range(first, end - pd.Timedelta(nanoseconds=1), freq=f"{every_hours}h").astype("datetime64[ns]")


def feature_columns(params: FeatureParams = FeatureParams()) -> list[str]:
    cols = [f"{s}_{stat}_{w}" for s in SENSORS for w in params.windows for stat in ("mean", "sd")]
    cols += [f"{s}_trend_{TREND_WINDOW}" for s in SENSORS]
    cols += [f"{e}_count_{ERROR_WINDOW_HOURS}h" for e in ERROR_IDS]
    cols += [f"{c}_days_since_replacement" for c in COMPONENTS]
    return cols + ["model", "age"]


def coverage_columns(params: FeatureParams = FeatureParams()) -> list[str]:
    return [f"coverage_{w}" for w in params.windows]


def _hour_grid(times: pd.DatetimeIndex, lookback_hours: int) -> pd.DatetimeIndex:
    start = times.min() - pd.Timedelta(hours=lookback_hours - 1)
    return pd.date_range(start, times.max(), freq="h").astype("datetime64[ns]")


def _dense(frame: pd.DataFrame, value: str, grid: pd.DatetimeIndex, ids: np.ndarray) -> np.ndarray:
    """(hour x machine) array of ``value`` on the grid, NaN where there is no row."""
    out = np.full((len(grid), len(ids)), np.nan)
    if len(frame):
        rows = grid.get_indexer(pd.DatetimeIndex(frame["datetime"]))
        cols = np.searchsorted(ids, frame["machineID"].to_numpy())
        ok = (rows >= 0) & (cols < len(ids))
        ok[ok] &= ids[cols[ok]] == frame["machineID"].to_numpy()[ok]
        out[rows[ok], cols[ok]] = frame[value].to_numpy(dtype=np.float64)[ok]
    return out


def _long(values: np.ndarray) -> np.ndarray:
    """(snapshot x machine) -> one value per (machine, snapshot) row, machine-major."""
    return values.T.reshape(-1)


def telemetry_features(telemetry: pd.DataFrame, ids: np.ndarray, times: pd.DatetimeIndex, params: FeatureParams) -> dict[str, np.ndarray]:
    """Window means, sds, coverage and the 7-day trend for every (machine, snapshot), machine-major."""
    grid = _hour_grid(times, params.lookback_hours)
    at = grid.get_indexer(times)
    out: dict[str, np.ndarray] = {}
    for k, sensor in enumerate(SENSORS):
        dense = pd.DataFrame(_dense(telemetry, sensor, grid, ids))
        for name, hours in params.windows.items():
            rolling = dense.rolling(hours, min_periods=1)
            count = rolling.count().to_numpy()[at]
            covered = count >= _min_readings(hours, params.min_coverage)
            out[f"{sensor}_mean_{name}"] = _long(np.where(covered, rolling.mean().to_numpy()[at], np.nan))
            out[f"{sensor}_sd_{name}"] = _long(np.where(covered & (count >= 2), rolling.std(ddof=1).to_numpy()[at], np.nan))
            if k == 0:  # a telemetry row carries every sensor, so coverage is the same for all of them
                out[f"coverage_{name}"] = _long(count / hours)
        trend_hours = params.windows[TREND_WINDOW]
        out[f"{sensor}_trend_{TREND_WINDOW}"] = _long(_trend(dense.to_numpy(), trend_hours, params.min_coverage)[at])
    return out


def _min_readings(hours: int, min_coverage: float) -> int:
    return ceil(min_coverage * hours - 1e-9)


def _trend(y: np.ndarray, hours: int, min_coverage: float) -> np.ndarray:
    """Least-squares slope (units per day) of each column's readings over the trailing ``hours`` rows.

    slope = cov(x, y) / var(x) over the readings present. x (the hour) is centred on the grid and each column of y
    on its first reading, which changes no slope but keeps the rolling sums small, so the result agrees with a
    direct fit to ~1e-12. (Not on a mean over the grid: that would include readings after the snapshots, and a
    leak-free feature must not change, not even in its last bits, when later data does.)
    """
    x = np.arange(len(y), dtype=np.float64) - (len(y) - 1) / 2.0
    mask = ~np.isnan(y)
    first = y[mask.argmax(axis=0), np.arange(y.shape[1])]  # a column's first reading (NaN if it has none)
    y = y - np.where(mask.any(axis=0), first, 0.0)
    x = np.where(mask, x[:, None], np.nan)

    def mean(a: np.ndarray) -> np.ndarray:
        return pd.DataFrame(a).rolling(hours, min_periods=1).mean().to_numpy()

    n = pd.DataFrame(y).rolling(hours, min_periods=1).count().to_numpy()
    mean_x, mean_y = mean(x), mean(y)
    cov = mean(x * y) - mean_x * mean_y
    var = mean(x * x) - mean_x * mean_x
    ok = (n >= _min_readings(hours, min_coverage)) & (n >= 2) & (var > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, cov / var * 24.0, np.nan)


def error_features(errors: pd.DataFrame, ids: np.ndarray, times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Count of each error type in (t - 24 h, t]."""
    grid = _hour_grid(times, ERROR_WINDOW_HOURS)
    at = grid.get_indexer(times)
    out = {}
    hourly = errors.groupby(["datetime", "machineID", "errorID"], observed=True).size().rename("n").reset_index()
    for error in ERROR_IDS:
        dense = np.nan_to_num(_dense(hourly[hourly["errorID"] == error], "n", grid, ids))
        counts = pd.DataFrame(dense).rolling(ERROR_WINDOW_HOURS, min_periods=1).sum().to_numpy()[at]
        out[f"{error}_count_{ERROR_WINDOW_HOURS}h"] = _long(np.rint(counts)).astype(np.int64)
    return out


def replacement_features(maintenance: pd.DataFrame, ids: np.ndarray, times: pd.DatetimeIndex, params: FeatureParams) -> dict[str, np.ndarray]:
    """Days since the last replacement of each component at or before t (NaN: none within the lookback)."""
    snaps = pd.DataFrame({
        "machineID": np.repeat(ids, len(times)),
        "datetime": np.tile(times.to_numpy(), len(ids)),
        "position": np.arange(len(ids) * len(times)),  # machine-major row of the output
    }).sort_values("datetime", kind="stable")
    out = {}
    for comp in COMPONENTS:
        events = maintenance.loc[maintenance["comp"] == comp, ["datetime", "machineID"]]
        events = pd.DataFrame({"datetime": events["datetime"].to_numpy(), "replaced": events["datetime"].to_numpy(),
                               "machineID": events["machineID"].to_numpy().astype(np.int64)}).sort_values("datetime")
        merged = pd.merge_asof(snaps, events, on="datetime", by="machineID", direction="backward")
        days = ((merged["datetime"] - merged["replaced"]) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64, copy=True)
        days[days >= params.replacement_lookback_days] = np.nan
        column = np.empty(len(snaps))
        column[merged["position"].to_numpy()] = days
        out[f"{comp}_days_since_replacement"] = column
    return out


def build_features(
    telemetry: pd.DataFrame,
    errors: pd.DataFrame,
    maintenance: pd.DataFrame,
    machines: pd.DataFrame,
    start,
    end,
    params: FeatureParams = FeatureParams(),
) -> pd.DataFrame:
    """Features for every machine of ``machines`` at every snapshot time in [start, end).

    Inputs are validated raw tables; rows after ``end`` are ignored, and so is everything after each snapshot.
    Output: ``machineID``, ``datetime`` (the snapshot time), the feature columns, the coverage columns,
    ``usable`` and ``complete``; sorted by machine, then time.
    """
    times = snapshot_times(start, end, params.snapshot_every_hours)
    ids = np.sort(machines["machineID"].to_numpy().astype(np.int64))
    horizon_end = pd.Timestamp(end)
    telemetry = telemetry[telemetry["datetime"] < horizon_end]
    columns: dict[str, np.ndarray] = {
        "machineID": np.repeat(ids, len(times)).astype(np.int32),
        "datetime": np.tile(times.to_numpy(), len(ids)),
    }
    if len(times) == 0:
        return _empty_features(params)
    columns.update(telemetry_features(telemetry, ids, times, params))
    columns.update(error_features(errors[errors["datetime"] < horizon_end], ids, times))
    columns.update(replacement_features(maintenance[maintenance["datetime"] < horizon_end], ids, times, params))
    info = machines.set_index(machines["machineID"].astype(np.int64)).reindex(ids)
    columns["model"] = pd.Categorical(np.repeat(info["model"].astype(object).to_numpy(), len(times)), categories=list(MODELS))
    columns["age"] = np.repeat(info["age"].to_numpy(dtype=np.int64), len(times))
    frame = pd.DataFrame(columns)
    frame = frame[KEY + feature_columns(params) + coverage_columns(params)]
    frame["usable"] = np.logical_and.reduce([frame[f"coverage_{w}"] >= _min_readings(params.windows[w], params.min_coverage) / params.windows[w] for w in SHORT_WINDOWS])
    covered = np.logical_and.reduce([frame[f"coverage_{w}"] >= _min_readings(h, params.min_coverage) / h for w, h in params.windows.items()])
    frame["complete"] = covered & frame[feature_columns(params)].notna().all(axis=1).to_numpy()
    return frame


def _empty_features(params: FeatureParams) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in KEY + feature_columns(params) + coverage_columns(params)})
    frame["machineID"] = frame["machineID"].astype(np.int32)
    frame["datetime"] = frame["datetime"].astype("datetime64[ns]")
    for e in ERROR_IDS:
        frame[f"{e}_count_{ERROR_WINDOW_HOURS}h"] = frame[f"{e}_count_{ERROR_WINDOW_HOURS}h"].astype(np.int64)
    frame["model"] = pd.Categorical([], categories=list(MODELS))
    frame["age"] = frame["age"].astype(np.int64)
    frame["usable"] = pd.Series(dtype=bool)
    frame["complete"] = pd.Series(dtype=bool)
    return frame
