"""RobustNASProblem: the pymoo Problem of a training-free robust architecture search (DESIGN §4)."""
from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np
from pymoo.core.problem import Problem

from .archive import Archive
from .genotype import Genotype
from .networks import count_flops, count_params
from .spaces import get_space

# a flagged architecture (non-finite proxy value) gets an inverse score worse than any valid one:
# R-Score lies in [1, 1000], so 1 / R-Score lies in [0.001, 1]
FLAGGED_INVERSE_SCORE = 2.0


class BudgetError(ValueError):
    """A parameter budget no architecture of the space can meet."""


class RobustNASProblem(Problem):
    """Minimise ``[1 / R-Score, Params]`` over a search space, Params in millions of parameters
    of the evaluation network.

    The budget ``max_params`` is kept by the operators (``operators.default_operators``), so
    algorithms without constraint handling work unchanged; ``expose_constraint=True`` also
    reports it as ``G = Params - max_params``. Scores are normalised with a calibration sample
    of ``n_calibration`` random architectures drawn once (seeded), so an architecture's score
    does not depend on the population it sits in. Every evaluation goes to ``archive`` (a path
    or an :class:`Archive`), which doubles as a cache. In process on the CPU, the R-Score scores
    as many architectures at once as torch has threads, one torch thread each
    (:class:`evaluation.evaluators.InProcessEvaluator`). ``workers > 0`` scores on Ray actors
    (``ray_address=`` a cluster, ``gpus_per_worker=`` fractional GPUs, by default the cluster's
    GPUs shared evenly when ``device`` is cuda); scores equal the in-process ones, because each
    architecture's proxy seed depends on the architecture alone. Ray assigns the workers their
    GPUs, so a device index (``cuda:1``; ``cuda:0`` on a machine with several GPUs) cannot be
    honoured by workers on GPUs and is refused.
    """

    def __init__(self, space="darts", dataset="digits", proxy="rscore", preset="reference", max_params=6.0,
                 device="auto", seed=0, data_path=None, root=None, download=False, n_calibration=64,
                 batch_seed=None, archive=None, expose_constraint=False, include_none=False,
                 proxy_kwargs=None, workers=0, ray_address=None, gpus_per_worker=None, threads_per_worker=1):
        # imported here, not at module level: evaluation builds its networks from nas_problem
        from evaluation.datasets import load_dataset, proxy_batch
        from evaluation.evaluators import InProcessEvaluator, RayEvaluator, ignores_device_index
        from evaluation.registry import ProxyError, get_proxy
        from evaluation.runtime import resolve_device

        if workers and ignores_device_index(device, gpus_per_worker):
            raise ProxyError(f"device={device} with workers: Ray gives each worker its GPU, so an index cannot "
                             f"be honoured; use device=cuda (CUDA_VISIBLE_DEVICES chooses the GPUs)")
        self.space = get_space(space, include_none=include_none) if isinstance(space, str) else space
        self.max_params = None if max_params is None else float(max_params)
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.n_calibration = int(n_calibration)
        self.dataset = load_dataset(dataset, root=root, download=download, data_path=data_path)
        self.num_classes = self.dataset.num_classes
        self._check_budget()
        knobs = dict(proxy_kwargs or {})
        if preset is not None:
            knobs.setdefault("preset", preset)
        knobs.update(num_classes=self.dataset.num_classes, mean=self.dataset.mean, std=self.dataset.std)
        self.proxy = get_proxy(proxy, **knobs, device=self.device)
        images, labels = proxy_batch(self.dataset, self.proxy.batch_size, seed=batch_seed)
        if workers:
            self.evaluator = RayEvaluator(proxy, {**knobs, "device": self.device.type}, images, labels, workers=workers,
                                          ray_address=ray_address, gpus_per_worker=gpus_per_worker,
                                          threads_per_worker=threads_per_worker)
        else:
            self.evaluator = InProcessEvaluator(self.proxy, images, labels)
        identity = {"proxy": self.proxy.name, "revision": self.proxy.revision, "config": self.proxy.config,
                    "dataset": self.dataset.name, "batch_seed": batch_seed, "seed": self.seed,
                    "space": self.space.name}
        self.proxy_id = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.archive = archive if isinstance(archive, Archive) else Archive(archive)
        self.calibration = None
        self.n_scored = 0
        self.n_reused = 0
        super().__init__(n_var=self.space.n_var, n_obj=2, n_ieq_constr=1 if expose_constraint else 0,
                         xl=self.space.xl, xu=self.space.xu, vtype=int)

    # ----- the budget -----
    def params_of(self, x) -> float:
        return count_params(self.space.decode(x), num_classes=self.num_classes)

    def _check_budget(self):
        if self.max_params is None:
            return
        floor = count_params(self.space.smallest_genotype(), num_classes=self.num_classes)
        if self.max_params < floor:
            raise BudgetError(f"max_params={self.max_params:g} M is below the smallest architecture of the "
                              f"{self.space.name} space ({floor:.3f} M)")

    def within_budget(self, x) -> bool:
        return self.max_params is None or self.params_of(x) <= self.max_params

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
        if missing:  # when all are archived the evaluator is not called at all
            self._score(list(missing.items()), role)
        return [self.archive.get(self.proxy_id, key) for key in keys]

    def _score(self, items: list, role: str):
        """Score ``(key, genotype)`` items through the evaluator, archiving each record as it comes
        back: a search killed mid-batch keeps all it scored."""
        jobs = [(genotype, self.architecture_seed(key)) for key, genotype in items]
        for position, (components, seconds, threads, device) in self.evaluator(jobs):
            key, genotype = items[position]
            self.archive.add([{
                "key": key, "genotype": str(genotype), "x": self.space.encode(genotype).tolist(),
                "proxy": self.proxy.name, "proxy_id": self.proxy_id, "components": components,
                "valid": bool(self.proxy.is_valid(components)),
                "params": count_params(genotype, num_classes=self.num_classes),
                "flops": count_flops(genotype, num_classes=self.num_classes),
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
            if self.within_budget(x):
                genotypes.append(self.space.decode(x))
        records = self.score_genotypes(genotypes, role="calibration")
        self.calibration = self.proxy.calibrate([r["components"] for r in records])
        return self.calibration

    def r_score(self, record: dict) -> float:
        return float(self.proxy.score(record["components"], self.calibration)) if record["valid"] else float("nan")

    def _evaluate(self, X, out, *args, **kwargs):
        self.calibrate()
        genotypes = [self.space.decode(x) for x in X]
        records = self.score_genotypes(genotypes)
        scores = np.array([self.r_score(r) for r in records])
        params = np.array([r["params"] for r in records])
        flagged = ~np.isfinite(scores) | (scores <= 0)
        inverse = np.where(flagged, FLAGGED_INVERSE_SCORE, 1.0 / np.where(flagged, 1.0, scores))
        # a flagged architecture must not sit on the front by being small: it also gets the worst size
        worst_params = 2 * (self.max_params or params.max(initial=1.0))
        out["F"] = np.column_stack([inverse, np.where(flagged, worst_params, params)])
        if self.n_ieq_constr:
            out["G"] = (params - (self.max_params if self.max_params is not None else np.inf)).reshape(-1, 1)

    def close(self):
        """Stop the evaluator's workers, if any."""
        self.evaluator.close()

    def decode(self, x) -> Genotype:
        return self.space.decode(x)

    def encode(self, genotype: Genotype) -> np.ndarray:
        return self.space.encode(genotype)
