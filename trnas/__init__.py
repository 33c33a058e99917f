"""trnas: training-free robust neural architecture search as a pymoo plugin.

This package is the facade (the ``trnas`` command, YAML configs) and re-exports the public API
of the packages that do the work: ``nas_problem`` (spaces, genotypes, networks, the Problem),
``operators`` (reproduction), ``selection`` (MOS, TRNASAlgorithm) and ``evaluation`` (proxies,
data sets, training, attacks).
"""
from evaluation import available_proxies, get_proxy, proxy
from nas_problem import Genotype, RobustNASProblem
from operators import default_operators
from selection import MOSSurvival, SpreadMOSSurvival, TRNASAlgorithm

from .search import make_problem


def _version() -> str:
    """The installed distribution's version; run from a source tree that is not installed,
    the version its pyproject.toml declares."""
    import re
    from importlib import metadata
    from pathlib import Path
    try:
        return metadata.version("trnas")
    except metadata.PackageNotFoundError:
        pass
    try:
        pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    except OSError:
        return "unknown (not installed)"
    found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.MULTILINE)
    return f"{found.group(1)} (source tree)" if found else "unknown (source tree)"


__version__ = _version()
__all__ = ["Genotype", "RobustNASProblem", "make_problem", "default_operators", "MOSSurvival", "SpreadMOSSurvival",
           "TRNASAlgorithm", "available_proxies", "get_proxy", "proxy"]
