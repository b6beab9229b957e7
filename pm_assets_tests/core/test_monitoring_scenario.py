"""Drift injected by the simulator turns the traffic light; without it the light stays green."""

from __future__ import annotations

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from pm_assets.core.features import build_features, feature_columns
from pm_assets.core.labels import build_labels
from pm_assets.core.model import fit_bundle, split_by_cutoff, training_rows
from pm_assets.core.monitoring import MonitoringParams, monitor, monitoring_rows
from pm_assets.core.scoring import score_snapshots
from pm_assets.core.simulate import DriftSpec, SimulationConfig, simulate

DRIFT = DriftSpec(start="2015-05-01", sensor_shift_sd={"volt": 1.5, "pressure": 1.5}, failure_rate_factor=2.0)


def _rows(drift):
    tables = simulate(SimulationConfig(machines=30, start="2015-01-01", end="2015-06-01", seed=21, drift=drift))
    feats = build_features(tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"],
                           "2015-01-01", "2015-06-01")
    labels = build_labels(feats, tables["failures"], 24, "2015-06-01")
    train, _ = split_by_cutoff(training_rows(feats, labels), "2015-04-01", 24)
    with threadpool_limits(1):
        bundle = fit_bundle(train)
    return monitoring_rows(feats, score_snapshots(feats, bundle, "test"), labels)


def _light(rows, day):
    names = [f for f in feature_columns() if f != "model"]
    return monitor(rows, pd.Timestamp(day) + pd.Timedelta(days=1), names, MonitoringParams())


@pytest.fixture(scope="module")
def drifted():
    return _rows(DRIFT)


def test_light_is_green_before_the_drift_and_not_green_once_production_is_after_it(drifted):
    for day in ("2015-04-20", "2015-04-25", "2015-04-30"):
        assert _light(drifted, day).light == "green", day
    after = _light(drifted, "2015-05-14")  # production window 2015-05-01 .. 05-14: fully after the date
    assert after.light in ("yellow", "red")
    fired = {a.name for a in after.alerts if a.fired}
    assert {"score_drift", "feature_drift"} <= fired
    drifted_features = set(after.drift_features.loc[after.drift_features["drifted"], "feature"])
    assert any(f.startswith("volt_") for f in drifted_features) and any(f.startswith("pressure_") for f in drifted_features)
    assert not any(f.startswith("rotate_mean") for f in drifted_features)


def test_without_drift_the_light_stays_green():
    rows = _rows(None)
    lights = [_light(rows, day).light for day in pd.date_range("2015-04-15", "2015-05-31", freq="4D")]
    assert lights.count("green") / len(lights) >= 0.9
