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


def sorted_clean(values) -> np.ndarray:
    """The non-NaN values, sorted: what :func:`psi_sorted` and :func:`ks_sorted` take (sort once, use twice)."""
    values = np.sort(np.asarray(values, dtype=np.float64))  # NaN sorts last
    return values[: len(values) - int(np.isnan(values).sum())]


def group_starts(ordered: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values in a sorted array."""
    return np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))


def sorted_quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q)`` (its default, linear method, bit for bit) of values already sorted, without
    the partial sort np.quantile does again: the order statistics are at hand."""
    position = q * (len(values) - 1)
    below = np.floor(position).astype(np.intp)
    gamma = position - below
    a, b = values[below], values[np.minimum(below + 1, len(values) - 1)]
    diff = b - a
    # numpy's _lerp: a + diff * gamma, or b - diff * (1 - gamma) from gamma 0.5 on
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


class SortedWindow:
    """Each column of ``matrix[span]``, sorted with NaN dropped, kept as the span moves forward.

    Consecutive monitoring days share all but one day of each window, so instead of sorting a whole window every
    day, :meth:`move_to` removes the rows that left (found by binary search in the sorted column) and inserts the
    rows that came in: O(window) memory moves per column instead of an O(window log window) sort. The columns are
    the same arrays a full sort gives (equal values are interchangeable), so every statistic computed from them is
    bit-identical to the sort's. A span that moves back, or shares less than half its rows with the last one, is
    sorted from scratch.
    """

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix  # rows sorted by time, one column per feature
        self.span: slice | None = None
        self.columns: list[np.ndarray] = []

    def move_to(self, span: slice) -> list[np.ndarray]:
        last = self.span
        kept = 0 if last is None else min(last.stop, span.stop) - max(last.start, span.start)
        if last is None or span.start < last.start or span.stop < last.stop or 2 * kept < span.stop - span.start:
            self.columns = _sorted_columns(self.matrix[span])
        else:
            gone = _sorted_columns(self.matrix[last.start: span.start])
            came = _sorted_columns(self.matrix[last.stop: span.stop])
            self.columns = [_insert_sorted(_remove_sorted(column, out), new)
                            for column, out, new in zip(self.columns, gone, came, strict=True)]
        self.span = span
        return self.columns


def _sorted_columns(block: np.ndarray) -> list[np.ndarray]:
    ordered = np.sort(block, axis=0)  # NaN sorts last
    counts = (~np.isnan(ordered)).sum(axis=0)
    return [np.ascontiguousarray(ordered[: counts[j], j]) for j in range(block.shape[1])]


def _remove_sorted(values: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """``values`` without the elements of ``gone`` (both sorted; ``gone`` a sub-multiset of ``values``): the k-th
    copy of a value in ``gone`` is the k-th copy of it in ``values``."""
    if len(gone) == 0:
        return values
    copy_number = np.arange(len(gone)) - np.searchsorted(gone, gone, side="left")
    return np.delete(values, np.searchsorted(values, gone, side="left") + copy_number)


def _insert_sorted(values: np.ndarray, new: np.ndarray) -> np.ndarray:
    return values if len(new) == 0 else np.insert(values, np.searchsorted(values, new, side="right"), new)


def psi_edges(reference, bins: int = PSI_BINS) -> np.ndarray:
    return _edges_sorted(sorted_clean(reference), bins)


def _edges_sorted(ref: np.ndarray, bins: int) -> np.ndarray:
    if len(ref) == 0:
        return np.array([])
    return np.unique(sorted_quantiles(ref, np.arange(1, bins) / bins))


def psi(reference, production, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON) -> float:
    return psi_sorted(sorted_clean(reference), sorted_clean(production), bins, epsilon)


def psi_sorted(ref: np.ndarray, prod: np.ndarray, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON) -> float:
    """:func:`psi` of two samples already passed through :func:`sorted_clean`."""
    if len(ref) < MIN_SAMPLE or len(prod) < MIN_SAMPLE:
        return float("nan")
    edges = _edges_sorted(ref, bins)
    if len(edges) < MIN_EDGES:
        return float("nan")
    # a value equal to an edge falls in the lower bin: the count at or below each edge closes the bin
    p_ref = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=len(ref)) / len(ref)
    p_prod = np.diff(np.searchsorted(prod, edges, side="right"), prepend=0, append=len(prod)) / len(prod)
    p_ref, p_prod = np.maximum(p_ref, epsilon), np.maximum(p_prod, epsilon)
    return float(np.sum((p_prod - p_ref) * np.log(p_prod / p_ref)))


def ks_statistic(reference, production) -> float:
    return ks_sorted(sorted_clean(reference), sorted_clean(production))


def ks_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`ks_statistic` of two samples already passed through :func:`sorted_clean`.

    Both empirical CDFs are step functions, so the largest gap is at a value u of one sample, either at u or just
    below it. Between two consecutive distinct values of ``b`` F_b is constant and F_a only grows, so it is
    enough to look at each distinct value u_k of ``b``: F_b(u_k) - F_a(u_k) and F_a(u_k-) - F_b(u_(k-1)); after
    the last one F_b = 1 >= F_a. Two binary searches of the distinct values of ``b`` into ``a``.
    """
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if len(b) > len(a):  # search the smaller sample into the larger (the statistic is symmetric)
        a, b = b, a
    starts = group_starts(b)  # first index of each distinct value
    u = b[starts]
    f_b = np.append(starts[1:], len(b)) / len(b)
    f_b_before = np.concatenate([[0.0], f_b[:-1]])
    below = np.searchsorted(a, u, side="left")
    at_or_below = below.copy()  # differs from `below` only where u occurs in a: search those again
    present = a[np.minimum(below, len(a) - 1)] == u
    at_or_below[present] = np.searchsorted(a, u[present], side="right")
    f_a, f_a_below = at_or_below / len(a), below / len(a)
    return float(max(np.max(f_b - f_a), np.max(f_a_below - f_b_before), 0.0))


# --- label-free performance estimates (the idea of NannyML's CBPE) ----------------------------------------------
# With calibrated probabilities p_i = P(y_i = 1), treat each label as an independent Bernoulli(p_i) and take
# ratios of expectations.

def expected_failure_rate(p) -> float:
    p = _clean(p)
    return float(p.mean()) if len(p) else float("nan")


def expected_roc_auc(p) -> float:
    """E[concordant positive/negative pairs] / E[positive/negative pairs], ties counted half, when the score is p."""
    return expected_roc_auc_sorted(np.sort(_clean(p)))


def expected_roc_auc_sorted(p: np.ndarray) -> float:
    """:func:`expected_roc_auc` of probabilities already sorted ascending, without NaN."""
    if len(p) < 2:
        return float("nan")
    q = 1.0 - p
    # negatives' expected mass strictly below each score, and within its tie group (minus the row itself)
    first = group_starts(p)
    counts = np.diff(first, append=len(p))
    q_before_group = np.concatenate([[0.0], np.cumsum(q)])[first]
    q_in_group = np.add.reduceat(q, first)
    group = np.repeat(np.arange(len(first)), counts)
    below = q_before_group[group] + 0.5 * (q_in_group[group] - q)
    numerator = np.sum(p * below)
    denominator = p.sum() * q.sum() - np.sum(p * q)
    return float(numerator / denominator) if denominator > 0 else float("nan")


def expected_average_precision(p) -> float:
    """E[sum_k rel_k * precision@k] / E[positives], rows ranked by p (descending, stable)."""
    return expected_average_precision_sorted(np.sort(_clean(p)))


def expected_average_precision_sorted(p: np.ndarray) -> float:
    """:func:`expected_average_precision` of probabilities already sorted ascending, without NaN (tied rows are
    equal, so the descending ranking is the reversed array whatever the order among ties)."""
    if len(p) == 0 or p.sum() <= 0:
        return float("nan")
    p = p[::-1]
    k = np.arange(1, len(p) + 1)
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    return float(np.sum((p + p * before) / k) / p.sum())


def roc_auc_and_average_precision(y, p) -> tuple[float, float]:
    """Realized ROC AUC and average precision (sklearn's definitions, ties included) from one sort; NaN when y has
    one class or is empty."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    return roc_auc_and_average_precision_sorted(y[order], p[order])


def roc_auc_and_average_precision_sorted(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """:func:`roc_auc_and_average_precision` of rows already sorted by p ascending."""
    positives = float(y.sum())
    negatives = len(y) - positives
    if len(y) == 0 or positives == 0 or negatives == 0:
        return float("nan"), float("nan")
    first = group_starts(p)  # tie groups of equal scores
    pos = np.add.reduceat(y, first)
    neg = np.diff(first, append=len(y)) - pos
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    auc = float(np.sum(pos * (neg_below + 0.5 * neg)) / (positives * negatives))
    # AP: thresholds from the highest score down; precision and recall at each distinct score
    tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    recall_step = pos[::-1] / positives
    ap = float(np.sum(recall_step * tp / (tp + fp)))
    return auc, ap
