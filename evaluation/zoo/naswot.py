"""``naswot``: Mellor et al. (2021) — every ReLU's input binarised (> 0) per image and
concatenated into a binary code c_i; K_H[i, j] = number of units where c_i and c_j agree
(N_A − Hamming distance); score = log |det K_H|. Larger (more distinguishable codes) is better.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation, train mode, no gradients. Batch: the given images. Knobs:
none beyond the shared ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..registry import proxy
from ._common import ZooProxy, forward_recording


def binary_codes(model, x) -> torch.Tensor:
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    codes = forward_recording(model, relus, x, lambda module, inputs, output: (inputs[0] > 0).flatten(1))
    if not codes:
        return torch.zeros(x.shape[0], 0, dtype=torch.float64)
    return torch.cat(codes, dim=1).double()


def hamming_kernel(codes: torch.Tensor) -> np.ndarray:
    return (codes @ codes.T + (1 - codes) @ (1 - codes).T).cpu().numpy()


def naswot_score(model, x) -> float:
    sign, logdet = np.linalg.slogdet(hamming_kernel(binary_codes(model, x)))
    return float(logdet) if sign != 0 else float("-inf")


class Naswot(ZooProxy):
    name = "naswot"

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        return {"score": naswot_score(net, x)}


@proxy("naswot")
def make_naswot(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Naswot(device, num_classes, mean, std, preset, n_images)
