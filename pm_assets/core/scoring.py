"""Scoring every snapshot with a model bundle, and the worklist ranked from the scores. No Dagster import."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.labels import LABEL_CLASSES
from pm_assets.core.model import PROBA_COLUMNS, expected_costs, risk_level
from pm_assets.core.schema import COMPONENTS

#: Default risk thresholds on the calibrated p_any (``RiskConfig``): medium from 0.2, high from 0.5.
MEDIUM_RISK, HIGH_RISK = 0.2, 0.5


def score_snapshots(
    features: pd.DataFrame,
    bundle,
    version: str,
    medium_threshold: float = MEDIUM_RISK,
    high_threshold: float = HIGH_RISK,
) -> pd.DataFrame:
    """Every snapshot with the bundle's scores (NaN and no class where not usable), risk level and version."""
    out = features[["machineID", "datetime"]].copy()
    usable = features["usable"].to_numpy()
    scored = bundle.score(features[usable]) if usable.any() else None
    for column in [*PROBA_COLUMNS, "p_any", "anomaly_score"]:
        out[column] = np.nan
        if scored is not None:
            out.loc[usable, column] = scored[column].to_numpy()
    for column, categories in (("likely_component", COMPONENTS), ("predicted_class", LABEL_CLASSES)):
        values = np.full(len(out), None, dtype=object)
        if scored is not None:
            values[usable] = scored[column].astype(object).to_numpy()
        out[column] = pd.Categorical(values, categories=list(categories))
    out["risk_level"] = risk_level(out["p_any"].to_numpy(), medium_threshold, high_threshold)
    out["model_version"] = version
    out["scored"] = usable
    return out


def rank_worklist(scores: pd.DataFrame, failure_cost: float, inspection_cost: float) -> pd.DataFrame:
    """Per day, each scored machine's worst snapshot, ranked by the expected saving of inspecting it now."""
    scored = scores[scores["scored"]]
    if scored.empty:
        worst = scored.assign(date=pd.Series(dtype="datetime64[ns]"))
    else:
        worst = scored.loc[scored.groupby([scored["datetime"].dt.floor("D"), "machineID"])["p_any"].idxmax()]
        worst = worst.assign(date=worst["datetime"].dt.floor("D"))
    waiting, saving = expected_costs(worst["p_any"].to_numpy(), failure_cost, inspection_cost)
    worklist = pd.DataFrame(
        {
            "date": worst["date"].to_numpy(),
            "machineID": worst["machineID"].to_numpy(),
            "worst_snapshot": worst["datetime"].to_numpy(),
            "p_any": worst["p_any"].to_numpy(),
            "likely_component": worst["likely_component"].to_numpy(),
            "risk_level": worst["risk_level"].to_numpy(),
            "expected_failure_cost": waiting,
            "expected_saving": saving,
            "action": np.where(saving > 0, "inspect", "monitor"),
            "model_version": worst["model_version"].to_numpy(),
        }
    ).sort_values(["date", "expected_saving", "machineID"], ascending=[True, False, True], kind="stable")
    worklist.insert(1, "rank", worklist.groupby("date").cumcount() + 1)
    return worklist.reset_index(drop=True)
