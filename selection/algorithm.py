"""TRNAS as a pymoo genetic algorithm (paper Algorithm 1, docs/design.md §6-§7)."""
from __future__ import annotations

import numpy as np
from pymoo.algorithms.base.genetic import GeneticAlgorithm
from pymoo.operators.selection.tournament import TournamentSelection, compare
from pymoo.util.display.multi import MultiObjectiveOutput

from nas_problem.budget import check_budget
from operators import BudgetSampling, CanonicalDuplicateElimination, NodeCrossover, NodeMutation, NodeRepair

from .mos import MOSSurvival, SpreadMOSSurvival

# the survivals `mos=` names: the paper's MOS as published, or the variant that keeps the front's width
MOS_VARIANTS = {"paper": lambda n_clusters, importance: MOSSurvival(n_clusters, importance),
                "spread": lambda n_clusters, importance: SpreadMOSSurvival(n_clusters, n_obj=len(importance))}


def _g_of(individual) -> float:
    g = individual.get("g")
    return np.inf if g is None or not np.isfinite(g) else float(g)


def compare_by_g(pop, P, random_state=None, **kwargs):
    """Binary tournament: the smaller constraint violation wins, then the smaller MOS value g
    (an individual without g counts as worst); a tie goes to a random one of the two."""
    S = np.empty(len(P), dtype=int)
    for i, (a, b) in enumerate(P):
        cv_a, cv_b = pop[a].CV[0], pop[b].CV[0]
        if cv_a > 0.0 or cv_b > 0.0:
            S[i] = compare(a, cv_a, b, cv_b, method="smaller_is_better", return_random_if_equal=True,
                           random_state=random_state)
        else:
            S[i] = compare(a, _g_of(pop[a]), b, _g_of(pop[b]), method="smaller_is_better",
                           return_random_if_equal=True, random_state=random_state)
    return S


class TRNASAlgorithm(GeneticAlgorithm):
    """TRNAS: budget-keeping node operators, binary tournament on g, MOS survival.

    Each generation breeds ``n_offsprings`` (default ``pop_size``) children, so the survival
    sees the 2N merged population of the paper. The initial population goes through the
    survival once as well (every member survives), which gives it the g that the first
    tournaments compare. Operators read the search space and budget from the problem at run
    time, so ``TRNASAlgorithm(pop_size=50, n_clusters=20)`` works on any architecture
    problem. ``mos="paper"`` is MOS as published (:class:`MOSSurvival`, weighted by
    ``importance``), ``mos="spread"`` the variant that keeps the front's width
    (:class:`SpreadMOSSurvival`, which needs no importance); ``sampling``, ``selection``, ``crossover``, ``mutation``, ``repair``,
    ``survival`` and ``eliminate_duplicates`` may be replaced by keyword."""

    def __init__(self, pop_size: int = 50, n_clusters: int = 20, importance=(0.5, 0.5), mos="paper", sampling=None,
                 selection=None, crossover=None, mutation=None, repair=None, survival=None,
                 eliminate_duplicates=None, n_offsprings=None, output=None, **kwargs):
        if int(pop_size) != pop_size or pop_size < 1:
            raise ValueError(f"pop_size must be a positive integer, got {pop_size}")
        if survival is None and mos not in MOS_VARIANTS:
            raise ValueError(f"mos must be one of {', '.join(MOS_VARIANTS)}, got {mos!r}")
        # a duplicate elimination made here is bound to each problem's space in _setup
        self._binds_duplicates = eliminate_duplicates is None
        super().__init__(
            pop_size=int(pop_size),
            sampling=sampling if sampling is not None else BudgetSampling(),
            selection=selection if selection is not None else TournamentSelection(func_comp=compare_by_g),
            crossover=crossover if crossover is not None else NodeCrossover(),
            mutation=mutation if mutation is not None else NodeMutation(),
            repair=repair if repair is not None else NodeRepair(),
            survival=survival if survival is not None else MOS_VARIANTS[mos](n_clusters, importance),
            eliminate_duplicates=(eliminate_duplicates if eliminate_duplicates is not None
                                  else CanonicalDuplicateElimination()),
            n_offsprings=n_offsprings,
            output=output if output is not None else MultiObjectiveOutput(),
            advance_after_initial_infill=True,
            **kwargs,
        )
        self.n_clusters = n_clusters
        self.importance = importance
        self.mos = mos

    def _setup(self, problem, **kwargs):
        if not hasattr(problem, "space"):
            raise TypeError(f"TRNASAlgorithm searches architectures; {type(problem).__name__} has no "
                            f"search space (see nas_problem.RobustNASProblem)")
        check_budget(problem)
        if self._binds_duplicates:
            # the same object sits in self.initialization and self.mating, so binding it here reaches both
            self.eliminate_duplicates.space = problem.space
        super()._setup(problem, **kwargs)
