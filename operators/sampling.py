"""Initial population: uniform valid architectures inside the parameter budget (docs/design.md §7)."""
from __future__ import annotations

import numpy as np
from pymoo.core.sampling import Sampling

from nas_problem.budget import check_budget, fits_budget, smallest_architecture


def shrink_into_budget(problem, x: np.ndarray, random_state: np.random.Generator) -> np.ndarray:
    """Walk ``x`` towards the smallest architecture until it fits the budget: first its
    operations, in random order, become the cheapest operation; then whole node blocks, in
    random order, become the smallest architecture's blocks. Ends inside any possible budget."""
    space = problem.space
    smallest, _ = smallest_architecture(problem)
    width = space.genes_per_block
    x = x.copy()
    op_positions = [b * width + j for b in range(space.n_blocks) for j in space.op_genes]
    for position in random_state.permutation(op_positions):
        if fits_budget(problem, x):
            return x
        x[position] = smallest[position]
    for block in random_state.permutation(space.n_blocks):
        if fits_budget(problem, x):
            return x
        x[block * width:(block + 1) * width] = smallest[block * width:(block + 1) * width]
    return x


class BudgetSampling(Sampling):
    """Uniformly drawn valid architectures within ``problem.max_params``, canonically distinct.

    Each individual is redrawn up to ``max_tries`` times while it is over the budget or
    repeats an architecture already drawn. A budget that is possible but so tight that
    uniform draws keep missing it gets the rest of its individuals by shrinking a uniform draw
    into the budget (``shrink_into_budget``); this biases them towards cheap operations, which
    is the only way to fill such a population in bounded time. A budget below the smallest
    architecture raises ``nas_problem.BudgetError``."""

    def __init__(self, max_tries: int = 200):
        super().__init__()
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.max_tries = max_tries

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        check_budget(problem)
        space = problem.space
        X = np.empty((n_samples, problem.n_var), dtype=int)
        seen = set()
        for i in range(n_samples):
            for _ in range(self.max_tries):
                x = space.random_x(random_state)
                if space.canonical_key(x) not in seen and fits_budget(problem, x):
                    break
            else:
                x = shrink_into_budget(problem, space.random_x(random_state), random_state)
            seen.add(space.canonical_key(x))
            X[i] = x
        return X
