"""Each Dagster ``Config`` becomes its core params one way (``params_of``): field by field, same names and
defaults, every non-default value passed on; the fields only one side has are listed here with why."""

from __future__ import annotations

import dataclasses

import pytest

from pm_assets.assets.features import FeatureConfig
from pm_assets.assets.monitoring import MonitoringConfig
from pm_assets.assets.training import TrainingConfig
from pm_assets.core.features import FeatureParams
from pm_assets.core.model import TrainParams
from pm_assets.core.monitoring import MonitoringParams

#: (config, params, params fields not configurable: fixed by design, config fields that are not model params)
PAIRS = [
    (MonitoringConfig, MonitoringParams, set(), {"threads", "report_process_days"}),
    (
        TrainingConfig,
        TrainParams,
        {"calibration_folds", "anomaly_trees", "anomaly_max_samples"},
        {"cutoff", "test_days", "train_start", "horizon_hours", "operating_threshold", "gate_tolerance"},
    ),
    (FeatureConfig, FeatureParams, {"windows", "replacement_lookback_days"}, set()),
]


def _plain(value):
    """A config value as the params hold it (lists and dicts become tuples)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("config, params, params_only, config_only", PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_config_and_params_have_the_same_fields_and_defaults(config, params, params_only, config_only):
    params_fields = {f.name for f in dataclasses.fields(params)}
    assert params_fields - set(config.model_fields) == params_only
    assert set(config.model_fields) - params_fields == config_only
    defaults = config().params() if hasattr(config, "params") else None
    for name in params_fields & set(config.model_fields):
        default = config.model_fields[name].get_default(call_default_factory=True)
        assert _plain(default) == getattr(params(), name), name
        if defaults is not None:
            assert getattr(defaults, name) == getattr(params(), name), name


def _changed(value):
    """A valid value other than ``value``, of its type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    return value


@pytest.mark.parametrize(
    "config, build",
    [
        (MonitoringConfig, MonitoringConfig.params),
        (TrainingConfig, TrainingConfig.params),
        (FeatureConfig, FeatureConfig.params),
    ],
    ids=["monitoring", "training", "features"],
)
def test_every_configured_value_reaches_the_params(config, build):
    special = {
        "feature_drift_measure": "jensen_shannon",
        "label_drift_rule": "absolute",
        "calibration": "isotonic",
        "drift_methods": {"age": "continuous"},
        "multivariate_features": ["volt_mean_3h", "volt_sd_3h"],
        "max_negative_rows": 500,
        "reference_days": 30,
        "snapshot_every_hours": 6,  # must divide 24
    }
    params_fields = {f.name for f in dataclasses.fields(build(config()))}
    values = {}
    for name in params_fields & set(config.model_fields):
        default = config.model_fields[name].get_default(call_default_factory=True)
        values[name] = special.get(name, _changed(default))
    got = build(config(**values))
    for name, value in values.items():
        assert getattr(got, name) == _plain(value), name
        assert getattr(got, name) != getattr(build(config()), name), f"{name}: the test did not change it"
