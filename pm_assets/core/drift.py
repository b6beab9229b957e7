"""Drift statistics and label-free performance estimates. No Dagster import.

PSI (population stability index) of a production sample against a reference sample:

- bin edges: the reference's quantiles at 1/bins .. (bins-1)/bins, duplicates removed; the outer bins are open
  (-inf, e1] and (ek, +inf); every bin is closed on the right, so a value equal to an edge falls in the lower bin;
- proportions below ``PSI_EPSILON`` (empty bins) are raised to it, without renormalising;
- PSI = sum over bins of (p_prod - p_ref) * ln(p_prod / p_ref);
- NaN when either sample has fewer than ``MIN_SAMPLE`` values, or the reference gives fewer than ``MIN_EDGES``
  distinct edges (a nearly constant reference has no meaningful bins). NaN values are dropped first.

KS: the two-sample Kolmogorov-Smirnov statistic, max |F_ref(x) - F_prod(x)| (equal to
``scipy.stats.ks_2samp(...).statistic``), computed from sorted arrays.
"""

from __future__ import annotations

import numpy as np

PSI_BINS = 10
PSI_EPSILON = 1e-4
MIN_SAMPLE = 50
MIN_EDGES = 3


def _clean(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def psi_edges(reference, bins: int = PSI_BINS) -> np.ndarray:
    ref = _clean(reference)
    if len(ref) == 0:
        return np.array([])
    return np.unique(np.quantile(ref, np.arange(1, bins) / bins))


def psi(reference, production, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON) -> float:
    ref, prod = _clean(reference), _clean(production)
    if len(ref) < MIN_SAMPLE or len(prod) < MIN_SAMPLE:
        return float("nan")
    edges = psi_edges(ref, bins)
    if len(edges) < MIN_EDGES:
        return float("nan")
    n_bins = len(edges) + 1
    p_ref = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n_bins) / len(ref)
    p_prod = np.bincount(np.searchsorted(edges, prod, side="left"), minlength=n_bins) / len(prod)
    p_ref, p_prod = np.maximum(p_ref, epsilon), np.maximum(p_prod, epsilon)
    return float(np.sum((p_prod - p_ref) * np.log(p_prod / p_ref)))


def ks_statistic(reference, production) -> float:
    a, b = np.sort(_clean(reference)), np.sort(_clean(production))
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / len(a)
    cdf_b = np.searchsorted(b, both, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


# --- label-free performance estimates (the idea of NannyML's CBPE) ----------------------------------------------
# With calibrated probabilities p_i = P(y_i = 1), treat each label as an independent Bernoulli(p_i) and take
# ratios of expectations.

def expected_failure_rate(p) -> float:
    p = _clean(p)
    return float(p.mean()) if len(p) else float("nan")


def expected_roc_auc(p) -> float:
    """E[concordant positive/negative pairs] / E[positive/negative pairs], ties counted half, when the score is p."""
    p = _clean(p)
    if len(p) < 2:
        return float("nan")
    order = np.argsort(p, kind="stable")
    p = p[order]
    q = 1.0 - p
    # negatives' expected mass strictly below each score, and within its tie group (minus the row itself)
    unique, first, counts = np.unique(p, return_index=True, return_counts=True)
    q_before_group = np.concatenate([[0.0], np.cumsum(q)])[first]
    q_in_group = np.add.reduceat(q, first)
    group = np.repeat(np.arange(len(unique)), counts)
    below = q_before_group[group] + 0.5 * (q_in_group[group] - q)
    numerator = np.sum(p * below)
    denominator = p.sum() * q.sum() - np.sum(p * q)
    return float(numerator / denominator) if denominator > 0 else float("nan")


def expected_average_precision(p) -> float:
    """E[sum_k rel_k * precision@k] / E[positives], rows ranked by p (descending, stable)."""
    p = _clean(p)
    if len(p) == 0 or p.sum() <= 0:
        return float("nan")
    p = p[np.argsort(-p, kind="stable")]
    k = np.arange(1, len(p) + 1)
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    return float(np.sum((p + p * before) / k) / p.sum())
