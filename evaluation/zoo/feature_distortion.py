"""``feature_distortion``: the training-free form of RNAS's network vulnerability
(Qian et al., eqs. 3-6). For each cell output z (B × C × H × W) on clean images and z̃ on
FGSM images: per image and channel k, the feature distribution is the softmax of the
channel's H·W values; channel vulnerability F_k = mean over images of KL(p(z_k) ‖ p(z̃_k))
(eq. 3); cell vulnerability = mean over channels (eqs. 4-5); network vulnerability = mean
over cells (eq. 6). Lower is more robust, so score = −vulnerability (larger is better).

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype: its 15
cells, not the residual reduction blocks), seeded random initialisation, train mode.
x̃ = FGSM(f_θ, x, y, ε) on the same random network. Batch: the given images. Knobs:
``epsilon`` (8/255 in pixel units, the benchmarks' attack radius).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from nas_problem import space_of

from ..registry import proxy
from ._common import ZooProxy, fgsm, forward_recording


def cell_outputs(model, cells, x) -> list:
    return forward_recording(model, cells, x, lambda module, inputs, output: output.detach())


def channel_kl(z: torch.Tensor, z_adv: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per image and channel, p/q the softmax over each channel's positions."""
    log_p = F.log_softmax(z.flatten(2).double(), dim=-1)
    log_q = F.log_softmax(z_adv.flatten(2).double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def vulnerability(clean: list, adversarial: list) -> float:
    cells = [channel_kl(z, za).mean(0).mean() for z, za in zip(clean, adversarial)]
    return float(torch.stack(cells).mean())


class FeatureDistortion(ZooProxy):
    name = "feature_distortion"
    knobs = {"epsilon": 8 / 255}

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        if self.degenerate(net, x):
            return {"score": float("nan"), "degenerate": 1.0}
        cells = space_of(genotype).cell_modules(net.body)
        x_adv = fgsm(net, x, y, float(self.params["epsilon"]))
        value = vulnerability(cell_outputs(net, cells, x), cell_outputs(net, cells, x_adv))
        return {"score": -value, "vulnerability": value}


@proxy("feature_distortion")
def make_feature_distortion(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None,
                            epsilon=8 / 255):
    return FeatureDistortion(device, num_classes, mean, std, preset, n_images, epsilon=epsilon)
