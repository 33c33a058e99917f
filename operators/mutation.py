"""Node-block mutation: redraw one input or operation of a node (docs/design.md §7)."""
from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation

from nas_problem.budget import fits_budget

class NodeMutation(Mutation):
    """Each node block mutates with probability ``block_prob`` (default 1 / number of blocks,
    i.e. 1/8 in DARTS), changing exactly one of its genes (``space.mutate_block``).

    Which blocks mutate is decided once per individual; when the result is over the budget
    only the new gene values are redrawn, up to ``max_tries`` times, and after that the
    individual stays unmutated. pymoo's per-individual ``prob`` stays 1 so that the block
    probability alone sets the rate."""

    def __init__(self, block_prob: float | None = None, max_tries: int = 10, **kwargs):
        super().__init__(prob=1.0, **kwargs)
        if block_prob is not None and not 0.0 <= block_prob <= 1.0:
            raise ValueError(f"block_prob must lie in [0, 1], got {block_prob}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.block_prob = block_prob
        self.max_tries = max_tries

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        space = problem.space
        X = np.rint(X).astype(int)
        p = 1.0 / space.n_blocks if self.block_prob is None else self.block_prob
        Xp = X.copy()
        for i, x in enumerate(X):
            blocks = np.flatnonzero(random_state.random(space.n_blocks) < p)
            if len(blocks) == 0:
                continue
            for _ in range(self.max_tries):
                y = x.copy()
                width = space.genes_per_block
                for block in blocks:
                    block_genes = slice(block * width, (block + 1) * width)
                    y[block_genes] = space.mutate_block(block, y[block_genes], random_state)
                if fits_budget(problem, y):
                    Xp[i] = y
                    break
        return Xp
