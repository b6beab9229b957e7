"""Scoring snapshots with a bundle (unscored rows filled in) against a naive loop over rows, and the worklist ranked
from scores against a naive loop over days and machines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pm_assets.core.labels import LABEL_CLASSES
from pm_assets.core.model import PROBA_COLUMNS, RISK_LEVELS
from pm_assets.core.schema import COMPONENTS
from pm_assets.core.scoring import rank_worklist, score_snapshots


class _Bundle:
    """A stand-in model: probabilities from each row's ``x`` (p_any = x), refusing rows that are not usable."""

    def __init__(self):
        self.calls = 0

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        assert frame["usable"].all(), "only usable rows are scored"
        x = frame["x"].to_numpy()
        out = pd.DataFrame({"p_none": 1 - x}, index=frame.index)
        for i, column in enumerate(PROBA_COLUMNS[1:]):
            out[column] = x * (i + 1) / 10  # shares 0.1 .. 0.4 of p_any
        out["p_any"] = x
        out["likely_component"] = pd.Categorical(["comp4"] * len(x), categories=list(COMPONENTS))
        out["predicted_class"] = pd.Categorical(np.where(x >= 0.5, "comp4", "none"), categories=list(LABEL_CLASSES))
        out["anomaly_score"] = -x
        return out


def _features(usable) -> pd.DataFrame:
    n = len(usable)
    return pd.DataFrame(
        {
            "machineID": np.arange(n) % 3 + 1,
            "datetime": pd.date_range("2015-03-01", periods=n, freq="3h"),
            "x": np.linspace(0.05, 0.95, n),
            "usable": np.asarray(usable, dtype=bool),
        },
        index=np.arange(n) * 2 + 5,  # a non-default index
    )


def test_scoring_fills_the_rows_that_are_not_usable_and_scores_the_others():
    features = _features([True, False, True, True, False, True, True, False])
    out = score_snapshots(features, _Bundle(), "v0007", medium_threshold=0.3, high_threshold=0.6)
    assert list(out.index) == list(features.index)
    for (_, row), (_, got) in zip(features.iterrows(), out.iterrows(), strict=True):
        assert (got["machineID"], got["datetime"], got["model_version"]) == (row["machineID"], row["datetime"], "v0007")
        assert got["scored"] == row["usable"]
        if row["usable"]:
            x = row["x"]
            assert got["p_none"] == 1 - x and got["p_any"] == x and got["anomaly_score"] == -x
            assert [got[c] for c in PROBA_COLUMNS[1:]] == [x * k / 10 for k in (1, 2, 3, 4)]
            assert got["likely_component"] == "comp4"
            assert got["predicted_class"] == ("comp4" if x >= 0.5 else "none")
            assert got["risk_level"] == ("high" if x >= 0.6 else "medium" if x >= 0.3 else "low")
        else:  # a row that cannot be scored: no probability, no class, no level
            assert np.isnan([got[c] for c in [*PROBA_COLUMNS, "p_any", "anomaly_score"]]).all()
            assert pd.isna(got["likely_component"]) and pd.isna(got["predicted_class"]) and pd.isna(got["risk_level"])
    assert list(out["likely_component"].cat.categories) == list(COMPONENTS)
    assert list(out["predicted_class"].cat.categories) == list(LABEL_CLASSES)
    assert list(out["risk_level"].cat.categories) == list(RISK_LEVELS)


def test_scoring_without_a_usable_row_does_not_call_the_model():
    bundle = _Bundle()
    out = score_snapshots(_features([False] * 4), bundle, "v0001")
    assert bundle.calls == 0 and not out["scored"].any()
    assert out[[*PROBA_COLUMNS, "p_any", "anomaly_score"]].isna().all().all()
    assert out["likely_component"].isna().all() and out["risk_level"].isna().all()
    assert (out["model_version"] == "v0001").all()
    assert rank_worklist(out, failure_cost=20_000.0, inspection_cost=1_000.0).empty  # nothing to rank


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
