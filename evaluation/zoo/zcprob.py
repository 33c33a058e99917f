"""``zcprob``: a robust zero-cost proxy after Feng et al. (ICLR 2025), two terms:

- robust-NTK agreement ā: per-image parameter gradients g_i = ∇θ ℓ(f_θ(x′_i), y_i) on FGSM
  images x′ (the adversarial, "robust" NTK), the batch split into halves A and B;
  ā = mean over i ∈ A, j ∈ B of cos(g_i, g_j) — the normalised cross block of the NTK, i.e.
  how much what the network learns from one half transfers to the other (generalisation
  under attack);
- CURE curvature c (Moosavi-Dezfooli et al., 2019): z_i = sign(∇ₓℓ_i)/‖sign(∇ₓℓ_i)‖,
  c = mean_i ‖∇ₓℓ(x_i + h·z_i) − ∇ₓℓ(x_i)‖², the input-loss curvature along the attack
  direction; flat loss landscapes are the robust ones.

Combination: score = log(1 + ā) − log(c), i.e. the ratio (1 + ā)/c. Both terms point the
same way (agreement up, curvature down), but c spans orders of magnitude across
architectures while 1 + ā lies in [0, 2]; a ratio lets each move the score in proportion
to its own relative change, where a sum would be decided by c's units alone. Larger is
better.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation; the per-image gradients run in eval mode (BatchNorm on its
initial running statistics, since a single image has no batch statistics), FGSM and CURE
in train mode. Batch: the given images (at least 2). Knobs: ``epsilon`` (8/255, pixel
units), ``h`` (1.5, CURE's value: with ‖z‖ = 1 on 3×32×32 inputs, ≈ 7/255 per pixel).
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, fgsm


def per_sample_gradients(model, x, y) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    was_training = model.training
    model.eval()
    try:
        for i in range(x.shape[0]):
            loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                                   for p, g in zip(params, grads)]))
    finally:
        model.train(was_training)
    return torch.stack(rows).double()


def ntk_agreement(grads: torch.Tensor) -> float:
    half = grads.shape[0] // 2
    unit = grads / grads.norm(dim=1, keepdim=True)
    return float((unit[:half] @ unit[half:2 * half].T).mean())


def input_gradient(model, x, y) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad


def cure_curvature(model, x, y, h) -> float:
    g = input_gradient(model, x, y)
    z = g.sign().flatten(1)
    z = (z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)).view_as(x)
    g_h = input_gradient(model, x + h * z, y)
    return float((g_h - g).flatten(1).pow(2).sum(1).mean())


class ZCPRob(ZooProxy):
    name = "zcprob"
    knobs = {"epsilon": 8 / 255, "h": 1.5}

    def compute(self, genotype, x, y, seed):
        if x.shape[0] < 2:
            raise ValueError("zcprob needs at least 2 images")
        net = self.network(genotype, seed)
        if self.degenerate(net, x):
            return {"score": float("nan"), "degenerate": 1.0}
        x_adv = fgsm(net, x, y, float(self.params["epsilon"]))
        agreement = ntk_agreement(per_sample_gradients(net, x_adv, y))
        curvature = cure_curvature(net, x, y, float(self.params["h"]))
        score = math.log1p(agreement) - math.log(curvature) if curvature > 0 and agreement > -1 else float("nan")
        return {"score": score, "ntk_agreement": agreement, "curvature": curvature}


@proxy("zcprob")
def make_zcprob(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None,
                epsilon=8 / 255, h=1.5):
    return ZCPRob(device, num_classes, mean, std, preset, n_images, epsilon=epsilon, h=h)
