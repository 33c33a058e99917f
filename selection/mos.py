"""Multi-objective selection (MOS, paper §3.4, docs/design.md §6): a Tchebycheff ranking keeps the
best, k-means over the next ones keeps a diverse few; and a variant beyond the paper that
keeps the front's whole width."""
from __future__ import annotations

import numpy as np
from pymoo.core.survival import Survival
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.ref_dirs import get_reference_directions
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


def flagged(pop) -> np.ndarray:
    """The members MOS leaves out: those the problem marked ``flagged`` (no valid score) and any
    with a non-finite objective (a failed evaluation of a problem that sets no mark)."""
    F = np.asarray(pop.get("F"), dtype=float)
    marked = np.array([bool(mark) for mark in pop.get("flagged")], dtype=bool)
    return marked | ~np.all(np.isfinite(F), axis=1)


def spread_along(Fn: np.ndarray, closeness: np.ndarray, n: int) -> np.ndarray:
    """Positions of ``n`` points of one front spread along it: round robin over ``n`` Tchebycheff
    weight vectors spread evenly from (1, 0) to (0, 1), each taking its best point not yet taken
    (equal g: the smaller ``closeness``)."""
    weights = get_reference_directions("uniform", Fn.shape[1], n_points=max(n, 1))
    taken = np.zeros(len(Fn), dtype=bool)
    chosen = []
    while len(chosen) < n:
        order = np.lexsort((closeness, tchebycheff(Fn, weights[len(chosen) % len(weights)])))
        best = order[~taken[order]][0]
        taken[best] = True
        chosen.append(best)
    return np.array(chosen, dtype=int)


class MOSSurvival(Survival):
    """The paper's MOS. Keep ``N = n_survive`` of the merged population (2N in TRNAS):

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
    - A flagged individual (:func:`flagged`: no valid score) never wins: it is left out of the
      normalisation, ranking and clustering, gets g = inf, and survives only to fill the slots
      the valid ones cannot, in population order.

    Each survivor carries ``g`` (its Tchebycheff value in this population) and ``mos_set``
    ("top", "cluster", or "flagged" for the fillers). Survivors come back as top, cluster,
    flagged, each in ranking order.
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
            raise ValueError(f"{type(self).__name__} has {len(self.importance)} importance weights but the "
                             f"population has objectives of shape {F.shape}")
        n_survive = len(pop) if n_survive is None else min(n_survive, len(pop))

        is_flagged = flagged(pop)
        valid = np.flatnonzero(~is_flagged)
        n_keep = min(n_survive, len(valid))
        e = min(self.n_clusters, max(n_keep - 1, 0))
        Fn = np.full(F.shape, np.nan)
        g = np.full(len(pop), np.inf)
        ranked = valid[:0]
        if len(valid):
            Fn[valid] = normalise(F[valid])
            order, g[valid] = self._rank(Fn[valid], n_keep - e)
            ranked = valid[order]

        top = ranked[:n_keep - e]
        candidates = ranked[n_keep - e:n_keep + n_survive]
        clustered = self._cluster(Fn, g, candidates, e, random_state)
        fillers = np.flatnonzero(is_flagged)[:n_survive - n_keep]

        survivors = pop[np.concatenate([top, clustered, fillers]).astype(int)]
        survivors.set("g", np.concatenate([g[top], g[clustered], g[fillers]]))
        survivors.set("mos_set", ["top"] * len(top) + ["cluster"] * len(clustered) + ["flagged"] * len(fillers))
        return survivors

    def _rank(self, Fn: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, g) of the normalised valid members: their positions best first (the first
        ``n_top`` form S_top, the next ones S_clu) and each one's g, which the binary
        tournament compares (lower wins)."""
        g = tchebycheff(Fn, self.importance)
        return np.argsort(g, kind="stable"), g

    def _representative(self, points: np.ndarray, members: np.ndarray, center: np.ndarray, g: np.ndarray) -> int:
        """The member of a cluster that survives: the one nearest its centroid (argmin takes the
        first of equal distances, and members come in ranking order)."""
        return members[np.argmin(np.linalg.norm(points[members] - center, axis=1))]

    def _cluster(self, Fn: np.ndarray, g: np.ndarray, candidates: np.ndarray, e: int, random_state) -> np.ndarray:
        """The e members of ``candidates`` (given in ranking order) kept for diversity, in that order."""
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
                chosen.append(self._representative(points, members, center, g[candidates]))
        unchosen = np.setdiff1d(np.arange(len(candidates)), chosen)  # sorted: best ranked first
        chosen = np.sort(np.concatenate([chosen, unchosen[:e - len(chosen)]]).astype(int))
        return candidates[chosen]


class SpreadMOSSurvival(MOSSurvival):
    """MOS beyond the paper, for a front as wide as the population can hold.

    The paper's single importance vector, with the ideal point at the normalised origin, ranks
    the middle of the front first and its two ends last, so S_top gathers around one point,
    and the member nearest a k-means centroid is mostly a dominated one from the inside of
    S_clu. Here instead:

    - S_top (N - e members) takes the merged population's Pareto fronts in turn, the first
      front first; the front that does not fit whole is thinned to the slots left by
      :func:`spread_along` (one member per Tchebycheff weight vector, the vectors spread
      evenly from (1, 0) to (0, 1)), so its two ends and the stretch between survive;
    - S_clu (the rest, by Pareto rank) is clustered by k-means as in the paper, and from each
      cluster its member of the best Pareto rank survives (equal ranks: the one nearest the
      centroid);
    - g, which the binary tournament compares, is the Pareto rank in the merged population.

    Flagged members are handled as in :class:`MOSSurvival`.
    """

    def __init__(self, n_clusters: int = 20, n_obj: int = 2, kmeans_n_init: int = 10):
        super().__init__(n_clusters, importance=np.ones(n_obj), kmeans_n_init=kmeans_n_init)

    def _rank(self, Fn: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray]:
        rank = NonDominatedSorting().do(Fn, return_rank=True)[1]
        closeness = Fn.sum(axis=1)
        top = []
        for front in range(int(rank.max()) + 1):
            room = n_top - len(top)
            if room <= 0:
                break
            members = np.flatnonzero(rank == front)
            members = members[np.argsort(closeness[members], kind="stable")]
            top += list(members if len(members) <= room else members[spread_along(Fn[members], closeness[members], room)])
        rest = np.setdiff1d(np.arange(len(Fn)), top)
        rest = rest[np.lexsort((closeness[rest], rank[rest]))]
        return np.concatenate([top, rest]).astype(int), rank.astype(float)

    def _representative(self, points: np.ndarray, members: np.ndarray, center: np.ndarray, g: np.ndarray) -> int:
        distance = np.linalg.norm(points[members] - center, axis=1)
        return members[np.lexsort((distance, g[members]))[0]]
