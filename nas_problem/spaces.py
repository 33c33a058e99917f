"""The search-space contract and the registry of spaces.

A space is the one place that knows its genotypes: how one converts to and from its integer
decision vector (what the operators and the problem use) and which networks it becomes, with
their Params and FLOPs (what the problem, the proxies and training use). Code that only holds a
genotype asks ``space_of(genotype)``. A new space is one module with a genotype class
(immutable, hashable, with a text form, ``key()`` and ``space_name``, the space's name) and a
class satisfying :class:`SearchSpace` whose constructor takes ``include_none``, registered in
``SPACES``.
"""
from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn

from .darts import DartsSpace
from .nb201 import NB201Space

# the proxy-network presets every space builds: `reference` without BatchNorm, `paper` with it
PROXY_PRESETS = ("paper", "reference")


@runtime_checkable
class SearchSpace(Protocol):
    """What the operators, the problem, the proxies and training ask of a search space.

    The decision vector has ``n_var`` integers within ``[xl, xu]``, grouped into ``n_blocks``
    blocks of ``genes_per_block`` genes: the units crossover cuts between and mutation and
    repair redraw. Valid vectors are those the operators keep (``is_valid``), and equal
    architectures share a ``canonical_key``. Networks and sizes take the number of classes and
    keyword settings that override the space's defaults (``replicas=`` for proxy networks)."""

    name: str
    n_var: int
    xl: np.ndarray
    xu: np.ndarray
    n_blocks: int
    genes_per_block: int
    op_genes: tuple  # positions of a block's operation genes (the budget shrinks these first)

    # ----- the decision vector -----
    def encode(self, genotype) -> np.ndarray: ...

    def decode(self, x) -> Any: ...

    def is_valid(self, x) -> bool: ...

    def random_x(self, random_state: np.random.Generator) -> np.ndarray: ...

    def invalid_blocks(self, x) -> np.ndarray: ...

    def repair_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray: ...

    def mutate_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray: ...

    def canonical_x(self, x) -> np.ndarray: ...

    def canonical_key(self, x) -> str: ...

    def smallest_genotype(self) -> Any:
        """A genotype with the fewest parameters (the floor of any budget)."""

    # ----- networks and sizes -----
    def build_network(self, genotype, num_classes: int = 10, **settings) -> nn.Module:
        """The evaluation network a user trains."""

    def build_proxy_network(self, genotype, preset: str = "reference", num_classes: int = 10,
                            **settings) -> nn.Module:
        """The network a proxy scores under ``preset`` (one of ``PROXY_PRESETS``)."""

    def count_params(self, genotype, num_classes: int = 10, **settings) -> float:
        """Parameters in millions of the evaluation network."""

    def count_flops(self, genotype, num_classes: int = 10, **settings) -> float:
        """Multiply-adds in millions of one 32x32 forward pass of the evaluation network."""

    def cell_modules(self, network: nn.Module) -> list:
        """The cells of a network this space built, in forward order (feature hooks read them)."""


SPACES = {"darts": DartsSpace, "nb201": NB201Space}


def get_space(name: str, **kwargs) -> SearchSpace:
    try:
        return SPACES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown search space {name!r} (available: {', '.join(sorted(SPACES))})") from None


def space_of(genotype) -> SearchSpace:
    """The space ``genotype`` belongs to, with its default settings: enough to build its
    networks and count its size."""
    name = getattr(genotype, "space_name", None)
    if name is None:
        raise TypeError(f"{type(genotype).__name__} is not a genotype of a search space (it has no space_name)")
    return _default_space(name)


@functools.cache
def _default_space(name: str) -> SearchSpace:
    return get_space(name)
