"""JSON-safe values: numpy scalars, NaN and infinities, and timestamps made into what strict JSON can hold."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def to_json_safe(obj):
    """``obj`` with numpy scalars as Python numbers, NaN/inf as None, timestamps as ISO strings: valid JSON."""
    if isinstance(obj, dict):
        return {str(k): to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    return obj
