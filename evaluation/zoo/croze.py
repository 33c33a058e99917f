"""``croze``: CRoZe (Ha et al., NeurIPS 2023, §3.2-3.3 and Algorithm 1).

1. θ: seeded random initialisation. g = ∇θ L(f_θ(x), y) (cross-entropy, clean batch).
2. Robust surrogate, per layer m: θʳ_m = θ_m + β · g_m/‖g_m‖ · ‖θ_m‖ (eq. 3; a layer with
   zero gradient is left unperturbed).
3. x′ = FGSM(f_θʳ, x, y, ε) (eq. 4, torchattacks, pixel space).
4. gʳ = ∇θʳ L(f_θʳ(x′), y); θ₁ = θ − γg, θʳ₁ = θʳ − γgʳ (eqs. 6-7).
5. Per layer m (every Conv2d/Linear call): Z_m = 1 + cos(z_m, zʳ_m) of its outputs under
   (θ, x) and (θʳ, x′) (eq. 5); P_m = 1 + cos(θ₁_m, θʳ₁_m) (eq. 8); G_m = |cos(g_m, gʳ_m)|
   (eq. 9). CRoZe = Σ_m Z_m · P_m · G_m. Larger is better.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype), train
mode (BatchNorm on batch statistics where the preset has it), inputs in [0, 1] normalised
inside. Batch: the given images (first ``n_images``). Knobs: ``beta`` (2.0), ``epsilon``
(8/255, pixel units), ``gamma`` (1e-3) — the paper gives no values; these are R-Score's Φ
settings (docs/design.md §5) and the adversarial-training radius of the benchmarks.
"""
from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from ..registry import proxy
from ._common import ZooProxy, cosine, fgsm, weight_layers


def croze_terms(model, x, y, beta, epsilon, gamma) -> dict:
    layers = weight_layers(model)
    robust = copy.deepcopy(model)
    robust_layers = weight_layers(robust)

    def run(net, net_layers, inputs):
        outputs = {}

        def keep(i):
            def hook(module, args, out):
                outputs.setdefault(i, out.detach())  # first call only; returning None keeps the output
            return hook

        handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(net_layers)]
        try:
            loss = F.cross_entropy(net(inputs), y)
        finally:
            for h in handles:
                h.remove()
        grads = torch.autograd.grad(loss, [m.weight for m in net_layers], allow_unused=True)
        grads = [torch.zeros_like(m.weight) if g is None else g for m, g in zip(net_layers, grads)]
        return outputs, grads

    z, g = run(model, layers, x)
    with torch.no_grad():
        for m, rm, gm in zip(layers, robust_layers, g):
            norm = gm.norm()
            if norm > 0:
                rm.weight.add_(beta * gm / norm * m.weight.norm())
    x_adv = fgsm(robust, x, y, epsilon)
    z_r, g_r = run(robust, robust_layers, x_adv)
    total = z_sum = p_sum = g_sum = 0.0
    with torch.no_grad():
        for i, (m, rm) in enumerate(zip(layers, robust_layers)):
            if i not in z or i not in z_r:
                continue
            zi = 1.0 + cosine(z[i], z_r[i])
            pi = 1.0 + cosine(m.weight - gamma * g[i], rm.weight - gamma * g_r[i])
            gi = abs(cosine(g[i], g_r[i]))
            total += zi * pi * gi
            z_sum, p_sum, g_sum = z_sum + zi, p_sum + pi, g_sum + gi
    n = max(len(z), 1)
    return {"score": total, "mean_z": z_sum / n, "mean_p": p_sum / n, "mean_g": g_sum / n}


class CRoZe(ZooProxy):
    name = "croze"
    revision = 2
    knobs = {"beta": 2.0, "epsilon": 8 / 255, "gamma": 1e-3}

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        if self.degenerate(net, x):
            return {"score": float("nan"), "degenerate": 1.0}
        p = self.params
        return croze_terms(net, x, y, float(p["beta"]), float(p["epsilon"]), float(p["gamma"]))


@proxy("croze")
def make_croze(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None, beta=2.0,
               epsilon=8 / 255, gamma=1e-3):
    return CRoZe(device, num_classes, mean, std, preset, n_images, beta=beta, epsilon=epsilon, gamma=gamma)
