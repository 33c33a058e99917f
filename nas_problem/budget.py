"""The parameter budget, read the same way by the problem and by every operator: from an
architecture problem's ``max_params`` (millions; ``None`` or absent: no budget) and its
``params_of(x)``, so operators need no problem at construction."""
from __future__ import annotations

import numpy as np


class BudgetError(ValueError):
    """A parameter budget no architecture of the space can meet."""


def budget_of(problem) -> float | None:
    return getattr(problem, "max_params", None)


def fits_budget(problem, x) -> bool:
    budget = budget_of(problem)
    return budget is None or problem.params_of(x) <= budget


def smallest_architecture(problem) -> tuple[np.ndarray, float]:
    """(x, Params) of the smallest architecture of the problem's space."""
    x = problem.space.encode(problem.space.smallest_genotype())
    return x, float(problem.params_of(x))


def check_budget(problem) -> None:
    """Raise :class:`BudgetError` when no architecture of the space fits ``max_params``."""
    budget = budget_of(problem)
    if budget is None:
        return
    _, smallest = smallest_architecture(problem)
    if not budget >= smallest:  # also catches a NaN budget
        raise BudgetError(f"max_params={budget:g} M is below the smallest architecture of the "
                          f"{problem.space.name} space ({smallest:.3f} M)")
