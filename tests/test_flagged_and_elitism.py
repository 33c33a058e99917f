"""Flagged architectures never shape survival (TRNAS, NSGA-II, MOEA/D), and a search reports the
front of everything it evaluated, not of what its last population kept."""
import csv
import json
import re

import numpy as np
import pytest
from pymoo.algorithms.moo.moead import MOEAD
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions

from helpers import cheap_problem
from nas_problem import FLAGGED_OBJECTIVE
from operators import default_operators
from selection import MOSSurvival, SpreadMOSSurvival, TRNASAlgorithm, normalise, tchebycheff
from trnas.cli import main


def evaluated_population(n=16, n_poisoned=5, seed=0):
    """A population the problem evaluated, its first ``n_poisoned`` members flagged."""
    plain = cheap_problem()
    rng = np.random.default_rng(seed)
    X = np.array([plain.space.random_x(rng) for _ in range(n)])
    problem = cheap_problem(poison=[plain.decode(x).key() for x in X[:n_poisoned]])
    out = problem.evaluate(X, return_as_dictionary=True)
    pop = Population.new("X", X, "F", out["F"], "flagged", out["flagged"])
    return problem, pop, np.arange(n_poisoned)


def test_a_flagged_architecture_is_worse_than_any_valid_one_in_every_objective_and_marked():
    problem, pop, poisoned = evaluated_population()
    F, marks = pop.get("F"), pop.get("flagged").astype(bool)
    assert list(np.flatnonzero(marks)) == list(poisoned)
    assert np.all(F[poisoned] == FLAGGED_OBJECTIVE) and np.all(np.isfinite(F))
    assert np.all(F[~marks] < FLAGGED_OBJECTIVE)


@pytest.mark.parametrize("survival", [MOSSurvival(n_clusters=3), SpreadMOSSurvival(n_clusters=3)])
def test_mos_scales_and_clusters_without_the_flagged_and_chooses_them_last(survival):
    problem, pop, poisoned = evaluated_population()
    valid = np.setdiff1d(np.arange(len(pop)), poisoned)
    survivors = survival.do(problem, pop, n_survive=8, random_state=np.random.default_rng(0))
    kept = [int(np.flatnonzero(np.all(pop.get("X") == x, axis=1))[0]) for x in survivors.get("X")]
    assert not set(kept) & set(poisoned)
    if isinstance(survival, MOSSurvival) and not isinstance(survival, SpreadMOSSurvival):
        # g as if the flagged were not there at all: they take no part in the scaling
        g = tchebycheff(normalise(pop.get("F")[valid]), (0.5, 0.5))
        assert np.allclose(survivors.get("g"), g[np.searchsorted(valid, kept)])
    # more slots than valid members: all valid first, then the flagged fill the rest
    survivors = survival.do(problem, pop, n_survive=13, random_state=np.random.default_rng(0))
    assert list(survivors.get("mos_set")[-2:]) == ["flagged"] * 2
    assert not any(survivors.get("flagged")[:11])


def test_nsga2_keeps_every_valid_architecture_before_any_flagged_one():
    problem, pop, poisoned = evaluated_population()
    survival = NSGA2(pop_size=8).survival
    for n_survive in (8, 11):
        survivors = survival.do(problem, pop, n_survive=n_survive, random_state=np.random.default_rng(0))
        assert not any(survivors.get("flagged"))
    survivors = survival.do(problem, pop, n_survive=12, random_state=np.random.default_rng(0))
    assert sum(survivors.get("flagged")) == 1


def test_moead_never_lets_a_flagged_offspring_replace_and_replaces_a_flagged_member():
    problem, pop, poisoned = evaluated_population(n=10, n_poisoned=3)
    algorithm = MOEAD(get_reference_directions("uniform", 2, n_points=10), n_neighbors=10,
                      **default_operators(problem))
    algorithm.setup(problem, seed=0)
    valid = pop[3:]
    # every slot, the two extreme weights (one weight 0) included, held by a valid architecture
    algorithm.pop = Population.merge(valid, valid[:3])
    algorithm.ideal = algorithm.pop.get("F").min(axis=0)
    before = algorithm.pop.get("X").copy()
    for k in range(10):
        algorithm._replace(k, pop[0])
    assert np.array_equal(algorithm.pop.get("X"), before)
    # flagged members in every slot: the first valid offspring takes over each neighbourhood
    algorithm.pop = Population.merge(pop[:3], pop[:3], pop[:3], pop[:1])
    algorithm.ideal = valid.get("F").min(axis=0)
    algorithm._replace(0, valid[0])
    assert not any(algorithm.pop.get("flagged"))


@pytest.mark.parametrize("name", ["trnas-paper", "trnas-spread", "nsga2"])
def test_a_search_with_many_flagged_keeps_none_while_valid_ones_suffice(name):
    problem = cheap_problem(poison_every=3, max_params=4.0)
    algorithm = {"trnas-paper": lambda: TRNASAlgorithm(pop_size=8, n_clusters=3, mos="paper"),
                 "trnas-spread": lambda: TRNASAlgorithm(pop_size=8, n_clusters=3, mos="spread"),
                 "nsga2": lambda: NSGA2(pop_size=8, **default_operators(problem))}[name]()
    seen = []
    minimize(problem, algorithm, ("n_gen", 5), seed=2, callback=lambda a: seen.append(a.pop.get("flagged")))
    flagged = [problem.archive.get(problem.proxy_id, key)["valid"] is False for key in problem.evaluated]
    assert sum(flagged) > 5  # the test means something
    assert not any(seen[-1].astype(bool))


# ----------------------------------------------------------------------------------------------
# elitism
# ----------------------------------------------------------------------------------------------
def test_the_front_keeps_what_a_later_population_dropped():
    problem = cheap_problem()
    rng = np.random.default_rng(3)
    X = np.array([problem.space.random_x(rng) for _ in range(30)])
    problem.evaluate(X[:15])
    first = problem.elitist_front()
    best = max(first, key=problem.r_score)
    # the best score the progress line shows, kept as evaluated: the front's best, by hand
    assert problem.best_score == problem.r_score(best)
    problem.evaluate(X[15:])
    front = problem.elitist_front()
    everything = [problem.archive.get(problem.proxy_id, key) for key in dict.fromkeys(problem.evaluated)]
    scores = {r["key"]: (problem.r_score(r), r["params"]) for r in everything}

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    front_keys = {r["key"] for r in front}
    # non-dominated among everything evaluated, and everything else is dominated by it
    assert not any(dominates(scores[o], scores[k]) for k in front_keys for o in scores)
    assert all(any(dominates(scores[k], scores[o]) or scores[k] == scores[o] for k in front_keys)
               for o in scores if o not in front_keys)
    assert max(problem.r_score(r) for r in front) >= problem.r_score(best)
    assert problem.best_score == max(problem.r_score(r) for r in everything if r["valid"])
    assert problem.elitist_front(15) == first  # the first n evaluations' front
    assert [r["params"] for r in front] == sorted(r["params"] for r in front)


def read_csv(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("mos", ["paper", "spread"])
def test_a_search_reports_the_front_of_everything_it_evaluated(tmp_path, capsys, mos):
    out = tmp_path / mos
    assert main(["search", "proxy=cheap_rscore", "preset=null", "device=cpu", "pop_size=6", "n_clusters=2",
                 "n_gen=6", "n_calibration=6", f"mos={mos}", f"out_dir={out}"]) == 0
    lines = capsys.readouterr().out
    best = [float(v) for v in re.findall(r"best R-Score +([0-9.]+)", lines)]
    assert len(best) == 6 and best == sorted(best)  # the best shown never falls
    evaluated, front = read_csv(out / "evaluations.csv"), read_csv(out / "front.csv")
    population = read_csv(out / "population.csv")
    assert len(population) == 6
    points = {r["key"]: (float(r["r_score"]), float(r["params_m"])) for r in evaluated}
    non_dominated = {k for k, p in points.items()
                     if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points.values())}
    assert {r["key"] for r in front} == non_dominated
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_rscore"]["r_score"] == pytest.approx(max(p[0] for p in points.values()))
    assert best[-1] == pytest.approx(summary["best_rscore"]["r_score"], abs=0.01)
