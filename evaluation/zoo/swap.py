"""``swap``: Ψ of the R-Score alone (sample-wise activation patterns, SWAP-style): the number
of distinct per-neuron binary ReLU patterns over the batch, computed by ``rscore.psi``.

Network: the proxy network of ``preset`` (NB201 network for a NAS-Bench-201 genotype), inputs
normalised with the data set's mean/std. Batch: the given images (first ``n_images``).
Knobs: ``inits`` — weight re-initialisations averaged over (N(0, 1) conv/linear weights, as
in R-Score); default: the rscore preset's K (reference 32, paper 8). Larger is better.
"""
from __future__ import annotations

import torch

from ..registry import ProxyError, proxy
from ..rscore.pools import use_shift_pools
from ..rscore.presets import PRESETS as RSCORE_PRESETS
from ..rscore.psi import psi
from ._common import ZooProxy


class Swap(ZooProxy):
    name = "swap"
    knobs = {"inits": None}
    flag_constant_output = False  # Ψ counts patterns inside the network; 1 pattern already marks it as poor

    def __init__(self, *args, **knobs):
        super().__init__(*args, **knobs)
        if self.params["inits"] is None:
            self.params["inits"] = RSCORE_PRESETS[self.preset]["psi_inits"]
            self.config["inits"] = self.params["inits"]
        if int(self.params["inits"]) < 1:
            raise ProxyError(f"inits must be >= 1, got {self.params['inits']}")

    def compute(self, genotype, x, y, seed):
        net = self.network(genotype, seed)
        with torch.no_grad():
            normalised = net.normalize(x)
        body = net.body
        if self.device.type == "cpu":
            use_shift_pools(body)
        return {"score": psi(body, normalised, int(self.params["inits"]), torch.Generator().manual_seed(seed))}


@proxy("swap")
def make_swap(device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None, inits=None):
    return Swap(device, num_classes, mean, std, preset, n_images, inits=inits)
