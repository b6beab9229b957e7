"""What must hold of the model's outputs, checked after every scoring run: pure functions returning the offending
rows' count and an example, used by the asset checks of ``scores`` and ``maintenance_worklist``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.model import PROBA_COLUMNS

#: How far a row's class probabilities may sum from 1 (float rounding of the calibrated classifier).
SUM_TOLERANCE = 1e-6


def _example(frame: pd.DataFrame, mask: np.ndarray, columns: list[str]) -> str:
    if not mask.any():
        return ""
    row = frame.loc[mask, columns].iloc[0]
    return ", ".join(f"{c} {row[c]}" for c in columns)


def probability_problems(scores: pd.DataFrame) -> tuple[int, str]:
    """Scored rows with a probability outside [0, 1] or class probabilities not summing to 1, or p_any not
    1 - p_none."""
    scored = scores[scores["scored"]]
    proba = scored[PROBA_COLUMNS].to_numpy(dtype=float)
    bad = ((proba < 0) | (proba > 1) | np.isnan(proba)).any(axis=1)
    bad |= np.abs(proba.sum(axis=1) - 1) > SUM_TOLERANCE
    bad |= np.abs(scored["p_any"].to_numpy() - (1 - scored["p_none"].to_numpy())) > SUM_TOLERANCE
    return int(bad.sum()), _example(scored, bad, ["machineID", "datetime", *PROBA_COLUMNS, "p_any"])


def version_problems(scores: pd.DataFrame, champion: str | None) -> tuple[int, str]:
    """Rows not scored by ``champion`` (every row of a run carries the version that scored it)."""
    bad = (scores["model_version"] != champion).to_numpy()
    return int(bad.sum()), _example(scores, bad, ["machineID", "datetime", "model_version"])


def worklist_problems(worklist: pd.DataFrame) -> tuple[int, str]:
    """Rows that break the worklist's shape: a machine twice in a day, ranks not 1..n in the order of the expected
    saving, or an action that does not follow the sign of the saving."""
    if worklist.empty:
        return 0, ""
    twice = worklist.duplicated(["date", "machineID"], keep=False).to_numpy()
    expected_rank = worklist.groupby("date").cumcount().to_numpy() + 1
    misranked = worklist["rank"].to_numpy() != expected_rank
    saving = worklist["expected_saving"].to_numpy()
    previous = worklist.groupby("date")["expected_saving"].shift().to_numpy()
    unordered = ~np.isnan(previous) & (saving > previous + 1e-9)
    action = np.where(saving > 0, "inspect", "monitor")
    wrong_action = worklist["action"].to_numpy() != action
    bad = twice | misranked | unordered | wrong_action
    return int(bad.sum()), _example(worklist, bad, ["date", "machineID", "rank", "expected_saving", "action"])
