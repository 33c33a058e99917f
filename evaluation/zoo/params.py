"""``params`` and ``flops``: the size of the evaluation network a user trains (millions of
parameters / multiply-adds of one 32x32 forward), as the genotype's space counts them
(DARTS: C = 36, 20 cells; NB201: C = 16, N = 5). No network is run, no data used; the preset
and batch knobs are accepted and ignored. Larger counted better: the baseline that bigger
networks are more accurate and more robust.
"""
from __future__ import annotations

from nas_problem import space_of

from ..registry import proxy
from ._common import ZooProxy


def size_of(genotype, num_classes: int, what: str) -> float:
    space = space_of(genotype)
    return (space.count_params if what == "params" else space.count_flops)(genotype, num_classes=num_classes)


class Size(ZooProxy):
    def __init__(self, what, *args):
        self.name = what
        super().__init__(*args)

    def compute(self, genotype, x, y, seed):
        return {"score": size_of(genotype, self.num_classes, self.name)}


@proxy("params")
def make_params(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Size("params", device, num_classes, mean, std, preset, n_images)


@proxy("flops")
def make_flops(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None):
    return Size("flops", device, num_classes, mean, std, preset, n_images)
