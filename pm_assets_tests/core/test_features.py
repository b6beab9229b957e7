"""Snapshot features against a naive reference: plain loops over one machine's hourly rows.

The data is simulated (3 machines, 4 weeks, raised failure rates) and then damaged: random telemetry hours are
dropped, and whole blocks for two machines, so that every coverage rule bites. Every feature family is compared
with the reference to 1e-9 for two parameter sets; then the properties the pipeline relies on: no leakage from
after a snapshot, the failure-time replacement that must not leak, and split ranges giving the same rows.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.features import (
    TREND_WINDOW,
    WINDOWS,
    FeatureParams,
    FeatureTotals,
    build_features,
    coverage_columns,
    feature_columns,
    running_sums,
    snapshot_times,
)
from pm_assets.core.schema import COMPONENTS, ERROR_IDS, MODELS, SENSORS
from pm_assets.core.simulate import SimulationConfig, simulate

SIM = SimulationConfig(
    machines=3,
    start="2015-01-01",
    end="2015-01-29",
    seed=1,
    min_failure_age_days=10,
    failure_rate={c: 6.0 for c in COMPONENTS},  # ~9 failures, two of them at the same timestamp
)
START, END = pd.Timestamp("2015-01-02 05:00"), pd.Timestamp("2015-01-29")  # early snapshots lack 3-14 d of data
DEFAULT = FeatureParams()
VARIANT = FeatureParams(snapshot_every_hours=6, min_coverage=0.75, replacement_lookback_days=160)
FLOAT_TOL = dict(rtol=1e-9, atol=1e-9)


# --- data ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """Simulated tables with gaps, extra errors and one component never replaced on one machine."""
    tables = simulate(SIM)
    rng = np.random.default_rng(11)
    tel = tables["telemetry"]
    t = tel["datetime"]
    drop = rng.random(len(tel)) < 0.07  # scattered missing hours
    drop |= (tel["machineID"] == 2) & (t >= "2015-01-17 13:00") & (t < "2015-01-21 02:00")  # a 3.5-day outage
    drop |= (tel["machineID"] == 3) & (t >= "2015-01-24 20:00") & (t < "2015-01-25 07:00")  # an 11-hour outage
    tables["telemetry"] = tel[~drop].reset_index(drop=True)

    hours = (pd.Timestamp(SIM.end) - pd.Timestamp(SIM.start)) // pd.Timedelta(hours=1)
    extra = pd.DataFrame(
        {
            "datetime": pd.Timestamp(SIM.start) + rng.integers(0, hours, 200) * pd.Timedelta(hours=1),
            "machineID": rng.integers(1, SIM.machines + 1, 200).astype(np.int32),
            "errorID": pd.Categorical(rng.choice(ERROR_IDS, 200), categories=list(ERROR_IDS)),
        }
    )
    errors = pd.concat([tables["errors"], extra], ignore_index=True).drop_duplicates()
    tables["errors"] = errors.sort_values(["machineID", "datetime", "errorID"]).reset_index(drop=True)

    maint = tables["maintenance"]
    never = (maint["machineID"] == 3) & (maint["comp"] == "comp1")
    assert not ((tables["failures"]["machineID"] == 3) & (tables["failures"]["failure"] == "comp1")).any()
    tables["maintenance"] = maint[~never].reset_index(drop=True)
    return tables


def _build(raw, start=START, end=END, params=DEFAULT, **replace) -> pd.DataFrame:
    tables = {**raw, **replace}
    return build_features(
        tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], start, end, params
    )


@pytest.fixture(scope="module", params=[DEFAULT, VARIANT], ids=["default", "every6h-cov0.75-lookback160"])
def case(request, raw):
    """(params, actual features, reference features) for one parameter set."""
    params = request.param
    actual = _build(raw, params=params)
    times = snapshot_times(START, END, params.snapshot_every_hours)
    expected = pd.concat(
        [naive_features(raw, m, times, params) for m in sorted(raw["machines"]["machineID"])], ignore_index=True
    )
    return params, actual, expected


# --- the naive reference ------------------------------------------------------------------------------------


def _hours(times) -> np.ndarray:
    """Timestamps -> integer hours since the epoch (all the reference does with time)."""
    return np.asarray(times, dtype="datetime64[ns]").astype("datetime64[h]").astype(np.int64)


def _needed(hours: int, min_coverage: float) -> int:
    return math.ceil(Fraction(str(min_coverage)) * hours)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _sd(values: list[float]) -> float:
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _slope_per_day(points: list[tuple[int, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxy = sum((x - mx) * (y - my) for x, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sxy / sxx * 24.0


def naive_features(raw, machine_id: int, times: pd.DatetimeIndex, params: FeatureParams) -> pd.DataFrame:
    """One machine's features, hour by hour, straight from the definitions."""
    tel = raw["telemetry"][raw["telemetry"]["machineID"] == machine_id]
    readings = {h: row for h, row in zip(_hours(tel["datetime"]), tel[list(SENSORS)].to_dict("records"))}
    err = raw["errors"][raw["errors"]["machineID"] == machine_id]
    error_rows = list(zip(_hours(err["datetime"]), err["errorID"].astype(str)))
    mnt = raw["maintenance"][raw["maintenance"]["machineID"] == machine_id]
    replacement_rows = list(zip(_hours(mnt["datetime"]), mnt["comp"].astype(str)))
    machine = raw["machines"].set_index("machineID").loc[machine_id]

    out = []
    for t in _hours(times):
        row: dict = {}
        covered_all = True
        for name, w in params.windows.items():
            present = [readings[h] for h in range(t - w + 1, t + 1) if h in readings]  # (t - w, t]
            covered = len(present) >= _needed(w, params.min_coverage)
            covered_all &= covered
            row[f"coverage_{name}"] = len(present) / w
            for s in SENSORS:
                values = [r[s] for r in present]
                row[f"{s}_mean_{name}"] = _mean(values) if covered and values else np.nan
                row[f"{s}_sd_{name}"] = _sd(values) if covered and len(values) >= 2 else np.nan
            if name in ("3h", "24h"):
                row[f"usable_{name}"] = covered
        trend_hours = params.windows[TREND_WINDOW]
        for s in SENSORS:
            points = [(h - t, readings[h][s]) for h in range(t - trend_hours + 1, t + 1) if h in readings]
            ok = len(points) >= max(2, _needed(trend_hours, params.min_coverage))
            row[f"{s}_trend_{TREND_WINDOW}"] = _slope_per_day(points) if ok else np.nan
        for e in ERROR_IDS:
            row[f"{e}_count_24h"] = sum(1 for h, kind in error_rows if kind == e and t - 24 < h <= t)
        for c in COMPONENTS:
            before = [h for h, comp in replacement_rows if comp == c and h <= t]
            days = (t - max(before)) / 24 if before else np.nan
            row[f"{c}_days_since_replacement"] = days if days < params.replacement_lookback_days else np.nan
        row["model"] = str(machine["model"])
        row["age"] = int(machine["age"])
        row["usable"] = row.pop("usable_3h") and row.pop("usable_24h")
        row["complete"] = covered_all and not any(
            isinstance(row[c], float) and math.isnan(row[c]) for c in feature_columns(params)
        )
        out.append(row)
    return pd.DataFrame(out)


def _assert_close(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    assert len(actual) == len(expected)
    for column in columns:
        np.testing.assert_allclose(
            actual[column].to_numpy(dtype=np.float64),
            expected[column].to_numpy(dtype=np.float64),
            err_msg=column,
            **FLOAT_TOL,
        )


# --- snapshot grid ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("every", [1, 3, 6, 8, 24])
def test_snapshot_times_are_the_grid_hours_in_start_end(every):
    start, end = pd.Timestamp("2015-03-01 04:30"), pd.Timestamp("2015-03-04 06:00")
    expected = []
    t = start.floor("D")
    while t < end:
        if t >= start and t.hour % every == 0:
            expected.append(t)
        t += pd.Timedelta(hours=1)
    times = snapshot_times(start, end, every)
    assert list(times) == expected
    assert times.dtype == "datetime64[ns]"


def test_snapshot_times_is_empty_for_an_empty_range():
    assert len(snapshot_times("2015-01-01 01:00", "2015-01-01 03:00", 3)) == 0


@pytest.mark.parametrize("every", [0, 5, 7, 9, 48, -5, -6])
def test_snapshot_times_rejects_steps_that_do_not_divide_a_day(every):
    with pytest.raises(ValueError, match="divide 24"):
        snapshot_times("2015-01-01", "2015-01-02", every)


# --- output shape -------------------------------------------------------------------------------------------


def test_output_columns_rows_and_dtypes(raw):
    actual = _build(raw)
    times = snapshot_times(START, END, DEFAULT.snapshot_every_hours)
    assert list(actual.columns) == [
        "machineID",
        "datetime",
        *feature_columns(),
        *coverage_columns(),
        "usable",
        "complete",
    ]
    assert len(actual) == 3 * len(times)
    assert list(actual["machineID"]) == [m for m in (1, 2, 3) for _ in times]
    assert list(actual["datetime"]) == list(times) * 3
    assert actual["machineID"].dtype == np.int32
    assert actual["datetime"].dtype == "datetime64[ns]"
    assert list(actual["model"].cat.categories) == list(MODELS)
    assert all(actual[f"{e}_count_24h"].dtype == np.int64 for e in ERROR_IDS)
    assert actual["usable"].dtype == bool and actual["complete"].dtype == bool


def test_empty_range_gives_an_empty_frame_with_the_same_schema(raw):
    empty = _build(raw, start="2015-01-10 01:00", end="2015-01-10 02:00")
    full = _build(raw)
    assert len(empty) == 0
    pd.testing.assert_series_equal(empty.dtypes, full.dtypes)


# --- a hand-computed case -----------------------------------------------------------------------------------


def test_windows_on_a_linear_signal_by_hand():
    """volt = 100 + 0.5 * hour: the 3 h mean is the middle reading, the sd 0.5, the trend 12 volts per day."""
    times = pd.date_range("2015-01-01", periods=9 * 24, freq="h").astype("datetime64[ns]")
    k = np.arange(len(times))
    tel = pd.DataFrame(
        {
            "datetime": times,
            "machineID": np.int32(1),
            "volt": 100 + 0.5 * k,
            "rotate": 400.0,
            "pressure": 100.0,
            "vibration": 40.0,
        }
    )
    tel = tel[tel["datetime"] != pd.Timestamp("2015-01-09 10:00")]  # one missing hour
    machines = pd.DataFrame(
        {"machineID": np.int32([1]), "model": pd.Categorical(["model2"], categories=list(MODELS)), "age": [7]}
    )
    no_errors = pd.DataFrame(
        {
            "datetime": pd.Series(dtype="datetime64[ns]"),
            "machineID": pd.Series(dtype=np.int32),
            "errorID": pd.Categorical([], categories=list(ERROR_IDS)),
        }
    )
    no_maint = pd.DataFrame(
        {
            "datetime": pd.Series(dtype="datetime64[ns]"),
            "machineID": pd.Series(dtype=np.int32),
            "comp": pd.Categorical([], categories=list(COMPONENTS)),
        }
    )
    out = build_features(
        tel,
        no_errors,
        no_maint,
        machines,
        "2015-01-09 09:00",
        "2015-01-09 13:00",
        FeatureParams(snapshot_every_hours=3),
    ).set_index("datetime")
    at9, at12 = out.loc["2015-01-09 09:00"], out.loc["2015-01-09 12:00"]
    k9 = 8 * 24 + 9
    assert at9["volt_mean_3h"] == pytest.approx(100 + 0.5 * (k9 - 1), abs=1e-9)  # hours 7, 8, 9 (not 6)
    assert at9["volt_sd_3h"] == pytest.approx(0.5, abs=1e-9)
    assert at9["volt_trend_7d"] == pytest.approx(12.0, abs=1e-9)
    assert at9["rotate_sd_24h"] == pytest.approx(0.0, abs=1e-9) and at9["rotate_trend_7d"] == pytest.approx(
        0.0, abs=1e-9
    )
    assert at9["coverage_14d"] == pytest.approx(202 / 336)  # Jan 1 00:00 .. Jan 9 09:00: not covered
    assert np.isnan(at9["volt_mean_14d"]) and at9["usable"] and not at9["complete"]
    # 12:00: the 3 h window (10:00, 11:00, 12:00) lost 10:00 -> 2 of 3 readings < ceil(0.9 * 3): NaN, unusable
    assert at12["coverage_3h"] == pytest.approx(2 / 3)
    assert np.isnan(at12["volt_mean_3h"]) and np.isnan(at12["volt_sd_3h"]) and not at12["usable"]
    assert at12["volt_trend_7d"] == pytest.approx(12.0, abs=1e-9)  # 167 readings of 168 are enough
    assert (out["model"] == "model2").all() and (out["age"] == 7).all()
    assert out[[f"{c}_days_since_replacement" for c in COMPONENTS]].isna().all().all()


# --- every family against the reference ---------------------------------------------------------------------


def test_the_damaged_data_exercises_every_rule(case):
    """Guard against a vacuous comparison: both sides of every rule occur in the test data."""
    params, actual, _ = case
    for name in WINDOWS:
        assert actual[f"volt_mean_{name}"].isna().any() and actual[f"volt_mean_{name}"].notna().any(), name
        assert (actual[f"coverage_{name}"] < 1).any(), name
    assert (actual["coverage_3h"] == 1).any()
    assert actual["volt_trend_7d"].isna().any() and actual["volt_trend_7d"].notna().any()
    assert actual["usable"].any() and not actual["usable"].all()
    assert actual["complete"].any() and not actual["complete"].all()
    counts = actual[[f"{e}_count_24h" for e in ERROR_IDS]].to_numpy()
    assert (counts == 0).any() and (counts == 1).any() and (counts >= 2).any()
    days = actual[[f"{c}_days_since_replacement" for c in COMPONENTS]]
    assert days.isna().any().any() and (days == 0).any().any() and (days > 0).any().any()


def test_telemetry_means_sds_and_coverage_match_the_reference(case):
    params, actual, expected = case
    columns = [f"{s}_{stat}_{w}" for s in SENSORS for w in params.windows for stat in ("mean", "sd")]
    _assert_close(actual, expected, columns + coverage_columns(params))


def test_trend_matches_a_least_squares_loop(case):
    params, actual, expected = case
    _assert_close(actual, expected, [f"{s}_trend_{TREND_WINDOW}" for s in SENSORS])


def test_trend_agrees_with_polyfit_on_the_window(raw):
    """A second, independent reference for the slope: numpy's polyfit on each window's points."""
    actual = _build(raw, start="2015-01-16", end="2015-01-29", params=FeatureParams(snapshot_every_hours=24))
    tel = raw["telemetry"]
    checked = 0
    for _, row in actual.iterrows():
        t = row["datetime"]
        window = tel[
            (tel["machineID"] == row["machineID"])
            & (tel["datetime"] > t - pd.Timedelta(hours=168))
            & (tel["datetime"] <= t)
        ]
        if len(window) < 152:
            assert np.isnan(row["volt_trend_7d"])
            continue
        x = (window["datetime"] - t) / pd.Timedelta(days=1)
        for s in SENSORS:
            assert row[f"{s}_trend_7d"] == pytest.approx(np.polyfit(x, window[s], 1)[0], rel=1e-9, abs=1e-9)
        checked += 1
    assert checked > 20


def test_error_counts_match_the_reference(case):
    params, actual, expected = case
    for e in ERROR_IDS:
        np.testing.assert_array_equal(actual[f"{e}_count_24h"], expected[f"{e}_count_24h"], err_msg=e)


def test_days_since_replacement_match_the_reference(case):
    params, actual, expected = case
    _assert_close(actual, expected, [f"{c}_days_since_replacement" for c in COMPONENTS])


def test_a_component_never_replaced_has_no_days_since(case):
    _, actual, _ = case
    assert actual.loc[actual["machineID"] == 3, "comp1_days_since_replacement"].isna().all()


def test_a_replacement_expires_exactly_at_the_lookback(raw):
    """Machine 2's comp1 was last replaced 2014-08-15 06:00: 160 days later it is unknown, 6 hours before not."""
    last = raw["maintenance"].query("machineID == 2 and comp == 'comp1'")["datetime"]
    assert list(last) == [pd.Timestamp("2014-08-15 06:00")]
    actual = _build(raw, params=VARIANT).set_index(["machineID", "datetime"])["comp1_days_since_replacement"]
    expiry = pd.Timestamp("2014-08-15 06:00") + pd.Timedelta(days=160)
    assert actual[(2, expiry - pd.Timedelta(hours=6))] == 159.75
    assert np.isnan(actual[(2, expiry)])


def test_model_and_age_are_copied_from_machines(case):
    _, actual, expected = case
    assert list(actual["model"].astype(str)) == list(expected["model"])
    np.testing.assert_array_equal(actual["age"], expected["age"])


def test_usable_and_complete_flags_match_the_reference(case):
    _, actual, expected = case
    np.testing.assert_array_equal(actual["usable"], expected["usable"])
    np.testing.assert_array_equal(actual["complete"], expected["complete"])


# --- no leakage ---------------------------------------------------------------------------------------------

CUT = pd.Timestamp("2015-01-18 12:00")  # a snapshot of both grids, inside machine 2's outage


def _before(frame: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    return frame[frame["datetime"] <= t].reset_index(drop=True)


def _scramble_after(frame: pd.DataFrame, t: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """Rows after t get other machines, types, times (still after t) and values; as many garbage rows again."""
    after = frame[frame["datetime"] > t]
    garbage = pd.concat([after, after], ignore_index=True)
    n = len(garbage)
    for column in garbage.columns:
        if column == "datetime":
            garbage[column] = t + pd.to_timedelta(rng.integers(1, 500, n), unit="h")
        elif column == "machineID":
            garbage[column] = rng.integers(1, SIM.machines + 1, n).astype(np.int32)
        elif isinstance(garbage[column].dtype, pd.CategoricalDtype):
            garbage[column] = pd.Categorical(
                rng.choice(garbage[column].cat.categories, n), categories=garbage[column].cat.categories
            )
        else:
            garbage[column] = rng.uniform(0.0, 1000.0, n)
    key = [c for c in frame.columns if c not in SENSORS]
    out = pd.concat([frame[frame["datetime"] <= t], garbage], ignore_index=True).drop_duplicates(subset=key)
    return out.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("params", [DEFAULT, VARIANT], ids=["default", "variant"])
def test_deleting_everything_after_t_changes_no_snapshot_up_to_t(raw, params):
    whole = _build(raw, params=params)
    cut = _build(
        raw,
        params=params,
        telemetry=_before(raw["telemetry"], CUT),
        errors=_before(raw["errors"], CUT),
        maintenance=_before(raw["maintenance"], CUT),
    )
    upto = whole["datetime"] <= CUT
    assert upto.any() and (~upto).any()
    pd.testing.assert_frame_equal(cut[upto], whole[upto], check_exact=True)


@pytest.mark.parametrize("params", [DEFAULT, VARIANT], ids=["default", "variant"])
def test_garbage_after_t_changes_no_snapshot_up_to_t(raw, params):
    rng = np.random.default_rng(5)
    scrambled = {name: _scramble_after(raw[name], CUT, rng) for name in ("telemetry", "errors", "maintenance")}
    whole = _build(raw, params=params)
    garbage = _build(raw, params=params, **scrambled)
    upto = whole["datetime"] <= CUT
    pd.testing.assert_frame_equal(garbage[upto], whole[upto], check_exact=True)
    assert not garbage[~upto].equals(whole[~upto])  # the garbage did reach the later snapshots


# --- the Microsoft guide's leak -----------------------------------------------------------------------------


def test_replacement_at_a_failure_does_not_reach_the_snapshots_predicting_it(raw):
    """A failure at f is also a maintenance row at f. The snapshots in [f - 24 h, f) must count days from the
    previous replacement; only the snapshot at f itself sees the new part (0 days)."""
    params = FeatureParams(snapshot_every_hours=3)
    actual = _build(raw, params=params).set_index(["machineID", "datetime"])
    failures = raw["failures"]
    failures = failures[(failures["datetime"] >= START + pd.Timedelta(hours=24)) & (failures["datetime"] < END)]
    assert len(failures) >= 5
    maint = raw["maintenance"]
    for f, machine, comp in zip(failures["datetime"], failures["machineID"], failures["failure"].astype(str)):
        same = maint[(maint["machineID"] == machine) & (maint["comp"] == comp)]
        assert (same["datetime"] == f).any()  # the simulator records the failure as a replacement
        previous = same.loc[same["datetime"] < f, "datetime"].max()
        column = f"{comp}_days_since_replacement"
        predicting = list(pd.date_range(f - pd.Timedelta(hours=24), f, freq="3h", inclusive="left"))
        assert len(predicting) == 8
        for t in predicting:
            days = actual.loc[(machine, t), column]
            assert days > 0
            assert days == pytest.approx((t - previous) / pd.Timedelta(days=1), abs=1e-12)
        assert actual.loc[(machine, f), column] == 0.0


# --- partitions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [DEFAULT, VARIANT], ids=["default", "variant"])
@pytest.mark.parametrize("mid", ["2015-01-15", "2015-01-20 13:00"])
def test_a_range_split_in_two_gives_the_same_rows(raw, params, mid):
    """Daily partitions computed one by one equal one run over the whole range, to the last bit (every day is
    computed from its own slice of the hourly grid, so where a run starts cannot change a day's rounding)."""
    whole = _build(raw, params=params)
    halves = pd.concat([_build(raw, end=mid, params=params), _build(raw, start=mid, params=params)], ignore_index=True)
    halves = halves.sort_values(["machineID", "datetime"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(halves, whole, check_exact=True)


def test_totals_summed_by_chunks_are_the_whole_tables(case):
    params, actual, _ = case
    totals = FeatureTotals(params)
    for _, chunk in actual.groupby(actual["datetime"].dt.floor("7D")):
        totals.add(chunk)
    coverage = coverage_columns(params)
    complete = actual[actual["complete"]]
    assert totals.rows == len(actual) and totals.complete == len(complete)
    assert totals.share(totals.usable) == pytest.approx(actual["usable"].mean())
    assert totals.nan_in_complete == int(complete[feature_columns(params)].isna().sum().sum()) == 0
    table = totals.coverage()
    assert table["window"].tolist() == coverage
    assert table["mean"].to_numpy() == pytest.approx(actual[coverage].mean().to_numpy(), rel=1e-12)
    assert table["min"].tolist() == actual[coverage].min().tolist()
    assert list(totals.schema.columns) == list(actual.columns) and totals.schema.empty
    broken = actual.copy()
    first_complete = broken.index[broken["complete"]][0]
    broken.loc[first_complete, "volt_mean_3h"] = np.nan  # a complete snapshot with a NaN: counted
    totals = FeatureTotals(params)
    assert totals.share(3) == 0.0  # no snapshot yet
    totals.add(broken)
    assert totals.nan_in_complete == 1


@pytest.mark.parametrize("shape", [(3, 359, 7), (1, 1, 4), (4, 25, 1)])
def test_running_sums_are_cumsums_bit_for_bit(shape):
    """The same bits as a zero row then ``np.cumsum`` along the hours (the reference), signed zeros and magnitudes
    that round included."""
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(0, 1, shape) * 10.0 ** rng.integers(-8, 8, shape)
    a[rng.random(shape) < 0.2] = 0.0
    a[rng.random(shape) < 0.1] = -0.0
    reference = np.concatenate([np.zeros_like(a[:, :1]), np.cumsum(a, axis=1)], axis=1)
    out = running_sums(a)
    assert out.shape == reference.shape
    np.testing.assert_array_equal(out.view(np.int64), reference.view(np.int64))
