"""Reproduction operators: validity, bounds, the parameter budget, node alignment, and the
pymoo algorithms they plug into."""
import numpy as np
import pytest
from pymoo.algorithms.moo.moead import MOEAD
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions

from helpers import CheapArchitectureProblem
from nas_problem import BudgetError, DartsSpace, get_space
from nas_problem.budget import smallest_architecture
from operators import (BudgetSampling, CanonicalDuplicateElimination, NodeCrossover, NodeMutation,
                       NodeRepair, default_operators)

SEEDS = range(30)
WIDTH = 4  # genes per node block


class OnlyTheseFit(CheapArchitectureProblem):
    """A budget that exactly the given vectors satisfy: forces every fallback path."""

    def __init__(self, fitting):
        super().__init__(max_params=1.0)
        self.fitting = {tuple(np.asarray(x, dtype=int)) for x in fitting}

    def params_of(self, x):
        return 0.0 if tuple(np.asarray(x, dtype=int)) in self.fitting else 100.0


def assert_valid_in_budget(problem, X):
    X = np.asarray(X)
    assert np.issubdtype(X.dtype, np.integer)
    assert np.all(X >= problem.xl) and np.all(X <= problem.xu)
    for x in X:
        assert problem.space.is_valid(x), x
        if problem.max_params is not None:
            assert problem.params_of(x) <= problem.max_params


def sample(problem, n, seed):
    return BudgetSampling().do(problem, n, random_state=np.random.default_rng(seed)).get("X")


def cross(problem, parents_a, parents_b, seed, crossover=None):
    """Children of matings (parents_a[k], parents_b[k]): rows [0, n) are first children."""
    crossover = crossover or NodeCrossover()
    pop = Population.new("X", np.concatenate([parents_a, parents_b]))
    n = len(parents_a)
    matings = np.column_stack([np.arange(n), np.arange(n, 2 * n)])
    return crossover.do(problem, pop, matings, random_state=np.random.default_rng(seed)).get("X")


def blocks(x):
    return np.asarray(x).reshape(-1, WIDTH)


# ----------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [None, 6.0, 2.5])
def test_sampling_gives_valid_distinct_architectures_in_budget(budget):
    problem = CheapArchitectureProblem(max_params=budget)
    for seed in SEEDS:
        X = sample(problem, 20, seed)
        assert X.shape == (20, problem.n_var)
        assert_valid_in_budget(problem, X)
        assert len({problem.space.canonical_key(x) for x in X}) == 20


def test_sampling_is_reproducible_from_the_random_state():
    problem = CheapArchitectureProblem(max_params=3.0)
    assert np.array_equal(sample(problem, 10, 7), sample(problem, 10, 7))
    assert not np.array_equal(sample(problem, 10, 7), sample(problem, 10, 8))


def test_sampling_rejects_an_impossible_budget_precisely():
    problem = CheapArchitectureProblem(max_params=0.1)
    _, smallest = smallest_architecture(problem)
    assert 1.0 < smallest < 2.0
    with pytest.raises(BudgetError, match=r"max_params=0.1 M is below the smallest architecture of the darts space "
                                          + rf"\({smallest:.3f} M\)"):
        sample(problem, 5, 0)
    with pytest.raises(BudgetError, match="below the smallest architecture"):
        default_operators(problem)


@pytest.mark.parametrize("space", ["darts", "nb201"])
def test_sampling_fills_a_barely_possible_budget(space):
    problem = CheapArchitectureProblem(space=get_space(space))
    _, smallest = smallest_architecture(problem)
    problem.max_params = smallest + 0.05  # uniform draws essentially never fit this
    X = BudgetSampling(max_tries=5).do(problem, 6, random_state=np.random.default_rng(0)).get("X")
    assert_valid_in_budget(problem, X)


# ----------------------------------------------------------------------------------------------
# crossover
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [None, 2.5])
def test_crossover_children_are_node_aligned_valid_and_in_budget(budget):
    problem = CheapArchitectureProblem(max_params=budget)
    mixed = 0
    for seed in SEEDS:
        A, B = sample(problem, 10, seed), sample(problem, 10, 1000 + seed)
        children = cross(problem, A, B, seed)
        assert children.shape == (20, problem.n_var)
        assert_valid_in_budget(problem, children)
        for k, child in enumerate(children):
            a, b = A[k % 10], B[k % 10]
            from_a = np.all(blocks(child) == blocks(a), axis=1)
            from_b = np.all(blocks(child) == blocks(b), axis=1)
            assert np.all(from_a | from_b)
            # two cut points -> at most two switches of source parent along the blocks
            source = np.where(from_a & ~from_b, 0, np.where(from_b & ~from_a, 1, -1))
            source = source[source >= 0]
            assert np.count_nonzero(np.diff(source)) <= 2
            mixed += from_a.any() and from_b.any() and not from_a.all() and not from_b.all()
    assert mixed > 100  # children really mix their parents


def test_crossover_without_budget_gives_complementary_children():
    problem = CheapArchitectureProblem(max_params=None)
    A, B = sample(problem, 10, 0), sample(problem, 10, 1)
    children = cross(problem, A, B, 3)
    first, second = children[:10], children[10:]
    assert np.array_equal(np.where(first == A, B, A), second)


def test_crossover_child_over_budget_falls_back_to_its_parent():
    space = DartsSpace()
    rng = np.random.default_rng(0)
    A = np.array([space.random_x(rng) for _ in range(5)])
    B = np.array([space.random_x(rng) for _ in range(5)])
    problem = OnlyTheseFit(np.concatenate([A, B]))
    children = cross(problem, A, B, 0)
    assert np.array_equal(children[:5], A) and np.array_equal(children[5:], B)


# ----------------------------------------------------------------------------------------------
# mutation
# ----------------------------------------------------------------------------------------------
def mutate(problem, X, seed, mutation=None):
    mutation = mutation or NodeMutation()
    return mutation.do(problem, Population.new("X", X), random_state=np.random.default_rng(seed)).get("X")


@pytest.mark.parametrize("budget", [None, 2.5])
def test_mutation_changes_at_most_one_gene_per_block_and_keeps_validity(budget):
    problem = CheapArchitectureProblem(max_params=budget)
    changed_blocks = 0
    for seed in SEEDS:
        X = sample(problem, 20, seed)
        Y = mutate(problem, X, seed)
        assert_valid_in_budget(problem, Y)
        changed_genes = (blocks(X.ravel()) != blocks(Y.ravel())).sum(axis=1)
        assert np.all(changed_genes <= 1)
        changed_blocks += np.count_nonzero(changed_genes)
    rate = changed_blocks / (len(SEEDS) * 20 * 8)
    assert 0.07 < rate < 0.16  # about 1/8 (a little less under a budget)


def test_mutation_with_certain_block_probability_changes_exactly_one_gene_everywhere():
    problem = CheapArchitectureProblem(max_params=None)
    X = sample(problem, 30, 0)
    Y = mutate(problem, X, 0, NodeMutation(block_prob=1.0))
    changed_genes = (blocks(X.ravel()) != blocks(Y.ravel())).sum(axis=1)
    assert np.all(changed_genes == 1)
    assert all(problem.space.canonical_key(x) != problem.space.canonical_key(y) for x, y in zip(X, Y))
    # node 0 of each cell reads the two cell inputs: only its operations can change
    for x, y in zip(X, Y):
        for block in (0, 4):
            assert np.array_equal(x[block * 4 + np.array([0, 2])], y[block * 4 + np.array([0, 2])])


def test_mutation_over_budget_keeps_the_unmutated_vector():
    space = DartsSpace()
    rng = np.random.default_rng(0)
    X = np.array([space.random_x(rng) for _ in range(10)])
    problem = OnlyTheseFit(X)
    assert np.array_equal(mutate(problem, X, 0, NodeMutation(block_prob=1.0)), X)


# ----------------------------------------------------------------------------------------------
# repair and duplicates
# ----------------------------------------------------------------------------------------------
def test_repair_makes_blocks_valid_integer_in_bounds_and_canonical():
    problem = CheapArchitectureProblem(max_params=None)
    rng = np.random.default_rng(0)
    X = rng.uniform(problem.xl - 1.0, problem.xu + 1.0, size=(200, problem.n_var))
    X[:, 2::4] = X[:, 0::4]  # every node reads one state twice
    Y = NodeRepair().do(problem, Population.new("X", X), random_state=rng).get("X")
    assert_valid_in_budget(problem, Y)
    assert np.all(Y[:, 0::4] < Y[:, 2::4])  # canonical: smaller input first


def test_repair_keeps_the_architecture_of_valid_vectors_and_is_deterministic_without_random_state():
    problem = CheapArchitectureProblem(max_params=None)
    X = sample(problem, 20, 0)
    repair = NodeRepair()
    Y = repair.do(problem, Population.new("X", X)).get("X")
    assert [problem.space.canonical_key(x) for x in X] == [problem.space.canonical_key(y) for y in Y]
    broken = X.copy()
    broken[:, 2::4] = broken[:, 0::4]
    first = repair.do(problem, Population.new("X", broken)).get("X")
    second = repair.do(problem, Population.new("X", broken)).get("X")
    assert np.array_equal(first, second)


def test_repair_prefers_an_input_that_keeps_the_budget_and_otherwise_keeps_validity():
    space = DartsSpace()
    x = space.random_x(np.random.default_rng(0))
    x[20:24] = [0, 3, 0, 5]  # reduce-cell node 1 reads state 0 twice; state 1 or 2 would be valid
    only_state_2 = x.copy()
    only_state_2[22] = 2
    for seed in range(20):
        y = NodeRepair().do(OnlyTheseFit([only_state_2]), Population.new("X", x[None]),
                            random_state=np.random.default_rng(seed)).get("X")[0]
        assert np.array_equal(y, space.canonical_x(only_state_2))
        y = NodeRepair().do(OnlyTheseFit([]), Population.new("X", x[None]),
                            random_state=np.random.default_rng(seed)).get("X")[0]
        assert space.is_valid(y)


def test_duplicate_elimination_compares_architectures():
    space = DartsSpace()
    rng = np.random.default_rng(0)
    x = space.random_x(rng)
    swapped = x.copy()
    swapped[8:12] = x[[10, 11, 8, 9]]  # the two edges of normal node 2 listed the other way round
    other = space.random_x(rng)
    eliminate = CanonicalDuplicateElimination(space)
    kept = eliminate.do(Population.new("X", np.array([x, swapped, other])))
    assert len(kept) == 2 and np.array_equal(kept.get("X"), [x, other])
    against = eliminate.do(Population.new("X", np.array([swapped, other])), Population.new("X", np.array([x])))
    assert np.array_equal(against.get("X"), [other])
    with pytest.raises(RuntimeError, match="no search space"):
        CanonicalDuplicateElimination().do(Population.new("X", np.array([x, swapped])))


# ----------------------------------------------------------------------------------------------
# stock pymoo algorithms with the default operators
# ----------------------------------------------------------------------------------------------
def test_default_operators_are_the_node_operators():
    problem = CheapArchitectureProblem()
    ops = default_operators(problem)
    assert set(ops) == {"sampling", "crossover", "mutation", "repair"}
    assert isinstance(ops["sampling"], BudgetSampling) and isinstance(ops["crossover"], NodeCrossover)
    with pytest.raises(TypeError, match="not an architecture problem"):
        default_operators(Problem(n_var=2, n_obj=2, xl=0, xu=1))


@pytest.mark.parametrize("name", ["nsga2", "moead"])
def test_stock_algorithms_keep_validity_and_budget(name):
    problem = CheapArchitectureProblem(max_params=2.5)
    if name == "nsga2":
        algorithm = NSGA2(pop_size=20, **default_operators(problem))
    else:
        algorithm = MOEAD(get_reference_directions("uniform", 2, n_partitions=15), n_neighbors=5,
                          **default_operators(problem))
    res = minimize(problem, algorithm, ("n_gen", 6), seed=2)
    assert len(res.pop) == (20 if name == "nsga2" else 16)
    assert_valid_in_budget(problem, res.pop.get("X"))
    assert_valid_in_budget(problem, res.X)
    if name == "nsga2":  # X-based duplicate elimination sees canonical vectors
        keys = [problem.space.canonical_key(x) for x in res.pop.get("X")]
        assert len(set(keys)) == len(keys)
