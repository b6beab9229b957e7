"""Drift statistics and label-free performance estimates, against scipy, sklearn, naive loops and exact enumeration.

- KS against ``scipy.stats.ks_2samp``.
- PSI against a naive per-value loop written here from the module docstring (quantile edges, right-closed bins,
  proportions floored at epsilon, sum of (p - q) ln(p / q)).
- The label-free estimates are ratios of expectations under independent labels y_i ~ Bernoulli(p_i). They are checked
  three ways: their numerator and denominator against exact enumeration of all labelings of a small vector (weighted
  by probability, scored with sklearn); the AUC numerator against a double loop over pairs; and the ratio against the
  Monte Carlo mean of sklearn's metric, which it approximates (a ratio of expectations is not the expectation of a
  ratio, so that comparison needs a tolerance).
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.metrics import average_precision_score, roc_auc_score

from pm_assets.core import drift
from pm_assets.core.drift import (
    MIN_EDGES,
    MIN_SAMPLE,
    PSI_BINS,
    BinnedColumn,
    chi2_p_value,
    discrete_psi,
    expected_average_precision,
    expected_failure_rate,
    expected_roc_auc,
    grid_positions,
    jensen_shannon,
    ks_sorted,
    ks_statistic,
    psi,
    psi_edges,
    psi_sorted,
    roc_auc_and_average_precision,
    sorted_clean,
    sorted_quantiles,
    sorted_window_statistics,
    window_statistics,
)
from pm_assets_tests.conftest import REPO_ROOT

# --- naive references ---------------------------------------------------------------------------------------


def naive_psi(reference, production, bins: int = 10, epsilon: float = 1e-4) -> float:
    """PSI by a per-value loop: edges at the reference's quantiles 0.1 .. 0.9 (np.quantile, duplicates removed),
    bins (-inf, e1], (e1, e2], ..., (ek, inf), proportions floored at epsilon, sum of (p - q) ln(p / q)."""
    ref = [float(v) for v in reference if not math.isnan(float(v))]
    prod = [float(v) for v in production if not math.isnan(float(v))]
    if len(ref) < 50 or len(prod) < 50:
        return float("nan")
    edges = np.unique(np.quantile(np.array(ref), [k / bins for k in range(1, bins)])).tolist()
    if len(edges) < 3:
        return float("nan")

    def proportions(values):
        counts = [0] * (len(edges) + 1)
        for v in values:
            k = 0
            while k < len(edges) and v > edges[k]:  # right-closed: a value equal to an edge stays in the lower bin
                k += 1
            counts[k] += 1
        return [max(c / len(values), epsilon) for c in counts]

    q, p = proportions(ref), proportions(prod)
    return sum((pi - qi) * math.log(pi / qi) for pi, qi in zip(p, q))


def labelings(n: int):
    """Every 0/1 label vector of length n."""
    return [np.array(bits, dtype=int) for bits in itertools.product((0, 1), repeat=n)]


def probability_of(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.prod(np.where(y == 1, p, 1.0 - p)))


# --- constants ----------------------------------------------------------------------------------------------


#: Where the README states each drift constant: a pattern whose one group is the value, and how to read it.
DOCUMENTED = {
    "PSI_BINS": (
        r"PSI on the reference's (\w+) \(open outer bins",
        {"quartiles": 4, "quintiles": 5, "deciles": 10}.get,
    ),
    "PSI_EPSILON": (r"empty bins floored at ([0-9.e-]+)\)", float),
    "MIN_EDGES": (r"give fewer than (\d+) edges, so its decile PSI", int),
    "MIN_SAMPLE": (r"fewer than (\d+) values in a\s+window", int),
    "DISCRETE_MAX_VALUES": (r"at most `discrete_max_values` = (\d+) distinct values", int),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_readme_states_each_constant_as_the_code_has_it(name):
    """Each value the README gives for a drift constant is the code's (a reworded README must still state it)."""
    pattern, read = DOCUMENTED[name]
    found = re.findall(pattern, (REPO_ROOT / "README.md").read_text())
    assert len(found) == 1, f"the README no longer states {name} as {pattern!r}"
    assert read(found[0]) == getattr(drift, name), f"README: {found[0]}, code: {getattr(drift, name)}"


# --- KS -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sizes", [(1, 1), (3, 8), (50, 200), (777, 41), (1000, 1000)])
def test_ks_equals_scipy_on_continuous_data(seed, sizes):
    rng = np.random.default_rng(seed)
    n, m = sizes
    draws = [rng.normal(0, 1, n), rng.exponential(1.0, n), rng.uniform(-2, 2, n)]
    a = draws[seed % 3]
    b = rng.normal(0.3 * seed, 1 + 0.2 * seed, m)
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_statistic(b, a) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_ks_equals_scipy_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    a = rng.integers(0, 4 + seed, 300).astype(float)
    b = rng.poisson(2 + 0.5 * seed, 120).astype(float)
    assert len(np.unique(a)) < len(a) and np.intersect1d(a, b).size > 0
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    # identical samples, and samples that are a permutation of each other: 0
    assert ks_statistic(a, a) == 0.0
    assert ks_statistic(a, rng.permutation(a)) == 0.0


def test_ks_of_disjoint_samples_is_one_and_integer_input_works():
    assert ks_statistic([1, 2, 3], [10, 11]) == pytest.approx(ks_2samp([1, 2, 3], [10, 11]).statistic, abs=1e-12)
    assert ks_statistic(np.arange(5), np.arange(5) + 100) == 1.0


def test_ks_drops_nan():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 200), rng.normal(0.5, 1, 150)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[rng.choice(200, 40, replace=False)] = np.nan
    b_nan[rng.choice(150, 10, replace=False)] = np.nan
    expected = ks_2samp(a_nan[~np.isnan(a_nan)], b_nan[~np.isnan(b_nan)]).statistic
    assert ks_statistic(a_nan, b_nan) == pytest.approx(expected, abs=1e-12)
    assert ks_statistic(list(a_nan), list(b_nan)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("a, b", [([], [1.0, 2.0]), ([1.0, 2.0], []), ([np.nan, np.nan], [1.0]), ([], [])])
def test_ks_is_nan_for_an_empty_side(a, b):
    assert math.isnan(ks_statistic(a, b))


# --- PSI ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_psi_equals_naive_loop_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(50, 2000)), int(rng.integers(50, 2000))
    makers = [
        lambda k, s: rng.normal(s, 1.0, k),
        lambda k, s: rng.exponential(1.0 + s, k),
        lambda k, s: rng.lognormal(s, 0.7, k),
    ]
    make = makers[seed % 3]
    ref, prod = make(n, 0.0), make(m, 0.1 * seed)
    value = psi(ref, prod)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(naive_psi(ref, prod), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_psi_equals_naive_loop_on_integer_data_with_ties(seed):
    """Integer data: duplicated quantiles collapse into fewer edges and many values sit exactly on an edge."""
    rng = np.random.default_rng(50 + seed)
    ref = rng.poisson(3, 400).astype(float)
    prod = rng.poisson(3 + seed, 300).astype(float)
    assert len(psi_edges(ref)) < PSI_BINS - 1  # duplicates really were removed
    assert psi(ref, prod) == pytest.approx(naive_psi(ref, prod), abs=1e-12)


def test_psi_edges_are_unique_reference_quantiles():
    rng = np.random.default_rng(1)
    ref = np.concatenate([rng.normal(0, 1, 300), [np.nan] * 20])
    clean = ref[~np.isnan(ref)]
    np.testing.assert_array_equal(psi_edges(ref), np.unique(np.quantile(clean, [k / 10 for k in range(1, 10)])))
    assert psi_edges([]).size == 0


def test_psi_of_identical_samples_is_zero():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, 500)
    assert psi(ref, ref) == 0.0
    assert psi(ref, rng.permutation(ref)) == 0.0


def test_psi_with_empty_production_bins_uses_epsilon():
    """All production values in one bin: the other nine proportions are raised to epsilon (no inf, no NaN)."""
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 1000)
    prod = np.full(80, np.median(ref))
    value = psi(ref, prod)
    assert np.isfinite(value)
    assert value == pytest.approx(naive_psi(ref, prod), abs=1e-12)
    # independent of the loop: bin proportions computed by counting with comparisons
    edges = psi_edges(ref)
    bins = [(-np.inf, edges[0])] + list(zip(edges[:-1], edges[1:])) + [(edges[-1], np.inf)]
    q = np.array([np.mean((ref > lo) & (ref <= hi)) for lo, hi in bins])
    p = np.array([np.mean((prod > lo) & (prod <= hi)) for lo, hi in bins])
    assert (p == 0).sum() == len(bins) - 1
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert value == pytest.approx(float(np.sum((p - q) * np.log(p / q))), abs=1e-12)
    # a different epsilon changes the result: the floor is really applied
    assert psi(ref, prod, epsilon=1e-3) == pytest.approx(naive_psi(ref, prod, epsilon=1e-3), abs=1e-12)
    assert psi(ref, prod, epsilon=1e-3) != value


def test_psi_is_nan_for_a_constant_or_nearly_constant_reference():
    rng = np.random.default_rng(4)
    prod = rng.normal(0, 1, 200)
    assert math.isnan(psi(np.full(500, 3.0), prod))
    # 95 % zeros: every decile edge is 0, one distinct edge
    nearly = np.concatenate([np.zeros(95), np.arange(1.0, 6.0)])
    assert len(psi_edges(nearly)) < MIN_EDGES
    assert math.isnan(psi(nearly, prod))
    assert math.isnan(naive_psi(nearly, prod))
    # two distinct edges are still too few, three are enough
    two = np.concatenate([np.zeros(85), np.ones(10), np.arange(2.0, 7.0)])
    assert len(psi_edges(two)) == 2 and math.isnan(psi(two, prod))
    three = np.concatenate([np.zeros(75), np.ones(10), np.full(10, 2.0), np.arange(3.0, 8.0)])
    assert len(psi_edges(three)) == 3
    assert psi(three, prod) == pytest.approx(naive_psi(three, prod), abs=1e-12)


def test_psi_drops_nan_before_counting():
    rng = np.random.default_rng(5)
    ref, prod = rng.normal(0, 1, 300), rng.normal(0.4, 1.2, 200)
    ref_nan = np.concatenate([ref, [np.nan] * 50])
    prod_nan = np.concatenate([[np.nan] * 30, prod])
    assert psi(ref_nan, prod_nan) == pytest.approx(psi(ref, prod), abs=1e-15)
    assert psi(ref_nan, prod_nan) == pytest.approx(naive_psi(ref, prod), abs=1e-12)
    # NaN do not count towards the minimum sample: 49 values plus NaN is still too few
    assert math.isnan(psi(ref, np.concatenate([prod[:49], [np.nan] * 100])))


@pytest.mark.parametrize(
    "n_ref, n_prod, defined",
    [(49, 500, False), (500, 49, False), (49, 49, False), (50, 500, True), (500, 50, True), (50, 50, True)],
)
def test_psi_minimum_sample_size(n_ref, n_prod, defined):
    rng = np.random.default_rng(n_ref * 1000 + n_prod)
    ref, prod = rng.normal(0, 1, n_ref), rng.normal(0.2, 1, n_prod)
    value = psi(ref, prod)
    assert np.isfinite(value) == defined
    if defined:
        assert value == pytest.approx(naive_psi(ref, prod), abs=1e-12)


def test_values_equal_to_an_edge_fall_in_the_lower_bin():
    ref = np.arange(101.0)  # deciles are exactly 10, 20, ..., 90
    np.testing.assert_array_equal(psi_edges(ref), np.arange(10.0, 100.0, 10.0))
    on_edge, below_edge, above_edge = np.full(60, 20.0), np.full(60, 19.5), np.full(60, 20.5)
    # 20 is in (10, 20], like 19.5, and not in (20, 30], like 20.5
    assert psi(ref, on_edge) == psi(ref, below_edge)
    assert psi(ref, on_edge) != psi(ref, above_edge)
    assert psi(ref, on_edge) == pytest.approx(naive_psi(ref, on_edge), abs=1e-12)
    # by hand: the reference's lowest bin (-inf, 10] holds 0..10 (11 values), every other bin 10 values
    q = np.array([11] + [10] * 9) / 101
    p = np.full(10, 1e-4)
    p[1] = 1.0
    assert psi(ref, on_edge) == pytest.approx(float(np.sum((p - q) * np.log(p / q))), abs=1e-12)
    # the reference's own values on the edges are counted in the lower bin too: PSI against itself is 0
    assert psi(ref, ref) == 0.0


def test_a_large_shift_gives_psi_well_above_the_alert_level():
    rng = np.random.default_rng(6)
    ref, small, large = rng.normal(0, 1, 2000), rng.normal(0.05, 1, 2000), rng.normal(2.0, 1, 2000)
    assert psi(ref, small) < 0.1
    assert psi(ref, large) > 1.0  # 4x the 0.25 score alert
    assert psi(ref, large) == pytest.approx(naive_psi(ref, large), abs=1e-12)


def test_psi_accepts_lists_and_other_bin_counts():
    rng = np.random.default_rng(8)
    ref, prod = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    assert psi(list(ref), list(prod)) == psi(ref, prod)
    assert psi(ref, prod, bins=5) == pytest.approx(naive_psi(ref, prod, bins=5), abs=1e-12)


# --- expected failure rate ----------------------------------------------------------------------------------


def test_expected_failure_rate_is_the_mean_probability_and_matches_monte_carlo():
    rng = np.random.default_rng(9)
    p = rng.beta(1.2, 4.0, 300)
    y = rng.random((2000, len(p))) < p
    mc = y.mean(axis=1)
    # the standard error of the Monte Carlo mean is sqrt(sum p(1-p)) / n / sqrt(2000) ~ 6e-4: 0.003 is 5 of them
    assert abs(expected_failure_rate(p) - mc.mean()) < 0.003
    assert expected_failure_rate(p) == pytest.approx(float(np.mean(p)), abs=1e-15)
    assert expected_failure_rate(np.append(p, np.nan)) == pytest.approx(float(np.mean(p)), abs=1e-15)
    assert math.isnan(expected_failure_rate([]))
    assert math.isnan(expected_failure_rate([np.nan]))


# --- expected ROC AUC ---------------------------------------------------------------------------------------


def naive_auc_parts(p: np.ndarray) -> tuple[float, float]:
    """Double loop: E[concordant pairs, ties half] and E[positive/negative pairs], scores = p."""
    numerator = denominator = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            weight = p[i] * (1 - p[j])  # i positive, j negative
            denominator += weight
            numerator += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return numerator, denominator


@pytest.mark.parametrize("seed", range(4))
def test_expected_roc_auc_equals_the_double_loop_with_ties(seed):
    rng = np.random.default_rng(20 + seed)
    p = np.round(rng.beta(2, 3, 60), 1)  # heavy ties
    assert len(np.unique(p)) < 15
    numerator, denominator = naive_auc_parts(p)
    assert expected_roc_auc(p) == pytest.approx(numerator / denominator, abs=1e-12)
    # the order of the rows does not matter
    assert expected_roc_auc(rng.permutation(p)) == pytest.approx(numerator / denominator, abs=1e-12)


def test_expected_roc_auc_equals_exact_enumeration_with_sklearn():
    """Over all 2^9 labelings: E[AUC * n_pos * n_neg] / E[n_pos * n_neg], with sklearn's AUC (ties half)."""
    p = np.array([0.9, 0.1, 0.4, 0.4, 0.7, 0.25, 0.4, 0.6, 0.6])
    numerator = denominator = 0.0
    for y in labelings(len(p)):
        pos = int(y.sum())
        if 0 < pos < len(p):
            prob = probability_of(y, p)
            pairs = pos * (len(p) - pos)
            numerator += prob * roc_auc_score(y, p) * pairs
            denominator += prob * pairs
    assert expected_roc_auc(p) == pytest.approx(numerator / denominator, abs=1e-12)


def test_expected_roc_auc_matches_monte_carlo_mean():
    """y ~ Bernoulli(p), 2000 draws of 300 rows, with ties in the scores. The Monte Carlo standard error is ~7e-4
    and the ratio-of-expectations bias measured ~2e-3 on this setup; 0.01 covers both with room, while a wrong
    tie rule or a swapped class shifts the AUC by several hundredths."""
    rng = np.random.default_rng(30)
    p = np.round(rng.beta(1.5, 4.0, 300) * 20) / 20
    y = rng.random((2000, len(p))) < p
    mc = np.mean([roc_auc_score(row, p) for row in y])
    assert abs(expected_roc_auc(p) - mc) < 0.01


def test_expected_roc_auc_undefined_cases():
    assert math.isnan(expected_roc_auc([]))
    assert math.isnan(expected_roc_auc([0.3]))
    assert math.isnan(expected_roc_auc([0.0, 0.0, 0.0]))  # no positives expected
    assert math.isnan(expected_roc_auc([1.0, 1.0]))  # no negatives expected
    assert expected_roc_auc([0.2, np.nan, 0.8]) == pytest.approx(expected_roc_auc([0.2, 0.8]), abs=1e-15)
    # all scores tied: every pair counts half
    assert expected_roc_auc([0.3] * 5) == pytest.approx(0.5, abs=1e-12)


# --- expected average precision -----------------------------------------------------------------------------


def test_expected_average_precision_equals_exact_enumeration_with_sklearn():
    """Distinct scores: E[AP * n_pos] / E[n_pos] over all 2^10 labelings, AP from sklearn."""
    p = np.array([0.93, 0.05, 0.41, 0.37, 0.72, 0.22, 0.64, 0.11, 0.58, 0.30])
    numerator = 0.0
    for y in labelings(len(p)):
        if y.sum() > 0:
            numerator += probability_of(y, p) * average_precision_score(y, p) * y.sum()
    assert expected_average_precision(p) == pytest.approx(numerator / p.sum(), abs=1e-12)
    assert expected_average_precision(p[::-1]) == pytest.approx(numerator / p.sum(), abs=1e-12)


def test_expected_average_precision_equals_naive_loop_with_ties():
    """Ties ranked stably (as documented): E[sum_k rel_k * precision@k] by a double loop, / E[positives]."""
    rng = np.random.default_rng(40)
    p = np.round(rng.beta(2, 3, 40), 1)
    ranked = sorted(range(len(p)), key=lambda i: -p[i])  # Python's sort is stable
    numerator = 0.0
    for k, i in enumerate(ranked, start=1):
        # E[rel_i * (rel_i + sum of earlier rels)] / k, labels independent
        numerator += (p[i] + p[i] * sum(p[j] for j in ranked[: k - 1])) / k
    assert expected_average_precision(p) == pytest.approx(numerator / p.sum(), abs=1e-12)


def test_expected_average_precision_matches_monte_carlo_mean():
    """2000 draws of 300 rows; Monte Carlo standard error ~1e-3, ratio bias measured ~1.5e-3: tolerance 0.015."""
    rng = np.random.default_rng(41)
    p = rng.beta(1.5, 4.0, 300)
    y = rng.random((2000, len(p))) < p
    mc = np.mean([average_precision_score(row, p) for row in y])
    assert abs(expected_average_precision(p) - mc) < 0.015


def test_expected_average_precision_undefined_cases():
    assert math.isnan(expected_average_precision([]))
    assert math.isnan(expected_average_precision([0.0, 0.0]))
    assert math.isnan(expected_average_precision([np.nan]))
    assert expected_average_precision([1.0, 1.0, 0.0]) == pytest.approx(1.0, abs=1e-12)  # labels certain: AP 1
    assert expected_average_precision([0.7, np.nan, 0.2]) == pytest.approx(
        expected_average_precision([0.7, 0.2]), abs=1e-15
    )


# --- one-sort building blocks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_sorted_quantiles_equal_numpy_quantile_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    q = np.arange(1, 10) / 10
    for values in (
        rng.normal(size=rng.integers(1, 5000)),
        rng.integers(0, 7, 999).astype(float),
        np.round(rng.exponential(size=48_000), 2),
        np.array([3.5]),
        np.array([1.0, 2.0]),
    ):
        ordered = np.sort(values)
        assert np.array_equal(sorted_quantiles(ordered, q), np.quantile(values, q))
    extremes = np.array([0.0, 0.25, 0.5, 1.0])
    ordered = np.sort(rng.normal(size=101))
    assert np.array_equal(sorted_quantiles(ordered, extremes), np.quantile(ordered, extremes))


@pytest.mark.parametrize("seed", range(8))
def test_roc_auc_and_average_precision_equal_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    y = (rng.random(n) < rng.uniform(0.01, 0.6)).astype(float)
    y[0], y[-1] = 0.0, 1.0  # both classes
    p = np.round(np.clip(0.3 * y + rng.normal(0.3, 0.2, n), 0, 1), int(rng.integers(1, 4)))  # many ties
    auc, ap = roc_auc_and_average_precision(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_roc_auc_and_average_precision_undefined_with_one_class_or_no_rows():
    for y, p in (([], []), ([1.0, 1.0], [0.2, 0.3]), ([0.0, 0.0, 0.0], [0.1, 0.5, 0.9])):
        assert all(math.isnan(v) for v in roc_auc_and_average_precision(y, p))


def _columns(rng, n):
    return {
        "normal, drifting": rng.normal(size=n) + np.linspace(0, 1, n),
        "four values": rng.integers(0, 4, size=n).astype(float),
        "90 % zeros": np.where(rng.random(n) < 0.9, 0.0, rng.exponential(size=n)),
        "20 % NaN": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "constant": np.full(n, 3.0),
        "rounded (ties)": np.round(rng.normal(size=n), 2),
        "below the grid later": np.concatenate([rng.normal(size=n // 2), rng.normal(-5, 1, n - n // 2)]),
        "almost no values": np.where(rng.random(n) < 0.995, np.nan, rng.normal(size=n)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_windows_give_the_psi_ks_and_mean_of_the_sorted_windows_exactly(seed):
    """Random pairs of windows (runs of blocks, some below MIN_SAMPLE, some empty of values), over columns with
    ties, NaN, a constant, almost no values and values beyond the grid, with grids from 4 values to the default:
    PSI and KS equal psi_sorted and ks_sorted of the windows' sorted values (==, not approx), the means agree."""
    rng = np.random.default_rng(seed)
    n_blocks, per_block, pairs = 30, 120, 40
    blocks = np.repeat(np.arange(n_blocks), per_block)
    checked = 0
    for name, values in _columns(rng, n_blocks * per_block).items():
        for grid_values in (4, 64, None):
            column = BinnedColumn(values, blocks, n_blocks, grid_values)
            first = rng.integers(0, n_blocks - 1, pairs)
            middle = np.array([rng.integers(a + 1, n_blocks) for a in first])
            stop = np.array([rng.integers(m + 1, n_blocks + 1) for m in middle])
            stats = window_statistics(column, first, middle, stop)
            for w in range(pairs):
                ref = sorted_clean(values[first[w] * per_block : middle[w] * per_block])
                prod = sorted_clean(values[middle[w] * per_block : stop[w] * per_block])
                psi_value, ks_value, ref_mean, prod_mean, js_value, chi2_p, ref_n, prod_n = stats[w]
                assert (ref_n, prod_n) == (len(ref), len(prod)) and math.isnan(chi2_p)
                expected = _decile_js(ref, prod)
                assert js_value == pytest.approx(expected, abs=1e-12) or (math.isnan(js_value) and math.isnan(expected))
                expected = psi_sorted(ref, prod)
                assert psi_value == expected or (math.isnan(psi_value) and math.isnan(expected)), (name, grid_values)
                expected = ks_sorted(ref, prod)
                assert ks_value == expected or (math.isnan(ks_value) and math.isnan(expected)), (name, grid_values)
                if len(ref) and len(prod):
                    assert ks_value == pytest.approx(ks_2samp(ref, prod).statistic, abs=1e-12)
                for mean, sample in ((ref_mean, ref), (prod_mean, prod)):
                    assert (
                        mean == pytest.approx(sample.mean(), rel=1e-12, abs=1e-12) if len(sample) else math.isnan(mean)
                    )
                checked += 1
    assert checked == len(_columns(rng, 10)) * 3 * pairs


def _decile_js(ref: np.ndarray, prod: np.ndarray) -> float:
    """scipy's Jensen-Shannon distance (base 2) on psi_sorted's bins, or NaN where PSI is undefined."""
    if len(ref) < MIN_SAMPLE or len(prod) < MIN_SAMPLE:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    if len(edges) < 3:
        return float("nan")
    counts = [np.diff(np.searchsorted(x, edges, side="right"), prepend=0, append=len(x)) for x in (ref, prod)]
    return float(jensenshannon(counts[0] / len(ref), counts[1] / len(prod), base=2))


@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_columns_are_measured_per_value_against_scipy(seed):
    """A column of few values (error counts: mostly 0, rarely 1-3; a flag; a value that occurs a few times only)
    is discrete: PSI on one bin per value equals a naive per-value loop, Jensen-Shannon equals scipy's, the
    chi-square p-value scipy's chi2_contingency; KS stays exact. Decile PSI is undefined on these columns."""
    rng = np.random.default_rng(seed)
    n_blocks, per_block = 20, 300
    n = n_blocks * per_block
    blocks = np.repeat(np.arange(n_blocks), per_block)
    columns = {
        "error count": rng.choice([0.0, 1.0, 2.0, 3.0], size=n, p=[0.95, 0.04, 0.008, 0.002]),
        "flag drifting": (rng.random(n) < np.linspace(0.1, 0.4, n)).astype(float),
        "rare value": np.where(np.arange(n) % 997 == 0, 7.0, rng.integers(0, 3, n).astype(float)),
    }
    first, middle, stop = np.array([0, 3, 10]), np.array([12, 15, 18]), np.array([20, 20, 19])
    for name, values in columns.items():
        column = BinnedColumn.of(values, blocks, n_blocks)
        assert column.discrete, name
        stats = window_statistics(column, first, middle, stop)
        for w in range(len(first)):
            ref = values[first[w] * per_block : middle[w] * per_block]
            prod = values[middle[w] * per_block : stop[w] * per_block]
            levels = np.union1d(ref, prod)
            a = np.array([(ref == v).sum() for v in levels])
            b = np.array([(prod == v).sum() for v in levels])
            naive = sum(
                (max(q / len(prod), 1e-4) - max(r / len(ref), 1e-4))
                * math.log(max(q / len(prod), 1e-4) / max(r / len(ref), 1e-4))
                for r, q in zip(a, b)
            )
            assert stats[w, 0] == pytest.approx(naive, rel=1e-12, abs=1e-15), name
            assert stats[w, 4] == pytest.approx(jensenshannon(a / a.sum(), b / b.sum(), base=2), abs=1e-12), name
            expected_p = chi2_contingency([a, b], correction=False).pvalue if len(levels) > 1 else 1.0
            assert stats[w, 5] == pytest.approx(expected_p, rel=1e-9, abs=1e-300), name
            assert stats[w, 1] == pytest.approx(ks_2samp(ref, prod).statistic, abs=1e-12), name
            assert math.isnan(psi_sorted(np.sort(ref), np.sort(prod))) or name != "error count"
    # the rule and its override: a continuous column stays continuous unless told, a discrete one can be forced
    normal = rng.normal(size=n)
    assert not BinnedColumn.of(normal, blocks, n_blocks).discrete
    assert BinnedColumn.of(np.round(normal, 1), blocks, n_blocks, max_values=100).discrete
    assert not BinnedColumn.of(columns["error count"], blocks, n_blocks, "continuous").discrete
    assert BinnedColumn.of(np.round(normal, 1), blocks, n_blocks, "discrete").discrete
    with pytest.raises(ValueError, match="unknown drift method"):
        BinnedColumn.of(normal, blocks, n_blocks, "categorical")


@pytest.mark.parametrize("seed", [0, 1])
def test_sorting_the_windows_gives_the_binned_statistics_bit_for_bit(seed):
    """The few-dates path (each window's values sorted) and the binned path agree exactly on every statistic,
    continuous and discrete, NaN where the other has NaN; so does their choice of discrete."""
    rng = np.random.default_rng(seed)
    n_blocks, per_block, pairs = 30, 120, 12
    blocks = np.repeat(np.arange(n_blocks), per_block)
    columns = _columns(rng, n_blocks * per_block) | {"error count": rng.poisson(0.05, n_blocks * per_block) * 1.0}
    first = rng.integers(0, n_blocks - 1, pairs)
    middle = np.array([rng.integers(a + 1, n_blocks) for a in first])
    stop = np.array([rng.integers(m + 1, n_blocks + 1) for m in middle])
    for name, values in columns.items():
        for method in (None, "continuous", "discrete"):
            binned = BinnedColumn.of(values, blocks, n_blocks, method)
            sorted_stats, discrete = sorted_window_statistics(values, blocks, n_blocks, first, middle, stop, method)
            assert discrete == binned.discrete, (name, method)
            np.testing.assert_array_equal(
                sorted_stats, window_statistics(binned, first, middle, stop), err_msg=f"{name}, {method}"
            )


def test_jensen_shannon_and_chi2_edge_cases():
    assert jensen_shannon([1, 0], [1, 0]) == 0.0
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the maximum, base 2
    assert chi2_p_value([10, 0], [5, 0]) == 1.0  # one value in both windows: nothing to test
    assert chi2_p_value([500, 500], [900, 100]) < 1e-50
    assert discrete_psi([5, 5], [5, 5]) == 0.0


def test_binned_order_statistics_and_counts_equal_the_sorted_window():
    from pm_assets.core.drift import _Windows

    rng = np.random.default_rng(5)
    values = np.where(rng.random(4_000) < 0.3, 1.0, np.round(rng.normal(size=4_000), 1))
    blocks = np.repeat(np.arange(8), 500)
    windows = _Windows(BinnedColumn(values, blocks, 8, grid_values=16), np.array([2, 0]), np.array([7, 3]))
    for row, (a, b) in enumerate(((1_000, 3_500), (0, 1_500))):
        ordered = np.sort(values[a:b])
        rows = np.full(len(ordered), row)
        np.testing.assert_array_equal(windows.order_statistics(rows, np.arange(len(ordered))), ordered)
        probes = np.concatenate([np.unique(ordered), np.unique(ordered) + 0.05, [-10.0, 10.0]])
        np.testing.assert_array_equal(
            windows.count_at_or_below(np.full(len(probes), row), probes), np.searchsorted(ordered, probes, side="right")
        )


def test_rows_outside_every_block_are_not_counted():
    values = np.arange(60, dtype=float)
    blocks = np.repeat([-1, 0, 1, 2, -1], 12)
    stats = window_statistics(BinnedColumn(values, blocks, 3), [0], [1], [3])
    assert stats[0, 2] == values[12:24].mean() and stats[0, 3] == values[24:48].mean()
    assert stats[0, 1] == 1.0  # the windows do not overlap: KS is 1


@pytest.mark.parametrize("kind", ["normal", "cauchy", "grid values", "outside", "integers", "narrow", "inf", "nan"])
def test_grid_positions_are_numpys_searchsorted(kind):
    """The positions np.searchsorted gives (the reference), on grids sampled from the values as BinnedColumn does
    and on values that sit on grid values, beyond both ends, heavy tails, a grid of tiny range, and the fallbacks."""
    rng = np.random.default_rng(len(kind))
    n = 200_000
    values = {
        "normal": rng.normal(5, 2, n),
        "cauchy": rng.standard_cauchy(n),
        "grid values": rng.normal(0, 1, n),
        "outside": rng.normal(0, 1, n),
        "integers": rng.integers(0, 5_000, n).astype(float),
        "narrow": 1.0 + rng.random(n) * 1e-12,
        "inf": rng.normal(0, 1, n),
        "nan": rng.normal(0, 1, n),
    }[kind]
    grid = np.unique(np.sort(values[::7])[:: max(1, n // 7 // 3_000)])
    if kind == "grid values":
        values = np.concatenate([values, rng.choice(grid, 50_000)])
    if kind == "outside":
        values = np.concatenate([values, grid[0] - rng.random(1_000), grid[-1] + rng.random(1_000)])
    if kind == "inf":
        values[:10] = np.inf
        values[10:20] = -np.inf
    if kind == "nan":
        values[::1000] = np.nan
    assert len(grid) >= 256
    np.testing.assert_array_equal(grid_positions(grid, values), np.searchsorted(grid, values, side="left"))
