"""``predictor``: the robust accuracy (%) a learned predictor expects of an architecture.

The predictor is fitted on a robustness benchmark by ``trnas fit-predictor`` (gradient-boosted
trees over genotype graph features, the log of the trained network's parameter count and the
raw values of the input proxies it was fitted with) and saved as a skops file
(:mod:`evaluation.predictor.store`). Scoring an architecture measures those input proxies on the
same batch and seed, then predicts.

Args: model (required): the model file; blend (default ``none``): a proxy with positive scores
(``rscore``, ``rscore:paper``) to blend the prediction with. The shared knobs are passed to the
input proxies and the blend proxy; ``preset`` is ignored (each input proxy keeps the preset it
was fitted with) and ``n_images`` may only repeat the model's own.
Returns: ``{"score": predicted robust accuracy in %}``, larger is better; ``{"score": nan,
"error": 1.0}`` when an input proxy flags the architecture. With a blend, also the blend proxy's
components as ``blend.<name>``, and the score is ``exp(½(z(prediction) + z(ln blend score)))``,
both standardised over the calibration sample (:func:`evaluation.predictor.model.blended`):
the blend the held-out protocol ranks best (docs/decisions.md §12).
"""
from __future__ import annotations

import math

from ..predictor.model import blend_statistics, blended, input_row
from ..predictor.store import check_inputs, load_predictor
from ..registry import ProxyError, get_proxy, proxy
from ._common import ZooProxy


class Predicted(ZooProxy):
    name = "predictor"

    def __init__(self, model, blend, device, num_classes, mean, std, preset, n_images):
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
        self.blend = None
        if blend not in (None, "none"):
            if str(blend).partition(":")[0] == "predictor":
                raise ProxyError("blend: a predictor cannot be blended with a predictor")
            self.blend = get_proxy(str(blend), device=self.device, num_classes=self.num_classes, mean=self.mean,
                                   std=self.std, n_images=self.model.n_images)
        parts = list(self.inputs.values()) + ([self.blend] if self.blend else [])
        self.thread_safe = all(getattr(p, "thread_safe", False) for p in parts)
        # the model's hash decides the scores: archives scored with another model are not reused
        self.config = {"model_sha256": self.model.sha256, "n_images": self.model.n_images,
                       "blend": None if self.blend is None else
                       {"name": str(blend), "revision": self.blend.revision, "config": self.blend.config}}

    def measure(self, genotype, images, labels, seed: int) -> dict:
        self.model.check_space(genotype)
        components = {}
        for name, input_proxy in self.inputs.items():
            components[name] = input_proxy.measure(genotype, images, labels, seed)
            if not input_proxy.is_valid(components[name]):
                return {"score": math.nan, "error": 1.0}
        value = self.model.predict_row(input_row(genotype, components, self.model.trained_network))
        if not math.isfinite(value):
            return {"score": math.nan, "error": 1.0}
        if self.blend is None:
            return {"score": value}
        return {"score": value, **{f"blend.{k}": v for k, v in self.blend.measure(genotype, images, labels, seed).items()}}

    # ----- the blend: calibrated like the R-Score, on the search's calibration sample -----
    def blend_part(self, components: dict) -> dict:
        return {k[len("blend."):]: v for k, v in components.items() if k.startswith("blend.")}

    def is_valid(self, components: dict) -> bool:
        return super().is_valid(components) and (self.blend is None or self.blend.is_valid(self.blend_part(components)))

    def calibrate(self, components_list):
        if self.blend is None:
            return None
        valid = [c for c in components_list if self.is_valid(c)]
        blend_calibration = self.blend.calibrate([self.blend_part(c) for c in valid])
        scores = [self.blend.score(self.blend_part(c), blend_calibration) for c in valid]
        try:
            statistics = blend_statistics([c["score"] for c in valid], scores)
        except ValueError as error:
            raise ProxyError(f"proxy 'predictor' blended with {self.config['blend']['name']}: {error}") from None
        return {"blend": blend_calibration, **statistics}

    def score(self, components: dict, calibration=None) -> float:
        if self.blend is None or not self.is_valid(components):
            return super().score(components, calibration)
        if calibration is None:
            raise ProxyError("proxy 'predictor' with a blend scores against a calibration (its calibrate())")
        blend_score = self.blend.score(self.blend_part(components), calibration["blend"])
        return float(blended(components["score"], blend_score, calibration))


@proxy("predictor")
def make_predictor(model=None, blend="none", device="auto", num_classes=10, mean=None, std=None, preset="reference",
                   n_images=None):
    return Predicted(model, blend, device, num_classes, mean, std, preset, n_images)
