"""``fisher``: the Fisher-information saliency of channels (Theis et al., 2018, as a
zero-cost proxy): for every Conv2d / Linear output activation a with gradient g = ∂L/∂a,
per channel c: ½ · mean over samples of (Σ over positions a·g)², summed over channels and
layers.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation, train mode. Batch: the given images. Knobs: none beyond the
shared ones. Larger is better.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, weight_layers


def fisher_score(model, x, y) -> float:
    activations = []

    def keep(module, inputs, output):
        activations.append(output)

    handles = [m.register_forward_hook(keep) for m in weight_layers(model)]
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, activations, allow_unused=True)
    total = 0.0
    for a, g in zip(activations, grads):
        if g is None:
            continue
        per_channel = (a * g).flatten(2).sum(-1) if a.dim() > 2 else a * g
        total += float(0.5 * per_channel.detach().pow(2).mean(0).sum())
    return total


class Fisher(ZooProxy):
    name = "fisher"

    def score_network(self, net, x, y):
        return fisher_score(net, x, y)


@proxy("fisher")
def make_fisher(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Fisher(device, num_classes, mean, std, preset, n_images)
