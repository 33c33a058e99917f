"""The DARTS supernet: every edge of a cell is a mixture of all candidate operations, weighted by
softmax(α), so that the architecture itself can be trained by gradient descent (Liu et al.,
DARTS, ICLR 2019, eqs. 1-2), and the genotype DARTS derives from α.

The candidate operations are the project's own (``operations.OPERATIONS``) plus ``none``; as in
DARTS, the supernet's BatchNorms learn no scale or shift, and pooling is followed by one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .genotype import DARTS_OPS, N_NODES, NONE_OP, Genotype
from .networks import cell_plan
from .operations import OPERATIONS, FactorizedReduce, ReLUConvBN

# the order of DartsSpace(include_none=True).ops: columns of α
CANDIDATE_OPS = DARTS_OPS + (NONE_OP,)
N_EDGES = sum(node + 2 for node in range(N_NODES))


def edge_inputs() -> list[tuple[int, int]]:
    """(node, input state) of each mixed edge, in α's row order: node k reads states 0..k+1."""
    return [(node, state) for node in range(N_NODES) for state in range(node + 2)]


def without_affine(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` by one without scale and shift: in the supernet an
    operation must not rescale its own output, or it would compete with its α weight."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d) and child.affine:
                setattr(parent, name, nn.BatchNorm2d(child.num_features, affine=False))
    return module


def candidate(op: str, channels: int, stride: int) -> nn.Module:
    module = without_affine(OPERATIONS[op](channels, stride, True))
    if "pool" in op:
        # pooling has no parameters to adapt its output scale to the convolutions beside it
        module = nn.Sequential(module, nn.BatchNorm2d(channels, affine=False))
    return module


class MixedOp(nn.Module):
    """Σ_o w_o · o(x) over the candidate operations, ``w`` one row of softmax(α)."""

    def __init__(self, channels: int, stride: int, ops=CANDIDATE_OPS):
        super().__init__()
        self.ops = nn.ModuleList(candidate(op, channels, stride) for op in ops)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    """A DARTS cell whose 14 edges are mixed operations; the output concatenates the 4 nodes."""

    def __init__(self, c_prev_prev, c_prev, c, reduction, reduction_prev, ops=CANDIDATE_OPS):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = without_affine(FactorizedReduce(c_prev_prev, c))
        else:
            self.preprocess0 = without_affine(ReLUConvBN(c_prev_prev, c, 1, 1, 0))
        self.preprocess1 = without_affine(ReLUConvBN(c_prev, c, 1, 1, 0))
        # in a reduction cell only the edges from the two cell inputs stride
        self.edges = nn.ModuleList(MixedOp(c, 2 if reduction and state < 2 else 1, ops)
                                   for _, state in edge_inputs())

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for node in range(N_NODES):
            total = 0
            for state in range(node + 2):
                total = total + self.edges[edge](states[state], weights[edge])
                edge += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """``layers`` search cells (reductions at 1/3 and 2/3 of the depth) over a 3C stem.

    The architecture parameters ``alpha_normal`` and ``alpha_reduce`` (14 x 8 each, shared by
    all cells of their kind) are parameters of the module, so checkpoints carry them; the
    optimisers get them apart through :meth:`weights` and :meth:`arch_parameters`.
    """

    def __init__(self, channels=16, layers=8, num_classes=10, stem_multiplier=3, ops=CANDIDATE_OPS,
                 alpha_scale=1e-3):
        super().__init__()
        self.ops = tuple(ops)
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self.cells = nn.ModuleList(
            SearchCell(c_prev_prev, c_prev, c, reduction, reduction_prev, self.ops)
            for c_prev_prev, c_prev, c, reduction, reduction_prev in cell_plan(channels, layers,
                                                                                stem_multiplier=stem_multiplier))
        c_last = N_NODES * channels * 2 ** sum(cell.reduction for cell in self.cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)
        # DARTS starts α near zero (all operations almost equally weighted), drawn from the torch RNG
        self.alpha_normal = nn.Parameter(alpha_scale * torch.randn(N_EDGES, len(self.ops)))
        self.alpha_reduce = nn.Parameter(alpha_scale * torch.randn(N_EDGES, len(self.ops)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward_with_cells(self, x) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, the output of every cell): RNAS-FD measures the distortion of the latter."""
        normal, reduce = F.softmax(self.alpha_normal, dim=-1), F.softmax(self.alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        outputs = []
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
            outputs.append(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), outputs

    def forward(self, x):
        return self.forward_with_cells(x)[0]

    def genotype(self) -> Genotype:
        return derive_genotype(self.alpha_normal, self.alpha_reduce, self.ops)


def derive_cell(alpha: torch.Tensor, ops=CANDIDATE_OPS) -> list[tuple[str, int]]:
    """DARTS' discretisation of one cell: per node, the two inputs whose strongest non-``none``
    operation weighs most, each with that operation (weights = softmax(α) per edge)."""
    weights = F.softmax(alpha.detach().double(), dim=-1).tolist()
    usable = [i for i, op in enumerate(ops) if op != NONE_OP]
    rows = edge_inputs()
    pairs = []
    for node in range(N_NODES):
        edges = [e for e, (n, _) in enumerate(rows) if n == node]
        strongest = {e: max(usable, key=lambda i: weights[e][i]) for e in edges}
        chosen = sorted(edges, key=lambda e: -weights[e][strongest[e]])[:2]
        pairs += [(ops[strongest[e]], rows[e][1]) for e in chosen]
    return pairs


def derive_genotype(alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor, ops=CANDIDATE_OPS) -> Genotype:
    return Genotype(normal=derive_cell(alpha_normal, ops), reduce=derive_cell(alpha_reduce, ops))
