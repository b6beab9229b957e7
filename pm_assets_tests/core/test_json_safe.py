"""JSON-safe values: what numpy and pandas give becomes strict JSON with the same meaning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pm_assets.core.json_safe import to_json_safe


def test_numpy_scalars_nan_and_timestamps_become_strict_json():
    value = {
        1: np.int64(3),
        "x": [np.float32(0.5), float("nan"), np.inf, (np.bool_(True), pd.Timestamp("2015-01-02 03:00"))],
    }
    safe = to_json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == {
        "1": 3,
        "x": [0.5, None, None, [True, "2015-01-02T03:00:00"]],
    }
    assert type(safe["1"]) is int and type(safe["x"][3][0]) is bool
