"""Partial ρ given size, ρ within size bins and the bootstrap interval, against values worked
out by hand; the held-out protocol's splits and that no method reads a held-out label."""
import math

import numpy as np
import pytest

from evaluation import crossval
from evaluation.predictor import model
from evaluation.rank_stats import binned_spearman, bootstrap_interval, partial_spearman, size_bins, spearman
from nas_problem.darts import DartsSpace


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


def test_splits_hold_every_architecture_out_once_per_repeat():
    splits = crossval.splits_of(23, folds=5, repeats=3, seed=0)
    assert len(splits) == 15
    for repeat in range(3):
        held = np.concatenate([held_out for _, held_out in splits[5 * repeat:5 * repeat + 5]])
        assert sorted(held) == list(range(23))
    for train, held_out in splits:
        assert not set(train) & set(held_out) and len(train) + len(held_out) == 23


@pytest.fixture
def small_grid(monkeypatch):
    """One hyper-parameter setting instead of the grid: the protocol is under test, not the trees."""
    monkeypatch.setattr(model, "GRID", {"trees__max_depth": [2], "trees__n_estimators": [30]})


def benchmark(n=30, seed=0):
    rng = np.random.default_rng(seed)
    space = DartsSpace()
    records = [{"id": i, "genotype": space.decode(space.random_x(rng)), "robust_acc": 40 + rng.normal(),
                "trained_network": {"channels": 16, "layers": 8}} for i in range(n)]
    size = [space.count_params(r["genotype"], channels=16, layers=8) for r in records]
    scored = {name: {"scores": list(values), "components": [{"score": v} for v in values], "seconds_per_arch": 0.1}
              for name, values in (("a", rng.normal(size=n)), ("b", rng.normal(size=n)), ("c", size + rng.normal(size=n)))}
    return records, np.array(size), scored


def test_no_method_reads_a_held_out_label(small_grid):
    """Each method's predictions on a held-out fold stay the same when the held-out labels change:
    it fails for any method that fits, selects or ranks with a held-out architecture's accuracy."""
    records, size, scored = benchmark()
    robust = np.array([r["robust_acc"] for r in records])
    config = {"seed": 0}
    rng = np.random.default_rng(5)
    for train, held_out in crossval.splits_of(len(records), folds=3, repeats=1, seed=0):
        changed = robust.copy()
        changed[held_out] = rng.permutation(changed[held_out]) + rng.normal(size=len(held_out))
        for (name, fit), (_, fit_changed) in zip(crossval.methods(records, size, scored, robust, config),
                                                 crossval.methods(records, size, scored, changed, config)):
            predict, choice, _ = fit(train)
            predict_changed, choice_changed, _ = fit_changed(train)
            assert choice == choice_changed, name
            np.testing.assert_array_equal(predict(held_out), predict_changed(held_out), err_msg=name)


def test_the_leak_test_catches_a_leak(small_grid):
    """A method fitted on all rows (train and held out alike) changes with the held-out labels."""
    records, size, scored = benchmark()
    robust = np.array([r["robust_acc"] for r in records])
    train, held_out = crossval.splits_of(len(records), folds=3, repeats=1, seed=0)[0]
    changed = robust.copy()
    changed[held_out] = changed[held_out][::-1] + 1.0
    inputs = crossval.predictor_inputs(records, scored, ["a", "b", "c"])
    leaky = [crossval.predictor(inputs, labels, 0, 0.0)(np.arange(len(records)))[0](held_out)
             for labels in (robust, changed)]
    assert not np.array_equal(*leaky)


def test_cross_validate_table(small_grid):
    records, size, scored = benchmark(n=25)
    table = crossval.cross_validate(records, size, scored, {"seed": 0, "folds": 5, "repeats": 2}, log=lambda _: None)
    methods = [row["method"] for row in table]
    assert methods[:4] == ["params (trained network)", "a", "b", "c"]
    assert "rank ensemble (chosen on training folds)" in methods and methods[-1].startswith("predictor")
    by_name = {row["method"]: row for row in table}
    # the trained size is the conditioning variable: its partial ρ is undefined, its ρ held out is computed
    assert math.isnan(by_name["params (trained network)"]["partial_mean"])
    assert by_name["c"]["spearman_mean"] == pytest.approx(np.mean([
        spearman(np.array(scored["c"]["scores"])[h], np.array([r["robust_acc"] for r in records])[h])
        for _, h in crossval.splits_of(25, 5, 2, 0)]))
    assert by_name["rank ensemble (chosen on training folds)"]["seconds_per_arch"] > 0
