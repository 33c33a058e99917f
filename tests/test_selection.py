"""MOS survival on hand-made populations, and TRNASAlgorithm end to end on a cheap problem."""
import numpy as np
import pytest
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.optimize import minimize

from helpers import CheapArchitectureProblem
from selection import MOSSurvival, SpreadMOSSurvival, TRNASAlgorithm, compare_by_g


TWO_OBJECTIVES = Problem(n_var=1, n_obj=2, xl=0.0, xu=1.0)


def population(F):
    F = np.asarray(F, dtype=float)
    return Population.new("X", np.arange(len(F))[:, None], "F", F)


def survive(F, n_survive, n_clusters, seed=0, **kwargs):
    """Indices (rows of F) of the survivors, and the survivors themselves."""
    survivors = MOSSurvival(n_clusters=n_clusters, **kwargs).do(
        TWO_OBJECTIVES, population(F), n_survive=n_survive, random_state=np.random.default_rng(seed))
    return survivors.get("X")[:, 0].astype(int), survivors


def g_by_hand(F, importance=(0.5, 0.5)):
    F = np.asarray(F, dtype=float)
    span = F.max(axis=0) - F.min(axis=0)
    normalised = np.where(span > 0, (F - F.min(axis=0)) / np.where(span > 0, span, 1), 0.0)
    return np.max(np.asarray(importance) * normalised, axis=1)


def random_front(n, seed):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.1, 2.0, n), rng.uniform(1.5, 6.0, n)])


# ----------------------------------------------------------------------------------------------
# MOSSurvival
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_survive, n_clusters", [(50, 20), (10, 4), (7, 0), (5, 4)])
def test_exactly_n_survive_and_s_top_is_the_best_by_g(n_survive, n_clusters):
    F = random_front(2 * n_survive, seed=n_survive)
    index, survivors = survive(F, n_survive, n_clusters)
    assert len(index) == n_survive == len(set(index))
    g = g_by_hand(F)
    e = min(n_clusters, n_survive - 1)
    best = np.argsort(g, kind="stable")[:n_survive - e]
    top = index[survivors.get("mos_set") == "top"]
    assert np.array_equal(top, best)
    assert np.count_nonzero(survivors.get("mos_set") == "cluster") == e
    assert np.allclose(survivors.get("g"), g[index])
    assert np.all(np.diff(survivors.get("g")) >= 0)  # survivors come back in g order
    # the clustered ones come from the next N + e only
    assert set(index) - set(best) <= set(np.argsort(g, kind="stable")[n_survive - e:2 * n_survive])


def test_one_survivor_per_cluster_the_member_at_its_centroid():
    top = [[0.0, 0.0], [0.1, 0.05], [0.05, 0.1]]
    clusters = [[c + d for c, d in zip(center, delta)]
                for center in ([0.9, 0.3], [0.3, 0.9], [0.7, 0.7])
                for delta in ([0.0, 0.0], [-0.03, 0.01], [0.03, -0.01])]
    F = np.array(top + clusters)  # 12 = 2N rows; each cluster's first member is its mean
    index, survivors = survive(F, n_survive=6, n_clusters=3)
    assert set(index[survivors.get("mos_set") == "top"]) == {0, 1, 2}
    assert set(index[survivors.get("mos_set") == "cluster"]) == {3, 6, 9}


def test_fewer_distinct_points_than_clusters_and_duplicates():
    # two distinct points, each four times, in S_clu; three cluster slots
    F = [[0.0, 0.0], [0.1, 0.1]] + [[0.5, 0.9]] * 4 + [[0.9, 0.5]] * 4
    index, survivors = survive(F, n_survive=5, n_clusters=3)
    assert list(index[survivors.get("mos_set") == "top"]) == [0, 1]
    # one per distinct point (the first in g order: the lower index), then the best-g unchosen
    assert list(index[survivors.get("mos_set") == "cluster"]) == [2, 3, 6]


def test_all_identical_objectives():
    index, survivors = survive([[1.0, 2.0]] * 12, n_survive=6, n_clusters=3)
    assert list(index) == [0, 1, 2, 3, 4, 5]  # ties resolve by population order
    assert np.all(survivors.get("g") == 0.0)  # constant columns normalise to zeros


def test_ties_at_the_top_boundary_resolve_by_index():
    F = [[0.0, 0.0], [0.4, 0.4], [0.4, 0.4], [1.0, 1.0]]
    index, survivors = survive(F, n_survive=2, n_clusters=0)
    assert list(index) == [0, 1]


def test_populations_smaller_than_two_n():
    F = random_front(13, seed=3)
    index, survivors = survive(F, n_survive=10, n_clusters=4)
    assert len(set(index)) == 10
    g = g_by_hand(F)
    assert set(index[survivors.get("mos_set") == "top"]) == set(np.argsort(g, kind="stable")[:6])
    index, _ = survive(F[:8], n_survive=10, n_clusters=4)
    assert sorted(index) == list(range(8))
    index, _ = survive(F[:1], n_survive=10, n_clusters=4)
    assert list(index) == [0]


def test_more_clusters_than_survivors_keeps_the_best():
    F = random_front(20, seed=4)
    index, survivors = survive(F, n_survive=3, n_clusters=20)
    assert len(set(index)) == 3
    assert index[0] == np.argmin(g_by_hand(F))
    assert list(survivors.get("mos_set")) == ["top", "cluster", "cluster"]


def test_reproducible_with_the_same_random_state():
    F = random_front(100, seed=5)
    first, _ = survive(F, n_survive=50, n_clusters=20, seed=11)
    second, _ = survive(F, n_survive=50, n_clusters=20, seed=11)
    assert np.array_equal(first, second)


def test_non_finite_objectives_never_survive_over_finite_ones():
    F = random_front(20, seed=6)
    F[0] = [np.nan, 0.0]   # would be the best Params
    F[1] = [-np.inf, 1.0]  # would be the best score
    F[2] = [0.0, np.inf]
    index, survivors = survive(F, n_survive=10, n_clusters=4)
    assert not {0, 1, 2} & set(index)
    assert np.all(np.isfinite(survivors.get("g")))
    # the finite ones are ranked without the non-finite ones distorting the normalisation
    finite = np.arange(3, 20)
    g = g_by_hand(F[finite])
    assert np.allclose(np.sort(survivors.get("g")), np.sort(g[np.searchsorted(finite, index)]))
    # with no room to drop them they fill the last slots
    index, survivors = survive(F[:12], n_survive=11, n_clusters=4)
    assert set(index[:9]) == set(range(3, 12))  # all nine finite ones first
    assert list(index[9:]) == [0, 1]  # then non-finite ones, in population order
    assert list(survivors.get("mos_set")[9:]) == ["flagged"] * 2
    assert np.all(np.isinf(survivors.get("g")[9:]))


def test_importance_weights_the_objectives():
    F = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]
    index, _ = survive(F, n_survive=1, n_clusters=0, importance=(1.0, 0.1))
    assert list(index) == [0]
    index, _ = survive(F, n_survive=1, n_clusters=0, importance=(0.1, 1.0))
    assert list(index) == [1]
    with pytest.raises(ValueError, match="importance"):
        survive([[0.0, 1.0, 2.0]], n_survive=1, n_clusters=0)


# ----------------------------------------------------------------------------------------------
# tournament and TRNASAlgorithm
# ----------------------------------------------------------------------------------------------
def test_binary_tournament_prefers_lower_g_then_breaks_ties_randomly():
    pop = population([[0.0, 0.0]] * 3)
    pop.set("g", [0.1, 0.5, 0.1])
    rng = np.random.default_rng(0)
    assert list(compare_by_g(pop, np.array([[0, 1], [1, 0], [1, 2]]), random_state=rng)) == [0, 0, 2]
    winners = compare_by_g(pop, np.array([[0, 2]] * 200), random_state=rng)
    assert set(winners) == {0, 2}


def run_trnas(seed, pop_size=10, n_clusters=4, n_gen=4, max_params=3.0):
    problem = CheapArchitectureProblem(max_params=max_params)
    sizes = []

    def record(algorithm):
        sizes.append((len(algorithm.pop), None if algorithm.off is None else len(algorithm.off)))

    res = minimize(problem, TRNASAlgorithm(pop_size=pop_size, n_clusters=n_clusters), ("n_gen", n_gen),
                   seed=seed, callback=record)
    return problem, res, sizes


def test_trnas_end_to_end_keeps_pop_size_budget_and_g():
    problem, res, sizes = run_trnas(seed=1)
    assert len(sizes) == 4 and all(n_pop == 10 for n_pop, _ in sizes)
    assert all(n_off == 10 for _, n_off in sizes[1:])  # the survival sees 2N
    X = res.pop.get("X")
    assert all(problem.space.is_valid(x) and problem.params_of(x) <= 3.0 for x in X)
    keys = [problem.space.canonical_key(x) for x in X]
    assert len(set(keys)) == len(keys)
    g = res.pop.get("g").astype(float)
    assert np.all(np.isfinite(g)) and np.all(g >= 0)
    assert set(res.pop.get("mos_set")) == {"top", "cluster"}


def test_trnas_is_reproducible_with_the_same_seed():
    _, first, _ = run_trnas(seed=5)
    _, second, _ = run_trnas(seed=5)
    _, other, _ = run_trnas(seed=6)
    assert np.array_equal(first.pop.get("X"), second.pop.get("X"))
    assert np.array_equal(first.F, second.F)
    assert not np.array_equal(first.pop.get("X"), other.pop.get("X"))


def test_trnas_rejects_problems_it_cannot_search():
    with pytest.raises(ValueError, match="below the smallest architecture"):
        minimize(CheapArchitectureProblem(max_params=0.5), TRNASAlgorithm(pop_size=4, n_clusters=1), ("n_gen", 1))
    with pytest.raises(TypeError, match="search space"):
        minimize(TWO_OBJECTIVES, TRNASAlgorithm(pop_size=4, n_clusters=1), ("n_gen", 1))


# ----------------------------------------------------------------------------------------------
# the spread variant
# ----------------------------------------------------------------------------------------------
def spread(F, n_survive, n_clusters, seed=0):
    survivors = SpreadMOSSurvival(n_clusters=n_clusters).do(
        TWO_OBJECTIVES, population(F), n_survive=n_survive, random_state=np.random.default_rng(seed))
    return survivors.get("X")[:, 0].astype(int), survivors


# a front of 9 from (0, 1) to (1, 0), and 9 dominated points behind its middle
FRONT = [[i / 8, (1 - i / 8) ** 2] for i in range(9)]
BEHIND = [[0.6 + 0.01 * i, 0.6 + 0.01 * i] for i in range(9)]


def test_paper_mos_keeps_the_middle_and_drops_both_ends_of_the_front():
    index, survivors = survive(FRONT + BEHIND, n_survive=6, n_clusters=0)
    assert 0 not in index and 8 not in index
    assert set(index) & set(range(9, 18))  # a dominated point survives over the front's ends


def test_spread_keeps_both_ends_and_the_front_before_anything_dominated():
    index, survivors = spread(FRONT + BEHIND, n_survive=6, n_clusters=0)
    assert {0, 8} <= set(index) and set(index) <= set(range(9))
    assert np.all(survivors.get("g") == 0)  # g is the Pareto rank
    index, survivors = spread(FRONT + BEHIND, n_survive=9, n_clusters=0)
    assert sorted(index) == list(range(9))


def test_spread_keeps_from_each_cluster_its_best_ranked_member():
    # S_top takes the two ends; two clusters remain, each a dominated point at its centroid and a
    # non-dominated one beside it
    F = [[0.0, 1.0], [1.0, 0.0], [0.3, 0.62], [0.31, 0.61], [0.62, 0.3], [0.61, 0.31], [0.3, 0.6], [0.6, 0.3]]
    index, survivors = spread(F, n_survive=4, n_clusters=2)
    assert set(index[survivors.get("mos_set") == "top"]) == {0, 1}
    assert set(index[survivors.get("mos_set") == "cluster"]) == {6, 7}


def test_trnas_with_the_spread_selection_runs_and_is_reproducible():
    problem = CheapArchitectureProblem(max_params=3.0)
    runs = [minimize(problem, TRNASAlgorithm(pop_size=8, n_clusters=3, mos="spread"), ("n_gen", 3), seed=4)
            for _ in range(2)]
    assert np.array_equal(runs[0].pop.get("X"), runs[1].pop.get("X"))
    assert set(runs[0].pop.get("mos_set")) == {"top", "cluster"}
    with pytest.raises(ValueError, match="mos must be one of paper, spread"):
        TRNASAlgorithm(mos="fancy")
