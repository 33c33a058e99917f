import json
import math

import numpy as np
import pytest
from pymoo.algorithms.moo.moead import MOEAD
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.ref_dirs import get_reference_directions

from evaluation.registry import Proxy, proxy
from nas_problem import BudgetError, Genotype, RobustNASProblem
from operators import default_operators
from selection import TRNASAlgorithm
from trnas import make_problem


class CountingProxy(Proxy):
    """A cheap deterministic proxy for testing the problem's bookkeeping: psi counts the
    convolution edges, phi the distinct inputs; `poison` marks genotypes that score NaN."""

    name = "counting"
    direction = 1
    calls = 0

    def __init__(self, poison=(), **config):
        self.poison = set(poison)
        self.config = {"poison": sorted(self.poison)}

    def measure(self, genotype, images, labels, seed):
        CountingProxy.calls += 1
        if genotype.key() in self.poison:
            return {"psi": float("nan"), "phi": 1.0}
        convs = sum(op.endswith(("conv_3x3", "conv_5x5")) for op, _ in genotype.normal + genotype.reduce)
        inputs = len({i for _, i in genotype.normal + genotype.reduce})
        return {"psi": 1.0 + convs, "phi": float(inputs)}

    def is_valid(self, components):
        return all(math.isfinite(v) and v > 0 for v in components.values())

    def calibrate(self, components):
        good = [c for c in components if self.is_valid(c)]
        return {"max_psi": max(c["psi"] for c in good)}

    def score(self, components, calibration):
        if not self.is_valid(components):
            return float("nan")
        return components["psi"] / calibration["max_psi"] * 100 + components["phi"]


@proxy("counting_for_tests")
def counting_for_tests(preset=None, device=None, num_classes=10, mean=None, std=None, **config):
    return CountingProxy(**config)


def make(**kwargs):
    options = dict(proxy="counting_for_tests", preset=None, n_calibration=8, seed=0)
    options.update(kwargs)
    return make_problem(**options)


def random_X(problem, n, seed):
    rng = np.random.default_rng(seed)
    return np.array([problem.space.random_x(rng) for _ in range(n)])


def test_objectives_are_inverse_score_and_params():
    problem = make()
    X = random_X(problem, 5, 1)
    F = problem.evaluate(X, return_values_of=["F"])
    for x, (inverse, params) in zip(X, F):
        record = problem.score_genotypes([problem.decode(x)])[0]
        assert inverse == pytest.approx(1.0 / problem.r_score(record))
        assert params == pytest.approx(problem.params_of(x))


def test_a_score_does_not_depend_on_the_population_it_sits_in():
    problem = make()
    X = random_X(problem, 12, 2)
    alone = problem.evaluate(X[:1], return_values_of=["F"])
    together = problem.evaluate(X, return_values_of=["F"])
    assert np.array_equal(alone[0], together[0])


def test_archive_caches_across_problems_and_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "archive.jsonl"
    first = make(archive=path)
    X = random_X(first, 10, 3)
    F1 = first.evaluate(X, return_values_of=["F"])
    lines = path.read_text().splitlines()
    assert len(lines) == first.n_scored == len({first.decode(x).key() for x in X}) + 8
    with open(path, "a") as stream:
        stream.write('{"key": "torn')
    CountingProxy.calls = 0
    second = make(archive=path)
    F2 = second.evaluate(X, return_values_of=["F"])
    assert CountingProxy.calls == 0 and second.n_scored == 0
    assert np.array_equal(F1, F2)
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_search_killed_mid_batch_keeps_every_architecture_scored_before(tmp_path, monkeypatch):
    path = tmp_path / "archive.jsonl"
    problem = make(archive=path, n_calibration=0)
    genotypes = [problem.decode(x) for x in random_X(problem, 8, 5)]
    measure = CountingProxy.measure

    def killed_on_the_fourth(self, genotype, *args):
        if CountingProxy.calls == 3:
            raise KeyboardInterrupt
        return measure(self, genotype, *args)

    monkeypatch.setattr(CountingProxy, "measure", killed_on_the_fourth)
    CountingProxy.calls = 0
    with pytest.raises(KeyboardInterrupt):
        problem.score_genotypes(genotypes)
    # the three scored before the kill are on disk, not lost with the batch
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == [g.key() for g in genotypes[:3]]
    monkeypatch.setattr(CountingProxy, "measure", measure)
    CountingProxy.calls = 0
    resumed = make(archive=path, n_calibration=0)
    resumed.score_genotypes(genotypes)
    assert CountingProxy.calls == resumed.n_scored == 5 and resumed.n_reused == 3


def test_architectures_all_archived_do_not_call_the_evaluator(tmp_path):
    path = tmp_path / "archive.jsonl"
    problem = make(archive=path, n_calibration=0)
    genotypes = [problem.decode(x) for x in random_X(problem, 4, 6)]
    scored = problem.score_genotypes(genotypes)

    def no_call(jobs):  # a Ray evaluator that lost a worker raises on every call, even an empty one
        raise AssertionError(f"the evaluator was called with {len(jobs)} jobs")

    problem.scorer.evaluator = no_call
    assert problem.score_genotypes(genotypes) == scored and problem.n_reused == 4


def test_a_different_proxy_configuration_does_not_reuse_the_cache(tmp_path):
    path = tmp_path / "archive.jsonl"
    make(archive=path).evaluate(random_X(make(), 3, 4))
    other = make(archive=path, seed=1)
    other.evaluate(random_X(other, 3, 4))
    assert other.n_scored > 0


def test_scores_from_an_older_revision_of_the_proxy_code_are_not_reused(tmp_path, monkeypatch):
    path = tmp_path / "archive.jsonl"
    first = make(archive=path)
    X = random_X(first, 4, 4)
    first.evaluate(X)
    archived = len(path.read_text().splitlines())
    monkeypatch.setattr(CountingProxy, "revision", CountingProxy.revision + 1)
    CountingProxy.calls = 0
    newer = make(archive=path)
    newer.evaluate(X)
    # calibration and population rescored; the old records stay in the file
    assert newer.proxy_id != first.proxy_id
    assert CountingProxy.calls == newer.n_scored == archived
    assert len(path.read_text().splitlines()) == 2 * archived


def test_a_non_finite_score_is_flagged_and_ranked_worst():
    problem = make()
    X = random_X(problem, 8, 5)
    poisoned = problem.decode(X[0])
    problem = make(proxy_kwargs={"poison": [poisoned.key()]})
    F = problem.evaluate(X, return_values_of=["F"])
    record = problem.score_genotypes([poisoned])[0]
    assert record["valid"] is False
    assert F[0, 0] > F[1:, 0].max() and F[0, 1] > F[1:, 1].max()
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    assert 0 not in front


def test_an_impossible_budget_is_refused():
    with pytest.raises(BudgetError, match="below the smallest architecture"):
        make(max_params=0.01)
    with pytest.raises(BudgetError, match=r"below the smallest architecture of the nb201 space"):
        make(space="nb201", max_params=0.01)


def test_the_operators_check_the_budget_of_any_space():
    problem = make(space="nb201", max_params=0.5)
    assert set(default_operators(problem)) == {"sampling", "crossover", "mutation", "repair"}
    problem.max_params = 0.01
    with pytest.raises(BudgetError, match="below the smallest architecture of the nb201 space"):
        default_operators(problem)


def test_the_problem_takes_any_scorer_and_needs_nothing_else_from_evaluation():
    class ListScorer:
        """The Scorer contract in a few lines: CountingProxy's formula, in this thread."""
        proxy, device, num_classes, identity = CountingProxy(), "cpu", 10, {"proxy": "list"}

        def __init__(self):
            self.jobs = []

        def __call__(self, jobs):
            self.jobs += jobs
            for position, (genotype, seed) in enumerate(jobs):
                yield position, (self.proxy.measure(genotype, None, None, seed), 0.0, 1, None)

        def close(self):
            pass

    scorer = ListScorer()
    problem = RobustNASProblem(scorer, "darts", max_params=4.0, n_calibration=3)
    F = problem.evaluate(random_X(problem, 4, 7), return_values_of=["F"])
    assert np.all(np.isfinite(F)) and len(scorer.jobs) == 3 + 4
    assert problem.archive.records[0]["device"] == "cpu"


def test_the_constraint_can_be_exposed():
    problem = make(expose_constraint=True, max_params=3.0)
    X = random_X(problem, 4, 6)
    G = problem.evaluate(X, return_values_of=["G"])
    assert np.allclose(G[:, 0], [problem.params_of(x) - 3.0 for x in X])


@pytest.mark.parametrize("name", ["trnas", "nsga2", "moead"])
def test_every_algorithm_runs_and_keeps_the_budget(name):
    problem = make(max_params=3.5)
    operators = default_operators(problem)
    algorithm = {"trnas": lambda: TRNASAlgorithm(pop_size=8, n_clusters=3),
                 "nsga2": lambda: NSGA2(pop_size=8, **operators),
                 "moead": lambda: MOEAD(get_reference_directions("uniform", 2, n_points=8), n_neighbors=4,
                                        **operators)}[name]()
    result = minimize(problem, algorithm, ("n_gen", 4), seed=3)
    for x in result.pop.get("X"):
        assert problem.space.is_valid(x) and problem.params_of(x) <= 3.5


@pytest.mark.parametrize("name", ["trnas", "nsga2", "moead"])
def test_design_snippet_with_rscore_is_reproducible(name):
    """docs/design.md §8 with small sizes, for each algorithm: the same seed gives the same front twice
    on the CPU."""
    fronts = []
    for _ in range(2):
        problem = make_problem(space="darts", dataset="digits", proxy="rscore", preset="reference", max_params=6.0,
                               device="cpu", seed=0, n_calibration=4, proxy_kwargs={"psi_inits": 4})
        algorithm = {"trnas": lambda: TRNASAlgorithm(pop_size=4, n_clusters=2),
                     "nsga2": lambda: NSGA2(pop_size=4, **default_operators(problem)),
                     "moead": lambda: MOEAD(get_reference_directions("uniform", 2, n_points=4), n_neighbors=2,
                                            **default_operators(problem))}[name]()
        result = minimize(problem, algorithm, ("n_gen", 2), seed=1)
        fronts.append((result.opt.get("X"), result.opt.get("F")))
        assert isinstance(problem.decode(np.atleast_2d(result.X)[0]), Genotype)
    assert np.array_equal(fronts[0][0], fronts[1][0])
    assert np.array_equal(fronts[0][1], fronts[1][1])


def test_a_search_runs_on_the_nas_bench_201_space_with_rscore():
    problem = make_problem(space="nb201", dataset="digits", proxy="rscore", preset="reference", max_params=None,
                           device="cpu", seed=0, n_calibration=3, proxy_kwargs={"psi_inits": 2})
    result = minimize(problem, TRNASAlgorithm(pop_size=4, n_clusters=1), ("n_gen", 2), seed=0)
    assert result.X.shape[1] == 6
    assert str(problem.decode(result.X[0])).startswith("|")
    assert np.all(np.isfinite(result.F))


def test_a_search_runs_with_a_zoo_proxy_on_the_batch_it_asks_for():
    # zoo proxies take the batch they are given unless n_images is set (their config then holds None)
    problem = make_problem(dataset="digits", proxy="snip", device="cpu", seed=0, n_calibration=0)
    assert problem.scorer.evaluator.images.shape[0] == 16
    sized = make_problem(dataset="digits", proxy="snip", device="cpu", seed=0, n_calibration=0,
                         proxy_kwargs={"n_images": 8})
    assert sized.scorer.evaluator.images.shape[0] == 8
    result = minimize(problem, TRNASAlgorithm(pop_size=4, n_clusters=1), ("n_gen", 2), seed=0)
    assert np.all(np.isfinite(result.F)) and np.all(result.F > 0)
    assert all(record["valid"] and record["proxy"] == "snip" for record in problem.archive.records_of(problem.proxy_id))
