"""Search spaces, genotype <-> decision vector, network builders and the pymoo Problem."""
from .genotype import DARTS_OPS, Genotype, GenotypeError, load_genotypes
from .networks import (DartsNetwork, build_evaluation_network, build_proxy_network, count_flops,
                       count_params)
from .spaces import DartsSpace, get_space
from .archive import Archive
from .problem import BudgetError, RobustNASProblem

__all__ = ["DARTS_OPS", "Genotype", "GenotypeError", "load_genotypes", "DartsNetwork",
           "build_evaluation_network", "build_proxy_network", "count_flops", "count_params",
           "DartsSpace", "get_space", "Archive", "BudgetError", "RobustNASProblem"]
