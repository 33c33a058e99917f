"""Repair: integer, in-bounds, valid and canonically ordered decision vectors (docs/design.md §3)."""
from __future__ import annotations

import numpy as np
from pymoo.core.repair import Repair

from nas_problem.budget import fits_budget


class NodeRepair(Repair):
    """Round to integers, clip into ``[xl, xu]``, make every node's two inputs differ
    (``space.repair_block``) and order each node's two edges canonically.

    The node operators of this package never break validity; this repair is what makes
    foreign operators (pymoo's float ones, user crossovers) and hand-made initial
    populations safe. The canonical order makes equal architectures equal vectors, so an
    algorithm whose duplicate elimination compares ``X`` (pymoo's default, e.g. NSGA-II)
    compares architectures, with no special ``eliminate_duplicates`` argument.

    The budget: a repaired input can change the parameter count (a strided skip becomes a
    factorized reduction), so invalid blocks are redrawn up to ``max_tries`` times to land
    inside the budget; when none does, validity wins (an invalid cell cannot be built at all)
    and the vector is left over budget, for the problem's constraint, if exposed, to report.
    Vectors that were valid already are never changed beyond their order, so a repair never
    pushes an in-budget vector out of it.

    Randomness comes from pymoo's ``random_state``; pymoo's built-in operator repair
    (``Operator.repair``) calls without one, and then a generator seeded by the vectors
    themselves keeps the repair reproducible."""

    def __init__(self, max_tries: int = 10):
        super().__init__()
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.max_tries = max_tries

    def _do(self, problem, X, random_state=None, **kwargs):
        space = problem.space
        width = space.genes_per_block
        X = np.clip(np.rint(np.asarray(X, dtype=float)), space.xl, space.xu).astype(int)
        if random_state is None:
            random_state = np.random.default_rng((X - space.xl).ravel())  # seeds must be non-negative
        for i, x in enumerate(X):
            invalid = space.invalid_blocks(x)
            if len(invalid):
                for _ in range(self.max_tries):
                    y = x.copy()
                    for block in invalid:
                        y[block * width:(block + 1) * width] = space.repair_block(
                            block, y[block * width:(block + 1) * width], random_state)
                    if fits_budget(problem, y):
                        break
                x = y
            X[i] = space.canonical_x(x)
        return X
