"""``grad_norm``: the sum over weight layers of the L2 norm of the cross-entropy gradient.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
random initialisation seeded by ``seed``, train mode. Batch: the given images (first
``n_images``). Knobs: none beyond the shared ones. Larger is better.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, weight_layers


def grad_norm_score(model, x, y) -> float:
    weights = [m.weight for m in weight_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
    return float(sum(g.detach().norm() for g in grads if g is not None))


class GradNorm(ZooProxy):
    name = "grad_norm"

    def score_network(self, net, x, y):
        return grad_norm_score(net, x, y)


@proxy("grad_norm")
def make_grad_norm(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return GradNorm(device, num_classes, mean, std, preset, n_images)
