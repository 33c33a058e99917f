"""Multi-objective selection (MOS, paper §3.4, docs/design.md §6): a Tchebycheff ranking keeps the
best, k-means over the next ones keeps a diverse few."""
from __future__ import annotations

import numpy as np
from pymoo.core.survival import Survival
from sklearn.cluster import KMeans


def normalise(F: np.ndarray) -> np.ndarray:
    """Min-max scale each column to [0, 1]; a constant column becomes zeros."""
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(hi > lo, (F - lo) / span, 0.0)


def tchebycheff(Fn: np.ndarray, importance, ideal=None) -> np.ndarray:
    """g = max_j I_j * |f_j - z_j| (paper Eq. 7); the ideal z is the origin of the normalised
    objectives unless given."""
    ideal = np.zeros(Fn.shape[1]) if ideal is None else np.asarray(ideal, dtype=float)
    return np.max(np.asarray(importance, dtype=float) * np.abs(Fn - ideal), axis=1)


class MOSSurvival(Survival):
    """Keep ``N = n_survive`` of the merged population (2N in TRNAS):

    1. F is min-max normalised per column over the population and ranked by the Tchebycheff
       value g with importance ``importance``; the sort is stable, so equal g keeps the
       population order (lower index first), which makes ties deterministic.
    2. S_top = the best N - e by g survive.
    3. S_clu = the next N + e (or whatever remains) are clustered by k-means (scikit-learn,
       ``kmeans_n_init`` restarts, seeded by an integer drawn from pymoo's ``random_state``)
       into e clusters on their normalised objectives; from each cluster the member nearest
       its centroid survives (equal distances: the better g).

    Edge cases, decided here:
    - e is clipped to N - 1, so the best individual by g always survives (elitism); with
      N = 1 only the best survives.
    - When S_clu holds at most e members they all survive, without clustering.
    - When S_clu has fewer distinct objective vectors than e, each distinct vector is its own
      cluster (k-means with k = the number of points) and the remaining slots go to the
      best-g members of S_clu not yet chosen; duplicates therefore survive only when nothing
      else is left.
    - An individual with any non-finite objective (NaN, +inf or -inf: a flagged or failed
      evaluation) never wins: it is left out of the normalisation, ranking and clustering,
      gets g = inf, and survives only to fill the slots the finite ones cannot.

    Each survivor carries ``g`` (its Tchebycheff value in this population) and ``mos_set``
    ("top", "cluster", or "nonfinite" for the fillers). Survivors come back ordered by g.
    """

    def __init__(self, n_clusters: int = 20, importance=(0.5, 0.5), kmeans_n_init: int = 10):
        super().__init__(filter_infeasible=True)
        if int(n_clusters) != n_clusters or n_clusters < 0:
            raise ValueError(f"n_clusters must be a non-negative integer, got {n_clusters}")
        importance = np.asarray(importance, dtype=float)
        if importance.ndim != 1 or not np.all(np.isfinite(importance)) or np.any(importance < 0):
            raise ValueError(f"importance must be a vector of non-negative weights, got {importance.tolist()}")
        self.n_clusters = int(n_clusters)
        self.importance = importance
        self.kmeans_n_init = kmeans_n_init

    def _do(self, problem, pop, *args, n_survive=None, random_state=None, **kwargs):
        F = np.asarray(pop.get("F"), dtype=float)
        if F.ndim != 2 or F.shape[1] != len(self.importance):
            raise ValueError(f"MOSSurvival has {len(self.importance)} importance weights but the "
                             f"population has objectives of shape {F.shape}")
        n_survive = len(pop) if n_survive is None else min(n_survive, len(pop))

        finite = np.all(np.isfinite(F), axis=1)
        Fn = np.full(F.shape, np.nan)
        g = np.full(len(pop), np.inf)
        if finite.any():
            Fn[finite] = normalise(F[finite])
            g[finite] = tchebycheff(Fn[finite], self.importance)
        ranked = np.argsort(g, kind="stable")  # infinite g sorts last
        ranked_finite, ranked_nonfinite = ranked[:finite.sum()], ranked[finite.sum():]

        n_keep = min(n_survive, len(ranked_finite))
        e = min(self.n_clusters, max(n_keep - 1, 0))
        top = ranked_finite[:n_keep - e]
        candidates = ranked_finite[n_keep - e:n_keep + n_survive]
        clustered = self._cluster(Fn, candidates, e, random_state)
        fillers = ranked_nonfinite[:n_survive - n_keep]

        survivors = pop[np.concatenate([top, clustered, fillers]).astype(int)]
        survivors.set("g", np.concatenate([g[top], g[clustered], g[fillers]]))
        survivors.set("mos_set", ["top"] * len(top) + ["cluster"] * len(clustered)
                      + ["nonfinite"] * len(fillers))
        return survivors

    def _cluster(self, Fn: np.ndarray, candidates: np.ndarray, e: int, random_state) -> np.ndarray:
        """The e members of ``candidates`` (given in g order) kept for diversity, in g order."""
        if len(candidates) <= e:
            return candidates
        if e == 0:
            return candidates[:0]
        points = Fn[candidates]
        distinct, labels = np.unique(points, axis=0, return_inverse=True)
        labels = labels.reshape(-1)
        if len(distinct) <= e:
            centers = distinct
        else:
            kmeans = KMeans(n_clusters=e, n_init=self.kmeans_n_init,
                            random_state=int(random_state.integers(2 ** 31 - 1))).fit(points)
            labels, centers = kmeans.labels_, kmeans.cluster_centers_

        chosen = []
        for cluster, center in enumerate(centers):
            members = np.flatnonzero(labels == cluster)
            if len(members):
                # argmin takes the first of equal distances: members are in g order
                chosen.append(members[np.argmin(np.linalg.norm(points[members] - center, axis=1))])
        unchosen = np.setdiff1d(np.arange(len(candidates)), chosen)  # sorted: best g first
        chosen = np.sort(np.concatenate([chosen, unchosen[:e - len(chosen)]]).astype(int))
        return candidates[chosen]
