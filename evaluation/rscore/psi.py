"""Ψ, expressivity (paper §3.3, docs/design.md §5): the number of distinct sample-wise ReLU
activation patterns of randomly initialised networks, averaged over initialisations."""
from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.func import vmap

from .patterns import PatternSet, count_distinct, pack_weights, pattern_words
from .weights import gaussian_inits, stateless

# initialisations run together: as many as keep inits · B · neurons up to this. On a CPU
# larger batches spend their time allocating rather than computing; a GPU wants few, large ones
PSI_CHUNK_ELEMENTS = {"cpu": 2 ** 26, "cuda": 2 ** 28}


def _vmap_runner(network: nn.Module, images: torch.Tensor, pack: torch.Tensor):
    """``run(params, k)`` -> (k,) distinct-pattern counts of k stacked initialisations of
    ``network`` (hooked on its ReLUs while it runs), batched with ``vmap`` when the module
    allows it, else one initialisation at a time."""
    buffers = dict(network.named_buffers())
    recorded = []
    forward = stateless(network)

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            recorded.append(pattern_words(output, pack, 1)[0])

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
        return count_distinct(words, images.shape[0])

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
            shared["patterns"].add(pattern_words(output, shared["pack"], shared["copies"],
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
        patterns = PatternSet(k, images.shape[0], images.device)
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
    network, which computes the same numbers faster. The chunking never changes the result.
    """
    inits = int(inits)
    n_samples = images.shape[0]
    stacked = gaussian_inits(network, inits, generator)
    pack = pack_weights(n_samples, images.device)
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
