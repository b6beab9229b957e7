"""Drift injected by the simulator turns the traffic light within 14 days, each scenario on its own (a sensor shift,
a doubled failure rate, a correlation-only change no univariate test sees); without drift the light stays green."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from pm_assets.core.monitoring import MonitoringParams
from pm_assets.core.scenarios import days_to_alarm, fleet, light_days, notebook_params, scenarios, scored_rows, train
from pm_assets.core.simulate import SimulationConfig

START = "2015-05-01"
FLEET = SimulationConfig(machines=30, start="2015-01-01", end="2015-06-01", seed=21)
BEFORE = pd.date_range("2015-04-15", "2015-04-30")
AFTER = pd.date_range(START, "2015-05-14")  # the 14 days from the start


@pytest.fixture(scope="module")
def bundle_and_none():
    features, labels = fleet(FLEET)
    bundle = train(features, labels, "2015-04-01")
    return bundle, scored_rows(features, labels, bundle)


def _days(bundle, name, days, params=MonitoringParams()):
    rows = scored_rows(*fleet(replace(FLEET, drift=scenarios(START)[name])), bundle)
    return light_days(rows, days, params)


def test_without_drift_the_light_stays_green(bundle_and_none):
    _, rows = bundle_and_none
    table = light_days(rows, pd.date_range("2015-03-16", "2015-05-31"))  # every day with a full 74-day history
    assert (table["light"] == "green").mean() >= 0.95, table[table["light"] != "green"]


@pytest.mark.parametrize(
    "name, alert",
    [("sensor shift", "feature_drift"), ("failure rate x2", "label_drift"), ("correlation only", "multivariate_drift")],
)
def test_each_scenario_turns_the_light_within_14_days_by_its_own_alert(bundle_and_none, name, alert):
    bundle, _ = bundle_and_none
    table = _days(bundle, name, BEFORE.append(AFTER))
    assert (table.loc[table["date"] < START, "light"] == "green").all()
    days = days_to_alarm(table, START)
    assert days is not None and days <= 13, table
    assert table["fired"].str.contains(alert).any()


def test_the_notebook_rules_miss_the_doubled_failure_rate_and_the_correlation_change(bundle_and_none):
    """What the new rules add: with the absolute label rule and no multivariate drift, neither scenario fires."""
    bundle, _ = bundle_and_none
    for name in ("failure rate x2", "correlation only"):
        table = _days(bundle, name, AFTER, notebook_params())
        assert not table["fired"].str.contains("label_drift|multivariate_drift").any(), name
