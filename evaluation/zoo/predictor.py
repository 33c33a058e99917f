"""``predictor``: the robust accuracy (%) a learned predictor expects of an architecture.

The predictor is fitted on a robustness benchmark by ``trnas fit-predictor`` (gradient-boosted
trees over genotype graph features, the log of the trained network's parameter count and the
raw values of the input proxies it was fitted with) and saved as a skops file
(:mod:`evaluation.predictor.store`). Scoring an architecture measures those input proxies on the
same batch and seed, then predicts.

Args: model (required): the model file. The shared knobs are passed to the input proxies;
``preset`` is ignored (each input proxy keeps the preset it was fitted with) and ``n_images``
may only repeat the model's own.
Returns: ``{"score": predicted robust accuracy in %}``, larger is better; ``{"score": nan,
"error": 1.0}`` when an input proxy flags the architecture.
"""
from __future__ import annotations

import math

from ..predictor.model import input_row
from ..predictor.store import check_inputs, load_predictor
from ..registry import ProxyError, get_proxy, proxy
from ._common import ZooProxy


class Predicted(ZooProxy):
    name = "predictor"

    def __init__(self, model, device, num_classes, mean, std, preset, n_images):
        if model is None:
            raise ProxyError("proxy 'predictor' needs model=PATH (in a search: proxy_kwargs.model=PATH), a file "
                             "that trnas fit-predictor benchmark=... out=PATH writes")
        self.model = load_predictor(model)
        if n_images is not None and int(n_images) != self.model.n_images:
            raise ProxyError(f"n_images={n_images} for proxy 'predictor': its input proxies were measured on "
                             f"{self.model.n_images} images, the only batch it scores with")
        super().__init__(device, num_classes, mean, std, preset, self.model.n_images)
        self.inputs = {item["name"]: get_proxy(item["name"], device=self.device, num_classes=self.num_classes,
                                               mean=self.mean, std=self.std, n_images=self.model.n_images)
                       for item in self.model.inputs}
        check_inputs(self.model, self.inputs)
        self.thread_safe = all(getattr(p, "thread_safe", False) for p in self.inputs.values())
        # the model's hash decides the scores: archives scored with another model are not reused
        self.config = {"model_sha256": self.model.sha256, "n_images": self.model.n_images}

    def measure(self, genotype, images, labels, seed: int) -> dict:
        self.model.check_space(genotype)
        components = {}
        for name, input_proxy in self.inputs.items():
            components[name] = input_proxy.measure(genotype, images, labels, seed)
            if not input_proxy.is_valid(components[name]):
                return {"score": math.nan, "error": 1.0}
        value = self.model.predict_row(input_row(genotype, components, self.model.trained_network))
        return {"score": value} if math.isfinite(value) else {"score": math.nan, "error": 1.0}


@proxy("predictor")
def make_predictor(model=None, device="auto", num_classes=10, mean=None, std=None, preset="reference",
                   n_images=None):
    return Predicted(model, device, num_classes, mean, std, preset, n_images)
