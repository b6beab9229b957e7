"""The simulator: determinism, the schema, the Kaggle file format, drift, and calibration against the real files."""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pm_assets.core import profile
from pm_assets.core.schema import COMPONENTS, ERROR_IDS, MODELS, SENSORS, TABLES
from pm_assets.core.simulate import (
    DriftSpec,
    ObservationSpec,
    SimulationConfig,
    sensor_baseline,
    simulate,
    write_kaggle_csv,
)
from pm_assets_tests.conftest import Q1_SUBSET, UNION_PARTIAL

SMALL = SimulationConfig(machines=20, start="2015-01-01", end="2015-04-01", seed=7)
README_ZSHIFT = {"comp1": 1.2, "comp2": -1.4, "comp3": 2.1, "comp4": 1.9}  # the README's real figures
EVENT_COLUMN = {"errors": "errorID", "maintenance": "comp", "failures": "failure"}


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def small_files(small, tmp_path_factory) -> dict[str, Path]:
    return write_kaggle_csv(small, tmp_path_factory.mktemp("kaggle"))


def _hours(config: SimulationConfig) -> int:
    return int((pd.Timestamp(config.end) - pd.Timestamp(config.start)) / pd.Timedelta(hours=1))


# --- determinism and schema -------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(small):
    again = simulate(SMALL)
    for name, frame in small.items():
        pd.testing.assert_frame_equal(frame, again[name])


def test_other_seed_gives_other_tables(small):
    other = simulate(dataclasses.replace(SMALL, seed=8))
    assert not np.array_equal(other["telemetry"]["volt"].to_numpy(), small["telemetry"]["volt"].to_numpy())
    assert not other["failures"].equals(small["failures"])
    assert not other["maintenance"].equals(small["maintenance"])


def test_columns_dtypes_and_order_follow_the_schema(small):
    assert set(small) == set(TABLES)
    for name, frame in small.items():
        spec = TABLES[name]
        assert tuple(frame.columns) == spec.columns, name
        for column in spec.columns:
            kind, dtype = spec.kinds[column], frame[column].dtype
            if kind == "timestamp":
                assert dtype == np.dtype("datetime64[ns]"), (name, column)
            elif kind == "id":
                assert dtype == np.dtype("int32"), (name, column)
            elif kind == "float":
                assert dtype == np.dtype("float64"), (name, column)
            elif kind == "int":
                assert dtype == np.dtype("int64"), (name, column)
            else:
                assert isinstance(dtype, pd.CategoricalDtype), (name, column)
                assert tuple(dtype.categories) == spec.categories[column], (name, column)
        sort_key = ["machineID", "datetime"] if "datetime" in frame else ["machineID"]
        assert frame.sort_values(sort_key, kind="stable").index.equals(frame.index), name
        assert not frame.duplicated(list(spec.key)).any(), name
        assert frame.index.equals(pd.RangeIndex(len(frame))), name


def test_telemetry_is_complete(small):
    telemetry, hours = small["telemetry"], _hours(SMALL)
    assert len(telemetry) == SMALL.machines * hours
    assert not telemetry.duplicated(["machineID", "datetime"]).any()
    expected_hours = pd.date_range(SMALL.start, periods=hours, freq="h")
    for _, machine in telemetry.groupby("machineID"):
        assert (machine["datetime"].to_numpy() == expected_hours.to_numpy(dtype="datetime64[ns]")).all()
    assert sorted(telemetry["machineID"].unique()) == list(range(1, SMALL.machines + 1))
    assert telemetry[list(SENSORS)].notna().all().all()


def test_machines_ids_models_and_ages(small):
    machines = small["machines"]
    assert machines["machineID"].tolist() == list(range(1, SMALL.machines + 1))
    counts = machines["model"].value_counts().reindex(list(MODELS))
    exact = pd.Series(SMALL.model_mix).reindex(list(MODELS)) * SMALL.machines
    assert counts.sum() == SMALL.machines
    assert ((counts - exact).abs() < 1).all()
    assert machines["age"].between(*SMALL.age_range).all()


def test_failures_at_event_hour_and_each_is_a_replacement(small):
    failures, maintenance = small["failures"], small["maintenance"]
    assert len(failures) > 0
    for frame in (failures, maintenance):
        assert (frame["datetime"].dt.hour == SMALL.event_hour).all()
        assert (frame["datetime"] == frame["datetime"].dt.floor("h")).all()
    assert failures["datetime"].min() >= pd.Timestamp(SMALL.start)
    assert failures["datetime"].max() < pd.Timestamp(SMALL.end)
    replacements = maintenance.rename(columns={"comp": "failure"})
    matched = failures.merge(replacements, on=["datetime", "machineID", "failure"], how="left", indicator=True)
    assert (matched["_merge"] == "both").all()


def test_every_component_has_one_replacement_before_start(small):
    maintenance = small["maintenance"]
    before = maintenance[maintenance["datetime"] < pd.Timestamp(SMALL.start)]
    assert before["datetime"].min() >= pd.Timestamp(SMALL.maintenance_history_start)
    per_part = before.groupby(["machineID", "comp"], observed=False).size()
    assert len(per_part) == SMALL.machines * len(COMPONENTS)
    assert (per_part == 1).all()
    assert maintenance["datetime"].max() < pd.Timestamp(SMALL.end)


def test_errors_are_on_the_hour_inside_the_period(small):
    errors = small["errors"]
    assert len(errors) > 0
    assert (errors["datetime"] == errors["datetime"].dt.floor("h")).all()
    assert errors["datetime"].min() >= pd.Timestamp(SMALL.start)
    assert errors["datetime"].max() < pd.Timestamp(SMALL.end)
    assert set(errors["errorID"].astype(str)) <= set(ERROR_IDS)


def test_each_failure_has_its_precursor_errors(small):
    errors = small["errors"]
    window = pd.Timedelta(hours=SMALL.precursor_hours)
    late = small["failures"][small["failures"]["datetime"] >= pd.Timestamp(SMALL.start) + window]
    error_ids = {"comp1": ["error1"], "comp2": ["error2", "error3"], "comp3": ["error4"], "comp4": ["error5"]}
    for row in late.itertuples():
        own = errors[(errors["machineID"] == row.machineID) & (errors["datetime"] >= row.datetime - window)]
        own = own[own["datetime"] < row.datetime]
        assert set(error_ids[row.failure]) <= set(own["errorID"].astype(str))


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError):
        SimulationConfig(sensor_mean={"volt": 1.0})
    with pytest.raises(ValueError):
        SimulationConfig(start="2016-01-01", end="2015-01-01")
    with pytest.raises(ValueError):
        DriftSpec(start="2015-07-01", sensor_shift_sd={"humidity": 1.0})


# --- the Kaggle file format --------------------------------------------------------------------------------


def test_write_returns_the_kaggle_file_names(small_files):
    assert {name: path.name for name, path in small_files.items()} == {
        "machines": "PdM_machines.csv",
        "telemetry": "PdM_telemetry.csv",
        "errors": "PdM_errors.csv",
        "maintenance": "PdM_maint.csv",
        "failures": "PdM_failures.csv",
    }
    assert not [p for p in small_files["telemetry"].parent.iterdir() if p.name.endswith(".tmp")]


def test_written_bytes_follow_the_kaggle_format(small_files):
    telemetry = small_files["telemetry"].read_bytes()
    assert telemetry.startswith(b'"datetime","machineID","volt","rotate","pressure","vibration"\r\n')
    number = r"-?\d+(\.\d+)?(e[+-]?\d+)?"
    timestamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    row_patterns = {
        "telemetry": rf"{timestamp},\d+(,{number}){{4}}",
        "errors": rf'{timestamp},\d+,"error[1-5]"',
        "maintenance": rf'{timestamp},\d+,"comp[1-4]"',
        "failures": rf'{timestamp},\d+,"comp[1-4]"',
        "machines": r'\d+,"model[1-4]",\d+',
    }
    for name, path in small_files.items():
        data = path.read_bytes()
        assert data.endswith(b"\r\n"), name
        assert data.count(b"\n") == data.count(b"\r\n"), name
        lines = data.decode("ascii").split("\r\n")
        assert lines[-1] == ""
        assert lines[0] == ",".join(f'"{c}"' for c in TABLES[name].columns), name
        pattern = re.compile(row_patterns[name])
        assert all(pattern.fullmatch(line) for line in lines[1:-1]), name


def _assert_round_trip(original: pd.DataFrame, path: Path, name: str) -> None:
    spec = TABLES[name]
    back = pd.read_csv(path, parse_dates=["datetime"] if "datetime" in spec.columns else None)
    assert tuple(back.columns) == spec.columns
    assert len(back) == len(original)
    for column in spec.columns:
        kind = spec.kinds[column]
        if kind == "timestamp":
            expected = original[column].to_numpy(dtype="datetime64[ns]")
            assert (back[column].to_numpy(dtype="datetime64[ns]") == expected).all()
        elif kind == "category":
            assert back[column].tolist() == original[column].astype(str).tolist()
        else:
            assert np.array_equal(back[column].to_numpy(), original[column].to_numpy()), column  # exact floats


def test_round_trip_gives_the_same_values(small, small_files):
    for name, path in small_files.items():
        _assert_round_trip(small[name], path, name)


def test_compressed_files_are_gzip_of_the_same_bytes(small, small_files, tmp_path):
    paths = write_kaggle_csv(small, tmp_path / "a", compress=True)
    again = write_kaggle_csv(small, tmp_path / "b", compress=True)
    for name, path in paths.items():
        assert path.name == small_files[name].name + ".gz"
        assert gzip.decompress(path.read_bytes()) == small_files[name].read_bytes()
        assert path.read_bytes() == again[name].read_bytes()  # no timestamp in the gzip header
        _assert_round_trip(small[name], path, name)


# --- drift -----------------------------------------------------------------------------------------------


def test_drift_shifts_and_scales_sensors_from_its_start():
    config = SimulationConfig(
        machines=30,
        start="2015-01-01",
        end="2015-05-01",
        seed=3,
        drift=DriftSpec(
            start="2015-03-01", sensor_shift_sd={"volt": 1.5, "pressure": -1.0}, sensor_scale={"rotate": 2.0}
        ),
    )
    telemetry, baseline = simulate(config)["telemetry"], sensor_baseline(config)
    after = telemetry["datetime"] >= pd.Timestamp("2015-03-01")
    before_mean, after_mean = telemetry.loc[~after, list(SENSORS)].mean(), telemetry.loc[after, list(SENSORS)].mean()
    shift_sd = (after_mean - before_mean) / baseline["sd"]
    assert shift_sd["volt"] == pytest.approx(1.5, abs=0.1)
    assert shift_sd["pressure"] == pytest.approx(-1.0, abs=0.1)
    assert abs(shift_sd["vibration"]) < 0.1
    # the noise: hour-to-hour differences (precursor and excursion windows, which the scale leaves alone, are
    # flat over two days and differ out)
    steps = telemetry.sort_values(["machineID", "datetime"]).groupby("machineID")[list(SENSORS)].diff()
    sd_ratio = steps.loc[after].std() / steps.loc[~after].std()
    assert sd_ratio["rotate"] == pytest.approx(2.0, rel=0.05)
    assert sd_ratio["volt"] == pytest.approx(1.0, rel=0.05)


def test_drift_multiplies_the_failure_rate_from_its_start():
    base = SimulationConfig(machines=50, start="2015-01-01", end="2015-07-01", seed=11)
    drifted = dataclasses.replace(base, drift=DriftSpec(start="2015-04-01", failure_rate_factor=3.0))
    after = [(simulate(c)["failures"]["datetime"] >= pd.Timestamp("2015-04-01")).sum() for c in (base, drifted)]
    assert 2.2 < after[1] / after[0] < 3.8


# --- calibration against the real files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> dict[str, pd.DataFrame]:
    """The default simulation: 100 machines, 2015."""
    return simulate(SimulationConfig())


@pytest.fixture(scope="module")
def real(real_data_dir: Path) -> dict[str, pd.DataFrame]:
    def read(name: str) -> pd.DataFrame:
        path = real_data_dir / name
        return pd.read_csv(path, parse_dates=["datetime"]) if "machines" not in name else pd.read_csv(path)

    union = read(UNION_PARTIAL)
    q1 = read(Q1_SUBSET)
    return {
        "machines": read("PdM_machines.csv.gz"),
        "errors": read("PdM_errors.csv.gz"),
        "maintenance": read("PdM_maint.csv.gz"),
        "failures": read("PdM_failures.csv.gz"),
        "q1": q1,
        "telemetry_union": union,
        "telemetry": pd.concat([union, q1]).drop_duplicates(["machineID", "datetime"]),
    }


def test_failure_counts_match_real(fleet, real):
    simulated, observed = profile.failure_counts(fleet["failures"]), profile.failure_counts(real["failures"])
    assert ((simulated - observed).abs() <= 0.2 * observed).all(), (simulated.to_dict(), observed.to_dict())


def test_error_counts_match_real(fleet, real):
    simulated, observed = profile.error_counts(fleet["errors"]), profile.error_counts(real["errors"])
    assert abs(simulated.sum() - observed.sum()) <= 0.2 * observed.sum()
    assert ((simulated - observed).abs() <= 0.2 * observed).all(), (simulated.to_dict(), observed.to_dict())
    rate = profile.error_rate_per_machine_day(fleet["errors"], machines=100, days=365)
    assert rate == pytest.approx(profile.error_rate_per_machine_day(real["errors"], machines=100, days=365), rel=0.2)


def test_sensor_stats_match_the_real_q1_subset(fleet, real):
    simulated, observed = profile.sensor_stats(fleet["telemetry"]), profile.sensor_stats(real["q1"])
    assert ((simulated["mean"] / observed["mean"] - 1).abs() <= 0.01).all(), simulated
    assert ((simulated["sd"] / observed["sd"] - 1).abs() <= 0.05).all(), simulated


def test_precursor_shifts_match_real(fleet, real):
    observed = profile.precursor_zshift(real["telemetry"], real["failures"])
    simulated = profile.precursor_zshift(fleet["telemetry"], fleet["failures"])
    assert ((observed - pd.Series(README_ZSHIFT)).abs() <= 0.3).all(), observed.to_dict()
    assert ((simulated - observed).abs() <= 0.3).all(), (simulated.to_dict(), observed.to_dict())


def test_model1_and_model2_fail_about_twice_as_often(fleet, real):
    for tables in (fleet, real):
        per_machine = profile.failures_per_machine_by_model(tables["failures"], tables["machines"])
        n = tables["machines"]["model"].astype(str).value_counts()
        weak = (per_machine[["model1", "model2"]] * n[["model1", "model2"]]).sum() / n[["model1", "model2"]].sum()
        strong = (per_machine[["model3", "model4"]] * n[["model3", "model4"]]).sum() / n[["model3", "model4"]].sum()
        assert 1.5 <= weak / strong <= 2.5


def test_replacement_gap_median_is_about_45_days(fleet, real):
    assert profile.replacement_gap_median_days(real["maintenance"]) == 45
    assert profile.replacement_gap_median_days(fleet["maintenance"]) == pytest.approx(45, abs=9)


def test_machines_match_real(fleet, real):
    simulated, observed = fleet["machines"], real["machines"]
    assert simulated["model"].value_counts().to_dict() == observed["model"].value_counts().to_dict()
    assert simulated["model"].value_counts().to_dict() == {"model1": 16, "model2": 17, "model3": 35, "model4": 32}
    assert simulated["age"].between(0, 20).all()
    assert observed["age"].between(0, 20).all()


# --- what makes a simulated fleet transfer to the real one (each within 15 % of the real figure, 0.05 for
# correlations; the real telemetry figures come from the complete Q1 subset, machines 1-20) ------------------


def test_hourly_readings_are_autocorrelated_like_the_real_ones(fleet, real):
    simulated = profile.lag1_autocorrelation(fleet["telemetry"])
    observed = profile.lag1_autocorrelation(real["q1"])
    assert (observed > 0.05).all()  # independent hours would give ~0 (the simulator before: 0.01-0.04)
    assert ((simulated - observed).abs() <= 0.05).all(), (simulated.to_dict(), observed.to_dict())


def test_the_sd_of_24h_means_on_clean_snapshots_matches(fleet, real):
    simulated = profile.clean_24h_means(fleet["telemetry"], fleet["failures"]).std()
    observed = profile.clean_24h_means(real["q1"], real["failures"]).std()
    independent = profile.sensor_stats(real["q1"])["sd"] / np.sqrt(24)
    assert (observed > 1.3 * independent).all()  # what independent hours cannot give
    assert ((simulated / observed - 1).abs() <= 0.15).all(), (simulated.to_dict(), observed.to_dict())


def test_excursions_without_failure_are_as_frequent_as_in_the_real_file(fleet, real):
    simulated = profile.excursion_share(profile.clean_24h_means(fleet["telemetry"], fleet["failures"]))
    observed = profile.excursion_share(profile.clean_24h_means(real["q1"], real["failures"]))
    assert (observed > 0.02).all()
    assert ((simulated / observed - 1).abs() <= 0.15).all(), (simulated.to_dict(), observed.to_dict())


def test_co_failures_are_as_frequent_as_in_the_real_file(fleet, real):
    observed = profile.co_failure_share(real["failures"])
    assert observed == pytest.approx(84 / 761)
    assert profile.co_failure_share(fleet["failures"]) == pytest.approx(observed, rel=0.3)  # ~45 of ~800: noisy
    many = simulate(SimulationConfig(machines=400, seed=7))  # the rate itself, on a larger fleet
    assert profile.co_failure_share(many["failures"]) == pytest.approx(observed, rel=0.15)


def test_components_fail_on_the_models_and_ages_they_fail_on_in_the_real_file(fleet, real):
    for tables in (fleet, real):
        by_model = profile.components_by_model(tables["failures"], tables["machines"])
        assert (by_model.loc[["model3", "model4"], "comp3"] == 0).all()
        by_age = profile.failures_by_age_band(tables["failures"], tables["machines"])
        assert (by_age.iloc[:2]["comp4"] == 0).all()  # none below 10 years (the real file: none below 14)
    young = fleet["machines"].loc[fleet["machines"]["age"] < 14, "machineID"]
    assert not fleet["failures"].loc[fleet["failures"]["failure"] == "comp4", "machineID"].isin(young).any()
    simulated = profile.components_by_model(fleet["failures"], fleet["machines"]).loc[["model1", "model2"], "comp3"]
    observed = profile.components_by_model(real["failures"], real["machines"]).loc[["model1", "model2"], "comp3"]
    assert ((simulated / observed - 1).abs() <= 0.3).all(), (simulated.to_dict(), observed.to_dict())


def test_gaps_are_an_option_that_removes_runs_of_hours():
    config = SimulationConfig(machines=5, end="2015-02-01", seed=3)
    full = simulate(config)["telemetry"]
    assert len(full) == 5 * 31 * 24  # no gaps by default
    gappy = simulate(dataclasses.replace(config, gaps_per_machine_year=100, gap_mean_hours=8))["telemetry"]
    missing = 1 - len(gappy) / len(full)
    assert 0.03 < missing < 0.15  # ~100 x 8 h / 8,760 h, less overlaps
    kept = gappy.merge(full, on=["machineID", "datetime"], suffixes=("", "_full"))
    assert len(kept) == len(gappy) and (kept["volt"] == kept["volt_full"]).all()  # the same readings, some removed
    runs = gappy.groupby("machineID")["datetime"].diff().dropna() / pd.Timedelta(hours=1)
    assert runs.max() > 3  # whole runs of hours are missing, not scattered single hours


def test_observation_keeps_the_hours_the_public_copy_holds(real):
    """ObservationSpec: the simulated telemetry observed as the real union file is (each figure within 15 %)."""
    config = SimulationConfig(observation=ObservationSpec())
    observed = simulate(config)
    full = simulate(dataclasses.replace(config, observation=None))
    for name in ("machines", "errors", "maintenance", "failures"):
        pd.testing.assert_frame_equal(observed[name], full[name])  # only telemetry hours are dropped
    kept = observed["telemetry"].merge(full["telemetry"], on=["machineID", "datetime"], suffixes=("", "_full"))
    assert len(kept) == len(observed["telemetry"]) < 0.25 * len(full["telemetry"])
    assert (kept["volt"] == kept["volt_full"]).all()
    simulated = profile.observed_runs(observed["telemetry"], observed["failures"], config.machines)
    union = real["telemetry_union"]
    measured = profile.observed_runs(union, real["failures"], 100)
    assert measured["median_hours_after_failure"] == 26 and measured["failures_with_48h_before"] > 0.7
    assert ((simulated / measured - 1).abs() <= 0.15).all(), (simulated.to_dict(), measured.to_dict())
    assert (profile.observed_runs(full["telemetry"], full["failures"], 100)["rows_per_machine"]) == _hours(config)


def test_observation_spec_rejects_bad_values():
    with pytest.raises(ValueError):
        ObservationSpec(hours_before_failure=((30, 20, 1.0),))
    with pytest.raises(ValueError):
        ObservationSpec(single_keep=1.5)
    with pytest.raises(ValueError):
        ObservationSpec(window_hours=0)
