"""R-Score, the TRNAS robust proxy (paper §3.3, DESIGN §5): R = Ψ̂^½ · Φ̂.

Ψ (expressivity) counts distinct sample-wise ReLU activation patterns of randomly
initialised networks; Φ (consistency) compares a clean network on clean images with a
weight- and input-perturbed copy, layer by layer, after one SGD step each.

:func:`psi` and :func:`phi` work on any ``nn.Module`` so tests and benchmarks can call them
directly; :class:`RScore` (registered as ``"rscore"``) builds the proxy network of a genotype
and runs both with the knobs of a preset.
"""
from __future__ import annotations

import math
import threading
import time
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from nas_problem import PROXY_PRESETS, Genotype, space_of

from .datasets import CIFAR10_MEAN, CIFAR10_STD, Normalize
from .registry import Proxy, ProxyError, exact_numerics, proxy, resolve_device

PRESETS = {
    "reference": dict(similarity="js", network="reference", n_images=16, psi_inits=32, beta=2.0,
                      epsilon=0.01, gamma=1e-3, normalised_inputs=True),
    "paper": dict(similarity="cosine", network="paper", n_images=64, psi_inits=8, beta=2.0,
                  epsilon=8 / 255, gamma=1e-3, normalised_inputs=False),
}

# ======================= similarities =======================
# Both work row-wise over the last dimension, so Φ computes all pairs of one size as one batch.
def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 + cos(a, b) over the last dimension (paper eqs. 3-4), in [0, 2]. A zero vector
    counts as orthogonal (PyTorch's norm clamp) rather than producing NaN."""
    return 1.0 + F.cosine_similarity(a, b, dim=-1)


def js_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 / (1 + JS(softmax(a), softmax(b))) over the last dimension, in [1/(1+ln 2), 1].

    log p and log q come from log_softmax, so they stay finite for large activations; where
    m = (p + q)/2 underflows, p and q are 0 as well and the clamp turns 0·(−inf) into 0."""
    log_p, log_q = F.log_softmax(a, dim=-1), F.log_softmax(b, dim=-1)
    # not log_p.exp(): this torch's CPU exp is scalar and crawls on underflowing inputs,
    # softmax's exponential is vectorised
    p, q = F.softmax(a, dim=-1), F.softmax(b, dim=-1)
    log_m = torch.log((p + q).mul_(0.5).clamp_min_(torch.finfo(p.dtype).tiny))
    js = 0.5 * (p * (log_p - log_m)).sum(dim=-1) + 0.5 * (q * (log_q - log_m)).sum(dim=-1)
    # rounding can leave a hair below zero for identical inputs; clamp keeps NaN as NaN
    return 1.0 / (1.0 + js.clamp(min=0.0))


# pairs computed per batch: as many as keep rows · size up to this. On a CPU a batch beyond
# ~256 KB leaves the cache and runs slower than one pair at a time (measured); a GPU wants few
# launches
SIMILARITY_BATCH_ELEMENTS = {"cpu": 2 ** 16, "cuda": 2 ** 24}


def paired_similarities(similarity, first, second) -> torch.Tensor:
    """``similarity(first[i].flatten(), second[i].flatten())`` for every i, as one tensor.
    Pairs of the same size are stacked and computed together, as many per batch as
    ``SIMILARITY_BATCH_ELEMENTS`` allows: a handful of batched calls instead of one small call
    per layer (a network has hundreds)."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} tensors paired with {len(second)}")
    if not first:
        return torch.zeros(0)
    limit = SIMILARITY_BATCH_ELEMENTS.get(first[0].device.type, SIMILARITY_BATCH_ELEMENTS["cpu"])
    by_size = {}
    for i, (tensor, other) in enumerate(zip(first, second)):
        # the similarities would broadcast a mismatched pair instead of failing
        if tensor.shape != other.shape:
            raise ValueError(f"pair {i} has shapes {tuple(tensor.shape)} and {tuple(other.shape)}")
        by_size.setdefault(tensor.numel(), []).append(i)
    values = first[0].new_empty(len(first))
    for size, indices in by_size.items():
        rows = max(1, limit // max(1, size))
        for start in range(0, len(indices), rows):
            batch = indices[start:start + rows]
            values[batch] = similarity(torch.stack([first[i].reshape(-1) for i in batch]),
                                       torch.stack([second[i].reshape(-1) for i in batch]))
    return values


SIMILARITIES = {"cosine": cosine_similarity, "js": js_similarity}


# ======================= initialisations =======================
def _owner(network: nn.Module, name: str):
    module_name, _, parameter_name = name.rpartition(".")
    return network.get_submodule(module_name), parameter_name


def gaussian_inits(network: nn.Module, inits: int, generator: torch.Generator | None = None) -> dict:
    """``inits`` independent Ψ initialisations, stacked: ``{parameter name: tensor of shape
    (inits, *shape)}``. Conv/linear weights are drawn N(0, 1) (DESIGN §5), in
    ``named_parameters`` order, one ``(inits, *shape)`` draw per tensor from the CPU
    ``generator``; conv/linear biases are 0; normalisation layers get weight 1, bias 0;
    any other parameter keeps its current value in every initialisation."""
    stacked = {}
    for name, parameter in network.named_parameters():
        module, kind = _owner(network, name)
        shape = (inits, *parameter.shape)
        if isinstance(module, (_ConvNd, nn.Linear)) and kind == "weight":
            value = torch.randn(shape, generator=generator)
        elif isinstance(module, (_ConvNd, nn.Linear, _NormBase)) and kind == "bias":
            value = torch.zeros(shape)
        elif isinstance(module, _NormBase) and kind == "weight":
            value = torch.ones(shape)
        else:
            value = parameter.detach().unsqueeze(0).expand(shape)
        stacked[name] = value.to(device=parameter.device, dtype=parameter.dtype)
    return stacked


def default_init(network: nn.Module, generator: torch.Generator | None = None) -> dict:
    """PyTorch's own default initialisation of conv/linear layers (kaiming-uniform with
    a = √5, bias U(±1/√fan_in)) and normalisation layers (1, 0), drawn from ``generator`` on
    the CPU so that the result depends on the seed alone, not on the device or on global
    RNG state. Other parameters keep their values. Returns ``{name: tensor}``."""
    values = {}
    for name, parameter in network.named_parameters():
        module, kind = _owner(network, name)
        value = torch.empty(parameter.shape)
        if isinstance(module, (_ConvNd, nn.Linear)) and kind == "weight":
            nn.init.kaiming_uniform_(value, a=math.sqrt(5), generator=generator)
        elif isinstance(module, (_ConvNd, nn.Linear)) and kind == "bias":
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(value, -bound, bound, generator=generator)
        elif isinstance(module, _NormBase) and kind == "weight":
            value.fill_(1.0)
        elif isinstance(module, _NormBase) and kind == "bias":
            value.fill_(0.0)
        else:
            value = parameter.detach().cpu().clone()
        values[name] = value.to(device=parameter.device, dtype=parameter.dtype)
    return values


def stateless(network: nn.Module):
    """``run(tensors, *args)``: ``network(*args)`` with its parameters and buffers replaced by
    ``tensors`` (``torch.func.functional_call``). functional_call's ``tie_weights`` walks every
    submodule on each call, about 6 ms for a DARTS proxy network (a tenth of an R-Score on a
    CPU); only a network that holds one tensor under two names needs it, so that is asked once."""
    tensors = [id(t) for _, t in network.named_parameters(remove_duplicate=False)]
    tensors += [id(t) for _, t in network.named_buffers(remove_duplicate=False)]
    tied = len(tensors) != len(set(tensors))

    def run(values: dict, *args):
        return functional_call(network, values, args, tie_weights=tied)

    return run


# ======================= Ψ: expressivity =======================
# initialisations run together: as many as keep inits · B · neurons up to this. On a CPU
# (measured) 16 inits of the `reference` network at B = 16 and one of the `paper` network at
# B = 64 are fastest: larger batches spend their time allocating rather than computing. A
# GPU wants all 32 `reference` inits at once, and a few `paper` ones within ~1 GB of activations.
PSI_CHUNK_ELEMENTS = {"cpu": 2 ** 26, "cuda": 2 ** 28}
_WORD_BITS = 24  # a float32 sum of distinct powers of two below 2**24 is exact
# a neuron's pattern is packed into one int64 per 64 samples: three float32 words of 24, 24
# and 16 bits, joined as w0 + w1·2^24 + (w2 − 2^15)·2^48, which stays inside int64 and is a
# bijection (the offset only shifts the top word into int64's signed range)
_GROUP_SAMPLES = 64
_WORDS_PER_GROUP = 3


def _pack_weights(n_samples: int, device) -> torch.Tensor:
    """(words, n_samples) matrix mapping a column of 0/1 sample bits to float words: sample j
    sets bit (j mod 64) mod 24 of word 3·(j div 64) + (j mod 64) div 24."""
    n_groups = -(-n_samples // _GROUP_SAMPLES)
    last = n_samples - (n_groups - 1) * _GROUP_SAMPLES
    n_words = (n_groups - 1) * _WORDS_PER_GROUP + -(-last // _WORD_BITS)
    weights = torch.zeros(n_words, n_samples, device=device)
    for sample in range(n_samples):
        group, bit = divmod(sample, _GROUP_SAMPLES)
        weights[group * _WORDS_PER_GROUP + bit // _WORD_BITS, sample] = float(2 ** (bit % _WORD_BITS))
    return weights


def _join_words(words: torch.Tensor) -> torch.Tensor:
    """(inits, n_words, neurons) float words -> (inits, groups, neurons) int64 codes, one per
    64 samples (the layout of :func:`_pack_weights`)."""
    words = words.to(torch.int64)
    groups = []
    for first in range(0, words.shape[1], _WORDS_PER_GROUP):
        part = words[:, first:first + _WORDS_PER_GROUP]
        code = part[:, 0]
        if part.shape[1] > 1:
            code = code + part[:, 1] * (2 ** _WORD_BITS)
        if part.shape[1] > 2:
            code = code + (part[:, 2] - 2 ** 15) * (2 ** (2 * _WORD_BITS))
        groups.append(code)
    return torch.stack(groups, dim=1)


class _PatternSet:
    """The distinct neuron patterns of k initialisations, added one ReLU output at a time
    (``words``: (k, n_words, neurons) float codes in the layout of :func:`_pack_weights`).

    Up to ``TABLE_SAMPLES`` samples a pattern is one word and the set is a presence table
    filled as the words arrive, so no word outlives its ReLU output. Beyond that the words are
    kept and counted at the end: up to 64 samples a pattern is one integer, so counting is a
    1-D unique."""

    # a table of 2**20 flags is 1 MB per initialisation; past that a sort is cheaper
    TABLE_SAMPLES = 20

    def __init__(self, inits: int, n_samples: int, device):
        self.inits = inits
        self.table = (torch.zeros(inits, 2 ** n_samples, dtype=torch.bool, device=device)
                      if n_samples <= self.TABLE_SAMPLES else None)
        self.words = []

    def add(self, words: torch.Tensor):
        if self.table is not None:
            self.table.scatter_(1, words[:, 0].to(torch.int64), True)
        else:
            self.words.append(words)

    def counts(self) -> torch.Tensor:
        """(k,) float64: the number of distinct patterns of each initialisation."""
        if self.table is not None:
            return self.table.sum(dim=1).to(torch.float64)
        if not self.words:
            return torch.zeros(self.inits, dtype=torch.float64)
        counts = []
        for codes in _join_words(torch.cat(self.words, dim=2)):  # (groups of 64 samples, neurons) per init
            if codes.shape[0] == 1:
                counts.append(torch.unique(codes[0], sorted=False).numel())
            else:
                counts.append(torch.unique(codes.t(), dim=0).shape[0])
        return torch.tensor(counts, dtype=torch.float64)


def _count_distinct(words: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Distinct columns per initialisation. ``words``: (inits, n_words, neurons) float codes."""
    patterns = _PatternSet(words.shape[0], n_samples, words.device)
    patterns.add(words)
    return patterns.counts()


def _pattern_words(output: torch.Tensor, pack: torch.Tensor, copies: int, lazy_nan: bool = False) -> torch.Tensor:
    """(copies, words, neurons) pattern words of a 4-D ReLU output whose channels hold
    ``copies`` side-by-side copies (copy-major; 1 for an ordinary network). A ReLU output is
    0, positive or NaN, so its sign is the bit: sign + matmul is several times cheaper than
    comparing and casting. NaN counts as off. This torch's CPU ``sign`` already maps NaN to 0,
    other builds and devices need not, so the bits are zeroed where NaN. With ``lazy_nan`` only
    a word that came out NaN is recomputed with its NaN bits zeroed, which saves a pass over
    every bit tensor on a CPU; a GPU would wait for that check, and ``vmap`` cannot branch on
    data."""
    n, channels = output.shape[:2]
    # channels-last storage reads as (N, H, W, copies, C) without a copy
    channels_last = not output.is_contiguous()
    flat = output.permute(0, 2, 3, 1).reshape(n, -1) if channels_last else output.reshape(n, -1)
    bits = torch.sign(flat)
    if not lazy_nan:
        bits.nan_to_num_(nan=0.0)
    words = pack @ bits.to(pack.dtype)
    if lazy_nan and bool(torch.isnan(words).any()):
        words = pack @ bits.nan_to_num_(nan=0.0).to(pack.dtype)
    if not channels_last:
        return words.unflatten(1, (copies, -1)).transpose(0, 1)
    return words.unflatten(1, (-1, copies, channels // copies)).permute(2, 0, 1, 3).flatten(2)


def _vmap_runner(network: nn.Module, images: torch.Tensor, pack: torch.Tensor):
    """``run(params, k)`` -> (k,) distinct-pattern counts of k stacked initialisations of
    ``network`` (hooked on its ReLUs while it runs), batched with ``vmap`` when the module
    allows it, else one initialisation at a time."""
    buffers = dict(network.named_buffers())
    recorded = []
    forward = stateless(network)

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            recorded.append(_pattern_words(output, pack, 1)[0])

    def words_of_one_pass(params, state):
        recorded.clear()
        forward({**params, **state}, images)
        if not recorded:
            return torch.zeros(pack.shape[0], 0, device=images.device)
        return torch.cat(recorded, dim=1)

    def run(params, k):
        # BatchNorm updates running statistics in place: give each init its own copy
        state = {n: b.unsqueeze(0).expand(k, *b.shape).clone() for n, b in buffers.items()}
        handles = [m.register_forward_hook(record) for m in network.modules() if isinstance(m, nn.ReLU)]
        was_training = network.training
        network.train()
        try:
            words = vmap(words_of_one_pass, randomness="error")(params, state)
        except (RuntimeError, NotImplementedError, ValueError):
            # modules that vmap cannot batch run one initialisation at a time
            words = torch.stack([words_of_one_pass({n: v[i] for n, v in params.items()},
                                                   {n: b[i] for n, b in state.items()}) for i in range(k)])
        finally:
            network.train(was_training)
            for handle in handles:
                handle.remove()
            recorded.clear()
        return _count_distinct(words, images.shape[0])

    return run


class _PatternReLU(nn.Module):
    """The ReLU of a replicated Ψ network: adds the patterns of its output to the pass's set, and
    computes a tensor it has already seen in this forward pass (a cell output feeds two
    cells, a node feeds several operations) only once. Identical activations add no
    distinct pattern, so skipping them leaves Ψ unchanged (the networks never change a
    tensor in place)."""

    def __init__(self, shared: dict):
        super().__init__()
        self.shared = shared

    def forward(self, x):
        shared = self.shared
        seen = shared["seen"]
        key = id(x)
        if key in seen:
            return seen[key][1]
        output = torch.relu(x)
        if output.dim() == 4:
            shared["patterns"].add(_pattern_words(output, shared["pack"], shared["copies"],
                                                  lazy_nan=output.device.type == "cpu"))
        # the entry lives as long as its input does (the callback drops it), so an id is never
        # mistaken for a freed tensor's
        seen[key] = (weakref.ref(x, lambda _, key=key: seen.pop(key, None)), output)
        return output


def _replica_runner(replicate, images: torch.Tensor, pack: torch.Tensor):
    """``run(params, k)`` -> (k,) counts, for a network that ``replicate(k)`` builds as k
    side-by-side copies: one ordinary forward pass computes all k initialisations."""
    networks = {}
    shared = {"pack": pack, "seen": {}}

    def run(params, k):
        if k not in networks:
            network = replicate(k).train()
            for parent in list(network.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.ReLU):
                        setattr(parent, name, _PatternReLU(shared))
            networks[k] = network, stateless(network)
        network, forward = networks[k]
        patterns = _PatternSet(k, images.shape[0], images.device)
        shared.update(copies=network.replicas, patterns=patterns, seen={})
        try:
            forward({n: params[n].reshape(p.shape) for n, p in network.named_parameters()}, images)
        finally:
            shared.update(patterns=None, seen={})
        return patterns.counts()

    return run


def relu_neurons(network: nn.Module, images: torch.Tensor) -> int:
    """Neurons Ψ counts for one initialisation: elements per image of every 4-D ReLU output,
    read from one forward pass of the first image (eval mode, so a batch of one is fine;
    the shapes do not depend on the values)."""
    neurons = []

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            neurons.append(output[0].numel())

    handles = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, nn.ReLU)]
    was_training = network.training
    try:
        with torch.no_grad():
            network.eval()(images[:1])
    finally:
        for handle in handles:
            handle.remove()
        network.train(was_training)
    return sum(neurons)


def psi(network: nn.Module, images: torch.Tensor, inits: int = 1, generator: torch.Generator | None = None,
        *, chunk: int | None = None, replicate=None) -> float:
    """Ψ: the number of distinct neuron activation patterns over ``images``, averaged over
    ``inits`` random initialisations (:func:`gaussian_inits`).

    A neuron is one element (channel, row, column) of the output of an ``nn.ReLU`` call
    whose output is 4-D; its pattern is its B binary values (> 0) over the batch. Patterns
    are counted across all ReLUs together. BatchNorm uses batch statistics (train mode).
    The network itself is not modified: initialisations run through
    ``torch.func.functional_call``, ``chunk`` of them at a time (default: as many as keep
    chunk · B · neurons ≤ ``PSI_CHUNK_ELEMENTS`` of the device, in chunks of equal size) — batched with
    ``vmap`` when the module allows it, or, given ``replicate`` (``k`` -> the same architecture
    built as k side-by-side copies, ``replicas=k``), as one ordinary forward pass of that
    network, which computes the same numbers several times faster. The chunking never
    changes the result.
    """
    inits = int(inits)
    n_samples = images.shape[0]
    stacked = gaussian_inits(network, inits, generator)
    pack = _pack_weights(n_samples, images.device)
    if chunk:
        size = int(chunk)
    else:
        limit = PSI_CHUNK_ELEMENTS.get(images.device.type, PSI_CHUNK_ELEMENTS["cpu"])
        size = max(1, limit // max(1, n_samples * relu_neurons(network, images)))
        size = -(-inits // -(-inits // size))  # the fewest chunks, of equal size
    run = _replica_runner(replicate, images, pack) if replicate is not None else _vmap_runner(network, images, pack)
    counts = []
    with torch.no_grad():
        for start in range(0, inits, size):
            k = min(size, inits - start)
            counts.append(run({n: v[start:start + k] for n, v in stacked.items()}, k).cpu())
    return float(torch.cat(counts).mean())


# ======================= Φ: consistency under attack =======================
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
    """Φ = Σ_i V_i · Θ_i over every Conv2d/Linear layer call i (DESIGN §5, CRoZe without
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
    names = [n for n, _ in network.named_parameters()]
    initial = default_init(network, generator) if generator is not None else \
        {n: p.detach().clone() for n, p in network.named_parameters()}
    buffers = {n: b.clone() for n, b in network.named_buffers()}
    layers = {id(m): name for name, m in network.named_modules()
              if isinstance(m, (_ConvNd, nn.Linear)) and isinstance(getattr(m, "weight", None), torch.Tensor)}
    recorded = []
    recording = [False]
    forward = stateless(network)

    def record(module, inputs, output):
        if recording[0]:
            recorded.append((layers[id(module)], output.detach()))

    def forward_and_grad(params, x):
        leaves = {n: params[n].detach().requires_grad_(True) for n in names}
        recorded.clear()
        recording[0] = True
        try:
            logits = forward({**leaves, **buffers}, x)
        finally:
            recording[0] = False
        loss = F.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
        grads = {n: torch.zeros_like(params[n]) if g is None else g for n, g in zip(names, grads)}
        return list(recorded), grads

    handles = [m.register_forward_hook(record) for m in network.modules() if id(m) in layers]
    was_training = network.training
    network.train()
    try:
        clean_features, g = forward_and_grad(initial, images)
        with torch.no_grad():
            theta_1 = {n: initial[n] - gamma * g[n] for n in names}
            robust = {}
            for n in names:
                g_norm = g[n].norm()
                # zero gradient: no direction to move in; NaN/inf norms still propagate
                step = torch.where(g_norm == 0, torch.zeros_like(g_norm), beta * initial[n].norm() / g_norm)
                robust[n] = initial[n] + step * g[n]
        adversarial = fgsm_attack(network, {**robust, **buffers}, images, labels, epsilon, input_range,
                                  forward).detach()
        robust_features, g_r = forward_and_grad(robust, adversarial)
        with torch.no_grad():
            robust_1 = {n: robust[n] - gamma * g_r[n] for n in names}
            weights = [f"{layer}.weight" if layer else "weight" for layer, _ in clean_features]
            v = paired_similarities(sim, [z for _, z in clean_features], [z for _, z in robust_features])
            theta = paired_similarities(sim, [theta_1[w] for w in weights], [robust_1[w] for w in weights])
            total = (v * theta).to(torch.float64).sum()
    finally:
        for handle in handles:
            handle.remove()
        network.train(was_training)
    return float(total)


# ======================= faster pools for Ψ on the CPU =======================
class _ShiftMaxPool2d(nn.Module):
    """MaxPool2d as a running maximum over shifted strided views: the same values, several
    times faster than PyTorch's CPU kernel on small feature maps."""

    def __init__(self, kernel: int, stride: int, padding: int):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        k, s, p = self.kernel, self.stride, self.padding
        padded = F.pad(x, (p, p, p, p), value=float("-inf"))
        h_out = (x.shape[-2] + 2 * p - k) // s + 1
        w_out = (x.shape[-1] + 2 * p - k) // s + 1
        out = None
        for i in range(k):
            for j in range(k):
                view = padded[..., i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]
                out = view if out is None else torch.maximum(out, view)
        return out


class _ShiftAvgPool2d(nn.Module):
    """AvgPool2d as a sum over shifted strided views divided by the window counts."""

    def __init__(self, kernel: int, stride: int, padding: int, count_include_pad: bool):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.count_include_pad = count_include_pad
        self._divisors = {}

    def _window_sum(self, x, h_out, w_out):
        k, s, p = self.kernel, self.stride, self.padding
        padded = F.pad(x, (p, p, p, p))
        out = None
        for i in range(k):
            for j in range(k):
                view = padded[..., i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]
                out = view if out is None else out + view
        return out

    def forward(self, x):
        k, s, p = self.kernel, self.stride, self.padding
        h, w = x.shape[-2:]
        h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if self.count_include_pad:
            return self._window_sum(x, h_out, w_out) / float(k * k)
        key = (h, w, x.device, x.dtype)
        if key not in self._divisors:
            self._divisors[key] = self._window_sum(torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype),
                                                   h_out, w_out)
        return self._window_sum(x, h_out, w_out) / self._divisors[key]


def _square(value):
    if isinstance(value, tuple):
        return value[0] if len(set(value)) == 1 else None
    return value


def _shift_pool(module):
    """The shifted-view equivalent of a square, non-ceil pool, or None."""
    if not isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) or module.ceil_mode:
        return None
    kernel, stride, padding = (_square(module.kernel_size), _square(module.stride or module.kernel_size),
                               _square(module.padding))
    if None in (kernel, stride, padding):
        return None
    if isinstance(module, nn.MaxPool2d):
        if _square(module.dilation) != 1 or module.return_indices:
            return None
        return _ShiftMaxPool2d(kernel, stride, padding)
    if module.divisor_override is not None:
        return None
    return _ShiftAvgPool2d(kernel, stride, padding, module.count_include_pad)


def use_shift_pools(network: nn.Module) -> nn.Module:
    """Swap square, non-ceil MaxPool2d/AvgPool2d modules of ``network`` in place for
    equivalents that run much faster on the CPU (used for Ψ, which needs no gradients:
    the maxima agree exactly, averages up to rounding)."""
    for parent in list(network.modules()):
        for child_name, child in list(parent.named_children()):
            replacement = _shift_pool(child)
            if replacement is not None:
                setattr(parent, child_name, replacement)
    return network


# ======================= R-Score from components =======================
def _valid(components) -> bool:
    try:
        values = (float(components["psi"]), float(components["phi"]))
    except (KeyError, TypeError, ValueError):
        return False
    return all(math.isfinite(v) and v > 0 for v in values)


def calibrate_components(components_list) -> dict | None:
    """lo/hi of log Ψ and log Φ over the entries whose Ψ and Φ are finite and positive;
    ``None`` when there is none (scores then fall back to raw Ψ^½ · Φ)."""
    valid = [c for c in components_list if _valid(c)]
    if not valid:
        return None
    log_psi = [math.log(float(c["psi"])) for c in valid]
    log_phi = [math.log(float(c["phi"])) for c in valid]
    return {"log_psi": [min(log_psi), max(log_psi)], "log_phi": [min(log_phi), max(log_phi)]}


def rescale(log_value: float, bounds) -> float:
    """``1 + 99 · (log v − lo) / (hi − lo)`` clipped to [1, 100]. A degenerate calibration
    (lo == hi, one distinct value) is a step: below → 1, above → 100, equal → 50.5."""
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ProxyError(f"bad calibration bounds {list(bounds)}: need finite lo <= hi")
    if hi == lo:
        return 1.0 if log_value < lo else 100.0 if log_value > hi else 50.5
    return min(100.0, max(1.0, 1.0 + 99.0 * (log_value - lo) / (hi - lo)))


def rscore_value(components, calibration=None) -> float:
    """R = Ψ̂^½ · Φ̂; with ``calibration=None``, R = Ψ^½ · Φ. NaN for a flagged architecture."""
    if not _valid(components):
        return float("nan")
    psi_value, phi_value = float(components["psi"]), float(components["phi"])
    if calibration is None:
        return math.sqrt(psi_value) * phi_value
    try:
        bounds_psi, bounds_phi = calibration["log_psi"], calibration["log_phi"]
    except (KeyError, TypeError):
        raise ProxyError(f"an R-Score calibration needs 'log_psi' and 'log_phi' bounds, got {calibration!r}") from None
    return math.sqrt(rescale(math.log(psi_value), bounds_psi)) * rescale(math.log(phi_value), bounds_phi)


def normalise_over_set(components_list) -> list:
    """R-Scores of a fixed set (e.g. a benchmark), normalised over the set itself."""
    components_list = list(components_list)
    calibration = calibrate_components(components_list)
    return [rscore_value(c, calibration) for c in components_list]


# ======================= the proxy =======================
class RScore(Proxy):
    """The R-Score proxy. ``config`` holds every knob that changes the numbers (not the
    device: an archive computed on one device is reused on another)."""

    name = "rscore"
    direction = +1
    # 2: Ψ on a replicated network (7th digit), JS similarity from softmax (Φ, 7th digit);
    # 3: FactorizedReduce as stride-1 convolutions of subsampled maps (Φ, 7th digit)
    revision = 3
    # weights come from generators seeded per call; networks and hooks are built per call
    thread_safe = True

    def __init__(self, preset, device, num_classes, mean, std, **knobs):
        self.device = resolve_device(device)
        self.num_classes = num_classes
        self.mean, self.std = mean, std
        for key, value in knobs.items():
            setattr(self, key, value)
        self.config = {"preset": preset, **knobs, "num_classes": num_classes,
                       "mean": list(mean), "std": list(std)}
        self._timing = threading.local()

    @property
    def last_timing(self) -> dict:
        """Seconds of Ψ and Φ in this thread's last ``measure`` (``psi_s``, ``phi_s``)."""
        return getattr(self._timing, "value", {})

    def __getstate__(self):
        # a proxy pickles (or deep-copies) as its settings; timings belong to the threads that measured
        return {key: value for key, value in self.__dict__.items() if key != "_timing"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._timing = threading.local()

    def _batch(self, images, labels):
        n = self.config["n_images"]
        if images.shape[0] < n or labels.shape[0] < n:
            raise ProxyError(f"rscore needs {n} images (n_images), got {images.shape[0]}")
        images = images[:n].to(self.device, torch.float32)
        labels = labels[:n].to(self.device, torch.int64)
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ProxyError(f"labels must lie in 0..{self.num_classes - 1} (num_classes={self.num_classes})")
        return images, labels

    def measure(self, genotype, images, labels, seed: int) -> dict:
        """Raw components ``{"psi": Ψ, "phi": Φ}``. Ψ and Φ draw their weights from two
        independent streams derived from ``seed`` alone, so a result never depends on what
        ran before. Numeric trouble comes back as NaN/inf, never as an exception."""
        if isinstance(genotype, str):
            genotype = Genotype.parse(genotype)
        images, labels = self._batch(images, labels)
        psi_seed, phi_seed = (int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2))
        space = space_of(genotype)
        network = space.build_proxy_network(genotype, preset=self.network, num_classes=self.num_classes).to(self.device)
        normalize = Normalize(self.mean, self.std).to(self.device)
        with torch.no_grad():
            normalised = normalize(images)
        if self.normalised_inputs:
            attacked, inputs, box = network, normalised, None
        else:
            attacked, inputs, box = nn.Sequential(normalize, network), images, (0.0, 1.0)
        if self.device.type == "cpu":
            # oneDNN runs these few-channel convolutions several times faster channels-last
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            normalised = normalised.contiguous(memory_format=torch.channels_last)

        def replicate(copies):
            replicated = space.build_proxy_network(genotype, preset=self.network, num_classes=self.num_classes,
                                                   replicas=copies).to(self.device)
            return use_shift_pools(replicated) if self.device.type == "cpu" else replicated

        with exact_numerics():
            start = time.perf_counter()
            phi_value = phi(attacked, inputs, labels, beta=self.beta, epsilon=self.epsilon, gamma=self.gamma,
                            similarity=self.similarity, generator=torch.Generator().manual_seed(phi_seed),
                            input_range=box)
            middle = time.perf_counter()
            psi_value = psi(network, normalised, self.psi_inits, torch.Generator().manual_seed(psi_seed),
                            replicate=replicate)
            self._timing.value = {"psi_s": time.perf_counter() - middle, "phi_s": middle - start}
        return {"psi": psi_value, "phi": phi_value}

    def is_valid(self, components) -> bool:
        return _valid(components)

    def calibrate(self, components_list) -> dict | None:
        return calibrate_components(components_list)

    def score(self, components, calibration=None) -> float:
        return rscore_value(components, calibration)


def _check(condition, message):
    if not condition:
        raise ProxyError(message)


@proxy("rscore")
def make_rscore(preset: str = "reference", device=None, num_classes: int = 10, mean=CIFAR10_MEAN, std=CIFAR10_STD,
           similarity=None, network=None, n_images=None, psi_inits=None, beta=None, epsilon=None, gamma=None,
           normalised_inputs=None) -> RScore:
    """R-Score with the knobs of ``preset`` ("reference" or "paper", DESIGN §5); any knob
    given explicitly overrides the preset. ``mean``/``std`` are the data set's statistics
    (images arrive in [0, 1])."""
    _check(preset in PRESETS, f"unknown rscore preset {preset!r} (available: {', '.join(PRESETS)})")
    given = dict(similarity=similarity, network=network, n_images=n_images, psi_inits=psi_inits, beta=beta,
                 epsilon=epsilon, gamma=gamma, normalised_inputs=normalised_inputs)
    knobs = {k: PRESETS[preset][k] if v is None else v for k, v in given.items()}
    _check(knobs["similarity"] in SIMILARITIES,
           f"unknown similarity {knobs['similarity']!r} (available: {', '.join(SIMILARITIES)})")
    _check(knobs["network"] in PROXY_PRESETS,
           f"unknown proxy network {knobs['network']!r} (available: {', '.join(PROXY_PRESETS)})")
    for key in ("n_images", "psi_inits"):
        value = knobs[key]
        _check(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
               f"{key} must be a positive integer, got {value!r}")
        knobs[key] = int(value)
    for key in ("beta", "epsilon", "gamma"):
        try:
            knobs[key] = float(knobs[key])
        except (TypeError, ValueError):
            raise ProxyError(f"{key} must be a number, got {knobs[key]!r}") from None
        _check(math.isfinite(knobs[key]) and knobs[key] >= 0, f"{key} must be finite and >= 0, got {knobs[key]}")
    _check(isinstance(knobs["normalised_inputs"], (bool, np.bool_)),
           f"normalised_inputs must be true or false, got {knobs['normalised_inputs']!r}")
    knobs["normalised_inputs"] = bool(knobs["normalised_inputs"])
    _check(isinstance(num_classes, (int, np.integer)) and num_classes >= 2,
           f"num_classes must be an integer >= 2, got {num_classes!r}")
    try:
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ProxyError(f"mean and std must be 3 numbers each, got {mean!r}, {std!r}") from None
    _check(len(mean) == 3 and len(std) == 3 and min(std) > 0, "mean and std must be 3 numbers each (std > 0)")
    return RScore(preset, device, int(num_classes), mean, std, **knobs)
