"""The failure and anomaly models, their metrics and the decisions on them, against sklearn and naive loops.

One small simulated fleet (12 machines, four months: ``conftest.FLEET``) is featurised, labelled and split, and one
bundle is trained on it (30 boosting iterations), once per session; every test that needs a fitted model reuses it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from pm_assets.core import model
from pm_assets.core.labels import LABEL_CLASSES, NO_FAILURE
from pm_assets.core.model import (
    ANOMALY_FEATURES,
    PROBA_COLUMNS,
    RISK_LEVELS,
    ModelBundle,
    TrainingSet,
    TrainParams,
    anomaly_roc_auc,
    card_fingerprint,
    champion_gate,
    evaluate,
    expected_calibration_error,
    expected_costs,
    feature_matrix,
    fit_bundle,
    fit_sampled,
    gate,
    gather_training,
    model_card,
    negative_sample,
    negative_sample_rate,
    permutation_importance_of,
    prior_correction,
    risk_level,
    rows_sha256,
    split_by_cutoff,
    training_rows,
)
from pm_assets.core.registry import LocalRegistry
from pm_assets.core.schema import COMPONENTS
from pm_assets_tests.conftest import FLEET_CUTOFF, FLEET_HORIZON, FLEET_PARAMS

COMPONENT_COLUMNS = [f"p_{c}" for c in COMPONENTS]


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(model_fleet) -> pd.DataFrame:
    return model_fleet.features


@pytest.fixture(scope="module")
def labels(model_fleet) -> pd.DataFrame:
    return model_fleet.labels


@pytest.fixture(scope="module")
def rows(model_fleet) -> pd.DataFrame:
    return model_fleet.rows


@pytest.fixture(scope="module")
def split(model_fleet) -> tuple[pd.DataFrame, pd.DataFrame]:
    return model_fleet.train, model_fleet.test


@pytest.fixture(scope="module")
def bundle(model_fleet) -> ModelBundle:
    return model_fleet.bundle


@pytest.fixture(scope="module")
def test_scores(bundle, split) -> pd.DataFrame:
    test = split[1]
    # a non-default index: the scores must keep it
    return bundle.score(test.set_index(np.arange(len(test)) * 3 + 7))


# --- scores -------------------------------------------------------------------------------------------------


def test_fixture_data_is_not_degenerate(split):
    train, test = split
    for frame in (train, test):
        present = set(frame["failure_component"].astype(str))
        assert present == set(LABEL_CLASSES)
    assert len(test) > 1000


def test_scores_are_probabilities_that_sum_to_one(test_scores, split):
    test = split[1]
    assert len(test_scores) == len(test)
    assert list(test_scores.index) == list(np.arange(len(test)) * 3 + 7)
    proba = test_scores[PROBA_COLUMNS + ["p_any"]].to_numpy()
    assert np.isfinite(proba).all()
    assert (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(test_scores[PROBA_COLUMNS].sum(axis=1), 1.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(test_scores["p_any"], 1.0 - test_scores["p_none"], rtol=0, atol=1e-15)
    # p_any is also the sum of the component probabilities
    np.testing.assert_allclose(test_scores["p_any"], test_scores[COMPONENT_COLUMNS].sum(axis=1), rtol=0, atol=1e-9)
    # the model is not constant: it tells rows apart
    assert test_scores["p_any"].std() > 0.01


def test_probability_columns_follow_the_classifier_classes(bundle, split, test_scores):
    """Each p_<class> column is the (prior-corrected) probability of that class, whatever the classifier's internal
    class order."""
    raw = prior_correction(
        bundle.classifier.predict_proba(feature_matrix(split[1], bundle.features)),
        list(bundle.classifier.classes_).index(NO_FAILURE),
        bundle.negative_sample_rate,
    )
    by_class = {str(c): raw[:, i] for i, c in enumerate(bundle.classifier.classes_)}
    for c in LABEL_CLASSES:
        np.testing.assert_array_equal(test_scores[f"p_{c}"].to_numpy(), by_class[c])


def test_predicted_class_and_likely_component_are_the_argmax(test_scores):
    assert list(test_scores["predicted_class"].cat.categories) == list(LABEL_CLASSES)
    assert list(test_scores["likely_component"].cat.categories) == list(COMPONENTS)
    for _, row in test_scores.iterrows():
        best_class, best_p = None, -1.0
        for c in LABEL_CLASSES:  # first maximum wins, like argmax
            if row[f"p_{c}"] > best_p:
                best_class, best_p = c, row[f"p_{c}"]
        best_comp, best_cp = None, -1.0
        for c in COMPONENTS:
            if row[f"p_{c}"] > best_cp:
                best_comp, best_cp = c, row[f"p_{c}"]
        assert row["predicted_class"] == best_class
        assert row["likely_component"] == best_comp
    # the component argmax differs from the class argmax on rows predicted "none": both columns are exercised
    assert (test_scores["predicted_class"] == NO_FAILURE).any()
    assert (test_scores["predicted_class"] != NO_FAILURE).any()


def test_anomaly_score_is_negated_isolation_forest_score(bundle, split, test_scores):
    test = split[1]
    expected = -bundle.anomaly.score_samples(test[ANOMALY_FEATURES].to_numpy())
    np.testing.assert_array_equal(test_scores["anomaly_score"].to_numpy(), expected)
    # -score_samples of an isolation forest lies in (0, 1]; higher is more anomalous
    assert (test_scores["anomaly_score"] > 0).all() and (test_scores["anomaly_score"] <= 1).all()
    # the anomaly model learnt normal rows only: on average failing rows look more anomalous
    failing = test["failure_component"].astype(str).to_numpy() != NO_FAILURE
    assert (
        test_scores["anomaly_score"].to_numpy()[failing].mean()
        > test_scores["anomaly_score"].to_numpy()[~failing].mean()
    )


def test_anomaly_model_is_fitted_on_normal_rows_only(bundle, split):
    train = split[0]
    normal = int((train["failure_component"].astype(str) == NO_FAILURE).sum())
    assert bundle.anomaly.n_features_in_ == len(ANOMALY_FEATURES)
    assert bundle.anomaly.max_samples_ == min(FLEET_PARAMS.anomaly_max_samples, normal)
    assert bundle.params["max_iter"] == FLEET_PARAMS.max_iter and bundle.params["seed"] == FLEET_PARAMS.seed


def test_score_ignores_column_order(bundle, split, test_scores):
    test = split[1]
    shuffled = test[list(reversed(test.columns))].set_index(test_scores.index)
    pd.testing.assert_frame_equal(bundle.score(shuffled), test_scores)


# --- determinism --------------------------------------------------------------------------------------------


def test_fitting_is_deterministic_per_seed(bundle, split):
    train, test = split
    again = fit_bundle(train, FLEET_PARAMS).score(test)
    first = bundle.score(test)
    pd.testing.assert_frame_equal(again, first, check_exact=True)

    other = fit_bundle(train, TrainParams(max_iter=FLEET_PARAMS.max_iter, seed=FLEET_PARAMS.seed + 1)).score(test)
    assert not np.array_equal(other["anomaly_score"].to_numpy(), first["anomaly_score"].to_numpy())


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_negative_sample_keeps_every_positive_and_a_seeded_share_of_negatives(rate):
    negative = np.random.default_rng(3).random(200_000) < 0.97
    index = negative_sample(negative, rate, seed=5)
    assert np.all(np.diff(index) > 0)  # row order kept
    assert set(np.flatnonzero(~negative)) <= set(index.tolist())
    kept_share = negative[index].sum() / negative.sum()
    assert abs(kept_share - rate) < 4 * math.sqrt(rate * (1 - rate) / negative.sum())  # binomial, 4 sd
    assert np.array_equal(negative_sample(negative, rate, seed=5), index)
    assert not np.array_equal(negative_sample(negative, rate, seed=6), index)


def test_negative_sample_rate_keeps_small_histories_whole():
    assert negative_sample_rate(9_000, 60_000) == 1.0 and negative_sample_rate(60_000, 60_000) == 1.0
    assert negative_sample_rate(240_000, 60_000) == 0.25 and negative_sample_rate(10**6, None) == 1.0
    with pytest.raises(ValueError, match="max_negative_rows"):
        negative_sample_rate(100, 0)


def test_small_training_sets_are_not_sampled(bundle, split):
    assert bundle.negative_sample_rate == 1.0  # the fixture's few thousand rows stay whole by default


def test_negative_sample_rate_one_keeps_everything_and_bad_rates_are_refused():
    negative = np.array([True, False, True, True])
    assert negative_sample(negative, 1.0, seed=0).tolist() == [0, 1, 2, 3]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="negative_sample_rate"):
            negative_sample(negative, bad, seed=0)


def test_prior_correction_is_bayes_rule_for_a_thinned_negative_class():
    """Known answer: classes with true probabilities p at some x; keeping a share r of the negatives makes the sample's
    probabilities p_s proportional to (r p_none, p_1, ...); the correction must give p back exactly."""
    rng = np.random.default_rng(0)
    true = rng.dirichlet(np.ones(5), size=1000)
    for rate in (0.05, 0.25, 0.6):
        sampled = true * np.where(np.arange(5) == 2, rate, 1.0)  # column 2 is the negative class here
        sampled /= sampled.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(prior_correction(sampled, 2, rate), true, rtol=1e-12)
    assert prior_correction(true, 2, 1.0) is true


def test_sampled_training_stays_calibrated_and_matches_the_full_fit(split):
    """With the prior correction the mean p_any stays at the failure rate (the sample's own probabilities are
    inflated on the no-failure rows) and the model ranks about as well as one trained on every row."""
    train, test = split
    full = fit_bundle(train, TrainParams(max_iter=FLEET_PARAMS.max_iter, max_negative_rows=None)).score(test)
    negatives = int((train["failure_component"].astype(str) == NO_FAILURE).sum())
    bundle = fit_bundle(train, TrainParams(max_iter=FLEET_PARAMS.max_iter, max_negative_rows=negatives // 4))
    assert bundle.negative_sample_rate == pytest.approx((negatives // 4) / negatives)
    sampled = bundle.score(test)
    y = (test["failure_component"].astype(str) != NO_FAILURE).to_numpy()
    assert abs(sampled["p_any"].mean() - y.mean()) < 0.25 * y.mean()
    uncorrected = (
        1
        - bundle.classifier.predict_proba(feature_matrix(test, bundle.features))[
            :, list(bundle.classifier.classes_).index(NO_FAILURE)
        ]
    )
    # the sample's own p_any on no-failure rows is ~1/rate times too high; the correction brings it down
    assert uncorrected[~y].mean() > 3 * sampled["p_any"].to_numpy()[~y].mean()
    assert average_precision_score(y, sampled["p_any"]) > average_precision_score(y, full["p_any"]) - 0.05
    assert expected_calibration_error(y.astype(float), sampled["p_any"].to_numpy()) < 0.02


def test_small_training_set_fits_without_isolation_forest_warning(split):
    """max_samples is capped by the rows the anomaly model is fitted on (the normal ones), not by all rows."""
    train = split[0]
    params = TrainParams(max_iter=5, anomaly_trees=10, anomaly_max_samples=len(train))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        small = fit_bundle(train, params)
    assert small.anomaly.max_samples_ == int((train["failure_component"].astype(str) == NO_FAILURE).sum())


# --- expected calibration error -----------------------------------------------------------------------------


def naive_ece(y, p, bins: int = 10) -> float:
    """Equal-width bins [k/bins, (k+1)/bins), the last one closed at 1; a plain loop over rows."""
    y, p = [float(v) for v in y], [float(v) for v in p]
    n = len(p)
    if n == 0:
        return math.nan
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(n) if lo <= p[i] < hi or (b == bins - 1 and p[i] == hi)]
        if members:
            mean_p = sum(p[i] for i in members) / len(members)
            mean_y = sum(y[i] for i in members) / len(members)
            total += len(members) / n * abs(mean_p - mean_y)
    return total


@pytest.mark.parametrize("bins", [1, 3, 10, 15])
def test_ece_matches_naive_loop_on_random_data(bins):
    rng = np.random.default_rng(bins)
    p = rng.uniform(size=500)
    p[:40] = rng.integers(0, bins + 1, size=40) / bins  # exactly on bin edges, 0.0 and 1.0 included
    p[40:45] = 1.0
    p[45:50] = 0.0
    y = (rng.uniform(size=500) < p**2).astype(int)
    assert expected_calibration_error(y, p, bins) == pytest.approx(naive_ece(y, p, bins), abs=1e-12)


def test_ece_puts_probability_one_in_the_last_bin():
    # last bin [0.9, 1.0]: mean p 0.975, observed 0.5
    assert expected_calibration_error(np.array([1, 0]), np.array([0.95, 1.0])) == pytest.approx(0.475, abs=1e-12)
    assert expected_calibration_error(np.array([0]), np.array([1.0])) == pytest.approx(1.0, abs=1e-12)
    assert expected_calibration_error(np.array([1]), np.array([1.0])) == pytest.approx(0.0, abs=1e-12)


def test_ece_with_empty_bins_and_on_the_model_scores(split, test_scores):
    p = np.array([0.01, 0.02, 0.05, 0.97, 0.99, 1.0])  # bins 1..8 are empty
    y = np.array([0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, p) == pytest.approx(naive_ece(y, p), abs=1e-12)
    y_any = (split[1]["failure_component"].astype(str) != NO_FAILURE).astype(int).to_numpy()
    p_any = test_scores["p_any"].to_numpy()
    assert expected_calibration_error(y_any, p_any) == pytest.approx(naive_ece(y_any, p_any), abs=1e-12)


def test_ece_of_a_perfectly_calibrated_model_is_zero():
    # in each bin the observed rate equals the (constant) predicted probability
    p = np.array([0.25] * 4 + [0.75] * 4 + [0.5] * 2 + [1.0] * 3 + [0.0] * 5)
    y = np.array([1, 0, 0, 0] + [1, 1, 1, 0] + [1, 0] + [1, 1, 1] + [0] * 5)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(y, p, bins=4) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_nothing_is_nan():
    assert math.isnan(expected_calibration_error(np.array([]), np.array([])))


# --- evaluate -----------------------------------------------------------------------------------------------


def _noisy_case(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled rows and imperfect scores (random Dirichlet probabilities leaning towards the true class)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(list(LABEL_CLASSES), size=n, p=[0.6, 0.1, 0.1, 0.1, 0.1])
    alpha = np.ones((n, len(LABEL_CLASSES)))
    alpha[np.arange(n), [LABEL_CLASSES.index(t) for t in truth]] += 2.0
    proba = np.array([rng.dirichlet(a) for a in alpha])
    scores = pd.DataFrame(proba, columns=PROBA_COLUMNS)
    scores["p_any"] = 1.0 - scores["p_none"]
    scores.loc[:9, "p_any"] = 0.4  # exactly at the threshold used below: these alert
    scores["predicted_class"] = pd.Categorical(
        np.array(LABEL_CLASSES)[proba.argmax(axis=1)], categories=list(LABEL_CLASSES)
    )
    rows = pd.DataFrame({"failure_component": pd.Categorical(truth, categories=list(LABEL_CLASSES))})
    return rows, scores


def _check_against_sklearn(rows: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> None:
    metrics = evaluate(rows, scores, threshold)
    y = rows["failure_component"].astype(str).tolist()
    pred = scores["predicted_class"].astype(str).tolist()
    y_any = np.array([c != NO_FAILURE for c in y], dtype=int)
    p_any = scores["p_any"].to_numpy()

    per_class = metrics["per_class"].set_index("class")
    assert list(per_class.index) == list(LABEL_CLASSES)
    for c in LABEL_CLASSES:
        assert per_class.loc[c, "precision"] == pytest.approx(
            precision_score(y, pred, labels=[c], average="macro", zero_division=0)
        )
        assert per_class.loc[c, "recall"] == pytest.approx(
            recall_score(y, pred, labels=[c], average="macro", zero_division=0)
        )
        assert per_class.loc[c, "f1"] == pytest.approx(f1_score(y, pred, labels=[c], average="macro", zero_division=0))
        assert per_class.loc[c, "support"] == sum(t == c for t in y)
    assert metrics["macro_f1_components"] == pytest.approx(
        f1_score(y, pred, labels=list(COMPONENTS), average="macro", zero_division=0)
    )
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y_any, p_any))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(y_any, p_any))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y_any, p_any))
    assert metrics["ece"] == pytest.approx(naive_ece(y_any, p_any), abs=1e-12)

    # naive counts at the operating point (alert when p_any >= threshold)
    fp = sum(1 for t, p in zip(y_any, p_any) if t == 0 and p >= threshold)
    tp = sum(1 for t, p in zip(y_any, p_any) if t == 1 and p >= threshold)
    negatives, positives = sum(1 for t in y_any if t == 0), sum(1 for t in y_any if t == 1)
    assert metrics["false_positive_rate"] == pytest.approx(fp / negatives)
    assert metrics["recall_at_threshold"] == pytest.approx(tp / positives)
    assert metrics["rows"] == len(y) and metrics["positives"] == positives
    assert metrics["threshold"] == threshold

    confusion = metrics["confusion"].to_numpy()
    for i, t in enumerate(LABEL_CLASSES):
        for j, q in enumerate(LABEL_CLASSES):
            assert confusion[i, j] == sum(1 for a, b in zip(y, pred) if a == t and b == q)


def test_evaluate_matches_sklearn_on_noisy_scores():
    rows, scores = _noisy_case()
    metrics = evaluate(rows, scores, 0.4)
    assert 0.5 < metrics["roc_auc"] < 1.0  # imperfect: the comparison is not between trivial values
    assert 0 < metrics["false_positive_rate"] < 1 and 0 < metrics["recall_at_threshold"] < 1
    _check_against_sklearn(rows, scores, 0.4)


def test_evaluate_threshold_is_inclusive():
    rows, scores = _noisy_case()
    at = evaluate(rows, scores, 0.4)
    above = evaluate(rows, scores, np.nextafter(0.4, 1.0))
    y_any = rows["failure_component"].astype(str).to_numpy() != NO_FAILURE
    at_threshold = scores["p_any"].to_numpy() == 0.4
    fp_at = (at_threshold & ~y_any).sum() / (~y_any).sum()
    tp_at = (at_threshold & y_any).sum() / y_any.sum()
    assert at["false_positive_rate"] - above["false_positive_rate"] == pytest.approx(fp_at)
    assert at["recall_at_threshold"] - above["recall_at_threshold"] == pytest.approx(tp_at)


def test_evaluate_matches_sklearn_on_the_model(split, test_scores):
    _check_against_sklearn(split[1], test_scores.reset_index(drop=True), 0.5)


def test_evaluate_with_one_class_has_undefined_ranking_metrics():
    rows, scores = _noisy_case()
    negatives = (rows["failure_component"].astype(str) == NO_FAILURE).to_numpy()
    only_none = evaluate(rows[negatives].reset_index(drop=True), scores[negatives].reset_index(drop=True), 0.4)
    assert math.isnan(only_none["roc_auc"]) and math.isnan(only_none["average_precision"])
    assert math.isnan(only_none["recall_at_threshold"])
    assert only_none["positives"] == 0
    assert only_none["brier"] == pytest.approx(np.mean(scores["p_any"].to_numpy()[negatives] ** 2))

    only_failures = evaluate(rows[~negatives].reset_index(drop=True), scores[~negatives].reset_index(drop=True), 0.4)
    assert math.isnan(only_failures["roc_auc"]) and math.isnan(only_failures["average_precision"])
    assert math.isnan(only_failures["false_positive_rate"])
    assert only_failures["brier"] == pytest.approx(np.mean((1 - scores["p_any"].to_numpy()[~negatives]) ** 2))


# --- rows and split -----------------------------------------------------------------------------------------


def test_training_rows_keep_only_usable_and_mature_rows(features, labels, rows):
    # the filters matter on this data: some snapshots are unusable, some labels immature
    assert (~features["usable"]).any() and (~labels["label_mature"]).any()
    merged = {}
    label_of = {
        (m, t): (mature, comp)
        for m, t, mature, comp in zip(
            labels["machineID"], labels["datetime"], labels["label_mature"], labels["failure_component"]
        )
    }
    for m, t, usable in zip(features["machineID"], features["datetime"], features["usable"]):
        mature, comp = label_of[(m, t)]
        if usable and mature:
            merged[(m, t)] = comp
    assert len(rows) == len(merged)
    assert set(zip(rows["machineID"], rows["datetime"])) == set(merged)
    assert rows["usable"].all() and rows["label_mature"].all()
    assert rows["failure_component"].notna().all()
    assert [str(c) for c in rows["failure_component"]] == [
        str(merged[k]) for k in zip(rows["machineID"], rows["datetime"])
    ]
    assert list(rows.index) == list(range(len(rows)))


def test_training_rows_do_not_depend_on_label_order(features, labels, rows):
    shuffled = labels.sample(frac=1.0, random_state=5)
    again = training_rows(features, shuffled)
    pd.testing.assert_frame_equal(again, rows)


def test_training_rows_refuse_duplicate_labels(features, labels):
    with pytest.raises(pd.errors.MergeError):
        training_rows(features, pd.concat([labels, labels.iloc[:1]], ignore_index=True))


@pytest.mark.parametrize("cutoff", ["2015-03-20", "2015-03-20 04:30", "2015-02-11 13:00"])
@pytest.mark.parametrize("horizon", [24, 48, 7])
def test_split_leaves_one_horizon_gap(rows, cutoff, horizon):
    train, test = split_by_cutoff(rows, cutoff, horizon)
    cut, gap_start = pd.Timestamp(cutoff), pd.Timestamp(cutoff) - pd.Timedelta(hours=horizon)
    assert len(train) and len(test)
    assert (train["datetime"] < gap_start).all()  # no train snapshot in [cutoff - horizon, cutoff)
    assert (train["datetime"] + pd.Timedelta(hours=horizon) < cut).all()  # train labels end before the cutoff
    assert (test["datetime"] >= cut).all()
    gap = rows[(rows["datetime"] >= gap_start) & (rows["datetime"] < cut)]
    assert len(gap) > 0
    assert len(train) + len(gap) + len(test) == len(rows)  # nothing else is lost
    expected_train = rows[rows["datetime"] < gap_start].reset_index(drop=True)
    expected_test = rows[rows["datetime"] >= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(train, expected_train)
    pd.testing.assert_frame_equal(test, expected_test)


# --- fit_bundle errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", [["comp3"], ["comp1", "comp4"], [NO_FAILURE]])
def test_fit_bundle_names_missing_classes(split, absent):
    train = split[0]
    without = train[~train["failure_component"].astype(str).isin(absent)]
    with pytest.raises(ValueError, match="lack classes") as info:
        fit_bundle(without, FLEET_PARAMS)
    message = str(info.value)
    for c in LABEL_CLASSES:
        assert (repr(c) in message) == (c in absent), (c, message)


# --- risk levels, gate, costs -------------------------------------------------------------------------------


def naive_risk(p: float, medium: float, high: float):
    if math.isnan(p):
        return None
    if p >= high:
        return "high"
    if p >= medium:
        return "medium"
    return "low"


@pytest.mark.parametrize(("medium", "high"), [(0.2, 0.5), (0.1, 1.0), (0.3, 0.30000000000000004)])
def test_risk_level_thresholds(medium, high):
    p = np.array(
        [
            0.0,
            np.nextafter(medium, 0),
            medium,
            (medium + high) / 2,
            np.nextafter(high, 0),
            high,
            1.0,
            np.nan,
            *np.random.default_rng(1).uniform(size=50),
        ]
    )
    levels = risk_level(p, medium, high)
    assert isinstance(levels, pd.Categorical)
    assert list(levels.categories) == list(RISK_LEVELS) and levels.ordered
    got = [None if pd.isna(v) else v for v in levels]
    assert got == [naive_risk(v, medium, high) for v in p]
    assert got[2] == "medium" and got[5] == "high" and got[7] is None  # boundaries inclusive, NaN missing


@pytest.mark.parametrize(
    ("medium", "high"), [(0.0, 0.5), (0.5, 0.5), (0.6, 0.5), (0.2, 1.1), (-0.1, 0.5), (np.nan, 0.5), (0.2, np.nan)]
)
def test_risk_level_rejects_bad_thresholds(medium, high):
    with pytest.raises(ValueError, match="risk thresholds"):
        risk_level(np.array([0.5]), medium, high)


def test_gate_decisions():
    promoted, reason = gate(None, 0.1, 0.02)
    assert promoted and "no champion" in reason
    assert gate(0.75, 0.8, 0.0)[0]  # better
    assert gate(0.75, 0.75, 0.0)[0]  # equal
    assert gate(0.75, 0.5, 0.25)[0]  # exactly at the tolerance: not worse by *more* than it
    assert gate(0.75, 0.625, 0.25)[0]  # within the tolerance
    assert not gate(0.75, np.nextafter(0.5, 0), 0.25)[0]  # just beyond it
    promoted, reason = gate(0.75, 0.5, 0.125)
    assert not promoted and "<" in reason
    promoted, reason = gate(0.75, float("nan"), 0.25)
    assert not promoted and "undefined" in reason
    assert not gate(float("nan"), float("nan"), 0.25)[0]
    assert gate(float("nan"), 0.1, 0.0)[0]  # an undefined champion cannot be beaten by more than the tolerance


def test_expected_costs():
    p = np.array([0.0, 0.1, 0.5, 1.0, 0.37])
    waiting, saving = expected_costs(p, failure_cost=1000.0, inspection_cost=120.0)
    for i, v in enumerate(p):
        assert waiting[i] == pytest.approx(v * 1000.0)
        assert saving[i] == pytest.approx(v * 1000.0 - 120.0)
    assert saving[0] == pytest.approx(-120.0) and saving[3] == pytest.approx(880.0)
    w, s = expected_costs([0.25], 8.0, 3.0)  # lists are accepted
    assert w.tolist() == [2.0] and s.tolist() == [-1.0]


def test_anomaly_roc_auc_is_the_share_of_ordered_pairs():
    """Against the definition: the share of (failure, no failure) pairs the anomaly score orders right, ties half."""
    rng = np.random.default_rng(4)
    rows = pd.DataFrame({"failure_component": rng.choice([NO_FAILURE, "comp1", "comp3"], 300, p=[0.8, 0.1, 0.1])})
    scores = pd.DataFrame({"anomaly_score": rng.integers(0, 12, 300).astype(float)})  # ties
    positive = rows["failure_component"].to_numpy() != NO_FAILURE
    pos, neg = scores["anomaly_score"].to_numpy()[positive], scores["anomaly_score"].to_numpy()[~positive]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg]
    assert anomaly_roc_auc(rows, scores) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    only_none = rows.assign(failure_component=NO_FAILURE)
    assert math.isnan(anomaly_roc_auc(only_none, scores))


# --- champion gate, model card ------------------------------------------------------------------------------


def test_champion_gate_scores_the_champion_on_the_challengers_window(bundle, split, tmp_path):
    test = split[1]
    registry = LocalRegistry(tmp_path / "models")
    challenger = evaluate(test, bundle.score(test), 0.5) | {"average_precision": 0.3}
    first = champion_gate(registry, test, challenger, 0.01)
    assert first["promoted"] and first["champion_before"] == "none" and first["champion_average_precision"] is None
    registry.register(bundle, {"fingerprint": "x"}, gate=first)
    assert registry.champion() == "v0001"
    decision = champion_gate(registry, test, challenger, 0.01)
    champion_ap = average_precision_score(
        (test["failure_component"].astype(str) != NO_FAILURE).astype(int), bundle.score(test)["p_any"]
    )
    assert decision["champion_before"] == "v0001"
    assert decision["champion_average_precision"] == pytest.approx(champion_ap, abs=1e-12)
    assert decision["promoted"] == bool(0.3 >= champion_ap - 0.01) and decision["challenger_average_precision"] == 0.3
    assert decision["window_rows"] == len(test) and decision["tolerance"] == 0.01
    assert decision["window"] == f"{test['datetime'].min()} .. {test['datetime'].max()}"
    better = champion_gate(registry, test, challenger | {"average_precision": champion_ap}, 0.0)
    assert better["promoted"] and better["champion_before"] == "v0001"


def _card_inputs(bundle, split):
    train, test = split
    data = TrainingSet(
        fit_rows=train,
        normal=np.empty((0, len(ANOMALY_FEATURES))),
        rate=1.0,
        test=test,
        cutoff=FLEET_CUTOFF,
        train_rows=len(train),
        train_window=(train["datetime"].min(), train["datetime"].max()),
        train_sha256=rows_sha256(train).hexdigest(),
        snapshots=(train["datetime"].min(), test["datetime"].max()),
    )
    metrics = evaluate(test, bundle.score(test), 0.5)
    importance = pd.Series(np.arange(len(bundle.features), dtype=float), index=bundle.features)
    settings = {"anomaly_auc": 0.75, "horizon_hours": FLEET_HORIZON, "operating_threshold": 0.5, "partitions": 120}
    return data, metrics, importance, settings


def test_the_model_card_records_the_training_and_its_evaluation(bundle, split):
    data, metrics, importance, settings = _card_inputs(bundle, split)
    card = model_card(data, bundle, metrics, importance, **settings, code_version="abc")
    train, test = split
    assert card["training_window"] == {
        "start": str(train["datetime"].min()),
        "end": str(train["datetime"].max()),
        "cutoff": str(FLEET_CUTOFF),
        "horizon_hours": FLEET_HORIZON,
    }
    assert card["test_window"] == {"start": str(test["datetime"].min()), "end": str(test["datetime"].max())}
    assert card["partitions"] == {
        "first": str(train["datetime"].min().date()),
        "last": str(test["datetime"].max().date()),
        "count": 120,
    }
    assert card["data_versions"] == {
        "train_rows_sha256": rows_sha256(train).hexdigest(),
        "test_rows_sha256": rows_sha256(test).hexdigest(),
    }
    assert card["rows"] == {"train": len(train), "test": len(test)}
    assert card["features"] == bundle.features and card["params"] == bundle.params
    assert card["operating_threshold"] == 0.5
    # every figure of evaluate() but its two tables, and the anomaly model's AUC
    assert set(card["metrics"]) == {k for k, v in metrics.items() if not isinstance(v, pd.DataFrame)} | {
        "anomaly_roc_auc"
    }
    assert card["metrics"]["average_precision"] == metrics["average_precision"]
    assert card["metrics"]["anomaly_roc_auc"] == 0.75
    assert card["permutation_importance"]["values"] == importance.to_dict()
    assert card["fingerprint"] == card_fingerprint(card, "abc")


def test_the_fingerprint_changes_with_the_training_not_with_its_evaluation(bundle, split):
    data, metrics, importance, settings = _card_inputs(bundle, split)
    card = model_card(data, bundle, metrics, importance, **settings, code_version="abc")
    same = model_card(
        data, bundle, metrics | {"average_precision": 0.1}, importance * 2, **settings, code_version="abc"
    )
    assert same["fingerprint"] == card["fingerprint"]  # other figures about the same training
    others = [
        card_fingerprint(card, "abd"),  # other code
        model_card(data, bundle, metrics, importance, **settings | {"operating_threshold": 0.4}, code_version="abc"),
        model_card(data, bundle, metrics, importance, **settings | {"horizon_hours": 48}, code_version="abc"),
        card_fingerprint(card | {"params": {**card["params"], "max_iter": 31}}, "abc"),
        card_fingerprint(card | {"data_versions": {**card["data_versions"], "train_rows_sha256": "0"}}, "abc"),
    ]
    found = [o if isinstance(o, str) else o["fingerprint"] for o in others]
    assert card["fingerprint"] not in found and len(set(found)) == len(found)


# --- permutation importance ---------------------------------------------------------------------------------


def test_the_negative_column_is_the_no_failure_class(bundle):
    assert bundle.classifier.classes_[bundle.negative_column] == NO_FAILURE


def test_permutation_importance_has_one_value_per_feature_and_is_deterministic(bundle, split):
    test = split[1]
    assert test["failure_within_horizon"].astype(float).nunique() == 2
    first = permutation_importance_of(bundle, test, sample=400, repeats=2, seed=1)
    again = permutation_importance_of(bundle, test, sample=400, repeats=2, seed=1)
    assert list(first.index) == list(bundle.features)
    assert np.isfinite(first.to_numpy()).all()
    pd.testing.assert_series_equal(first, again)
    assert (first > 0).any()  # some feature matters for the average precision of p_any


@pytest.mark.parametrize("sample, repeats, seed", [(400, 2, 1), (2000, 3, 0), (150, 1, 7)])
def test_permutation_importance_equals_sklearns(bundle, split, sample, repeats, seed, monkeypatch):
    """The stacked predictions give sklearn's importances exactly: the same permutations from the same seed, the same
    probabilities. A small PREDICT_ROWS makes the copies go through several predictions, some not full."""
    from sklearn.inspection import permutation_importance

    monkeypatch.setattr(model, "PREDICT_ROWS", 3 * min(sample, len(split[1])) + 5)
    test = split[1]
    drawn = test.sample(min(sample, len(test)), random_state=seed)
    negative = bundle.negative_column
    reference = permutation_importance(
        bundle.classifier,
        feature_matrix(drawn, bundle.features),
        drawn["failure_within_horizon"].astype(int).to_numpy(),
        scoring=lambda est, X, y: average_precision_score(y, 1.0 - est.predict_proba(X)[:, negative]),
        n_repeats=repeats,
        random_state=seed,
    )
    out = permutation_importance_of(bundle, test, sample=sample, repeats=repeats, seed=seed)
    np.testing.assert_array_equal(out.to_numpy(), reference.importances_mean)
    assert (out != 0).sum() >= 3  # a test of permutations that change something


def test_permutation_importance_is_nan_when_labels_have_one_class(bundle, split):
    test = split[1]
    negatives = test[test["failure_within_horizon"].astype(float) == 0]
    for rows in (negatives, test.iloc[:0]):
        out = permutation_importance_of(bundle, rows, sample=400, repeats=2, seed=1)
        assert list(out.index) == list(bundle.features) and out.isna().all()


def test_permutation_importance_against_a_known_model():
    """A one-split tree on ``signal`` only: permuting any other column leaves the scores, so its importance is
    exactly 0; permuting ``signal`` destroys a perfect ranking. The 'none' class is not the first class."""
    from sklearn.ensemble import IsolationForest
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame(
        {
            "noise": rng.normal(0, 1, n),
            "signal": rng.normal(0, 1, n),
            "model": pd.Categorical(rng.choice(["model1", "model2"], n)),
        }
    )
    y = frame["signal"] > 0.8
    frame["failure_within_horizon"] = pd.array(y, dtype="boolean")
    features = ["noise", "signal", "model"]
    classifier = DecisionTreeClassifier(max_depth=1).fit(feature_matrix(frame, features), np.where(y, "comp1", "none"))
    assert list(classifier.classes_) == ["comp1", "none"]
    bundle = ModelBundle(classifier=classifier, anomaly=IsolationForest(), features=features)
    assert bundle.negative_column == 1
    out = permutation_importance_of(bundle, frame, sample=500, repeats=3)
    assert out["noise"] == 0.0 and out["model"] == 0.0
    # base AP is 1; a random ranking gives about the prevalence (~0.2)
    assert 0.5 < out["signal"] <= 1.0


# --- quality smoke ------------------------------------------------------------------------------------------


def test_model_ranks_failures_far_above_the_base_rate(split, test_scores):
    test = split[1]
    y_any = (test["failure_component"].astype(str) != NO_FAILURE).astype(int).to_numpy()
    base_rate = y_any.mean()
    ap = average_precision_score(y_any, test_scores["p_any"].to_numpy())
    assert base_rate < 0.1
    assert ap > 0.5 and ap > 5 * base_rate
    metrics = evaluate(test, test_scores.reset_index(drop=True), 0.5)
    assert metrics["roc_auc"] > 0.9
    assert metrics["brier"] < base_rate  # better than always predicting 0


@pytest.mark.parametrize("chunk_days", [1, 9, 1000])
def test_training_gathered_chunk_by_chunk_is_the_whole_history_in_one_frame(features, labels, chunk_days):
    """gather_training over day chunks (two passes, the negative sample drawn as it goes) keeps exactly the rows,
    sample, anomaly input, test window and training-data hash of the one-frame path, and fits the same model. The
    frames are in the order the stored partitions read back (day by day), as the asset reads them."""
    by_day = lambda frame: frame.iloc[np.argsort(frame["datetime"].dt.floor("D").to_numpy(), kind="stable")]  # noqa: E731
    features, labels = by_day(features).reset_index(drop=True), by_day(labels).reset_index(drop=True)
    params = TrainParams(max_iter=20, max_negative_rows=3_000)  # a real sample: rate < 1
    days = sorted(features["datetime"].dt.strftime("%Y-%m-%d").unique())
    chunks = [days[i : i + chunk_days] for i in range(0, len(days), chunk_days)]
    feature_days, label_days = features["datetime"].dt.strftime("%Y-%m-%d"), labels["datetime"].dt.strftime("%Y-%m-%d")

    def read(keys, columns):
        f = features[feature_days.isin(keys)].reset_index(drop=True)
        return (f if columns is None else f[columns]), labels[label_days.isin(keys)].reset_index(drop=True)

    gathered = gather_training(read, chunks, params, FLEET_HORIZON, test_days=30, train_start="2015-01-10")
    rows = training_rows(features, labels)
    rows = rows[rows["datetime"] >= pd.Timestamp("2015-01-10")].reset_index(drop=True)
    cutoff = rows["datetime"].max() - pd.Timedelta(days=30)
    train, test = split_by_cutoff(rows, cutoff, FLEET_HORIZON)
    negative = train["failure_component"].astype(str).to_numpy() == NO_FAILURE
    rate = negative_sample_rate(int(negative.sum()), params.max_negative_rows)
    assert 0 < rate < 1 and gathered.rate == rate and gathered.cutoff == cutoff
    keep = negative_sample(negative, rate, params.seed)
    pd.testing.assert_frame_equal(gathered.fit_rows, train.iloc[keep].reset_index(drop=True), check_exact=True)
    np.testing.assert_array_equal(gathered.normal, train.loc[negative, ANOMALY_FEATURES].to_numpy())
    pd.testing.assert_frame_equal(gathered.test, test, check_exact=True)
    assert gathered.train_rows == len(train)
    assert gathered.train_window == (train["datetime"].min(), train["datetime"].max())
    assert gathered.train_sha256 == rows_sha256(train).hexdigest()
    assert gathered.snapshots == (features["datetime"].min(), features["datetime"].max())
    whole = fit_bundle(train, params)
    pieces = fit_sampled(gathered.fit_rows, gathered.normal, gathered.rate, params)
    np.testing.assert_array_equal(
        pieces.score(test)[PROBA_COLUMNS].to_numpy(), whole.score(test)[PROBA_COLUMNS].to_numpy()
    )
    np.testing.assert_array_equal(
        pieces.score(test)["anomaly_score"].to_numpy(), whole.score(test)["anomaly_score"].to_numpy()
    )


def test_predicting_in_pieces_gives_the_probabilities_of_one_prediction(bundle, split, monkeypatch):
    import pm_assets.core.model as model

    matrix = feature_matrix(split[1], bundle.features)
    whole = model.prior_correction(
        bundle.classifier.predict_proba(matrix), bundle.negative_column, bundle.negative_sample_rate
    )
    monkeypatch.setattr(model, "PREDICT_ROWS", 1_000)
    assert len(matrix) > 3_000  # several pieces and a last, shorter one
    assert np.array_equal(bundle.predict_proba(matrix), whole)
    assert np.array_equal(bundle.predict_proba(matrix[:1]), whole[:1])


def test_the_feature_matrix_is_the_columns_as_floats_with_category_codes(split, bundle):
    """Against a naive reference (each column converted on its own, stacked), a missing model code as NaN."""
    frame = split[1].head(500).copy()
    frame.loc[frame.index[:3], "model"] = None
    reference = np.column_stack(
        [
            np.where(frame[c].cat.codes.to_numpy() < 0, np.nan, frame[c].cat.codes.to_numpy())
            if isinstance(frame[c].dtype, pd.CategoricalDtype)
            else frame[c].astype(float).to_numpy()
            for c in bundle.features
        ]
    )
    matrix = feature_matrix(frame, bundle.features)
    np.testing.assert_array_equal(matrix, reference)
    assert np.isnan(matrix[:3, bundle.features.index("model")]).all()


def test_the_models_do_not_depend_on_the_matrix_layout(split):
    """Column-major (what feature_matrix gives) and row-major matrices: the same fitted models, the same numbers."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

    from pm_assets.core.features import feature_columns

    train, test = split
    features = feature_columns()
    x, x_test = feature_matrix(train, features), feature_matrix(test, features)
    assert x.flags["F_CONTIGUOUS"]
    y = train["failure_component"].astype(str).to_numpy()
    fitted = [
        CalibratedClassifierCV(HistGradientBoostingClassifier(max_iter=20, random_state=0), cv=3).fit(m, y)
        for m in (x, np.ascontiguousarray(x))
    ]
    probabilities = [f.predict_proba(m) for f in fitted for m in (x_test, np.ascontiguousarray(x_test))]
    assert all(np.array_equal(p, probabilities[0]) for p in probabilities[1:])
    forests = [
        IsolationForest(n_estimators=8, random_state=0).fit(np.nan_to_num(m)) for m in (x, np.ascontiguousarray(x))
    ]
    scores = [f.score_samples(np.nan_to_num(x_test)) for f in forests]
    assert np.array_equal(scores[0], scores[1])
