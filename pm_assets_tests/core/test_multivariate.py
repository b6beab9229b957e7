"""The PCA reconstruction error from per-day moments, against sklearn's PCA on the rows, and what it detects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.decomposition import PCA

from pm_assets.core.multivariate import MIN_ROWS, RECONSTRUCTION, BlockMoments, reconstruction_drift


def _rows_error(reference: np.ndarray, window: np.ndarray, variance: float) -> tuple[float, int]:
    """sklearn: standardise by the reference (ddof 0), PCA with a float n_components, mean squared distance."""
    mean, sd = reference.mean(axis=0), reference.std(axis=0)
    pca = PCA(n_components=variance, svd_solver="full").fit((reference - mean) / sd)
    z = (window - mean) / sd
    return float(np.mean(np.sum((z - pca.inverse_transform(pca.transform(z))) ** 2, axis=1))), pca.n_components_


@pytest.mark.parametrize("seed, variance", [(0, 0.65), (1, 0.9), (2, 0.3)])
def test_reconstruction_error_equals_sklearn_pca_on_the_rows(seed, variance):
    """Windows of days (NaN rows dropped, one day empty, rows outside every block): the production and reference
    errors, the components and the upper threshold (mean + 3 sd of the reference days' errors) equal sklearn's
    on the rows, with values far from 0 (the moments are centred)."""
    rng = np.random.default_rng(seed)
    k, days, per_day = 7, 12, 150
    mixing = rng.normal(size=(k, k))
    x = rng.normal(size=(days * per_day, k)) @ mixing + rng.normal(0, 1000, k)
    x[rng.random(len(x)) < 0.03, rng.integers(0, k)] = np.nan
    blocks = np.repeat(np.arange(days), per_day)
    blocks[blocks == 4] = -1  # outside every block
    blocks[:10] = -1
    moments = BlockMoments.of(x, blocks, days)
    first, middle, stop = np.array([0, 2]), np.array([8, 9]), np.array([12, 11])
    out = reconstruction_drift(moments, first, middle, stop, variance=variance)
    complete = ~np.isnan(x).any(axis=1)
    for w in range(len(first)):

        def rows(a, b):
            return x[(blocks >= a) & (blocks < b) & complete]

        ref, prod = rows(first[w], middle[w]), rows(middle[w], stop[w])
        got = dict(zip(RECONSTRUCTION, out[w], strict=True))
        error, components = _rows_error(ref, prod, variance)
        assert got["production_error"] == pytest.approx(error, rel=1e-9)
        assert got["reference_error"] == pytest.approx(_rows_error(ref, ref, variance)[0], rel=1e-9)
        assert got["components"] == components
        assert (got["reference_rows"], got["production_rows"]) == (len(ref), len(prod))
        day_errors = [
            _rows_error(ref, rows(d, d + 1), variance)[0]
            for d in range(first[w], middle[w])
            if len(rows(d, d + 1)) >= MIN_ROWS
        ]
        assert got["upper_threshold"] == pytest.approx(np.mean(day_errors) + 3 * np.std(day_errors), rel=1e-9)


def test_a_correlation_only_change_raises_the_error_past_the_threshold():
    """Two independent features become correlated (rho 0.9) with unchanged marginals: the error jumps past the
    threshold. The same data without the change stays under it."""
    rng = np.random.default_rng(4)
    days, per_day = 40, 400
    x = rng.normal(size=(days * per_day, 4))
    x[:, 1] = 0.7 * x[:, 0] + math.sqrt(1 - 0.49) * x[:, 1]  # a structure PCA learns
    changed = x.copy()
    late = np.arange(len(x)) >= 30 * per_day
    changed[late, 3] = 0.9 * x[late, 2] + math.sqrt(1 - 0.81) * x[late, 3]
    blocks = np.repeat(np.arange(days), per_day)
    for data, fires in ((x, False), (changed, True)):
        out = reconstruction_drift(BlockMoments.of(data, blocks, days), [0], [30], [40])[0]
        got = dict(zip(RECONSTRUCTION, out, strict=True))
        assert bool(got["production_error"] > got["upper_threshold"]) is fires, got
        assert got["lower_threshold"] < got["reference_error"] < got["upper_threshold"]
        assert np.std(data[late], axis=0) == pytest.approx(np.std(x[late], axis=0), rel=0.05)  # marginals kept


def test_too_few_rows_or_a_constant_reference_leave_it_undefined_or_drop_the_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    blocks = np.repeat(np.arange(4), 100)
    out = reconstruction_drift(BlockMoments.of(x[:, :1].repeat(2, axis=1) * 0 + 1.0, blocks, 4), [0], [2], [4])
    assert np.isnan(out[0, 0])  # every feature constant over the reference: nothing to fit
    few = reconstruction_drift(BlockMoments.of(x, np.where(np.arange(400) < 390, 0, 1), 2), [0], [1], [2])
    assert np.isnan(few[0, 0]) and few[0, RECONSTRUCTION.index("production_rows")] == 10  # a 10-row window
    constant = x.copy()
    constant[:, 2] = 5.0
    got = reconstruction_drift(BlockMoments.of(constant, blocks, 4), [0], [2], [4])
    assert not np.isnan(got[0, 0])  # the constant feature is dropped from the fit, the others measured


def test_the_correlation_change_equals_numpy_corrcoef_and_names_the_pair():
    """The largest |corrcoef(production) - corrcoef(reference)| over the pairs, its pair, and the threshold from
    the reference days (mean + 3 sd of each day's largest change), against numpy on the rows."""
    rng = np.random.default_rng(8)
    days, per_day, k = 20, 300, 5
    x = rng.normal(size=(days * per_day, k)) * [1, 10, 100, 1, 5] + [0, 50, 500, 3, 7]
    late = np.arange(len(x)) >= 15 * per_day
    x[late, 3] = 0.8 * (x[late, 1] - 50) / 10 + 0.6 * (x[late, 3] - 3) + 3  # features 1 and 3 become correlated
    blocks = np.repeat(np.arange(days), per_day)
    got = dict(
        zip(RECONSTRUCTION, reconstruction_drift(BlockMoments.of(x, blocks, days), [0], [15], [20])[0], strict=True)
    )
    ref, prod = x[~late], x[late]
    change = np.abs(np.corrcoef(prod, rowvar=False) - np.corrcoef(ref, rowvar=False))
    upper = np.triu(change, k=1)
    assert got["correlation_change"] == pytest.approx(upper.max(), rel=1e-9)
    assert (got["pair_a"], got["pair_b"]) == (1, 3)
    daily = [
        np.triu(np.abs(np.corrcoef(x[blocks == d], rowvar=False) - np.corrcoef(ref, rowvar=False)), k=1).max()
        for d in range(15)
    ]
    assert got["correlation_threshold"] == pytest.approx(np.mean(daily) + 3 * np.std(daily), rel=1e-9)
    assert got["correlation_change"] > got["correlation_threshold"]


def test_a_windows_figures_do_not_depend_on_the_days_around_it():
    """The same days inside a longer run give the same figures, bit for bit (a chunked backfill equals one run)."""
    rng = np.random.default_rng(12)
    days, per_day = 30, 80
    x = rng.normal(size=(days * per_day, 4)) * [1, 10, 100, 5] + [0, 450, 100, 40]
    blocks = np.repeat(np.arange(days), per_day)
    whole = reconstruction_drift(BlockMoments.of(x, blocks, days), [10], [25], [30])
    tail = reconstruction_drift(BlockMoments.of(x[10 * per_day :], blocks[10 * per_day :] - 10, 20), [0], [15], [20])
    np.testing.assert_array_equal(whole, tail)
