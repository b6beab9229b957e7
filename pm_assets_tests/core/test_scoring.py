"""The worklist ranked from scores, against a naive loop over days and machines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.scoring import rank_worklist


def _scores(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2015-03-01", periods=3 * 8, freq="3h")
    frame = pd.DataFrame([(m, t) for t in times for m in range(1, 7)], columns=["machineID", "datetime"])
    frame["p_any"] = rng.random(len(frame)).round(2)  # ties between machines and snapshots
    frame["scored"] = rng.random(len(frame)) > 0.2
    frame.loc[~frame["scored"], "p_any"] = np.nan
    frame.loc[(frame["machineID"] == 6) & (frame["datetime"].dt.day == 2), "scored"] = (
        False  # a machine without a score one day
    )
    frame.loc[~frame["scored"], "p_any"] = np.nan
    frame["likely_component"] = rng.choice(["comp1", "comp2"], len(frame))
    frame["risk_level"] = "low"
    frame["model_version"] = "v0001"
    return frame


def test_the_worklist_is_each_machines_worst_snapshot_of_the_day_ranked_by_saving():
    scores = _scores()
    worklist = rank_worklist(scores, failure_cost=20_000.0, inspection_cost=9_000.0)
    expected = []
    for day, of_day in scores[scores["scored"]].groupby(scores["datetime"].dt.floor("D")):
        rows = []
        for machine, snapshots in of_day.groupby("machineID"):
            worst = snapshots.iloc[int(np.argmax(snapshots["p_any"].to_numpy()))]  # the first of equal maxima
            rows.append((machine, worst["datetime"], worst["p_any"], worst["p_any"] * 20_000.0 - 9_000.0))
        rows.sort(key=lambda r: (-r[3], r[0]))
        expected += [(day, rank, *row) for rank, row in enumerate(rows, start=1)]
    got = list(
        worklist[["date", "rank", "machineID", "worst_snapshot", "p_any", "expected_saving"]].itertuples(
            index=False, name=None
        )
    )
    assert got == expected
    assert (worklist["action"] == np.where(worklist["expected_saving"] > 0, "inspect", "monitor")).all()
    assert 6 not in set(worklist.loc[worklist["date"] == pd.Timestamp("2015-03-02"), "machineID"])
    assert (worklist["action"] == "inspect").any() and (worklist["action"] == "monitor").any()
