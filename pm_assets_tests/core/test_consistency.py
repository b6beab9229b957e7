"""The output checks of scores and the worklist find exactly the rows that break them."""

import numpy as np
import pandas as pd

from pm_assets.core.consistency import probability_problems, version_problems, worklist_problems
from pm_assets.core.model import PROBA_COLUMNS


def scores_frame(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(len(PROBA_COLUMNS)), size=n)
    frame = pd.DataFrame(proba, columns=PROBA_COLUMNS)
    frame.insert(0, "machineID", np.arange(1, n + 1))
    frame.insert(1, "datetime", pd.Timestamp("2015-03-01"))
    frame["p_any"] = 1 - frame["p_none"]
    frame["model_version"] = "v0002"
    frame["scored"] = True
    return frame


def test_valid_scores_pass_and_each_kind_of_bad_row_is_found():
    frame = scores_frame()
    assert probability_problems(frame) == (0, "") and version_problems(frame, "v0002") == (0, "")
    frame.loc[1, "p_comp1"] += 0.1  # no longer sums to 1
    frame.loc[3, "p_any"] = 0.99  # not 1 - p_none
    frame.loc[4, ["p_none", "p_comp1"]] = [-0.2, frame.loc[4, "p_comp1"] + frame.loc[4, "p_none"] + 0.2]
    frame.loc[5, "scored"] = False  # not scored: not checked
    frame.loc[5, "p_comp2"] = 7.0
    bad, example = probability_problems(frame)
    assert bad == 3 and example.startswith("machineID 2, ")
    frame.loc[[0, 2], "model_version"] = "v0001"
    assert version_problems(frame, "v0002")[0] == 2


def test_worklist_shape():
    worklist = pd.DataFrame(
        {
            "date": pd.to_datetime(["2015-03-01"] * 3 + ["2015-03-02"] * 2),
            "machineID": [4, 1, 9, 1, 4],
            "rank": [1, 2, 3, 1, 2],
            "expected_saving": [500.0, 20.0, -300.0, 10.0, -1.0],
            "action": ["inspect", "inspect", "monitor", "inspect", "monitor"],
        }
    )
    assert worklist_problems(worklist) == (0, "")
    broken = worklist.copy()
    broken.loc[2, "action"] = "inspect"  # saving negative
    broken.loc[4, "rank"] = 3  # ranks 1, 3
    assert worklist_problems(broken)[0] == 2
    twice = worklist.copy()
    twice.loc[1, "machineID"] = 4
    assert worklist_problems(twice)[0] == 2
