"""Φ, consistency under attack (paper §3.3, docs/design.md §5): a clean network on clean images
against a weight- and input-perturbed copy, compared layer by layer after one SGD step each."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from .similarity import SIMILARITIES, paired_similarities
from .weights import default_init, stateless


class _BoxedModel(nn.Module):
    """``u ∈ [0, 1] ↦ network(lo + (hi − lo) · u)`` with given parameters.

    torchattacks clamps adversarial images to [0, 1]. For inputs in another space (e.g.
    normalised images) the attack runs on u and a perturbation ε in input space becomes
    ε / (hi − lo) in u; with a box wider than the data, the clamp never bites and x′ is
    exactly FGSM in the input space."""

    def __init__(self, network, params, lo, hi, forward):
        super().__init__()
        self.network, self.params, self.lo, self.scale = network, params, lo, hi - lo
        self.run = forward

    def forward(self, u):
        return self.run(self.params, self.lo + self.scale * u)


def fgsm_attack(network, params, images, labels, epsilon, input_range, forward=None):
    """FGSM on ``network`` with ``params`` (see :class:`_BoxedModel`); ``forward`` is
    ``stateless(network)`` where the caller already has it."""
    import torchattacks
    if input_range is None:
        # an unbounded input space: a box far wider than the data and the step
        lo = min(-10.0, float(images.min()) - 1.0 - epsilon)
        hi = max(10.0, float(images.max()) + 1.0 + epsilon)
    else:
        lo, hi = (float(v) for v in input_range)
    model = _BoxedModel(network, params, lo, hi, forward or stateless(network))
    attack = torchattacks.FGSM(model, eps=epsilon / (hi - lo))
    attack.set_model_training_mode(model_training=True, batchnorm_training=True)
    if (lo, hi) == (0.0, 1.0):
        return attack(images, labels)
    adversarial = attack((images - lo) / (hi - lo), labels)
    return lo + (hi - lo) * adversarial


def phi(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, beta: float, epsilon: float,
        gamma: float, similarity: str = "cosine", generator: torch.Generator | None = None,
        input_range=(0.0, 1.0)) -> float:
    """Φ = Σ_i V_i · Θ_i over every Conv2d/Linear layer call i (docs/design.md §5, CRoZe without
    its gradient term):

    1. θ: PyTorch's default initialisation drawn from ``generator`` (:func:`default_init`;
       ``generator=None`` keeps the network's current weights). θʳ_m = θ_m + β · g_m/‖g_m‖ ·
       ‖θ_m‖ per parameter tensor, g = ∇θ of the cross-entropy on the clean batch (a tensor
       with zero gradient is left unperturbed: it has no direction);
    2. x′ = torchattacks FGSM on f_θʳ with step ``epsilon`` in the space of ``images``,
       clamped to ``input_range`` (``None``: unbounded);
    3. θ₁ = θ − γ·g, θʳ₁ = θʳ − γ·∇θʳ L(f_θʳ(x′));
    4. V_i = sim(output of layer i under (θ, x), under (θʳ, x′)), Θ_i = sim(θ₁_i, θʳ₁_i) of
       the layer's weight.

    The network runs in train mode (BatchNorm on batch statistics) through
    ``functional_call``, so its parameters and buffers are left as they were.
    """
    sim = SIMILARITIES[similarity]
    initial = default_init(network, generator) if generator is not None else \
        {n: p.detach().clone() for n, p in network.named_parameters()}
    buffers = {n: b.clone() for n, b in network.named_buffers()}
    forward = stateless(network)
    layer_pass = _LayerPass(network, buffers, labels, forward)
    with layer_pass.hooked():
        clean_features, g = layer_pass(initial, images)
        with torch.no_grad():
            theta_1 = _sgd_step(initial, g, gamma)
            robust = _weight_perturbed(initial, g, beta)
        adversarial = fgsm_attack(network, {**robust, **buffers}, images, labels, epsilon, input_range,
                                  forward).detach()
        robust_features, g_r = layer_pass(robust, adversarial)
        with torch.no_grad():
            total = _consistency(sim, clean_features, robust_features, theta_1, _sgd_step(robust, g_r, gamma))
    return float(total)


class _LayerPass:
    """A forward and backward pass of ``network`` under given parameters: the outputs of its
    Conv2d/Linear layer calls, in call order, and the gradients of the cross-entropy. Its hooks
    record inside a pass only, not while the attack runs the network between two passes."""

    def __init__(self, network: nn.Module, buffers: dict, labels: torch.Tensor, forward):
        self.network, self.buffers, self.labels, self.forward = network, buffers, labels, forward
        self.names = [n for n, _ in network.named_parameters()]
        self.layers = {id(m): name for name, m in network.named_modules()
                       if isinstance(m, (_ConvNd, nn.Linear)) and isinstance(getattr(m, "weight", None), torch.Tensor)}
        self.recorded = []
        self.recording = False

    def _record(self, module, inputs, output):
        if self.recording:
            self.recorded.append((self.layers[id(module)], output.detach()))

    @contextlib.contextmanager
    def hooked(self):
        """The network in train mode (BatchNorm on batch statistics) with the recording hooks
        on; both undone afterwards."""
        handles = [m.register_forward_hook(self._record) for m in self.network.modules() if id(m) in self.layers]
        was_training = self.network.training
        self.network.train()
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self.network.train(was_training)

    def __call__(self, params: dict, x: torch.Tensor):
        """``([(layer name, output)], {parameter name: gradient})`` under ``params`` on ``x``."""
        leaves = {n: params[n].detach().requires_grad_(True) for n in self.names}
        self.recorded = []
        self.recording = True
        try:
            logits = self.forward({**leaves, **self.buffers}, x)
        finally:
            self.recording = False
        loss = F.cross_entropy(logits, self.labels)
        grads = torch.autograd.grad(loss, [leaves[n] for n in self.names], allow_unused=True)
        grads = {n: torch.zeros_like(params[n]) if g is None else g for n, g in zip(self.names, grads)}
        return self.recorded, grads


def _sgd_step(params: dict, grads: dict, gamma: float) -> dict:
    """θ − γ·g per parameter tensor."""
    return {n: params[n] - gamma * grads[n] for n in grads}


def _weight_perturbed(initial: dict, grads: dict, beta: float) -> dict:
    """θʳ_m = θ_m + β · g_m/‖g_m‖ · ‖θ_m‖ per parameter tensor."""
    robust = {}
    for n, g in grads.items():
        g_norm = g.norm()
        # zero gradient: no direction to move in; NaN/inf norms still propagate
        step = torch.where(g_norm == 0, torch.zeros_like(g_norm), beta * initial[n].norm() / g_norm)
        robust[n] = initial[n] + step * g
    return robust


def _consistency(similarity, clean_features, robust_features, stepped: dict, robust_stepped: dict) -> torch.Tensor:
    """Σ_i V_i · Θ_i over the recorded layer calls i: the similarity of the layer's outputs
    times that of its weight after the SGD steps."""
    weights = [f"{layer}.weight" if layer else "weight" for layer, _ in clean_features]
    v = paired_similarities(similarity, [z for _, z in clean_features], [z for _, z in robust_features])
    theta = paired_similarities(similarity, [stepped[w] for w in weights], [robust_stepped[w] for w in weights])
    return (v * theta).to(torch.float64).sum()
