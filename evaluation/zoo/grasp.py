"""``grasp``: gradient signal preservation, Σ over weight layers of −W ⊙ (H g), with g the
cross-entropy gradient and H g its Hessian-vector product (double back-propagation).

Sign as in the zero-cost-proxy literature (Abdelfattah et al., 2021): the value is used as
is, larger counted better. Network: the proxy network of ``preset`` (NB201 network for a
NAS-Bench-201 genotype), seeded random initialisation, train mode. Batch: the given
images. Knobs: none beyond the shared ones.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, weight_layers


def grasp_score(model, x, y) -> float:
    weights = [m.weight for m in weight_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, grads)]
    loss = F.cross_entropy(model(x), y)
    first = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    dot = sum((f * g).sum() for f, g in zip(first, grads) if f is not None)
    if not torch.is_tensor(dot) or not dot.requires_grad:
        return 0.0
    hg = torch.autograd.grad(dot, weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None))


class Grasp(ZooProxy):
    name = "grasp"
    revision = 2

    def score_network(self, net, x, y):
        return grasp_score(net, x, y)


@proxy("grasp")
def make_grasp(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Grasp(device, num_classes, mean, std, preset, n_images)
