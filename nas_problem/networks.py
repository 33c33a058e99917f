"""Networks built from a DARTS genotype: the evaluation network users train and the two proxy
networks the R-Score presets score (docs/design.md §3), and their sizes. Code that may hold a genotype
of any space asks its space instead (``space_of(genotype)``)."""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .genotype import Genotype
from .operations import (OPERATIONS, FactorizedReduce, ReLUConvBN, channel_concat, classifier, classify, conv,
                         norm, replicate_input)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep) * mask


class Cell(nn.Module):
    def __init__(self, genotype: Genotype, c_prev_prev, c_prev, c, reduction, reduction_prev, batchnorm=True,
                 replicas=1):
        super().__init__()
        self.reduction = reduction
        self.replicas = replicas
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, c, batchnorm, replicas)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0, batchnorm, replicas)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, batchnorm, replicas)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.inputs = [index for _, index in pairs]
        self.ops = nn.ModuleList(
            OPERATIONS[op](c, 2 if reduction and index < 2 else 1, batchnorm, replicas) for op, index in pairs)
        self.multiplier = len(self.concat)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = 0
            for edge in (2 * node, 2 * node + 1):
                h = self.ops[edge](states[self.inputs[edge]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[edge], nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return channel_concat([states[i] for i in self.concat], self.replicas)


class AuxiliaryHead(nn.Module):
    """The DARTS CIFAR auxiliary classifier, fed from the cell at 2/3 of the depth (8x8 input)."""

    def __init__(self, c, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def cell_plan(channels, layers, stem=True, stem_multiplier=3, in_channels=3, multiplier=4):
    """Yield (c_prev_prev, c_prev, c, reduction, reduction_prev) per cell: the channel
    bookkeeping shared by the network and the parameter counter."""
    c_prev_prev = c_prev = stem_multiplier * channels if stem else in_channels
    c_curr = channels
    reductions = {layers // 3, 2 * layers // 3}
    reduction_prev = False
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        yield c_prev_prev, c_prev, c_curr, reduction, reduction_prev
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, multiplier * c_curr


class DartsNetwork(nn.Module):
    """A stack of ``layers`` cells with reductions at 1/3 and 2/3 of the depth.

    ``stem=False`` feeds the image straight into the first cell (the `reference` proxy
    network). With ``auxiliary=True`` the auxiliary logits of the last training forward are
    kept in ``self.aux_logits``, so ``forward`` always returns plain logits (what attacks expect).

    ``replicas=R`` builds R independent copies of the network side by side (channels copy-major,
    convolutions grouped R times more, see ``operations``): the input image is fed to every
    copy and the logits come back as (batch, R, classes). Copy r with parameters
    ``p.unflatten(0, (R, -1))[r]`` computes exactly the single network with those parameters.
    """

    def __init__(self, genotype: Genotype, channels=36, layers=20, num_classes=10, stem=True,
                 stem_multiplier=3, batchnorm=True, auxiliary=False, drop_path_prob=0.0, in_channels=3,
                 replicas=1):
        super().__init__()
        if replicas < 1 or (replicas > 1 and auxiliary):
            raise ValueError(f"replicas must be >= 1 and cannot have an auxiliary head, got {replicas}")
        self.genotype = genotype
        self.replicas = replicas
        self.drop_path_prob = drop_path_prob
        self.aux_logits = None
        if stem:
            c_stem = stem_multiplier * channels
            self.stem = nn.Sequential(conv(in_channels, c_stem, 3, replicas, padding=1),
                                      norm(c_stem, batchnorm, replicas=replicas))
        else:
            self.stem = nn.Identity()
        self.cells = nn.ModuleList()
        self.aux_position = 2 * layers // 3
        c_aux = None
        for i, (c_prev_prev, c_prev, c_curr, reduction, reduction_prev) in enumerate(
                cell_plan(channels, layers, stem, stem_multiplier, in_channels)):
            cell = Cell(genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev, batchnorm, replicas)
            self.cells.append(cell)
            if i == self.aux_position:
                c_aux = cell.multiplier * c_curr
        c_prev = cell.multiplier * c_curr
        self.auxiliary = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier(c_prev, num_classes, replicas)

    def forward(self, x):
        s0 = s1 = self.stem(replicate_input(x, self.replicas))
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary is not None and self.training:
                self.aux_logits = self.auxiliary(s1)
        return classify(self.classifier, self.global_pooling(s1), self.replicas)


EVALUATION_NETWORK = dict(channels=36, layers=20, stem=True, batchnorm=True)
PROXY_NETWORKS = {
    "paper": dict(channels=16, layers=8, stem=True, batchnorm=True),
    "reference": dict(channels=3, layers=8, stem=False, batchnorm=False),
}


def build_evaluation_network(genotype: Genotype, num_classes=10, auxiliary=False, drop_path_prob=0.0,
                             **overrides) -> DartsNetwork:
    return DartsNetwork(genotype, num_classes=num_classes, auxiliary=auxiliary, drop_path_prob=drop_path_prob,
                        **{**EVALUATION_NETWORK, **overrides})


def build_proxy_network(genotype: Genotype, preset: str = "reference", num_classes=10, **overrides) -> nn.Module:
    """The network a proxy scores: the DARTS proxy network of ``preset``."""
    try:
        settings = PROXY_NETWORKS[preset]
    except KeyError:
        raise ValueError(f"unknown proxy-network preset {preset!r} (available: {', '.join(PROXY_NETWORKS)})") from None
    return DartsNetwork(genotype, num_classes=num_classes, **{**settings, **overrides})


@lru_cache(maxsize=None)
def _module_cost(kind: str, c_in: int, c_out: int, stride: int, size: int) -> tuple:
    """(parameters, multiply-adds) of one building block at input resolution ``size``,
    measured once on the ``meta`` device and cached."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        if kind == "stem":
            module = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        elif kind == "preprocess":
            module = ReLUConvBN(c_in, c_out, 1, 1, 0)
        elif kind == "factorized_reduce":
            module = FactorizedReduce(c_in, c_out)
        elif kind == "classifier":
            module = nn.Linear(c_in, c_out)
        else:
            module = OPERATIONS[kind](c_in, stride, True)
        x = torch.empty(1, c_in) if kind == "classifier" else torch.empty(1, c_in, size, size)
        with FlopCounterMode(display=False) as counter:
            module(x)
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2


@lru_cache(maxsize=65536)
def _count(genotype: Genotype, num_classes: int, channels: int, layers: int) -> tuple:
    size = 32
    costs = [_module_cost("stem", 3, 3 * channels, 1, size)]
    for c_prev_prev, c_prev, c, reduction, reduction_prev in cell_plan(channels, layers):
        if reduction_prev:
            costs.append(_module_cost("factorized_reduce", c_prev_prev, c, 2, 2 * size))
        else:
            costs.append(_module_cost("preprocess", c_prev_prev, c, 1, size))
        costs.append(_module_cost("preprocess", c_prev, c, 1, size))
        for op, index in (genotype.reduce if reduction else genotype.normal):
            # in a reduction cell only edges from the cell inputs stride; intermediate states are already halved
            strided = reduction and index < 2
            op_size = size // 2 if reduction and not strided else size
            costs.append(_module_cost(op, c, c, 2 if strided else 1, op_size))
        if reduction:
            size //= 2
        c_last = 4 * c
    costs.append(_module_cost("classifier", c_last, num_classes, 1, 1))
    return sum(p for p, _ in costs) / 1e6, sum(f for _, f in costs) / 1e6


def count_params(genotype: Genotype, num_classes=10, channels=36, layers=20) -> float:
    """Parameters of the evaluation network in millions (auxiliary head excluded, as papers
    report), summed over its building blocks, each measured once on the ``meta`` device."""
    return _count(genotype, num_classes, channels, layers)[0]


def count_flops(genotype: Genotype, num_classes=10, channels=36, layers=20) -> float:
    """Multiply-adds in millions of one 32x32 forward pass of the evaluation network: the
    "FLOPs" figure DARTS-family papers report (convolutions and linear layers)."""
    return _count(genotype, num_classes, channels, layers)[1]
