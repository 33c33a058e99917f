"""Reproduction operators for architecture vectors: sampling, node-block crossover and
mutation, repair and duplicate elimination, all keeping the parameter budget (docs/design.md §7).

Every operator reads the search space and the budget from the problem pymoo hands its
``_do``, so one instance serves any problem and needs none at construction.
"""
from nas_problem.budget import check_budget

from .crossover import NodeCrossover
from .duplicates import CanonicalDuplicateElimination
from .mutation import NodeMutation
from .repair import NodeRepair
from .sampling import BudgetSampling


def default_operators(problem) -> dict:
    """Keyword arguments for any pymoo genetic algorithm: ``sampling``, ``crossover``,
    ``mutation`` and ``repair``, e.g. ``NSGA2(pop_size=50, **default_operators(problem))`` or
    ``MOEAD(ref_dirs, n_neighbors=15, **default_operators(problem))``.

    There is deliberately no ``eliminate_duplicates`` key: pymoo's MOEA/D passes its own to
    ``GeneticAlgorithm`` and would fail with "multiple values for keyword argument". None is
    needed: ``NodeRepair`` orders each node's edges canonically, so the algorithms' own
    X-based duplicate elimination (NSGA-II's default) already compares architectures. Pass
    ``eliminate_duplicates=CanonicalDuplicateElimination(problem.space)`` yourself to a
    genetic algorithm whose repair you replace.

    The problem is checked here (search space, parameter counter, a possible budget), so a
    bad budget fails at construction with a ``nas_problem.BudgetError`` rather than mid-run."""
    missing = [name for name in ("space", "params_of", "n_var") if not hasattr(problem, name)]
    if missing:
        raise TypeError(f"{type(problem).__name__} is not an architecture problem: it lacks "
                        f"{', '.join(missing)} (see nas_problem.RobustNASProblem)")
    check_budget(problem)
    return dict(sampling=BudgetSampling(), crossover=NodeCrossover(), mutation=NodeMutation(),
                repair=NodeRepair())


__all__ = ["BudgetSampling", "NodeCrossover", "NodeMutation", "NodeRepair",
           "CanonicalDuplicateElimination", "default_operators"]
