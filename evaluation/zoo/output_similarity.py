"""``output_similarity``: the training-free form of RNAS-uniform's regulariser (Zhu et al.,
§3.2-3.3): how similar the network's outputs are on clean images and on "noise examples",
images with uniform noise U(−ε, ε) per pixel (clipped to [0, 1]). The paper leaves the
similarity metric f open ("the correlation of two outputs"); here f = Pearson correlation of
each image's clean and noisy logit vectors, averaged over images and over ``draws`` noise
draws. In [−1, 1]; larger (more consistent) is better.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype), seeded
random initialisation, train mode, no gradients. Batch: the given images. Knobs:
``epsilon`` (8/255 ≈ the paper's 0.031, pixel units), ``draws`` (4).
"""
from __future__ import annotations

import torch

from ..registry import proxy
from ._common import ZooProxy


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def output_similarity_score(model, x, epsilon, draws, generator) -> float:
    values = []
    with torch.no_grad():
        clean = model(x)
        for _ in range(draws):
            noise = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * epsilon
            values.append(pearson_rows(clean, model((x + noise).clamp(0, 1))).mean())
    return float(torch.stack(values).mean())


class OutputSimilarity(ZooProxy):
    name = "output_similarity"
    knobs = {"epsilon": 8 / 255, "draws": 4}

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        if self.degenerate(net, x):
            return {"score": float("nan"), "degenerate": 1.0}
        generator = torch.Generator().manual_seed(seed)
        return {"score": output_similarity_score(net, x, float(self.params["epsilon"]), int(self.params["draws"]),
                                                 generator)}


@proxy("output_similarity")
def make_output_similarity(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None,
                           epsilon=8 / 255, draws=4):
    return OutputSimilarity(device, num_classes, mean, std, preset, n_images, epsilon=epsilon, draws=draws)
