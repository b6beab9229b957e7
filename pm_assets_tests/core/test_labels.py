"""Failure labels against a naive loop over snapshots and failures, plus small hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.features import snapshot_times
from pm_assets.core.labels import LABEL_CLASSES, NO_FAILURE, LabelTotals, build_labels, observed_until
from pm_assets.core.schema import COMPONENTS
from pm_assets.core.simulate import SimulationConfig, simulate

SIM = SimulationConfig(
    machines=3,
    start="2015-01-01",
    end="2015-01-29",
    seed=1,
    min_failure_age_days=10,
    failure_rate={c: 6.0 for c in COMPONENTS},
)
FLAGS = [f"fails_{c}" for c in COMPONENTS]


def _failures(*rows: tuple[str, int, str]) -> pd.DataFrame:
    """A failures table in the validated layout from (datetime, machineID, component) rows."""
    return pd.DataFrame(
        {
            "datetime": pd.to_datetime([r[0] for r in rows]).astype("datetime64[ns]"),
            "machineID": np.array([r[1] for r in rows], dtype=np.int32),
            "failure": pd.Categorical([r[2] for r in rows], categories=list(COMPONENTS)),
        }
    )


def _snapshots(machine: int, *times: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"machineID": np.int32(machine), "datetime": pd.to_datetime(list(times)).astype("datetime64[ns]")}
    )


@pytest.fixture(scope="module")
def failures() -> pd.DataFrame:
    """The simulated failures plus simultaneous ones (two and three components at one timestamp)."""
    simulated = simulate(SIM)["failures"]
    extra = _failures(
        ("2015-01-12 06:00", 1, "comp4"),
        ("2015-01-12 06:00", 1, "comp2"),
        ("2015-01-25 15:00", 2, "comp3"),
        ("2015-01-25 15:00", 2, "comp1"),
        ("2015-01-25 15:00", 2, "comp2"),
        ("2015-01-14 09:00", 3, "comp1"),
    )
    out = pd.concat([simulated, extra], ignore_index=True).drop_duplicates()
    return out.sort_values(["machineID", "datetime", "failure"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    """Hourly snapshots of all machines, in shuffled order and with a non-default index."""
    times = snapshot_times("2015-01-02", "2015-01-29", 1)
    frame = pd.DataFrame(
        {"machineID": np.repeat(np.arange(1, 4, dtype=np.int32), len(times)), "datetime": np.tile(times.to_numpy(), 3)}
    )
    return frame.sample(frac=1.0, random_state=4).set_index(np.arange(len(frame)) * 7 + 100)


# --- the naive reference ------------------------------------------------------------------------------------


def naive_labels(snapshots: pd.DataFrame, failures: pd.DataFrame, horizon_hours: int, observed_until) -> pd.DataFrame:
    hour = np.timedelta64(1, "h")
    until = pd.Timestamp(observed_until).to_datetime64()
    events = list(zip(failures["machineID"], failures["datetime"].to_numpy(), failures["failure"].astype(str)))
    rows = []
    for machine, t in zip(snapshots["machineID"], snapshots["datetime"].to_numpy()):
        hours: dict[str, float] = {}  # component -> hours to its first failure in (t, t + horizon]
        for m, f, comp in events:
            if m == machine and f <= until and t < f <= t + horizon_hours * hour:
                h = (f - t) / hour
                hours[comp] = min(h, hours.get(comp, np.inf))
        row = {f"fails_{c}": c in hours for c in COMPONENTS}
        first = None
        for c in COMPONENTS:  # in order, so a tie keeps the lower component
            if c in hours and (first is None or hours[c] < hours[first]):
                first = c
        mature = first is not None or t + horizon_hours * hour <= until
        row["failure_component"] = (first or NO_FAILURE) if mature else np.nan
        row["failure_within_horizon"] = (first is not None) if mature else pd.NA
        row["hours_to_failure"] = hours[first] if first else np.nan
        row["label_mature"] = mature
        rows.append(row)
    return pd.DataFrame(rows)


def _filled(values: pd.Series) -> list:
    return values.astype(object).where(values.notna(), "?").tolist()


def _assert_matches(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    for column in FLAGS + ["label_mature"]:
        np.testing.assert_array_equal(actual[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    for column in ("failure_component", "failure_within_horizon"):  # missing (immature) compared as "?"
        assert _filled(actual[column]) == _filled(expected[column]), column
    np.testing.assert_allclose(
        actual["hours_to_failure"], expected["hours_to_failure"].astype(float), rtol=1e-9, atol=1e-9
    )


# --- against the reference ----------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [24, 48, 6])
@pytest.mark.parametrize("observed_until", ["2015-01-29", "2015-01-19 06:00"])  # the second: a failure's own time
def test_labels_match_a_naive_loop(snapshots, failures, horizon, observed_until):
    actual = build_labels(snapshots, failures, horizon, observed_until)
    expected = naive_labels(snapshots, failures, horizon, observed_until)
    assert actual[["machineID", "datetime"]].equals(snapshots[["machineID", "datetime"]].reset_index(drop=True))
    _assert_matches(actual, expected)
    # the comparison is not vacuous: positives, ties, negatives and immature rows all occur
    assert actual["failure_within_horizon"].eq(True).any() and actual["failure_within_horizon"].eq(False).any()
    assert (actual[FLAGS].sum(axis=1) >= 2).any()
    assert (~actual["label_mature"]).any()


def test_the_reference_data_has_the_failures_the_cases_rely_on(failures):
    assert ((failures["datetime"] == "2015-01-19 06:00") & (failures["machineID"] == 3)).any()
    assert (failures["datetime"] > "2015-01-19 06:00").sum() >= 5  # unused before 2015-01-19 06:00 is observed
    assert failures.duplicated(["machineID", "datetime"]).sum() >= 3


# --- boundaries by hand -------------------------------------------------------------------------------------


def test_a_failure_labels_the_horizon_before_it_but_not_its_own_snapshot():
    fails = _failures(("2015-01-10 06:00", 1, "comp3"))
    snaps = _snapshots(
        1,
        "2015-01-09 05:00",
        "2015-01-09 06:00",
        "2015-01-10 03:00",
        "2015-01-10 05:00",
        "2015-01-10 06:00",
        "2015-01-10 07:00",
    )
    out = build_labels(snaps, fails, 24, "2015-02-01")
    assert out["fails_comp3"].tolist() == [False, True, True, True, False, False]
    assert out["hours_to_failure"].tolist()[1:4] == [24.0, 3.0, 1.0]
    assert np.isnan(out["hours_to_failure"].to_numpy()[[0, 4, 5]]).all()
    assert out["failure_component"].astype(str).tolist() == ["none", "comp3", "comp3", "comp3", "none", "none"]
    assert not out[["fails_comp1", "fails_comp2", "fails_comp4"]].any().any()


@pytest.mark.parametrize("horizon", [6, 24, 48])
def test_only_the_machines_own_failures_count(horizon):
    fails = _failures(("2015-01-10 06:00", 1, "comp1"), ("2015-01-10 06:00", 2, "comp2"))
    snaps = _snapshots(1, "2015-01-10 00:00", "2015-01-10 03:00", "2015-01-10 06:00")
    out = build_labels(snaps, fails, horizon, "2015-02-01")
    assert out["fails_comp1"].tolist() == [True, True, False]
    assert not out["fails_comp2"].any()


def test_simultaneous_failures_flag_every_component_and_the_class_is_the_lowest():
    fails = _failures(
        ("2015-01-10 06:00", 1, "comp4"),
        ("2015-01-10 06:00", 1, "comp2"),
        ("2015-01-10 06:00", 1, "comp3"),
        ("2015-01-10 12:00", 1, "comp1"),
    )
    snaps = _snapshots(1, "2015-01-10 00:00", "2015-01-10 09:00")
    out = build_labels(snaps, fails, 24, "2015-02-01")
    first, later = out.iloc[0], out.iloc[1]
    assert [first[f] for f in FLAGS] == [True, True, True, True]
    assert first["failure_component"] == "comp2" and first["hours_to_failure"] == 6.0  # earliest, then lowest
    assert [later[f] for f in FLAGS] == [True, False, False, False]
    assert later["failure_component"] == "comp1" and later["hours_to_failure"] == 3.0


def test_the_earliest_failure_wins_over_a_lower_component():
    fails = _failures(("2015-01-10 04:00", 1, "comp4"), ("2015-01-10 05:00", 1, "comp1"))
    out = build_labels(_snapshots(1, "2015-01-10 00:00"), fails, 24, "2015-02-01").iloc[0]
    assert out["failure_component"] == "comp4" and out["hours_to_failure"] == 4.0
    assert out["fails_comp1"] and out["fails_comp4"]


def test_the_next_failure_of_a_component_is_used_when_it_fails_twice():
    fails = _failures(("2015-01-10 06:00", 1, "comp1"), ("2015-01-11 02:00", 1, "comp1"))
    out = build_labels(_snapshots(1, "2015-01-10 03:00", "2015-01-10 06:00"), fails, 48, "2015-02-01")
    assert out["hours_to_failure"].tolist() == [3.0, 20.0]


# --- maturity -----------------------------------------------------------------------------------------------


def test_maturity_needs_the_whole_horizon_observed_unless_positive():
    fails = _failures(("2015-01-10 06:00", 1, "comp2"), ("2015-01-10 20:00", 1, "comp1"))
    snaps = _snapshots(1, "2015-01-09 12:00", "2015-01-09 18:00", "2015-01-10 06:00", "2015-01-10 12:00")
    out = build_labels(snaps, fails, 24, observed_until="2015-01-10 18:00")
    # 01-09 12:00: positive (comp2 at 06:00 is observed); 01-09 18:00: t + 24 h == observed_until, still
    # positive; 01-10 06:00: comp1 at 20:00 is after observed_until, so unknown; 01-10 12:00: unknown.
    assert out["label_mature"].tolist() == [True, True, False, False]
    assert out["fails_comp2"].tolist() == [True, True, False, False]
    assert not out["fails_comp1"].any()  # a failure after observed_until is not used
    assert out["failure_component"].tolist()[:2] == ["comp2", "comp2"]
    assert out["failure_component"].isna().tolist() == [False, False, True, True]
    assert out["failure_within_horizon"].isna().tolist() == [False, False, True, True]
    assert np.isnan(out["hours_to_failure"].to_numpy()[2:]).all()


def test_a_negative_is_mature_exactly_when_its_horizon_ends_at_observed_until():
    snaps = _snapshots(1, "2015-01-09 17:00", "2015-01-09 18:00", "2015-01-09 19:00")
    out = build_labels(snaps, _failures(), 24, observed_until="2015-01-10 18:00")
    assert out["label_mature"].tolist() == [True, True, False]
    assert out["failure_component"].astype(object).tolist()[:2] == [NO_FAILURE, NO_FAILURE]
    assert out["failure_within_horizon"].tolist() == [False, False, pd.NA]


def test_a_failure_exactly_at_observed_until_is_used():
    fails = _failures(("2015-01-10 06:00", 1, "comp3"))
    out = build_labels(_snapshots(1, "2015-01-10 00:00"), fails, 24, observed_until="2015-01-10 06:00").iloc[0]
    assert out["label_mature"] and out["fails_comp3"] and out["failure_component"] == "comp3"


# --- output layout ------------------------------------------------------------------------------------------


def test_output_columns_and_dtypes(snapshots, failures):
    out = build_labels(snapshots, failures, 24, "2015-01-20")
    assert list(out.columns) == [
        "machineID",
        "datetime",
        *FLAGS,
        "failure_component",
        "failure_within_horizon",
        "hours_to_failure",
        "label_mature",
    ]
    assert out.index.equals(pd.RangeIndex(len(snapshots)))
    assert out["machineID"].dtype == np.int32 and out["datetime"].dtype == "datetime64[ns]"
    assert all(out[f].dtype == bool for f in FLAGS) and out["label_mature"].dtype == bool
    assert list(out["failure_component"].cat.categories) == list(LABEL_CLASSES)
    assert out["failure_within_horizon"].dtype == "boolean"
    assert out["hours_to_failure"].dtype == np.float64


def test_no_snapshots_give_an_empty_frame(failures):
    out = build_labels(_snapshots(1), failures, 24, "2015-01-20")
    assert len(out) == 0
    assert list(out.columns)[-5:] == [
        "fails_comp4",
        "failure_component",
        "failure_within_horizon",
        "hours_to_failure",
        "label_mature",
    ]


def test_observed_until_is_the_end_of_the_run_of_days_from_the_first():
    loaded = ["2015-01-01", "2015-01-02", "2015-01-03", "2015-01-05"]
    assert observed_until("2015-01-01", loaded) == pd.Timestamp("2015-01-04")  # 01-04 is missing
    assert observed_until("2015-01-05", loaded) == pd.Timestamp("2015-01-06")
    assert observed_until("2015-01-04", loaded) == pd.Timestamp("2015-01-04")  # none: nothing observed


def test_label_totals_summed_by_chunks_are_the_whole_tables(snapshots, failures):
    table = build_labels(snapshots, failures, 24, pd.Timestamp("2015-01-27"))
    totals = LabelTotals()
    for _, chunk in table.groupby(table["datetime"].dt.floor("D")):
        totals.add(chunk)
    assert totals.rows == len(table) and totals.mature == int(table["label_mature"].sum())
    assert totals.share_mature == pytest.approx(table["label_mature"].mean())
    assert totals.immature == int((~table["label_mature"]).sum()) > 0 and totals.leaked == 0
    counts = totals.class_counts()
    assert list(counts.columns) == ["class", "snapshots"] and counts["snapshots"].is_monotonic_decreasing
    naive = {cls: int((table["failure_component"].astype(object) == cls).sum()) for cls in LABEL_CLASSES}
    naive["immature"] = totals.immature
    assert dict(zip(counts["class"], counts["snapshots"])) == {k: v for k, v in naive.items() if v}
    leaky = table.copy()
    leaky.loc[~leaky["label_mature"], "failure_within_horizon"] = False  # an immature snapshot with a class
    totals = LabelTotals()
    totals.add(leaky)
    assert totals.leaked == int((~table["label_mature"]).sum())
