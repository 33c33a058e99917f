"""What several test modules share: a stand-in for RobustNASProblem that needs no proxy, a small
genotype that trains quickly, and reading the one error line a command prints."""
import numpy as np
from pymoo.core.problem import Problem

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
