"""The DARTS cell-pair space: its decision vector, and its networks and sizes (``networks``)."""
from __future__ import annotations

import numpy as np
from torch import nn

from .genotype import DARTS_OPS, N_NODES, NONE_OP, Genotype
from .networks import build_evaluation_network, build_proxy_network, count_flops, count_params

CELLS = ("normal", "reduce")
GENES_PER_NODE = 4  # input_a, op_a, input_b, op_b


class DartsSpace:
    """The DARTS cell-pair space (docs/design.md §3): 32 integers = 2 cells x 4 nodes x
    (input_a, op_a, input_b, op_b)."""

    name = "darts"
    genes_per_block = GENES_PER_NODE
    op_genes = (1, 3)

    def __init__(self, include_none: bool = False):
        self.include_none = include_none
        self.ops = DARTS_OPS + ((NONE_OP,) if include_none else ())
        self.n_var = len(CELLS) * N_NODES * GENES_PER_NODE
        upper = []
        for _ in CELLS:
            for node in range(N_NODES):
                upper += [node + 1, len(self.ops) - 1, node + 1, len(self.ops) - 1]
        self.xl = np.zeros(self.n_var, dtype=int)
        self.xu = np.array(upper, dtype=int)

    @property
    def n_blocks(self) -> int:
        """Number of node blocks (the units crossover cuts between and mutation redraws)."""
        return len(CELLS) * N_NODES

    def encode(self, genotype: Genotype) -> np.ndarray:
        x = []
        for cell in (genotype.normal, genotype.reduce):
            for node in range(N_NODES):
                (op_a, in_a), (op_b, in_b) = cell[2 * node], cell[2 * node + 1]
                x += [in_a, self._op_index(op_a), in_b, self._op_index(op_b)]
        return np.array(x, dtype=int)

    def decode(self, x) -> Genotype:
        x = np.asarray(x).round().astype(int)
        if x.shape != (self.n_var,):
            raise ValueError(f"a DARTS decision vector has {self.n_var} integers, got shape {x.shape}")
        if np.any(x < self.xl) or np.any(x > self.xu):
            raise ValueError(f"decision vector outside its bounds: {x.tolist()}")
        cells = []
        for c in range(len(CELLS)):
            pairs = []
            for node in range(N_NODES):
                in_a, op_a, in_b, op_b = x[(c * N_NODES + node) * GENES_PER_NODE:][:GENES_PER_NODE]
                pairs += [(self.ops[op_a], int(in_a)), (self.ops[op_b], int(in_b))]
            cells.append(pairs)
        return Genotype(normal=cells[0], reduce=cells[1])

    def _op_index(self, op: str) -> int:
        try:
            return self.ops.index(op)
        except ValueError:
            raise ValueError(f"operation {op!r} is not in this space (include_none={self.include_none})")

    # ----- validity: the two inputs of a node differ -----
    def is_valid(self, x) -> bool:
        blocks = np.asarray(x).reshape(self.n_blocks, GENES_PER_NODE)
        return bool(np.all(blocks[:, 0] != blocks[:, 2]))

    def random_block(self, block: int, random_state: np.random.Generator) -> np.ndarray:
        """A uniformly drawn valid (input_a, op_a, input_b, op_b) block for node block ``block``."""
        n_inputs = block % N_NODES + 2
        in_a, in_b = random_state.choice(n_inputs, size=2, replace=False)
        op_a, op_b = random_state.integers(0, len(self.ops), size=2)
        return np.array([in_a, op_a, in_b, op_b], dtype=int)

    def repair_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray:
        """Make a block valid by redrawing input_b when it equals input_a."""
        genes = genes.copy()
        if genes[0] == genes[2]:
            n_inputs = block % N_NODES + 2
            choices = [i for i in range(n_inputs) if i != genes[0]]
            genes[2] = random_state.choice(choices)
        return genes

    def random_x(self, random_state: np.random.Generator) -> np.ndarray:
        return np.concatenate([self.random_block(b, random_state) for b in range(self.n_blocks)])

    def invalid_blocks(self, x) -> np.ndarray:
        """Indices of the node blocks whose two inputs coincide."""
        blocks = np.asarray(x).reshape(self.n_blocks, GENES_PER_NODE)
        return np.flatnonzero(blocks[:, 0] == blocks[:, 2])

    def canonical_x(self, x) -> np.ndarray:
        """Put the edge with the smaller input first in every block: the vector form of
        ``Genotype.canonical`` (the inputs of a valid node differ, so the input alone orders)."""
        blocks = np.asarray(x).reshape(self.n_blocks, GENES_PER_NODE).copy()
        swap = blocks[:, 0] > blocks[:, 2]
        blocks[swap] = blocks[swap][:, [2, 3, 0, 1]]
        return blocks.reshape(-1)

    def mutate_block(self, block: int, genes: np.ndarray, random_state: np.random.Generator) -> np.ndarray:
        """The block with one gene given a new value that keeps it valid.

        Only genes that have another valid value are candidates: the inputs of node 0 can only
        be the two cell inputs in some order, so there an operation always changes. A single
        changed gene never yields the same architecture (an edge swap needs two)."""
        genes = np.array(genes, dtype=int)
        start = block * GENES_PER_NODE
        options = []
        for j in range(GENES_PER_NODE):
            values = np.arange(self.xl[start + j], self.xu[start + j] + 1)
            values = values[values != genes[j]]
            if j in (0, 2):  # an input must also differ from the node's other input
                values = values[values != genes[2 - j]]
            if len(values):
                options.append((j, values))
        j, values = options[random_state.integers(len(options))]
        genes[j] = random_state.choice(values)
        return genes

    def smallest_genotype(self) -> Genotype:
        """An architecture with the fewest parameters: parameters add up over edges and the
        parameter-free operations (pooling; ``none`` when on) cost nothing whichever state they
        read, so parameter-free operations everywhere is the minimum, not just a bound."""
        op = NONE_OP if self.include_none else "max_pool_3x3"
        pairs = [(op, i) for node in range(N_NODES) for i in (0, 1)]
        return Genotype(normal=pairs, reduce=pairs)

    def canonical_key(self, x) -> str:
        return self.decode(x).key()

    # ----- networks and sizes -----
    def build_network(self, genotype: Genotype, num_classes=10, **settings) -> nn.Module:
        """The evaluation network (C = 36, 20 cells; ``settings``: channels, layers, auxiliary, ...)."""
        return build_evaluation_network(genotype, num_classes=num_classes, **settings)

    def build_proxy_network(self, genotype: Genotype, preset="reference", num_classes=10, **settings) -> nn.Module:
        return build_proxy_network(genotype, preset, num_classes=num_classes, **settings)

    def count_params(self, genotype: Genotype, num_classes=10, **settings) -> float:
        return count_params(genotype, num_classes=num_classes, **settings)

    def count_flops(self, genotype: Genotype, num_classes=10, **settings) -> float:
        return count_flops(genotype, num_classes=num_classes, **settings)

    def cell_modules(self, network: nn.Module) -> list:
        return list(network.cells)
