"""Multivariate drift: the PCA reconstruction error of the telemetry features, from per-day moments. No Dagster import.

A change in how the sensors move together (say rotate and vibration become correlated) can leave every feature's
own distribution as it was, so no univariate test sees it. The reconstruction error does (the method of NannyML's
``DataReconstructionDriftCalculator``):

- fit on the reference window: standardise each feature by the reference's mean and sd (ddof 0), and keep the
  principal components of the standardised reference that explain ``variance`` of it (sklearn's rule for a float
  ``n_components``: the fewest whose cumulative ratio exceeds it);
- a window's error is the mean over its rows of ||z - V V^T z||^2, the squared distance of each standardised row
  from its reconstruction (NannyML averages the distance itself; the mean of its square is linear in the rows'
  second moments, so every window comes exactly from per-day sums and no rows are held);
- thresholds: the error of each reference day under the same fit; the band is their mean +- ``sigma`` sds (NannyML:
  mean +- 3 sds of the reference chunks).

The reconstruction error is blind to one kind of change: two features that were independent becoming correlated
(say rotate and vibration), each keeping its distribution. Its change is -2 rho P_ab, and a PCA fitted where a and
b are independent has P_ab about 0 (measured on the simulator: the error moved by 0.02 against a band of +-0.5).
So the same moments also give the **correlation change**: the largest |corr_production - corr_reference| over
the pairs of features, with its pair, against the same kind of threshold (each reference day's largest change from
the reference, mean + ``sigma`` sds). The multivariate alert fires on either.

Rows with a NaN in any of the features are left out (counted in ``rows``); a feature constant over the reference is
dropped from that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Share of the reference's variance the kept components explain (NannyML's default).
PCA_VARIANCE = 0.65
#: The upper threshold: the reference days' mean error plus this many of their sds.
PCA_SIGMA = 3.0
#: Fewest complete rows a window needs for an error.
MIN_ROWS = 50


@dataclass
class BlockMoments:
    """Per block (day): complete rows ``n``, means ``mean`` (blocks x k) and cross-products about the block's own
    mean ``m2`` (blocks x k x k). A block's figures depend on its rows alone, and a window's on its blocks alone
    (:meth:`total`), so a day's figures are the same whatever range a run covers."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, matrix: np.ndarray, blocks: np.ndarray, n_blocks: int) -> BlockMoments:
        """``matrix``: rows x features; ``blocks``: each row's block (-1: outside every block), non-decreasing over
        the rows in blocks (rows sorted by time; otherwise they are sorted here). Goes block by block: memory holds
        one block's rows beside the matrix, not a copy of it."""
        matrix = np.asarray(matrix, dtype=np.float64)
        k = matrix.shape[1]
        inside = np.flatnonzero(blocks >= 0)
        if len(inside) > 1 and not (np.diff(blocks[inside]) >= 0).all():
            inside = inside[np.argsort(blocks[inside], kind="stable")]
        starts = np.searchsorted(blocks[inside], np.arange(n_blocks + 1), side="left")
        n, mean, m2 = np.zeros(n_blocks, dtype=np.int64), np.zeros((n_blocks, k)), np.zeros((n_blocks, k, k))
        for b in range(n_blocks):
            part = matrix[inside[starts[b] : starts[b + 1]]]
            part = part[~np.isnan(part).any(axis=1)]
            if len(part):
                n[b], mean[b] = len(part), part.mean(axis=0)
                centred = part - mean[b]
                m2[b] = centred.T @ centred
        return cls(n=n, mean=mean, m2=m2)

    def total(self, first: int, stop: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(rows, mean, cross-products about the mean) of blocks first .. stop - 1 together (Chan's combination)."""
        n, mean, m2 = self.n[first:stop], self.mean[first:stop], self.m2[first:stop]
        rows = int(n.sum())
        if not rows:
            return 0, np.zeros(self.mean.shape[1]), np.zeros(self.m2.shape[1:])
        overall = (n[:, None] * mean).sum(axis=0) / rows
        apart = mean - overall
        return rows, overall, m2.sum(axis=0) + np.einsum("b,bi,bj->ij", n.astype(np.float64), apart, apart)


#: What :func:`reconstruction_drift` gives for each pair of windows, in its columns' order (pair_a, pair_b: the
#: indices of the features of the largest correlation change).
RECONSTRUCTION = (
    "production_error",
    "reference_error",
    "lower_threshold",
    "upper_threshold",
    "components",
    "reference_rows",
    "production_rows",
    "correlation_change",
    "correlation_threshold",
    "pair_a",
    "pair_b",
)


def reconstruction_drift(
    moments: BlockMoments, first, middle, stop, variance: float = PCA_VARIANCE, sigma: float = PCA_SIGMA
) -> np.ndarray:
    """The :data:`RECONSTRUCTION` figures (columns) of each pair of windows (rows): reference blocks first ..
    middle - 1, production blocks middle .. stop - 1. NaN where a window has fewer than ``MIN_ROWS`` rows."""
    first, middle, stop = (np.asarray(v, dtype=np.intp).reshape(-1) for v in (first, middle, stop))
    out = np.full((len(first), len(RECONSTRUCTION)), np.nan)
    for w, (a, b, c) in enumerate(zip(first.tolist(), middle.tolist(), stop.tolist(), strict=True)):
        n_ref, mean, m2_ref = moments.total(a, b)
        n_prod, mean_prod, m2_prod = moments.total(b, c)
        out[w, 5:7] = n_ref, n_prod
        if n_ref < MIN_ROWS or n_prod < MIN_ROWS:
            continue
        cov = m2_ref / n_ref
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        kept = sd > 1e-12 * np.maximum(1.0, np.abs(mean))
        if kept.sum() < 2:
            continue
        fit = _Fit(
            mean=mean, sd=sd[kept], kept=kept, reference_corr=cov[np.ix_(kept, kept)] / np.outer(sd[kept], sd[kept])
        )
        fit.residual, out[w, 4] = _residual_projection(fit.reference_corr, variance)
        errors, change = fit.figures(
            np.array([n_prod, n_ref], dtype=np.float64), np.stack([mean_prod, mean]), np.stack([m2_prod, m2_ref])
        )
        out[w, 0], out[w, 1] = errors
        i, j = np.unravel_index(int(np.argmax(change[0])), change[0].shape)
        columns = np.flatnonzero(kept)
        out[w, 7], out[w, 9], out[w, 10] = change[0, i, j], columns[i], columns[j]
        days = np.arange(a, b)[moments.n[a:b] >= MIN_ROWS]
        if len(days) >= 2:
            day_errors, day_change = fit.figures(
                moments.n[days].astype(np.float64), moments.mean[days], moments.m2[days]
            )
            largest = day_change.reshape(len(days), -1).max(axis=1)
            out[w, 2] = float(np.mean(day_errors) - sigma * np.std(day_errors))
            out[w, 3] = float(np.mean(day_errors) + sigma * np.std(day_errors))
            out[w, 8] = float(np.mean(largest) + sigma * np.std(largest))
    return out


@dataclass
class _Fit:
    """A reference window's fit: its means and sds (of the ``kept`` features), correlations and the residual
    projection I - V V^T of its components."""

    mean: np.ndarray
    sd: np.ndarray
    kept: np.ndarray
    reference_corr: np.ndarray
    residual: np.ndarray | None = None

    def figures(self, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reconstruction errors and |correlation - the reference's| (upper triangle) of stacked windows (n (w,),
        mean (w, k), m2 (w, k, k): their rows, means and cross-products about their means)."""
        scale = np.outer(self.sd, self.sd)
        cov = (m2 / n[:, None, None])[:, self.kept][:, :, self.kept]  # each window's own covariance
        shift = (mean - self.mean)[:, self.kept] / self.sd  # its mean, standardised by the reference
        # E[z z^T] of rows standardised by the reference, z = (x - mean) / sd: the covariance plus the shift's square
        z = cov / scale + shift[:, :, None] * shift[:, None, :]
        errors = np.einsum("ij,wij->w", self.residual, z)  # trace((I - V V^T) E[z z^T]), both symmetric
        d = np.sqrt(np.maximum(np.einsum("wii->wi", cov), 1e-300))
        change = np.abs(cov / (d[:, :, None] * d[:, None, :]) - self.reference_corr)
        return errors, np.triu(change, k=1)


def _residual_projection(correlation: np.ndarray, variance: float) -> tuple[np.ndarray, int]:
    """I - V V^T for the fewest leading eigenvectors V whose share of the trace exceeds ``variance``, and their
    number."""
    values, vectors = np.linalg.eigh(correlation)
    values, vectors = values[::-1], vectors[:, ::-1]
    ratio = np.cumsum(np.maximum(values, 0.0)) / np.maximum(values, 0.0).sum()
    keep = min(int(np.searchsorted(ratio, variance, side="right")) + 1, len(values))
    v = vectors[:, :keep]
    return np.eye(len(values)) - v @ v.T, keep
