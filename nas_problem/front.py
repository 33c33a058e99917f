"""Non-dominated sets of archive records: the result of a search, whichever algorithm ran it."""
from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def nondominated(records: list[dict], objectives) -> list[dict]:
    """The records whose ``objectives`` (one row each, all minimised) no other record's
    dominate, ordered by their second objective, then their first; records with equal
    objectives are all kept."""
    if not records:
        return []
    F = np.asarray(objectives, dtype=float).reshape(len(records), -1)
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    front = front[np.lexsort((F[front, 0], F[front, -1]))]
    return [records[i] for i in front]
