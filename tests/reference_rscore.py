"""A straightforward reference implementation of R-Score's raw components (docs/design.md §5).

It computes the same quantities as the production :class:`evaluation.rscore.RScore`,
the obvious way, so that the production path (stacked initialisations in one replicated network,
bit-packed patterns, shifted-view pools, float32) can be checked against it and timed
against it:

* Ψ: K *sequential* re-initialisations of one copy of the network, each taking the k-th
  slice of :func:`evaluation.rscore.gaussian_inits` (the same CPU generator stream as
  production, so the weights are the same); the ReLU outputs of 4-D feature maps are
  binarised into a 2-D 0/1 matrix (neurons × B) and the distinct rows are counted with
  ``torch.unique(dim=0)``. Ψ runs in float32, like production, so that the two see the
  same pre-activations up to kernel rounding.
* Φ: float64 throughout (network, images, weights), plain ``torch.autograd.grad`` on a
  network whose parameters are set in place, the weights drawn by production's
  :func:`evaluation.rscore.default_init`, the attack by production's
  :func:`evaluation.rscore.fgsm_attack`; the similarities written out from their
  definitions.

Nothing here is tuned; it is what production must agree with.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from evaluation.datasets import Normalize
from evaluation.runtime import exact_numerics
from evaluation.rscore import PRESETS, default_init, fgsm_attack, gaussian_inits
from nas_problem import Genotype, build_proxy_network


# ---------------------------------------------------------------- similarities
def reference_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten().double(), b.flatten().double()
    return 1.0 + (a @ b) / (a.norm() * b.norm())


def reference_js(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(a.flatten().double(), dim=0)
    q = torch.softmax(b.flatten().double(), dim=0)
    m = 0.5 * (p + q)
    kl_pm = torch.sum(torch.xlogy(p, p) - torch.xlogy(p, m))
    kl_qm = torch.sum(torch.xlogy(q, q) - torch.xlogy(q, m))
    return 1.0 / (1.0 + 0.5 * kl_pm + 0.5 * kl_qm)


REFERENCE_SIMILARITIES = {"cosine": reference_cosine, "js": reference_js}


# ---------------------------------------------------------------- Ψ
def reference_psi(network: nn.Module, images: torch.Tensor, inits: int, generator: torch.Generator) -> float:
    """Mean over ``inits`` sequential initialisations of the number of distinct rows of the
    (neurons × B) 0/1 matrix of all 4-D ReLU outputs."""
    weights = gaussian_inits(network, inits, generator)
    net = copy.deepcopy(network).train()
    matrices = []

    def hook(module, inputs, output):
        if output.dim() == 4:
            matrices.append((output > 0).reshape(output.shape[0], -1).t().to(torch.uint8))

    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(hook)
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    counts = []
    for k in range(inits):
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                parameter.copy_(weights[name][k])
            for name, buffer in net.named_buffers():  # a fresh BatchNorm state per init
                buffer.copy_(buffers[name])
            matrices.clear()
            net(images)
        patterns = torch.cat(matrices, dim=0)  # (neurons, B)
        counts.append(torch.unique(patterns, dim=0).shape[0])
    return float(np.mean(counts))


# ---------------------------------------------------------------- Φ
def reference_phi(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, beta: float,
                  epsilon: float, gamma: float, similarity: str, generator: torch.Generator,
                  input_range) -> float:
    """Φ = Σ_i V_i · Θ_i in float64 with plain autograd (docs/design.md §5 steps 1-4)."""
    sim = REFERENCE_SIMILARITIES[similarity]
    net = copy.deepcopy(network).double().train()
    images = images.double()
    theta = {n: v.double() for n, v in default_init(network, generator).items()}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    names = [n for n, _ in net.named_parameters()]
    layer_names = {m: name for name, m in net.named_modules() if isinstance(m, (_ConvNd, nn.Linear))}
    outputs = []

    def hook(module, inputs, output):
        outputs.append((layer_names[module], output.detach()))

    for module in layer_names:
        module.register_forward_hook(hook)

    def load(params):
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                parameter.copy_(params[name])
            for name, buffer in net.named_buffers():
                buffer.copy_(buffers[name])

    def features_and_gradient(params, x):
        load(params)
        outputs.clear()
        loss = F.cross_entropy(net(x), labels)
        grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
        grads = {n: torch.zeros_like(params[n]) if g is None else g.detach() for n, g in zip(names, grads)}
        return list(outputs), grads

    # 1. clean features and gradient; θʳ
    clean, g = features_and_gradient(theta, images)
    robust = {}
    for n in names:
        norm = g[n].norm()
        robust[n] = theta[n] if norm == 0 else theta[n] + beta * theta[n].norm() * g[n] / norm
    # 2. x′ = FGSM on f_θʳ (production's attack helper)
    load(robust)
    adversarial = fgsm_attack(net, {**robust, **buffers}, images, labels, epsilon, input_range).detach()
    # 3. one SGD step each
    attacked, g_r = features_and_gradient(robust, adversarial)
    theta_1 = {n: theta[n] - gamma * g[n] for n in names}
    robust_1 = {n: robust[n] - gamma * g_r[n] for n in names}
    # 4. Σ V_i Θ_i over layer calls
    total = 0.0
    assert len(clean) == len(attacked)
    for (layer, z), (_, z_r) in zip(clean, attacked):
        weight = f"{layer}.weight" if layer else "weight"
        total += float(sim(z, z_r)) * float(sim(theta_1[weight], robust_1[weight]))
    return total


# ---------------------------------------------------------------- the components of a genotype
def reference_measure(genotype, images, labels, seed: int, preset: str = "reference", mean=None, std=None,
                      num_classes: int = 10, device="cpu", timing: dict | None = None, **overrides) -> dict:
    """``{"psi", "phi"}`` of ``genotype`` as production's ``RScore.measure`` defines them
    (same seed derivation, same batch, same preset knobs), computed the reference way. A
    ``timing`` dict receives the seconds of each component (``psi_s``, ``phi_s``)."""
    knobs = {**PRESETS[preset], **overrides}
    if isinstance(genotype, str):
        genotype = Genotype.parse(genotype)
    n = knobs["n_images"]
    images = images[:n].to(device, torch.float32)
    labels = labels[:n].to(device, torch.int64)
    psi_seed, phi_seed = (int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2))
    network = build_proxy_network(genotype, preset=knobs["network"], num_classes=num_classes).to(device)
    normalize = Normalize(mean, std).to(device)
    with torch.no_grad():
        normalised = normalize(images)
    if knobs["normalised_inputs"]:
        attacked, inputs, box = network, normalised, None
    else:
        attacked, inputs, box = nn.Sequential(normalize, network), images, (0.0, 1.0)
    # on a GPU, cuDNN's default TF32 would flip Ψ's near-zero signs: measure as production does
    with exact_numerics():
        start = time.perf_counter()
        phi_value = reference_phi(attacked, inputs, labels, beta=knobs["beta"], epsilon=knobs["epsilon"],
                                  gamma=knobs["gamma"], similarity=knobs["similarity"],
                                  generator=torch.Generator().manual_seed(phi_seed), input_range=box)
        middle = time.perf_counter()
        psi_value = reference_psi(network, normalised, knobs["psi_inits"], torch.Generator().manual_seed(psi_seed))
    if timing is not None:  # both return Python floats, so the device has finished
        timing.update(psi_s=time.perf_counter() - middle, phi_s=middle - start)
    return {"psi": psi_value, "phi": phi_value}
