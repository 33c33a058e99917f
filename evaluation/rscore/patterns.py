"""Activation patterns as numbers: a neuron's binary pattern over the batch is packed into
float words by one matrix product, and the distinct patterns are counted from the words."""
from __future__ import annotations

import torch

_WORD_BITS = 24  # a float32 sum of distinct powers of two below 2**24 is exact
# a neuron's pattern is packed into one int64 per 64 samples: three float32 words of 24, 24
# and 16 bits, joined as w0 + w1·2^24 + (w2 − 2^15)·2^48, which stays inside int64 and is a
# bijection (the offset only shifts the top word into int64's signed range)
_GROUP_SAMPLES = 64
_WORDS_PER_GROUP = 3


def pack_weights(n_samples: int, device) -> torch.Tensor:
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
    64 samples (the layout of :func:`pack_weights`)."""
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


class PatternSet:
    """The distinct neuron patterns of k initialisations, added one ReLU output at a time
    (``words``: (k, n_words, neurons) float codes in the layout of :func:`pack_weights`).

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


def count_distinct(words: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Distinct columns per initialisation. ``words``: (inits, n_words, neurons) float codes."""
    patterns = PatternSet(words.shape[0], n_samples, words.device)
    patterns.add(words)
    return patterns.counts()


def pattern_words(output: torch.Tensor, pack: torch.Tensor, copies: int, lazy_nan: bool = False) -> torch.Tensor:
    """(copies, words, neurons) pattern words of a 4-D ReLU output whose channels hold
    ``copies`` side-by-side copies (copy-major; 1 for an ordinary network). A ReLU output is
    0, positive or NaN, so its sign is the bit (cheaper than comparing and casting). NaN counts
    as off, and ``sign`` need not map NaN to 0 on every build and device, so the bits are zeroed
    where NaN. With ``lazy_nan`` only a word that came out NaN is recomputed with its NaN bits
    zeroed, which saves a pass over every bit tensor on a CPU; a GPU would wait for that check,
    and ``vmap`` cannot branch on data."""
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

