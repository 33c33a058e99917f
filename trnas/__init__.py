"""trnas: training-free robust neural architecture search as a pymoo plugin.

This package is the facade (the ``trnas`` command, YAML configs) and re-exports the public API
of the packages that do the work: ``nas_problem`` (spaces, genotypes, networks, the Problem),
``operators`` (reproduction), ``selection`` (MOS, TRNASAlgorithm) and ``evaluation`` (proxies,
data sets, training, attacks).
"""
from evaluation import available_proxies, get_proxy, proxy
from nas_problem import Genotype, RobustNASProblem
from operators import default_operators
from selection import MOSSurvival, TRNASAlgorithm

from .search import make_problem

__version__ = "0.1.0"
__all__ = ["Genotype", "RobustNASProblem", "make_problem", "default_operators", "MOSSurvival", "TRNASAlgorithm",
           "available_proxies", "get_proxy", "proxy"]
