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

Discrete columns (few distinct values, e.g. the error counts; :func:`is_discrete`): deciles of a reference that is
mostly 0 give fewer than ``MIN_EDGES`` edges, so their decile PSI is undefined. They are measured on one bin per
value instead: PSI on those bins (same epsilon), and a chi-square test of the 2 x values table (its p-value,
``scipy.stats.chi2_contingency(..., correction=False)``).

Jensen-Shannon distance (base 2, in [0, 1], as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``): a second
measure on the same bins as PSI (the reference deciles, or one bin per value), with no epsilon. It is bounded and
defined with empty bins, so it reads alike on every column.
"""

from __future__ import annotations

import numpy as np

PSI_BINS = 10
PSI_EPSILON = 1e-4
MIN_SAMPLE = 50
MIN_EDGES = 3
#: A column with at most this many distinct values is discrete (:func:`is_discrete`): one bin per value.
DISCRETE_MAX_VALUES = 25

#: The statistics :func:`window_statistics` gives for each pair of windows, in its columns' order.
STATISTICS = (
    "psi",
    "ks",
    "reference_mean",
    "production_mean",
    "jensen_shannon",
    "chi2_p_value",
    "reference_n",
    "production_n",
)


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
    return _linear_quantiles(lambda k: values[k], len(values), q)


def _linear_quantiles(order_statistics, n: int, q: np.ndarray) -> np.ndarray:
    """numpy's linear quantiles from ``order_statistics(k)``, the k-th smallest values (0-based) of n values."""
    position = q * (n - 1)
    below = np.floor(position).astype(np.intp)
    gamma = position - below
    a, b = order_statistics(below), order_statistics(np.minimum(below + 1, n - 1))
    diff = b - a
    # numpy's _lerp: a + diff * gamma, or b - diff * (1 - gamma) from gamma 0.5 on
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def grid_size(rows: int) -> int:
    """Grid values of a :class:`BinnedColumn` of ``rows`` values: 8 sqrt(rows), from 1,024 to 16,000. Only speed
    depends on it. A bin's share of a window should stay well below the KS statistic of windows that do not drift
    (about 1/sqrt(rows)), or :func:`window_statistics` opens many bins for KS; more bins cost more per
    window."""
    return int(min(16_000, max(1_024, 8 * np.sqrt(rows))))


def grid_positions(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(grid, values, side="left")`` (``grid`` sorted, distinct), the same numbers, faster for many
    values on a large grid.

    numpy's binary search costs a mispredicted branch per step and value (~140 ns a value on a grid of 15,000). Here
    the range of the grid is cut into 4 cells per grid value; a value's cell bounds its position between the grid
    values of the cells before it and those of its own cell (the cell is a monotone function of the value, so a
    grid value in an earlier cell is smaller, one in a later cell larger), and a branch-free binary search over
    all values at once narrows that range, a few steps as the grid follows the values' distribution: 1.2 M values
    of a feature on a grid of ~8,700 values 0.11-0.15 s -> 0.05-0.10 s (four columns, 2026-12-03). NaN, infinite
    grid ends and small inputs go to numpy's search."""
    n = len(grid)
    if n < 256 or len(values) < 65_536 or not np.isfinite(grid[[0, -1]]).all() or np.isnan(values).any():
        return np.searchsorted(grid, values, side="left")
    low, cells = float(grid[0]), 4 * n
    scale = cells / (float(grid[-1]) - low)
    if not np.isfinite(scale):
        return np.searchsorted(grid, values, side="left")

    def cell(v: np.ndarray) -> np.ndarray:  # clipped to [0, cells - 1] first, so truncation is the floor
        return np.clip((v - low) * scale, 0, cells - 1).astype(np.int64)

    grid_cells = cell(grid)
    first = np.searchsorted(grid_cells, np.arange(cells), side="left")  # the grid values of earlier cells
    last = np.searchsorted(grid_cells, np.arange(cells), side="right")  # ... and of this cell
    value_cells = cell(values)
    at, count = first[value_cells], last[value_cells] - first[value_cells]
    for _ in range(int((last - first).max()).bit_length()):  # the first grid value >= the value, in [at, at + count]
        half = count // 2
        middle = at + half
        right = (count > 0) & (grid[np.minimum(middle, n - 1)] < values)
        at = np.where(right, middle + 1, at)
        count = np.where(right, count - half - 1, half)
    return at


class BinnedColumn:
    """One column's values (NaN dropped) grouped by bin of a grid of its values, then by block: the values of a run
    of consecutive blocks (a window: blocks are the days between the monitoring windows' boundaries) that fall in
    one bin are one contiguous slice.

    The grid has up to ``grid_values`` (default :func:`grid_size`) distinct values from a strided sample of the
    column; each grid value g is a bin of its own (every copy of g, so heavy ties cost nothing) and so is each open
    interval between two. A window's counts per bin are one subtraction of cumulative counts, so
    :func:`window_statistics` costs O(bins) per window plus sorts of the few bins that decide it, however many rows
    the window has. It is exact, whatever the grid: the grid only decides the speed.
    """

    def __init__(
        self,
        values: np.ndarray,
        blocks: np.ndarray,
        n_blocks: int,
        grid_values: int | None = None,
        grid: np.ndarray | None = None,
    ):
        keep = (blocks >= 0) & ~np.isnan(values)
        x, block = values[keep], blocks[keep]
        self.discrete = grid is not None  # given: every distinct value of a discrete column (one bin per value)
        if self.discrete:
            self.grid = np.unique(np.asarray(grid, dtype=np.float64))
        else:
            grid_values = grid_values or grid_size(len(x))
            sample = np.sort(x[:: max(1, len(x) // (8 * grid_values))])
            self.grid = np.unique(sample[(np.arange(grid_values) * len(sample)) // grid_values]) if len(x) else x[:0]
        bins = self.bins_of(x)  # bin 2i: between grid values i-1 and i (open); 2i + 1: equal to grid value i
        self.n_bins = 2 * len(self.grid) + 1
        if self.n_bins <= np.iinfo(np.int16).max and (len(block) < 2 or (np.diff(block) >= 0).all()):
            order = np.argsort(bins.astype(np.int16), kind="stable")  # rows in block order: a radix sort by bin
        else:
            order = np.argsort(bins.astype(np.int64) * n_blocks + block, kind="stable")
        self.values = x[order]
        counts = np.bincount(block * self.n_bins + bins, minlength=n_blocks * self.n_bins)
        self.before = np.empty((n_blocks + 1, self.n_bins), dtype=np.int32)  # rows of each bin in the blocks before
        self.before[0] = 0
        self.before[1:] = counts.reshape(n_blocks, self.n_bins)
        for i in range(1, n_blocks + 1):  # row by row: a cumsum down the columns is 10x slower (strided)
            self.before[i] += self.before[i - 1]
        self.bin_start = np.concatenate([[0], np.cumsum(self.before[-1], dtype=np.int64)[:-1]])
        self.sums = np.bincount(block, weights=x, minlength=n_blocks)

    @classmethod
    def of(
        cls,
        values: np.ndarray,
        blocks: np.ndarray,
        n_blocks: int,
        method: str | None = None,
        max_values: int = DISCRETE_MAX_VALUES,
    ) -> BinnedColumn:
        """The column binned for ``method`` ("discrete": one bin per distinct value; "continuous"; None: chosen by
        :func:`is_discrete` with ``max_values``): ``.discrete`` says which."""
        x = values[(blocks >= 0) & ~np.isnan(values)]
        distinct = np.unique(x) if choose_discrete(x, method, max_values) else None
        return cls(values, blocks, n_blocks, grid=distinct)

    def bins_of(self, values: np.ndarray) -> np.ndarray:
        at = grid_positions(self.grid, values)
        if not len(self.grid):
            return 2 * at
        return 2 * at + ((at < len(self.grid)) & (self.grid[np.minimum(at, len(self.grid) - 1)] == values))


class _Windows:
    """Windows (runs of blocks first[w] .. stop[w] - 1) of a :class:`BinnedColumn`, one row each: counts per bin,
    and the values of any (window, bin) pairs gathered at once."""

    def __init__(self, column: BinnedColumn, first: np.ndarray, stop: np.ndarray):
        self.column, self.first, self.stop = column, first, stop
        self.hist = column.before[stop] - column.before[first]
        self.cum = np.cumsum(self.hist, axis=1, dtype=np.int64)
        self.below = self.cum - self.hist  # values in the bins below each bin
        self.n = self.cum[:, -1]
        self.start = column.bin_start[None, :] + column.before[first]
        # each row's cumulative counts, offset so that the rows chain into one sorted array (one binary search)
        self._step = int(self.n.max()) + 1 if len(self.n) else 1
        self._chained = (self.cum + np.arange(len(self.n))[:, None] * self._step).ravel()

    def gather(self, rows: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values in each (window, bin) of ``rows``, ``bins``, pair after pair (unsorted within one), and their
        counts."""
        counts = self.hist[rows, bins].astype(np.int64)
        offsets = np.repeat(self.start[rows, bins] - (np.cumsum(counts) - counts), counts)
        return self.column.values[np.arange(int(counts.sum())) + offsets], counts

    def order_statistics(self, rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """The ks-th smallest values (0-based) of windows ``rows``."""
        width = self.column.n_bins
        bins = np.searchsorted(self._chained, ks + rows * self._step, side="right") - rows * width
        rank = ks - self.below[rows, bins]
        out = np.empty(len(ks))
        point = bins % 2 == 1  # a grid value's own bin holds copies of that value
        out[point] = self.column.grid[bins[point] // 2]
        if not point.all():
            pairs, which = np.unique(rows[~point] * width + bins[~point], return_inverse=True)
            values, counts = self.gather(pairs // width, pairs % width)
            ordered = values[np.lexsort((values, np.repeat(np.arange(len(pairs)), counts)))]
            out[~point] = ordered[(np.cumsum(counts) - counts)[which] + rank[~point]]
        return out

    def count_at_or_below(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        bins = self.column.bins_of(values)
        out = self.below[rows, bins] + np.where(bins % 2 == 1, self.hist[rows, bins], 0)
        opened = np.flatnonzero(bins % 2 == 0)
        if len(opened):
            inside, counts = self.gather(rows[opened], bins[opened])
            owner = np.repeat(np.arange(len(opened)), counts)
            out[opened] += np.bincount(owner, weights=inside <= values[opened][owner], minlength=len(opened)).astype(
                np.int64
            )
        return out

    def means(self) -> np.ndarray:
        return np.array(
            [
                self.column.sums[a:b].sum() / n if n else np.nan
                for a, b, n in zip(self.first.tolist(), self.stop.tolist(), self.n.tolist(), strict=True)
            ]
        )


#: Windows :func:`window_statistics` takes at once (its arrays are windows x bins).
WINDOW_BATCH = 32


def choose_discrete(x: np.ndarray, method: str | None = None, max_values: int = DISCRETE_MAX_VALUES) -> bool:
    """Whether a column of values ``x`` (NaN dropped) is measured as discrete: ``method`` says so ("discrete",
    "continuous"), or None lets :func:`is_discrete` decide (a strided sample first, so a column of many values is
    not sorted whole)."""
    if method not in (None, "discrete", "continuous"):
        raise ValueError(f"unknown drift method {method!r}: 'discrete' or 'continuous'")
    if method is not None:
        return method == "discrete"
    return len(np.unique(x[:: max(1, len(x) // 4_096)])) <= max_values and is_discrete(np.unique(x), max_values)


def is_discrete(distinct: np.ndarray, max_values: int = DISCRETE_MAX_VALUES) -> bool:
    """The rule that picks the per-value measures: at most ``max_values`` distinct values (NaN aside) over the
    monitored rows. The error counts (0-3), age (0-20) and any flag are; sensor statistics and the days since a
    replacement (thousands of values) are not."""
    return len(distinct) <= max_values


def window_statistics(
    column: BinnedColumn, first, middle, stop, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON
) -> np.ndarray:
    """The :data:`STATISTICS` (columns) of each pair of windows (rows): the reference is blocks first .. middle - 1,
    the production blocks middle .. stop - 1. For a continuous column PSI and KS equal :func:`psi_sorted` and
    :func:`ks_sorted` of the windows' sorted values, bit for bit, and the chi-square p-value is NaN; for a
    ``column.discrete`` one, PSI, Jensen-Shannon and chi-square are on one bin per value (:func:`discrete_psi`,
    :func:`jensen_shannon`, :func:`chi2_p_value` of the counts). The means are sums of the blocks' sums."""
    first, middle, stop = (np.asarray(v, dtype=np.intp).reshape(-1) for v in (first, middle, stop))
    out = np.empty((len(first), len(STATISTICS)))
    for i in range(0, len(first), WINDOW_BATCH):
        part = slice(i, i + WINDOW_BATCH)
        ref, prod = _Windows(column, first[part], middle[part]), _Windows(column, middle[part], stop[part])
        if column.discrete:
            out[part, 0], out[part, 4], out[part, 5] = _per_value(ref.hist, prod.hist, epsilon)
        else:
            out[part, 0], out[part, 4] = _psi(ref, prod, bins, epsilon)
            out[part, 5] = np.nan
        out[part, 1] = _ks(ref, prod)
        out[part, 2], out[part, 3] = ref.means(), prod.means()
        out[part, 6], out[part, 7] = ref.n, prod.n
    return out


def sorted_window_statistics(
    values: np.ndarray,
    blocks: np.ndarray,
    n_blocks: int,
    first,
    middle,
    stop,
    method: str | None = None,
    max_values: int = DISCRETE_MAX_VALUES,
    bins: int = PSI_BINS,
    epsilon: float = PSI_EPSILON,
) -> tuple[np.ndarray, bool]:
    """:func:`window_statistics` of a :class:`BinnedColumn` of these values, and whether it is discrete, computed by
    sorting each window's values instead: for a few dates it costs less than binning the column. The same numbers,
    bit for bit (the means too: the same per-block sums, added in the same order)."""
    keep = (blocks >= 0) & ~np.isnan(values)
    x, block = values[keep], blocks[keep]
    discrete = choose_discrete(x, method, max_values)
    sums = np.bincount(block, weights=x, minlength=n_blocks)
    first, middle, stop = (np.asarray(v, dtype=np.intp).reshape(-1) for v in (first, middle, stop))
    out = np.empty((len(first), len(STATISTICS)))
    for w, (a, b, c) in enumerate(zip(first.tolist(), middle.tolist(), stop.tolist(), strict=True)):
        ref, prod = np.sort(x[(block >= a) & (block < b)]), np.sort(x[(block >= b) & (block < c)])
        if discrete:
            levels = np.union1d(ref, prod)
            counts = [
                np.searchsorted(v, levels, side="right") - np.searchsorted(v, levels, side="left") for v in (ref, prod)
            ]
            psi_value, js, chi2_p = (v[0] for v in _per_value(counts[0][None, :], counts[1][None, :], epsilon))
        else:
            psi_value, js, chi2_p = psi_sorted(ref, prod, bins, epsilon), _decile_js(ref, prod, bins), np.nan
        means = [sums[lo:hi].sum() / len(v) if len(v) else np.nan for lo, hi, v in ((a, b, ref), (b, c, prod))]
        out[w] = psi_value, ks_sorted(ref, prod), means[0], means[1], js, chi2_p, len(ref), len(prod)
    return out, discrete


def _decile_js(ref: np.ndarray, prod: np.ndarray, bins: int) -> float:
    """The Jensen-Shannon distance on :func:`psi_sorted`'s bins (NaN where PSI is)."""
    shares = _decile_shares(ref, prod, bins)
    return float("nan") if shares is None else jensen_shannon(*shares)


def _decile_shares(ref: np.ndarray, prod: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The shares of two sorted samples in the bins of the reference's deciles (None where PSI is undefined). A value
    equal to an edge falls in the lower bin: the count at or below each edge closes the bin."""
    if len(ref) < MIN_SAMPLE or len(prod) < MIN_SAMPLE:
        return None
    edges = _edges_sorted(ref, bins)
    if len(edges) < MIN_EDGES:
        return None
    p_ref = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=len(ref)) / len(ref)
    p_prod = np.diff(np.searchsorted(prod, edges, side="right"), prepend=0, append=len(prod)) / len(prod)
    return p_ref, p_prod


def _per_value(ref_counts: np.ndarray, prod_counts: np.ndarray, epsilon: float):
    """PSI, Jensen-Shannon distance and the chi-square p-value of each row of per-value counts (NaN where a window
    has fewer than ``MIN_SAMPLE`` values)."""
    n_ref, n_prod = ref_counts.sum(axis=1), prod_counts.sum(axis=1)
    out = np.full((3, len(n_ref)), np.nan)
    for row in np.flatnonzero((n_ref >= MIN_SAMPLE) & (n_prod >= MIN_SAMPLE)).tolist():
        a, b = ref_counts[row], prod_counts[row]
        present = (a > 0) | (b > 0)
        a, b = a[present], b[present]
        out[:, row] = discrete_psi(a, b, epsilon), jensen_shannon(a / a.sum(), b / b.sum()), chi2_p_value(a, b)
    return out[0], out[1], out[2]


def discrete_psi(ref_counts, prod_counts, epsilon: float = PSI_EPSILON) -> float:
    """PSI on one bin per value, from the counts of each value in the two windows (the same values, in order)."""
    p_ref = np.maximum(np.asarray(ref_counts, dtype=np.float64) / np.sum(ref_counts), epsilon)
    p_prod = np.maximum(np.asarray(prod_counts, dtype=np.float64) / np.sum(prod_counts), epsilon)
    return float(np.sum((p_prod - p_ref) * np.log(p_prod / p_ref)))


def jensen_shannon(p, q) -> float:
    """Jensen-Shannon distance, base 2, of two distributions on the same bins (``scipy.spatial.distance.
    jensenshannon(p, q, base=2)``): sqrt of the mean Kullback-Leibler divergence of p and q from their mixture."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def chi2_p_value(ref_counts, prod_counts) -> float:
    """p-value of the chi-square test of homogeneity of the 2 x values table (no continuity correction: equal to
    ``scipy.stats.chi2_contingency([ref, prod], correction=False)``); 1.0 when only one value occurs."""
    from scipy.stats import chi2

    table = np.array([ref_counts, prod_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(chi2.sf(np.sum((table - expected) ** 2 / expected), table.shape[1] - 1))


def _psi(ref: _Windows, prod: _Windows, bins: int, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """PSI and the Jensen-Shannon distance on the same reference-decile bins, of each pair of windows."""
    out = np.full(len(ref.n), np.nan)
    js = np.full(len(ref.n), np.nan)
    rows = np.flatnonzero((ref.n >= MIN_SAMPLE) & (prod.n >= MIN_SAMPLE))
    if not len(rows):
        return out, js
    q = np.arange(1, bins) / bins
    per_row = np.repeat(rows, len(q))

    def order_statistics(k: np.ndarray) -> np.ndarray:
        return ref.order_statistics(per_row, k.ravel()).reshape(k.shape)

    edges = np.sort(_linear_quantiles(order_statistics, ref.n[rows][:, None], q[None, :]), axis=1)
    at_ref = ref.count_at_or_below(per_row, edges.ravel()).reshape(edges.shape)
    at_prod = prod.count_at_or_below(per_row, edges.ravel()).reshape(edges.shape)
    distinct = np.concatenate([np.ones((len(rows), 1), dtype=bool), np.diff(edges, axis=1) != 0], axis=1)
    for j, row in enumerate(rows.tolist()):
        keep = distinct[j]
        if keep.sum() < MIN_EDGES:
            continue
        n_ref, n_prod = int(ref.n[row]), int(prod.n[row])  # the steps of psi_sorted, on the same numbers
        p_ref = np.diff(at_ref[j][keep], prepend=0, append=n_ref) / n_ref
        p_prod = np.diff(at_prod[j][keep], prepend=0, append=n_prod) / n_prod
        js[row] = jensen_shannon(p_ref, p_prod)
        p_ref, p_prod = np.maximum(p_ref, epsilon), np.maximum(p_prod, epsilon)
        out[row] = float(np.sum((p_prod - p_ref) * np.log(p_prod / p_ref)))
    return out, js


def _ks(a: _Windows, b: _Windows) -> np.ndarray:
    """At the end of each bin both empirical CDFs are known from the counts, which bounds the gap from below; inside
    a bin each CDF lies between its values at the bin's two ends, which bounds the gap there from above. Only the
    bins whose upper bound beats the best gap at a bin's end are opened: their values sorted, the gap taken at
    each."""
    out = np.full(len(a.n), np.nan)
    rows = np.flatnonzero((a.n > 0) & (b.n > 0))
    if not len(rows):
        return out
    na, nb = a.n[rows][:, None], b.n[rows][:, None]
    fa, fb = a.cum[rows] / na, b.cum[rows] / nb
    best = np.maximum(np.max(np.abs(fa - fb), axis=1), 0.0)
    upper = np.maximum(fa - b.below[rows] / nb, fb - a.below[rows] / na)
    upper[:, 1::2] = 0.0  # a grid value's bin holds one value: its gap is the one at the bin's end
    local, bins = np.nonzero(upper > best[:, None])
    if len(local):
        windows = rows[local]
        va, counts_a = a.gather(windows, bins)
        vb, counts_b = b.gather(windows, bins)
        values = np.concatenate([va, vb])
        owner = np.concatenate([np.repeat(np.arange(len(bins)), counts_a), np.repeat(np.arange(len(bins)), counts_b)])
        from_a = np.concatenate([np.ones(len(va), dtype=np.int64), np.zeros(len(vb), dtype=np.int64)])
        order = np.lexsort((values, owner))
        values, owner, from_a = values[order], owner[order], from_a[order]
        # counts at or below each value inside its bin: running counts, less those of the pairs before it
        run_a, run_b = np.cumsum(from_a), np.cumsum(1 - from_a)
        first = np.flatnonzero(np.concatenate([[True], owner[1:] != owner[:-1]]))
        size = np.diff(first, append=len(owner))
        base_a = np.repeat(run_a[first] - from_a[first], size)
        base_b = np.repeat(run_b[first] - (1 - from_a[first]), size)
        last = np.concatenate([(values[1:] != values[:-1]) | (owner[1:] != owner[:-1]), [True]])  # a value's last copy
        pair = owner[last]
        ca = a.below[windows[pair], bins[pair]] + (run_a - base_a)[last]
        cb = b.below[windows[pair], bins[pair]] + (run_b - base_b)[last]
        gaps = np.abs(ca / a.n[windows[pair]] - cb / b.n[windows[pair]])
        np.maximum.at(best, local[pair], gaps)
    out[rows] = best
    return out


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
    shares = _decile_shares(ref, prod, bins)
    if shares is None:
        return float("nan")
    p_ref, p_prod = np.maximum(shares[0], epsilon), np.maximum(shares[1], epsilon)
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


# --- sampling error ------------------------------------------------------------------------------------------------
# Analytic standard errors, from the metric and the sample sizes (effective ones: see MonitoringParams'
# snapshots_per_failure); a seeded bootstrap over failures checks them in the tests.


def roc_auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982): the standard error of a ROC AUC of ``positives`` and ``negatives`` independent rows.
    NaN below one of either."""
    if not (positives >= 1 and negatives >= 1) or np.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return float(np.sqrt(max(variance, 0.0)))


def average_precision_standard_error(ap: float, positives: float) -> float:
    """The binomial standard error of an average precision over ``positives`` independent positives,
    sqrt(AP (1 - AP) / positives) (Boyd, Eng & Page 2013, "binomial interval"). NaN below one positive."""
    if not positives >= 1 or np.isnan(ap):
        return float("nan")
    return float(np.sqrt(max(ap * (1 - ap), 0.0) / positives))


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
