"""Search spaces, genotype <-> decision vector, network builders and the pymoo Problem.

``build_evaluation_network``, ``build_proxy_network``, ``count_params`` and ``count_flops`` are
the DARTS space's; for a genotype of any space ask ``space_of(genotype)``."""
from .genotype import DARTS_OPS, Genotype, GenotypeError, load_genotypes
from .networks import (DartsNetwork, build_evaluation_network, build_proxy_network, count_flops,
                       count_params)
from .darts import DartsSpace
from .nb201 import NB201Genotype, NB201Space
from .spaces import PROXY_PRESETS, SPACES, SearchSpace, get_space, space_of
from .budget import BudgetError, check_budget, fits_budget
from .archive import Archive
from .front import nondominated
from .problem import FLAGGED_OBJECTIVE, OBJECTIVES, RobustNASProblem, Scorer

__all__ = ["DARTS_OPS", "Genotype", "GenotypeError", "load_genotypes", "DartsNetwork",
           "build_evaluation_network", "build_proxy_network", "count_flops", "count_params",
           "DartsSpace", "NB201Genotype", "NB201Space", "PROXY_PRESETS", "SPACES", "SearchSpace", "get_space",
           "space_of", "BudgetError", "check_budget", "fits_budget", "Archive", "FLAGGED_OBJECTIVE", "OBJECTIVES", "RobustNASProblem", "Scorer",
           "nondominated"]
