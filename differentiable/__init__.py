"""Differentiable (DARTS) robust architecture searches beside the training-free one: RNAS-OS
(output similarity) and RNAS-FD (feature distortion), each a bi-level search of a supernet's
weights and architecture that ends in one genotype.

``run_differentiable_search(config)`` runs the search ``config["algorithm"]`` names and writes its
run folder; ``defaults_for(algorithm)`` gives the settings it knows, with its paper's values.
"""
from __future__ import annotations

from pathlib import Path

from .bilevel import BilevelSearch
from .feature_distortion import RNASFeatureDistortion
from .memory import InsufficientMemoryError, estimate_memory
from .output_similarity import RNASOutputSimilarity
from .settings import SearchError

SEARCHES = {search.algorithm: search for search in (RNASOutputSimilarity, RNASFeatureDistortion)}
ALGORITHMS = tuple(SEARCHES)


def search_class(algorithm: str) -> type[BilevelSearch]:
    try:
        return SEARCHES[algorithm]
    except KeyError:
        raise SearchError(f"unknown differentiable search {algorithm!r} (available: {', '.join(SEARCHES)})") from None


def defaults_for(algorithm: str) -> dict:
    """Every setting of ``algorithm`` with its default (the paper preset)."""
    return dict(search_class(algorithm).defaults)


def run_differentiable_search(config: dict, resume: bool = False, report=print) -> Path:
    """Run the differentiable search ``config["algorithm"]`` names (missing settings take its
    defaults) and write its run folder; returns the folder. ``resume`` continues from the folder's
    checkpoint, giving on the CPU the result an uninterrupted run would have."""
    return search_class(config.get("algorithm"))(config, resume=resume, report=report).run()


__all__ = ["ALGORITHMS", "BilevelSearch", "InsufficientMemoryError", "RNASFeatureDistortion",
           "RNASOutputSimilarity", "SearchError", "defaults_for", "estimate_memory", "run_differentiable_search"]
