"""``snip``: connection sensitivity, Σ over weight layers of |W ⊙ ∂L/∂W| (cross-entropy).

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation, train mode. Batch: the given images. Knobs: none beyond the
shared ones. Larger is better.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, weight_layers


def snip_score(model, x, y) -> float:
    weights = [m.weight for m in weight_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None))


class Snip(ZooProxy):
    name = "snip"

    def score_network(self, net, x, y):
        return snip_score(net, x, y)


@proxy("snip")
def make_snip(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Snip(device, num_classes, mean, std, preset, n_images)
