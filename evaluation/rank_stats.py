"""Rank statistics of a proxy against a benchmark's robust accuracy beyond plain Spearman ρ:
ρ with the network's size held fixed (partial ρ given size, ρ within size bins) and how sure ρ
is (a bootstrap interval). A proxy that only re-measures size scores ≈ 0 on the first two."""
from __future__ import annotations

import math

import numpy as np


def _finite(*columns) -> tuple:
    """The columns as float arrays, restricted to rows where every one is finite."""
    arrays = [np.asarray(c, dtype=float) for c in columns]
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return tuple(a[keep] for a in arrays)


def spearman(x, y) -> float:
    """Spearman ρ over the rows where both are finite; NaN with fewer than 3 or a constant column."""
    from scipy import stats
    x, y = _finite(x, y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def partial_spearman(x, y, size) -> float:
    """Spearman ρ of ``x`` and ``y`` given ``size``: the Pearson partial correlation of their
    ranks, (r_xy − r_xs·r_ys) / √((1 − r_xs²)(1 − r_ys²)). NaN when undefined (fewer than 4
    rows, a constant column, or ``x`` or ``y`` a monotone function of ``size``)."""
    from scipy import stats
    x, y, size = _finite(x, y, size)
    if len(x) < 4 or min(np.ptp(x), np.ptp(y), np.ptp(size)) == 0:
        return math.nan
    r = np.corrcoef([stats.rankdata(x), stats.rankdata(y), stats.rankdata(size)])
    r_xy, r_xs, r_ys = r[0, 1], r[0, 2], r[1, 2]
    denominator = (1 - r_xs ** 2) * (1 - r_ys ** 2)
    if denominator <= 1e-12:
        return math.nan
    return float((r_xy - r_xs * r_ys) / math.sqrt(denominator))


def size_bins(size, n_bins: int = 5) -> list:
    """Row indices of ``n_bins`` bins of (nearly) equal count by ascending size (quintiles for 5);
    rows of equal size fall in the same bin, so a bin may hold a few more or fewer."""
    from scipy import stats
    size = np.asarray(size, dtype=float)
    # a tie takes the bin of its first member
    first_rank = stats.rankdata(size, method="min") - 1
    bin_of = np.minimum(first_rank * n_bins // len(size), n_bins - 1).astype(int)
    return [np.flatnonzero(bin_of == b) for b in range(n_bins) if np.any(bin_of == b)]


def binned_spearman(x, y, size, n_bins: int = 5) -> float:
    """The mean Spearman ρ of ``x`` and ``y`` within ``n_bins`` size bins (bins where ρ is
    undefined are left out; NaN when every bin's is)."""
    x, y, size = _finite(x, y, size)
    rhos = [spearman(x[rows], y[rows]) for rows in size_bins(size, n_bins)] if len(x) else []
    rhos = [rho for rho in rhos if math.isfinite(rho)]
    return float(np.mean(rhos)) if rhos else math.nan


def bootstrap_interval(x, y, seed: int = 0, n_resamples: int = 1000, level: float = 0.95) -> tuple:
    """The percentile bootstrap ``level`` interval of Spearman ρ, architectures resampled with
    replacement (scipy's paired bootstrap, ``n_resamples`` draws from ``seed``); NaNs when ρ
    is undefined. A resample whose scores or accuracies are all equal counts as ρ = 0, which
    widens the interval towards 0 on very small benchmarks (with 20 or more architectures such
    a draw is vanishingly rare)."""
    from scipy import stats
    x, y = _finite(x, y)
    if not math.isfinite(spearman(x, y)):
        return math.nan, math.nan

    def rho(a, b):
        value = stats.spearmanr(a, b).statistic
        return value if math.isfinite(value) else 0.0

    result = stats.bootstrap((x, y), rho, paired=True, vectorized=False, n_resamples=n_resamples,
                             confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
