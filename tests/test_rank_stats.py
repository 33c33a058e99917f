"""Partial ρ given size, ρ within size bins and the bootstrap interval, against values worked
out by hand."""
import math

import numpy as np
import pytest

from evaluation.rank_stats import binned_spearman, bootstrap_interval, partial_spearman, size_bins, spearman


def test_partial_spearman_by_hand():
    # ranks equal the values; r_xy = 0.8, r_xs = 0.8, r_ys = 0.3 (1 − 6Σd²/(n(n²−1)) with Σd² = 4, 4, 14),
    # so partial = (0.8 − 0.8·0.3) / √((1 − 0.64)(1 − 0.09)) = 0.56 / √0.3276
    x, y, s = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 3, 2, 5, 4]
    assert spearman(x, y) == pytest.approx(0.8)
    assert partial_spearman(x, y, s) == pytest.approx(0.56 / math.sqrt(0.3276))
    # ranks, not values: a monotone transform of any column changes nothing
    assert partial_spearman(np.exp(x), np.array(y) ** 3, np.log(s)) == pytest.approx(0.56 / math.sqrt(0.3276))


def test_partial_spearman_is_zero_for_a_proxy_that_only_measures_size():
    rng = np.random.default_rng(0)
    size = rng.normal(size=200)
    robust = size + rng.normal(size=200)
    assert spearman(size * 2, robust) > 0.5
    assert math.isnan(partial_spearman(size * 2, robust, size))  # x a monotone function of size
    noisy = size + 1e-3 * rng.normal(size=200)
    assert abs(partial_spearman(noisy, robust, size)) < 0.2


def test_size_bins_are_quantiles_and_keep_ties_together():
    assert [list(b) for b in size_bins([5, 4, 3, 2, 1, 0, 6, 7, 8, 9])] == [[4, 5], [2, 3], [0, 1], [6, 7], [8, 9]]
    assert [len(b) for b in size_bins([1, 1, 1, 2, 3, 4, 5, 6, 7, 8])] == [3, 1, 2, 2, 2]


def test_binned_spearman_by_hand():
    size = np.arange(10)
    x = np.array([1, 2, 3, 4, 5, 5, 4, 3, 2, 1], dtype=float)
    y = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], dtype=float)
    # two bins: sizes 0–4 (ρ = 1) and 5–9 (ρ = −1); mean 0
    assert binned_spearman(x, y, size, n_bins=2) == pytest.approx(0.0)
    y[5:] = y[5:][::-1]
    assert binned_spearman(x, y, size, n_bins=2) == pytest.approx(1.0)
    # bins of two rows have no ρ: nothing left to average
    assert math.isnan(binned_spearman(x, y, size, n_bins=5))


def test_bootstrap_interval():
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    y = x + rng.normal(size=80)
    low, high = bootstrap_interval(x, y, seed=3, n_resamples=500)
    assert low < spearman(x, y) < high and high - low < 0.5
    assert bootstrap_interval(x, y, seed=3, n_resamples=500) == (low, high)
    assert bootstrap_interval(x, 2 * x, seed=0, n_resamples=200) == pytest.approx((1.0, 1.0))
    assert all(math.isnan(v) for v in bootstrap_interval(x, np.ones(80)))
