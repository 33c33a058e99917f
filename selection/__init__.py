"""Survival and the TRNAS algorithm: multi-objective selection (MOS) over R-Score and Params."""
from .algorithm import TRNASAlgorithm, compare_by_g
from .mos import MOSSurvival, normalise, tchebycheff

__all__ = ["MOSSurvival", "TRNASAlgorithm", "compare_by_g", "normalise", "tchebycheff"]
