"""Multi-point crossover that cuts only between node blocks (docs/design.md §7)."""
from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover

from nas_problem.budget import fits_budget


class NodeCrossover(Crossover):
    """Two parents -> two children, swapping whole node blocks between ``n_points`` cut points.

    Cuts fall on block boundaries, so every block of a child is a block of one parent and a
    child of valid parents is valid. The two children of a mating share their cut points
    (complementary children); a child over the budget is re-cut alone, up to ``max_tries``
    cut sets in all, and after that becomes a copy of its own parent (child 0 of parent 0,
    child 1 of parent 1). ``prob`` defaults to 1: TRNAS breeds every offspring by crossover
    (paper Algorithm 1); pymoo copies the parents of the matings it skips."""

    def __init__(self, n_points: int = 2, prob: float = 1.0, max_tries: int = 10, **kwargs):
        super().__init__(2, 2, prob=prob, **kwargs)
        if n_points < 1:
            raise ValueError(f"n_points must be at least 1, got {n_points}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.n_points = n_points
        self.max_tries = max_tries

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.rint(X).astype(int)
        _, n_matings, _ = X.shape
        n_blocks = problem.space.n_blocks
        width = problem.space.genes_per_block
        # more cuts than inner boundaries cannot be placed; n_blocks - 1 cuts alternate every block
        n_points = min(self.n_points, n_blocks - 1)

        def draw_cuts():
            return np.sort(random_state.choice(np.arange(1, n_blocks), size=n_points, replace=False))

        def child_of(parents, cuts, first):
            segment = np.searchsorted(cuts, np.arange(n_blocks), side="right")
            source = np.repeat((first + segment) % 2, width)
            return np.where(source == 0, parents[0], parents[1])

        Q = np.empty_like(X)
        for k in range(n_matings):
            parents = X[:, k]
            cuts = draw_cuts()
            for first in (0, 1):
                child = child_of(parents, cuts, first)
                tries = 1
                while not fits_budget(problem, child) and tries < self.max_tries:
                    child = child_of(parents, draw_cuts(), first)
                    tries += 1
                Q[first, k] = child if fits_budget(problem, child) else parents[first]
        return Q
