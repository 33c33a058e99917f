"""What several test modules share: a stand-in for RobustNASProblem that needs no proxy, a cheap
stand-in for the R-Score, a small genotype that trains quickly, and reading the one error line a
command prints."""
import math
import zlib

import numpy as np
from pymoo.core.problem import Problem

from evaluation.registry import Proxy, proxy
from evaluation.rscore.score import calibrate_components, components_valid, rscore_value
from nas_problem import DartsSpace
from trnas import make_problem


class CheapArchitectureProblem(Problem):
    """The RobustNASProblem contract without a proxy: F = [a cheap score of x, Params]."""

    def __init__(self, max_params=6.0, space=None):
        self.space = space or DartsSpace()
        self.max_params = max_params
        super().__init__(n_var=self.space.n_var, n_obj=2, xl=self.space.xl, xu=self.space.xu, vtype=int)

    def params_of(self, x):
        return self.space.count_params(self.space.decode(x))

    def _evaluate(self, X, out, *args, **kwargs):
        score = [1.0 / (1.0 + np.sum(x[1::2] == 3) + 0.1 * np.sum(x[0::2])) for x in X]
        out["F"] = np.column_stack([score, [self.params_of(x) for x in X]])


class CheapRScore(Proxy):
    """The R-Score's calibration and normalisation over Ψ and Φ computed from a genotype's
    operations in microseconds (more convolutions and deeper edges: larger Ψ; skips and pools:
    larger Φ; a hash of the architecture adds noise). ``poison`` lists keys that get no valid
    score, ``poison_every=k`` flags about one architecture in k."""

    name = "cheap_rscore"
    thread_safe = True

    def __init__(self, poison=(), poison_every=0):
        self.poison, self.poison_every = set(poison), int(poison_every)
        self.config = {"poison": sorted(self.poison), "poison_every": self.poison_every}

    def measure(self, genotype, images, labels, seed):
        key = genotype.key()
        if key in self.poison or (self.poison_every and zlib.crc32(key.encode()) % self.poison_every == 0):
            return {"psi": float("nan"), "phi": 1.0}
        edges = list(genotype.normal) + list(genotype.reduce)
        noise = [zlib.crc32((key + salt).encode()) % 10007 / 10007 - 0.5 for salt in "ab"]
        convs = sum(op.startswith(("sep", "dil")) for op, _ in edges)
        deep = sum(source >= 2 for _, source in edges)
        skips = sum(op in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") for op, _ in edges)
        return {"psi": math.exp(0.25 * convs + 0.3 * deep + 0.8 * noise[0]),
                "phi": math.exp(0.05 * skips + 0.02 * deep + 0.3 * noise[1])}

    def is_valid(self, components):
        return components_valid(components)

    def calibrate(self, components_list):
        return calibrate_components(components_list)

    def score(self, components, calibration=None):
        return rscore_value(components, calibration)


@proxy("cheap_rscore")
def cheap_rscore(preset=None, device=None, num_classes=10, mean=None, std=None, poison=(), poison_every=0):
    return CheapRScore(poison, poison_every)


def cheap_problem(**settings):
    """A RobustNASProblem scored by :class:`CheapRScore` (``poison``/``poison_every`` go to it)."""
    knobs = {key: settings.pop(key) for key in ("poison", "poison_every") if key in settings}
    options = dict(proxy="cheap_rscore", preset=None, n_calibration=8, seed=0, device="cpu", proxy_kwargs=knobs)
    return make_problem(**{**options, **settings})


def score_in_process_and_on_workers(genotypes, options: dict, archive, **workers) -> tuple:
    """(in-process records, Ray-worker records) of ``genotypes`` under the same problem
    ``options``; the workers' problem writes ``archive`` and is closed afterwards."""
    local = make_problem(**options)
    distributed = make_problem(**options, **workers, archive=archive)
    try:
        return local.score_genotypes(genotypes), distributed.score_genotypes(genotypes)
    finally:
        distributed.close()


# RACL's cells: convolutions in both cells, so a 2-cell network at C = 4 learns digits in a few epochs
RACL = ('{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_5x5", 0], ["skip_connect", 1], '
        '["sep_conv_3x3", 0], ["skip_connect", 3], ["sep_conv_3x3", 3], ["skip_connect", 4]], '
        '"reduce": [["sep_conv_3x3", 0], ["sep_conv_5x5", 1], ["avg_pool_3x3", 0], ["dil_conv_3x3", 1], '
        '["sep_conv_3x3", 0], ["sep_conv_5x5", 1], ["sep_conv_3x3", 2], ["dil_conv_3x3", 3]]}')


def error_line(capsys) -> str:
    """The single line a command wrote to stderr (bad input is one line, never a traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]
