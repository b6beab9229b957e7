"""benchmarks/sim_to_real.py: its pieces on small inputs, then one full evaluation on the real files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score
from threadpoolctl import threadpool_limits

from pm_assets.core.labels import LABEL_CLASSES
from pm_assets.core.schema import COMPONENTS
from pm_assets.core.simulate import ObservationSpec, SimulationConfig

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
sys.path.insert(0, BENCHMARKS)  # the benchmarks import each other as top-level modules
try:
    import sim_to_real
finally:
    sys.path.remove(BENCHMARKS)

T = pd.Timestamp("2015-03-10 06:00")
H = pd.Timedelta(hours=1)


def naive_ece(y, p, bins=10):
    """ECE by a plain loop over the rows."""
    count, predicted, observed = [0] * bins, [0.0] * bins, [0.0] * bins
    for yi, pi in zip(y, p):
        b = min(int(pi * bins), bins - 1)
        count[b] += 1
        predicted[b] += pi
        observed[b] += yi
    return sum(n / len(p) * abs(predicted[b] / n - observed[b] / n) for b, n in enumerate(count) if n)


def test_the_simulated_fleet_is_observed_as_the_real_copy_unless_complete():
    observed, complete = sim_to_real.observed_config(seed=3, machines=50), sim_to_real.observed_config(complete=True)
    assert observed == SimulationConfig(seed=3, machines=50, observation=ObservationSpec())
    assert complete == SimulationConfig()  # every hour: the simulator's defaults


def test_events_need_a_reading_in_each_of_the_48_hours_before_the_failure():
    hours = pd.date_range(T - 60 * H, T + 5 * H, freq="h")
    telemetry = pd.concat([pd.DataFrame({"machineID": m, "datetime": hours}) for m in (1, 2, 3, 4)])
    drop = {
        (2, T - 48 * H),
        (3, T - 49 * H),
        (4, T),
    }  # the first hour of the 48, the hour before them, the failure's own
    telemetry = telemetry[[(m, t) not in drop for m, t in zip(telemetry["machineID"], telemetry["datetime"])]]
    failures = pd.DataFrame(
        {
            "machineID": [1, 1, 2, 3, 4, 5],
            "failure": ["comp1", "comp2", "comp1", "comp3", "comp4", "comp1"],
            "datetime": [T, T - 13 * H, T, T, T, T],
        }
    )  # T - 13 h: only 47 hours of telemetry before it
    events = sim_to_real.events_with_history(telemetry, failures)
    assert list(zip(events["machineID"], events["failure"])) == [(1, "comp1"), (3, "comp3"), (4, "comp4")]


def test_an_event_is_alerted_by_a_snapshot_of_its_machine_in_the_48_hours_before_it():
    def one(machine, at, p):
        scored = pd.DataFrame({"machineID": [machine], "datetime": [at], "p_any": [p]})
        return bool(sim_to_real.alerted(pd.DataFrame({"machineID": [7], "datetime": [T]}), scored, 0.5)[0])

    assert one(7, T - 48 * H, 0.9) and one(7, T - 3 * H, 0.5)  # the window's first hour; p_any at the threshold
    assert not one(7, T - 51 * H, 0.9) and not one(7, T, 0.9)  # before the window; the failure's own snapshot
    assert not one(8, T - 3 * H, 0.9) and not one(7, T - 3 * H, 0.4999)  # another machine; below the threshold
    events = pd.DataFrame({"machineID": [7, 7, 8], "datetime": [T, T + 72 * H, T]})
    scored = pd.DataFrame(
        {"machineID": [7, 7, 8], "datetime": [T - 6 * H, T + 60 * H, T - 60 * H], "p_any": [0.7, 0.1, 0.9]}
    )
    assert sim_to_real.alerted(events, scored, 0.5).tolist() == [True, False, False]


def _check_figures(rows, scores, figures, threshold):
    y = rows["failure_component"].astype(str).to_numpy()
    predicted = scores["predicted_class"].astype(str).to_numpy()
    p_any = scores["p_any"].to_numpy()
    recall = recall_score(y, predicted, labels=list(COMPONENTS), average=None, zero_division=0)
    assert [figures["recall"][c] for c in COMPONENTS] == pytest.approx(recall.tolist(), abs=1e-12)
    assert figures["macro_f1"] == pytest.approx(
        f1_score(y, predicted, labels=list(COMPONENTS), average="macro"), abs=1e-12
    )
    assert figures["ece"] == pytest.approx(naive_ece(y != "none", p_any), abs=1e-12)
    negative = y == "none"
    assert figures["false_positive_rate"] == pytest.approx((p_any[negative] >= threshold).mean(), abs=1e-12)


def test_figures_equal_sklearn_and_a_naive_ece_loop():
    rng = np.random.default_rng(3)
    n = 2_000
    y = rng.choice(LABEL_CLASSES, size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    noisy = np.where(rng.random(n) < 0.3, rng.choice(LABEL_CLASSES, size=n), y)
    p_any = np.clip(np.where(noisy == "none", rng.beta(1, 8, n), rng.beta(6, 2, n)), 0, 1)
    rows = pd.DataFrame({"failure_component": pd.Categorical(y, categories=list(LABEL_CLASSES))})
    scores = pd.DataFrame({"p_any": p_any, "predicted_class": pd.Categorical(noisy, categories=list(LABEL_CLASSES))})
    figures = sim_to_real.figures(rows, scores, 0.5)
    _check_figures(rows, scores, figures, 0.5)
    assert 0 < figures["ece"] < 1 and 0 < figures["macro_f1"] < 1


# --- the real files ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result(real_data_dir):
    with threadpool_limits(1):  # as the other training tests: two OpenMP threads on a busy machine run 15x slower
        return sim_to_real.evaluate(real=real_data_dir)


def _usable_mature_from_cutoff(tables) -> set:
    """(machine, snapshot) of every real snapshot from the cutoff on (every 3 h) whose last 3 h hold 3 readings and
    last 24 h at least 22 (90 %), and whose label is mature (at most 2015-12-31 06:00: 24 h before the data end,
    2016-01-01 07:00, and no failure after it), from the telemetry alone."""
    hours = pd.date_range("2015-07-30", "2016-01-01 06:00", freq="h")
    have = np.zeros((101, len(hours)), dtype=np.int64)
    tel = tables["telemetry"]
    at = hours.get_indexer(tel["datetime"])
    have[tel["machineID"].to_numpy()[at >= 0], at[at >= 0]] = 1
    running = np.concatenate([np.zeros((101, 1), dtype=np.int64), have.cumsum(axis=1)], axis=1)
    out = set()
    for i in np.flatnonzero((hours >= sim_to_real.CUTOFF) & (hours <= "2015-12-31 06:00") & (hours.hour % 3 == 0)):
        last3, last24 = running[:, i + 1] - running[:, i - 2], running[:, i + 1] - running[:, i - 23]
        out |= {(m, hours[i]) for m in np.flatnonzero((last3 == 3) & (last24 >= 22))}
    return out


def test_the_test_rows_are_the_usable_real_snapshots_with_mature_labels_from_the_cutoff(result, real_data_dir):
    tables = sim_to_real.real_data(real_data_dir)["tables"]
    got = result["predictions"]
    assert set(zip(got["machineID"].astype(int), got["datetime"])) == _usable_mature_from_cutoff(tables)
    assert len(got) == result["test_rows"] == 6_565  # the counts
    assert result["test_positives"] == (got["failure_component"].astype(str) != "none").sum() == 1_069


def test_the_events_are_the_real_failures_with_48_contiguous_hours_of_telemetry_before_them(result, real_data_dir):
    data = sim_to_real.real_data(real_data_dir)
    tel, failures = data["tables"]["telemetry"], data["tables"]["failures"]
    have = set(zip(tel["machineID"].astype(int), tel["datetime"]))
    expected = [
        (int(m), t, str(c))
        for m, t, c in zip(failures["machineID"], failures["datetime"], failures["failure"])
        if all((int(m), t - k * H) in have for k in range(1, 49))
    ]
    events = data["events"]
    assert list(zip(events["machineID"].astype(int), events["datetime"], events["failure"].astype(str))) == expected
    assert len(expected) == result["sim_year"]["events"] == 560  # the README's count
    assert 0 <= result["sim_year"]["events_alerted"] <= 560
    assert len(result["sim_year"]["missed"]) == 560 - result["sim_year"]["events_alerted"]


def test_the_figures_of_both_models_equal_sklearn_on_their_predictions(result):
    rows = result["predictions"]
    for name in ("sim", "real"):
        scores = pd.DataFrame({"p_any": rows[f"{name}_p_any"], "predicted_class": rows[f"{name}_predicted_class"]})
        _check_figures(rows, scores, result[name], result["threshold"])
    assert result["real"]["macro_f1"] > 0.99  # real -> real: the README's 0.9976 on this split


def test_the_markdown_names_every_figure(result):
    text = sim_to_real.markdown(result)
    assert text.startswith("| | simulated -> real | real -> real (same test rows) |")
    assert f"{result['sim_year']['events_alerted']} of the 560 real failures" in text
    assert "6,565 real usable snapshots" in text and "(1,069 positive)" in text
