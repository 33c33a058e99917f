"""The NAS-Bench-201 cell space (docs/design.md §3): a 4-node cell, 6 edges, 5 operations, and the
standard NB201 macro network (stem, 3 stages of N cells, residual reduction blocks).

Edge order (the decision vector and the string form ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``):
node 1 <- 0, node 2 <- 0, node 2 <- 1, node 3 <- 0, node 3 <- 1, node 3 <- 2.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .genotype import GenotypeError
from .operations import ReLUConvBN, Zero, classifier, classify, conv, norm, replicate_input

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_NODES = 4
NB201_EDGES = tuple((node, source) for node in range(1, NB201_NODES) for source in range(node))


@dataclass(frozen=True)
class NB201Genotype:
    """Six operation names, one per edge in ``NB201_EDGES`` order."""

    ops: tuple
    space_name: ClassVar[str] = "nb201"

    def __post_init__(self):
        ops = tuple(str(op) for op in self.ops)
        if len(ops) != len(NB201_EDGES):
            raise GenotypeError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(ops)} operations")
        unknown = [op for op in ops if op not in NB201_OPS]
        if unknown:
            raise GenotypeError(f"unknown NAS-Bench-201 operation {unknown[0]!r} (known: {', '.join(NB201_OPS)})")
        object.__setattr__(self, "ops", ops)

    def __str__(self) -> str:
        nodes = []
        for node in range(1, NB201_NODES):
            nodes.append("|" + "|".join(f"{op}~{source}" for (n, source), op in zip(NB201_EDGES, self.ops)
                                        if n == node) + "|")
        return "+".join(nodes)

    format = __str__

    @classmethod
    def parse(cls, text: str) -> "NB201Genotype":
        text = str(text).strip()
        groups = text.split("+")
        if len(groups) != NB201_NODES - 1:
            raise GenotypeError(f"malformed NAS-Bench-201 string {text[:80]!r}: expected 3 '+'-separated nodes")
        ops = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise GenotypeError(f"malformed NAS-Bench-201 node {group!r}: expected |op~i|...|")
            items = [item for item in group.strip("|").split("|")]
            if len(items) != node:
                raise GenotypeError(f"NAS-Bench-201 node {node} needs {node} edges, got {group!r}")
            for source, item in enumerate(items):
                match = re.fullmatch(r"(\w+)~(\d+)", item)
                if not match or int(match.group(2)) != source:
                    raise GenotypeError(f"malformed NAS-Bench-201 edge {item!r} (expected op~{source})")
                ops.append(match.group(1))
        return cls(tuple(ops))

    def key(self) -> str:
        return str(self)

    def canonical(self) -> "NB201Genotype":
        return self

    def uses(self, op: str) -> bool:
        return op in self.ops

    def is_valid(self) -> bool:
        return True

    def to_json(self) -> dict:
        return {"nb201": str(self)}


NB201_OPERATIONS = {
    "none": lambda c, bn, replicas: Zero(1),
    "skip_connect": lambda c, bn, replicas: nn.Identity(),
    "nor_conv_1x1": lambda c, bn, replicas: ReLUConvBN(c, c, 1, 1, 0, bn, replicas),
    "nor_conv_3x3": lambda c, bn, replicas: ReLUConvBN(c, c, 3, 1, 1, bn, replicas),
    "avg_pool_3x3": lambda c, bn, replicas: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}


class NB201Cell(nn.Module):
    def __init__(self, genotype: NB201Genotype, channels: int, batchnorm: bool = True, replicas: int = 1):
        super().__init__()
        self.edges = nn.ModuleList(NB201_OPERATIONS[op](channels, batchnorm, replicas) for op in genotype.ops)

    def forward(self, x):
        nodes = [x]
        position = 0
        for node in range(1, NB201_NODES):
            total = 0
            for source in range(node):
                total = total + self.edges[position](nodes[source])
                position += 1
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """NB201's basic residual block between stages: stride-2 3x3, 3x3, and an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in, c_out, batchnorm=True, replicas=1):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, batchnorm, replicas)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, batchnorm, replicas)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), conv(c_in, c_out, 1, replicas))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem 3x3 conv to C, then N cells at C, a residual reduction, N cells at 2C, a residual
    reduction, N cells at 4C, BN-ReLU, global pooling, linear classifier (the NB201 macro net).
    ``self.cells`` lists every cell and reduction block in order (feature hooks read it).
    ``replicas=R``: R independent copies side by side, as for ``DartsNetwork``."""

    def __init__(self, genotype: NB201Genotype, channels=16, cells_per_stage=5, num_classes=10, batchnorm=True,
                 replicas=1):
        super().__init__()
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.genotype = genotype
        self.replicas = replicas
        self.stem = nn.Sequential(conv(3, channels, 3, replicas, padding=1),
                                  norm(channels, batchnorm, replicas=replicas))
        layers = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c, batchnorm, replicas))
                c *= 2
            layers += [NB201Cell(genotype, c, batchnorm, replicas) for _ in range(cells_per_stage)]
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(norm(c, batchnorm, replicas=replicas), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier(c, num_classes, replicas)

    def forward(self, x):
        x = self.stem(replicate_input(x, self.replicas))
        for cell in self.cells:
            x = cell(x)
        return classify(self.classifier, self.global_pooling(self.lastact(x)), self.replicas)


def build_nb201_network(genotype: NB201Genotype, num_classes=10, channels=16, cells_per_stage=5,
                        batchnorm=True, replicas=1) -> NB201Network:
    return NB201Network(genotype, channels, cells_per_stage, num_classes, batchnorm, replicas)


@lru_cache(maxsize=4096)
def _nb201_cost(genotype: NB201Genotype, num_classes: int, channels: int, cells_per_stage: int) -> tuple:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        net = NB201Network(genotype, channels, cells_per_stage, num_classes)
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, 3, 32, 32))
    return sum(p.numel() for p in net.parameters()) / 1e6, counter.get_total_flops() / 2e6


def nb201_params(genotype: NB201Genotype, num_classes=10, channels=16, cells_per_stage=5) -> float:
    """Parameters in millions of the NB201 network (built on the ``meta`` device, cached)."""
    return _nb201_cost(genotype, num_classes, channels, cells_per_stage)[0]


def nb201_flops(genotype: NB201Genotype, num_classes=10, channels=16, cells_per_stage=5) -> float:
    """Multiply-adds in millions of one 32x32 forward pass of the NB201 network."""
    return _nb201_cost(genotype, num_classes, channels, cells_per_stage)[1]


class NB201Space:
    """NAS-Bench-201 as a decision vector of 6 integers (one operation index per edge). Every
    vector is a member of the benchmark's 15,625 cells, so validity always holds and each gene
    is its own block for crossover and mutation."""

    name = "nb201"
    genes_per_block = 1
    op_genes = (0,)

    def __init__(self, include_none: bool = True):
        # `none` is one of NB201's five operations; the keyword exists so get_space() can pass it uniformly
        self.include_none = True
        self.ops = NB201_OPS
        self.n_var = len(NB201_EDGES)
        self.xl = np.zeros(self.n_var, dtype=int)
        self.xu = np.full(self.n_var, len(self.ops) - 1, dtype=int)

    @property
    def n_blocks(self) -> int:
        return self.n_var

    def encode(self, genotype: NB201Genotype) -> np.ndarray:
        return np.array([self.ops.index(op) for op in genotype.ops], dtype=int)

    def decode(self, x) -> NB201Genotype:
        x = np.asarray(x).round().astype(int)
        if x.shape != (self.n_var,):
            raise ValueError(f"a NAS-Bench-201 decision vector has {self.n_var} integers, got shape {x.shape}")
        if np.any(x < self.xl) or np.any(x > self.xu):
            raise ValueError(f"decision vector outside its bounds: {x.tolist()}")
        return NB201Genotype(tuple(self.ops[i] for i in x))

    def is_valid(self, x) -> bool:
        x = np.asarray(x)
        return bool(x.shape == (self.n_var,) and np.all(x >= self.xl) and np.all(x <= self.xu))

    def random_block(self, block: int, random_state: np.random.Generator) -> np.ndarray:
        return np.array([random_state.integers(0, len(self.ops))], dtype=int)

    def repair_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray:
        return np.clip(np.asarray(genes, dtype=int), 0, len(self.ops) - 1)

    def random_x(self, random_state: np.random.Generator) -> np.ndarray:
        return random_state.integers(0, len(self.ops), size=self.n_var).astype(int)

    def invalid_blocks(self, x) -> np.ndarray:
        return np.array([], dtype=int)

    def canonical_x(self, x) -> np.ndarray:
        return np.asarray(x, dtype=int)

    def mutate_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray:
        """A different operation on the edge."""
        choices = [op for op in range(len(self.ops)) if op != genes[0]]
        return np.array([random_state.choice(choices)], dtype=int)

    def smallest_genotype(self) -> NB201Genotype:
        """Parameter-free operations on every edge: only stem, reductions and classifier remain.
        skip_connect rather than none keeps the input connected to the output."""
        return NB201Genotype(("skip_connect",) * self.n_var)

    def canonical_key(self, x) -> str:
        return self.decode(x).key()

    # ----- networks and sizes -----
    def build_network(self, genotype: NB201Genotype, num_classes=10, **settings) -> NB201Network:
        """The NB201 network (C = 16, N = 5; ``settings``: channels, cells_per_stage, ...)."""
        return build_nb201_network(genotype, num_classes=num_classes, **settings)

    def build_proxy_network(self, genotype: NB201Genotype, preset="reference", num_classes=10,
                            **settings) -> NB201Network:
        """The NB201 network, with BatchNorm only under ``paper`` as for DARTS."""
        return build_nb201_network(genotype, num_classes=num_classes, batchnorm=preset == "paper", **settings)

    def count_params(self, genotype: NB201Genotype, num_classes=10, **settings) -> float:
        return nb201_params(genotype, num_classes, **settings)

    def count_flops(self, genotype: NB201Genotype, num_classes=10, **settings) -> float:
        return nb201_flops(genotype, num_classes, **settings)

    def cell_modules(self, network: NB201Network) -> list:
        """The 15 cells, not the residual reduction blocks between the stages."""
        return [module for module in network.cells if isinstance(module, NB201Cell)]
