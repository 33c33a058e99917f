"""The held-out protocol (``trnas correlate --cv``): its splits, its table, and that no method
reads a held-out label (with a check that the leak test can fail)."""
import math

import numpy as np
import pytest

from evaluation import crossval
from evaluation.predictor import model
from evaluation.rank_stats import spearman
from nas_problem.darts import DartsSpace


@pytest.fixture
def small_grid(monkeypatch):
    """One hyper-parameter setting instead of the grid: the protocol is under test, not the trees."""
    monkeypatch.setattr(model, "GRID", {"trees__max_depth": [2], "trees__n_estimators": [30]})


def benchmark(n=30, seed=0):
    """Random DARTS records with noise accuracies and three proxies: "a", "b" and "c", the last an
    R-Score by name (positive scores), so the blended predictor is among the methods."""
    rng = np.random.default_rng(seed)
    space = DartsSpace()
    records = [{"id": i, "genotype": space.decode(space.random_x(rng)), "robust_acc": 40 + rng.normal(),
                "trained_network": {"channels": 16, "layers": 8}} for i in range(n)]
    size = [space.count_params(r["genotype"], channels=16, layers=8) for r in records]
    scored = {name: {"scores": list(values), "components": [{"score": v} for v in values], "seconds_per_arch": 0.1,
                     "proxy": proxy}
              for name, proxy, values in (("a", "naswot", rng.normal(size=n)), ("b", "synflow", rng.normal(size=n)),
                                          ("c", "rscore", np.exp(np.array(size) + rng.normal(size=n))))}
    return records, np.array(size), scored


def test_splits_hold_every_architecture_out_once_per_repeat():
    splits = crossval.splits_of(23, folds=5, repeats=3, seed=0)
    assert len(splits) == 15
    for repeat in range(3):
        held = np.concatenate([held_out for _, held_out in splits[5 * repeat:5 * repeat + 5]])
        assert sorted(held) == list(range(23))
    for train, held_out in splits:
        assert not set(train) & set(held_out) and len(train) + len(held_out) == 23


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
    assert "rank ensemble (chosen on training folds)" in methods
    assert methods[-2:] == ["predictor: graph features + trained size, blended with c",
                            "predictor: graph features + trained size + a, b, c"]
    by_name = {row["method"]: row for row in table}
    # the trained size is the conditioning variable: its partial ρ is undefined, its ρ held out is computed
    assert math.isnan(by_name["params (trained network)"]["partial_mean"])
    assert by_name["c"]["spearman_mean"] == pytest.approx(np.mean([
        spearman(np.array(scored["c"]["scores"])[h], np.array([r["robust_acc"] for r in records])[h])
        for _, h in crossval.splits_of(25, 5, 2, 0)]))
    assert by_name["rank ensemble (chosen on training folds)"]["seconds_per_arch"] > 0


def test_an_architecture_a_proxy_could_not_score_is_a_missing_input():
    records, _, scored = benchmark(n=6)
    for position in (0, 3):  # the first row too: its columns must not decide the others'
        scored["a"]["components"][position] = {"error": 1.0}
    inputs = crossval.predictor_inputs(records, scored, ["a", "b"])
    plain = crossval.predictor_inputs(records, scored, [])
    assert inputs.shape == (6, plain.shape[1] + 2)
    assert (np.isnan(inputs).sum(axis=1) == [1, 0, 0, 1, 0, 0]).all()
