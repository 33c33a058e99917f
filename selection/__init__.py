"""Survival and the TRNAS algorithm: multi-objective selection (MOS) over R-Score and Params,
as published and in a variant that keeps the front's width."""
from .algorithm import MOS_VARIANTS, TRNASAlgorithm, compare_by_g
from .mos import MOSSurvival, SpreadMOSSurvival, flagged, normalise, tchebycheff

__all__ = ["MOS_VARIANTS", "MOSSurvival", "SpreadMOSSurvival", "TRNASAlgorithm", "compare_by_g", "flagged",
           "normalise", "tchebycheff"]
