"""A stand-in for RobustNASProblem that needs no proxy, for tests of operators and selection."""
import numpy as np
from pymoo.core.problem import Problem

from nas_problem import DartsSpace, count_params


class CheapArchitectureProblem(Problem):
    """The RobustNASProblem contract without a proxy: F = [a cheap score of x, Params]."""

    def __init__(self, max_params=6.0):
        self.space = DartsSpace()
        self.max_params = max_params
        super().__init__(n_var=self.space.n_var, n_obj=2, xl=self.space.xl, xu=self.space.xu, vtype=int)

    def params_of(self, x):
        return count_params(self.space.decode(x))

    def _evaluate(self, X, out, *args, **kwargs):
        score = [1.0 / (1.0 + np.sum(x[1::2] == 3) + 0.1 * np.sum(x[0::2])) for x in X]
        out["F"] = np.column_stack([score, [self.params_of(x) for x in X]])
