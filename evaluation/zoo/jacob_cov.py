"""``jacob_cov``: the input-Jacobian covariance score of Mellor et al. (2020, v1): J_i =
∂(Σ logits)/∂x_i per image, Σ = correlation matrix of the J_i, eigenvalues v;
score = −Σ (log(v + k) + 1/(v + k)), k = 1e-5. Larger (less correlated Jacobians) is better.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype),
seeded random initialisation, train mode. Batch: the given images (at least 2). Knobs:
none beyond the shared ones.
"""
from __future__ import annotations

import numpy as np
import torch

from ..registry import proxy
from ._common import ZooProxy

K = 1e-5


def jacob_cov_score(model, x) -> float:
    x = x.detach().clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(model(x).sum(), x)
    jac = jac.flatten(1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + K) + 1.0 / (v + K)))


class JacobCov(ZooProxy):
    name = "jacob_cov"

    def score_network(self, net, x, y):
        return jacob_cov_score(net, x)


@proxy("jacob_cov")
def make_jacob_cov(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return JacobCov(device, num_classes, mean, std, preset, n_images)
