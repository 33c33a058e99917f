"""The similarities Φ compares a clean and a perturbed layer with (paper eqs. 3-4).

Both work row-wise over the last dimension, so Φ computes all pairs of one size as one batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


SIMILARITIES = {"cosine": cosine_similarity, "js": js_similarity}

# pairs computed per batch: as many as keep rows · size up to this. On a CPU a batch that
# leaves the cache runs slower than one pair at a time; a GPU wants few launches
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
