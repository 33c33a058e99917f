"""RobustNASProblem: the pymoo Problem of a training-free robust architecture search (docs/design.md §4)."""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from typing import Any, Iterator, Protocol

import numpy as np
from pymoo.core.problem import Problem

from .archive import Archive
from .budget import check_budget, fits_budget
from .front import nondominated
from .genotype import Genotype
from .spaces import get_space

# the first objective as a function of the score: the paper's 1 / R-Score, or −log R-Score,
# which spreads high scores as evenly as low ones
OBJECTIVES = {"inverse": lambda score: 1.0 / score, "neglog": lambda score: -np.log(score)}

# every objective of a flagged architecture (no valid score): worse than any valid value, so
# every valid architecture dominates it (NSGA-II ranks it last, MOEA/D never lets it replace a
# valid one), yet finite, so decompositions with a zero weight and crowding distances stay
# numbers. MOS leaves it out by its "flagged" mark.
FLAGGED_OBJECTIVE = float(np.finfo(float).max)


class Scorer(Protocol):
    """What the problem needs from whatever scores its architectures (``evaluation.make_scorer``
    builds one): the proxy (its name, revision and config; validity, calibration and score of
    its components), the device it scores on, the number of classes of its data, its identity
    (what besides the search seed and space decides a score) and a call that scores
    ``(genotype, seed)`` jobs, yielding ``(position, (components, seconds, threads, device))``
    as each one finishes."""

    proxy: Any
    device: Any
    num_classes: int
    identity: dict

    def __call__(self, jobs: list) -> Iterator[tuple]: ...

    def close(self) -> None: ...


class RobustNASProblem(Problem):
    """Minimise ``[1 / R-Score, Params]`` over a search space, Params in millions of parameters
    of the evaluation network (``objective="neglog"``: ``[−log R-Score, Params]``).

    ``scorer`` scores the architectures (:class:`Scorer`: in process, or on Ray workers, as
    ``evaluation.make_scorer`` chose); ``trnas.make_problem`` builds both from a search config in
    one call. The budget ``max_params`` is kept by the operators (``operators.default_operators``),
    so algorithms without constraint handling work unchanged; ``expose_constraint=True`` also
    reports it as ``G = Params - max_params``. Scores are normalised with a calibration sample
    of ``n_calibration`` random architectures drawn once (seeded), so an architecture's score
    does not depend on the population it sits in. Every evaluation goes to ``archive`` (a path
    or an :class:`Archive`), which doubles as a cache. Each architecture's proxy seed depends on
    the search seed and the architecture alone, so scores do not depend on the scorer's order,
    batching or workers.

    An architecture without a valid score is flagged: it gets ``FLAGGED_OBJECTIVE`` in every
    objective and the output ``flagged``. ``evaluated`` lists the key of every architecture
    evaluated through pymoo, in order, and :meth:`elitist_front` is what they found.
    """

    def __init__(self, scorer: Scorer, space="darts", max_params=6.0, seed=0, n_calibration=64, archive=None,
                 expose_constraint=False, include_none=False, objective="inverse"):
        self.scorer = scorer
        self.proxy = scorer.proxy
        self.device = scorer.device
        self.num_classes = scorer.num_classes
        self.space = get_space(space, include_none=include_none) if isinstance(space, str) else space
        self.max_params = None if max_params is None else float(max_params)
        self.seed = int(seed)
        self.n_calibration = int(n_calibration)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.objective = objective
        check_budget(self)
        identity = {**scorer.identity, "seed": self.seed, "space": self.space.name}
        self.proxy_id = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.archive = archive if isinstance(archive, Archive) else Archive(archive)
        self.calibration = None
        self.n_scored = 0
        self.n_reused = 0
        # another run on the same scorer and archive takes a problem of its own: another_run()
        self.evaluated: list[str] = []
        # the largest usable score evaluated so far: what the progress lines show, kept as scored
        # rather than recomputed from the whole front every generation
        self.best_score = math.nan
        super().__init__(n_var=self.space.n_var, n_obj=2, n_ieq_constr=1 if expose_constraint else 0,
                         xl=self.space.xl, xu=self.space.xu, vtype=int)

    def params_of(self, x) -> float:
        return self.space.count_params(self.space.decode(x), num_classes=self.num_classes)

    # ----- scoring -----
    def architecture_seed(self, key: str) -> int:
        """Each architecture's proxy randomness depends on the search seed and the architecture
        alone, so scores do not depend on evaluation order, batching or workers."""
        return (self.seed * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 31)

    def score_genotypes(self, genotypes: list, role="search") -> list[dict]:
        """Archive records for ``genotypes``, scoring only those the archive does not hold."""
        keys = [g.key() for g in genotypes]
        missing = {}
        for genotype, key in zip(genotypes, keys):
            if self.archive.get(self.proxy_id, key) is None and key not in missing:
                missing[key] = genotype
        self.n_reused += sum(1 for key in keys if key not in missing)
        if missing:  # when all are archived the scorer is not called at all
            self._score(list(missing.items()), role)
        return [self.archive.get(self.proxy_id, key) for key in keys]

    def _score(self, items: list, role: str):
        """Score ``(key, genotype)`` items through the scorer, archiving each record as it comes
        back: a search killed mid-batch keeps all it scored."""
        jobs = [(genotype, self.architecture_seed(key)) for key, genotype in items]
        for position, (components, seconds, threads, device) in self.scorer(jobs):
            key, genotype = items[position]
            self.archive.add([{
                "key": key, "genotype": str(genotype), "x": self.space.encode(genotype).tolist(),
                "proxy": self.proxy.name, "proxy_id": self.proxy_id, "components": components,
                "valid": bool(self.proxy.is_valid(components)),
                "params": self.space.count_params(genotype, num_classes=self.num_classes),
                "flops": self.space.count_flops(genotype, num_classes=self.num_classes),
                "seconds": seconds, "device": device or str(self.device), "threads": threads, "role": role}])
            self.n_scored += 1

    def calibrate(self):
        """Draw the calibration sample (seeded, within the budget) and fix the normalisation."""
        if self.calibration is not None or self.n_calibration <= 0:
            return self.calibration
        rng = np.random.default_rng([self.seed, 0xCA11B])
        genotypes = []
        while len(genotypes) < self.n_calibration:
            x = self.space.random_x(rng)
            if fits_budget(self, x):
                genotypes.append(self.space.decode(x))
        records = self.score_genotypes(genotypes, role="calibration")
        self.calibration = self.proxy.calibrate([r["components"] for r in records])
        return self.calibration

    def r_score(self, record: dict) -> float:
        return float(self.proxy.score(record["components"], self.calibration)) if record["valid"] else float("nan")

    def usable_score(self, record: dict) -> float:
        """The record's R-Score where it can rank an architecture (finite and positive), else NaN:
        one rule for the objectives, the elitist front, the best score and the comparison."""
        score = self.r_score(record)
        return score if math.isfinite(score) and score > 0 else math.nan

    def _evaluate(self, X, out, *args, **kwargs):
        self.calibrate()
        genotypes = [self.space.decode(x) for x in X]
        records = self.score_genotypes(genotypes)
        self.evaluated += [record["key"] for record in records]
        scores = np.array([self.usable_score(r) for r in records])
        params = np.array([r["params"] for r in records], dtype=float)
        flagged = np.isnan(scores)
        if not flagged.all():
            self.best_score = float(np.nanmax([self.best_score, *scores[~flagged]]))
        first = OBJECTIVES[self.objective](np.where(flagged, 1.0, scores))
        out["F"] = np.where(flagged[:, None], FLAGGED_OBJECTIVE, np.column_stack([first, params]))
        out["flagged"] = flagged
        if self.n_ieq_constr:
            out["G"] = (params - (self.max_params if self.max_params is not None else np.inf)).reshape(-1, 1)

    def elitist_front(self, n_evaluations: int | None = None) -> list[dict]:
        """Archive records of the non-dominated set, in R-Score and Params, of every valid
        architecture in ``evaluated`` (its first ``n_evaluations`` when given), by Params: what
        the search found, whichever of it its final population kept. The calibration sample
        is not part of it: it is no evaluation of the search."""
        scored = [(record, self.usable_score(record))
                  for record in (self.archive.get(self.proxy_id, key) for key in dict.fromkeys(self.evaluated[:n_evaluations]))]
        scored = [(record, score) for record, score in scored if not math.isnan(score)]
        return nondominated([record for record, _ in scored], [(-score, record["params"]) for record, score in scored])

    def another_run(self, objective: str | None = None) -> "RobustNASProblem":
        """A problem on the same scorer, archive and calibration, so nothing is scored twice, with
        an evaluation log of its own and, when given, another objective form: one per run when
        several searches share what is scored (``trnas compare``). Closing either closes the
        shared scorer."""
        other = RobustNASProblem(self.scorer, self.space, max_params=self.max_params, seed=self.seed,
                                 n_calibration=self.n_calibration, archive=self.archive,
                                 expose_constraint=bool(self.n_ieq_constr), objective=objective or self.objective)
        other.calibration = self.calibration
        return other

    def close(self):
        """Stop the scorer's workers, if any."""
        self.scorer.close()

    def decode(self, x) -> Genotype:
        return self.space.decode(x)

    def encode(self, genotype: Genotype) -> np.ndarray:
        return self.space.encode(genotype)
