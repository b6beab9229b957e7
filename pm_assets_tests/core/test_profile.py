"""Each profile measurement against a tiny hand-built frame and an independent loop."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pm_assets.core import profile
from pm_assets.core.schema import COMPONENT_SENSOR, SENSORS

T0 = datetime(2015, 1, 1, 0)


def _telemetry(machines: int, hours: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(T0 + timedelta(hours=h), m) for m in range(1, machines + 1) for h in range(hours)]
    frame = pd.DataFrame(rows, columns=["datetime", "machineID"])
    for sensor in SENSORS:
        frame[sensor] = rng.normal(100.0, 10.0, len(frame))
    return frame


def _loop_mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_sensor_stats():
    telemetry = _telemetry(machines=2, hours=5)
    stats = profile.sensor_stats(telemetry)
    assert list(stats.index) == list(SENSORS)
    for sensor in SENSORS:
        mean, sd = _loop_mean_sd(list(telemetry[sensor]))
        assert stats.loc[sensor, "mean"] == pytest.approx(mean, rel=1e-12)
        assert stats.loc[sensor, "sd"] == pytest.approx(sd, rel=1e-12)


def test_precursor_zshift():
    hours = 3
    telemetry = _telemetry(machines=2, hours=12, seed=1)
    telemetry = telemetry.drop(index=[3, 15])  # gaps: machine 1 hour 3, machine 2 hour 3
    failures = pd.DataFrame(
        [
            (T0 + timedelta(hours=6), 1, "comp1"),
            (T0 + timedelta(hours=10), 1, "comp1"),
            (T0 + timedelta(hours=4), 2, "comp2"),
            (T0 + timedelta(hours=20), 1, "comp3"),  # window [17, 20) has no telemetry
        ],
        columns=["datetime", "machineID", "failure"],
    )
    result = profile.precursor_zshift(telemetry, failures, hours=hours)

    expected = {}
    for comp in ("comp1", "comp2", "comp3", "comp4"):
        sensor = COMPONENT_SENSOR[comp]
        own = [(t, m) for t, m, c in failures.itertuples(index=False) if c == comp]
        reference, shifts = [], []
        for row in telemetry.itertuples(index=False):
            in_window = any(m == row.machineID and t - timedelta(hours=hours) <= row.datetime <= t for t, m in own)
            if not in_window:
                reference.append(getattr(row, sensor))
        ref_mean, ref_sd = _loop_mean_sd(reference)
        for t, m in own:
            window = [
                getattr(row, sensor)
                for row in telemetry.itertuples(index=False)
                if row.machineID == m and t - timedelta(hours=hours) <= row.datetime < t
            ]
            if window:
                shifts.append((sum(window) / len(window) - ref_mean) / ref_sd)
        expected[comp] = sum(shifts) / len(shifts) if shifts else math.nan

    assert list(result.index) == ["comp1", "comp2", "comp3", "comp4"]
    for comp, value in expected.items():
        if math.isnan(value):
            assert math.isnan(result[comp]), comp
        else:
            assert result[comp] == pytest.approx(value, rel=1e-12), comp
    assert math.isnan(expected["comp3"]) and math.isnan(expected["comp4"])


def test_precursor_zshift_recovers_an_injected_shift():
    telemetry = _telemetry(machines=3, hours=400, seed=2)
    failure_time = T0 + timedelta(hours=300)
    in_window = telemetry["datetime"].between(failure_time - timedelta(hours=48), failure_time)
    telemetry.loc[in_window, "pressure"] += 25.0  # 2.5 sds of the N(100, 10) noise
    failures = pd.DataFrame({"datetime": [failure_time] * 3, "machineID": [1, 2, 3], "failure": ["comp3"] * 3})
    assert profile.precursor_zshift(telemetry, failures)["comp3"] == pytest.approx(2.5, abs=0.3)


def test_failure_counts():
    failures = pd.DataFrame(
        {"datetime": [T0] * 5, "machineID": [1, 1, 2, 3, 3], "failure": ["comp2", "comp1", "comp2", "comp2", "comp4"]}
    )
    expected = {c: 0 for c in ("comp1", "comp2", "comp3", "comp4")}
    for comp in failures["failure"]:
        expected[comp] += 1
    assert profile.failure_counts(failures).to_dict() == expected


def test_error_counts():
    errors = pd.DataFrame(
        {"datetime": [T0] * 4, "machineID": [1, 2, 2, 3], "errorID": ["error5", "error1", "error5", "error5"]}
    )
    expected = {e: 0 for e in ("error1", "error2", "error3", "error4", "error5")}
    for error_id in errors["errorID"]:
        expected[error_id] += 1
    assert profile.error_counts(errors).to_dict() == expected


def test_failures_per_machine_by_model():
    machines = pd.DataFrame(
        {"machineID": [1, 2, 3, 4], "model": ["model1", "model1", "model3", "model2"], "age": [1, 2, 3, 4]}
    )
    failures = pd.DataFrame({"datetime": [T0] * 5, "machineID": [1, 1, 2, 3, 3], "failure": ["comp1"] * 5})
    model_of = dict(zip(machines["machineID"], machines["model"]))
    expected = {}
    for model in ("model1", "model2", "model3", "model4"):
        n = sum(1 for m in model_of.values() if m == model)
        fails = sum(1 for machine in failures["machineID"] if model_of[machine] == model)
        expected[model] = fails / n if n else math.nan
    result = profile.failures_per_machine_by_model(failures, machines)
    assert list(result.index) == ["model1", "model2", "model3", "model4"]
    for model, value in expected.items():
        assert (math.isnan(result[model]) and math.isnan(value)) or result[model] == value, model


def test_error_rate_per_machine_day():
    errors = pd.DataFrame({"datetime": [T0] * 6, "machineID": [1, 1, 2, 2, 3, 3], "errorID": ["error1"] * 6})
    assert profile.error_rate_per_machine_day(errors, machines=4, days=3) == pytest.approx(6 / (4 * 3))


def test_replacement_gap_median_days():
    rows = [
        (datetime(2015, 1, 31, 6), 1, "comp1"),
        (datetime(2015, 1, 1, 6), 1, "comp1"),
        (datetime(2015, 3, 2, 6), 1, "comp1"),
        (datetime(2015, 1, 16, 6), 1, "comp2"),
        (datetime(2015, 1, 1, 6), 1, "comp2"),
        (datetime(2015, 1, 1, 6), 2, "comp1"),
        (datetime(2015, 4, 1, 6), 2, "comp1"),
        (datetime(2015, 2, 1, 6), 3, "comp4"),  # a single replacement: no gap
    ]
    maintenance = pd.DataFrame(rows, columns=["datetime", "machineID", "comp"])
    by_part: dict[tuple[int, str], list[datetime]] = {}
    for t, machine, comp in rows:
        by_part.setdefault((machine, comp), []).append(t)
    gaps = []
    for times in by_part.values():
        times.sort()
        gaps += [(b - a).total_seconds() / 86400 for a, b in zip(times, times[1:])]
    assert profile.replacement_gap_median_days(maintenance) == statistics.median(gaps)


def test_observed_runs_counts_runs_around_failures_windows_and_single_hours():
    t0 = pd.Timestamp("2015-03-01 06:00")
    hours = lambda first, last: [t0 + pd.Timedelta(hours=h) for h in range(first, last + 1)]  # noqa: E731
    # machine 1: a run from 30 h before its failure to 5 h after, a 10 h window, a single hour; machine 2: a single
    times = hours(-30, 5) + hours(100, 109) + hours(200, 200)
    telemetry = pd.DataFrame(
        {"machineID": [1] * len(times) + [2], "datetime": times + [t0], "volt": 1.0, "rotate": 1.0}
        | {"pressure": 1.0, "vibration": 1.0}
    )
    failures = pd.DataFrame({"machineID": [1, 2], "datetime": [t0, t0 + pd.Timedelta(hours=50)], "failure": "comp1"})
    runs = profile.observed_runs(telemetry, failures, machines=2)
    assert runs["rows_per_machine"] == (36 + 10 + 1 + 1) / 2
    assert runs["failures_with_48h_before"] == 0  # 30 h before the first, nothing before the second
    assert runs["median_hours_before_failure"] == 30  # only the first failure hour has a reading
    assert runs["median_hours_after_failure"] == 5
    assert runs["runs_without_failure_per_machine"] == 1 / 2  # the 10 h window
    assert runs["single_hours_per_machine"] == 2 / 2
