"""``synflow``: synaptic flow (Tanaka et al., 2020). Every weight replaced by its absolute
value, an all-ones input of one image, R = Σ outputs in float64; score = Σ over weight layers
of |W ⊙ ∂R/∂W|. Data-free: the images are used for nothing but their shape.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation, input normalisation bypassed, BatchNorm in eval mode (a
batch of one constant image has no batch statistics). Knobs: none beyond the shared ones.
Larger is better.
"""
from __future__ import annotations

import torch

from ..registry import proxy
from ._common import ZooProxy, weight_layers


def synflow_score(model, input_shape) -> float:
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    weights = [m.weight for m in weight_layers(model)]
    device = weights[0].device if weights else torch.device("cpu")
    out = model(torch.ones((1,) + tuple(input_shape), dtype=torch.float64, device=device))
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None))


class Synflow(ZooProxy):
    name = "synflow"
    flag_constant_output = False  # the score is data-free, so a constant output is no sign of trouble

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        return {"score": synflow_score(net.body, x.shape[1:])}


@proxy("synflow")
def make_synflow(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Synflow(device, num_classes, mean, std, preset, n_images)
