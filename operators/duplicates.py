"""Duplicate elimination by architecture, not by vector (docs/design.md §3)."""
from __future__ import annotations

from pymoo.core.duplicate import DuplicateElimination


class CanonicalDuplicateElimination(DuplicateElimination):
    """Two individuals are duplicates when ``space.canonical_key`` of their vectors agree, so
    a node whose two edges are listed in the other order is the same architecture.

    pymoo hands duplicate eliminations populations only, never the problem, so the space is
    given at construction, or bound later by ``TRNASAlgorithm`` from the problem it solves.
    (pymoo's ``HashDuplicateElimination`` cannot be reused: it applies its function twice.)"""

    def __init__(self, space=None):
        super().__init__()
        self.space = space

    def key(self, individual) -> str:
        if self.space is None:
            raise RuntimeError("CanonicalDuplicateElimination has no search space: construct it as "
                               "CanonicalDuplicateElimination(problem.space)")
        return self.space.canonical_key(individual.X)

    def _do(self, pop, other, is_duplicate):
        if other is None:
            seen = set()
            for i, individual in enumerate(pop):
                key = self.key(individual)
                is_duplicate[i] = key in seen
                seen.add(key)
        else:
            others = {self.key(individual) for individual in other}
            for i, individual in enumerate(pop):
                is_duplicate[i] = self.key(individual) in others
        return is_duplicate
