"""R-Score, the TRNAS robust proxy (paper §3.3, docs/design.md §5): R = Ψ̂^½ · Φ̂.

Ψ (expressivity, :mod:`.psi`) counts distinct sample-wise ReLU activation patterns of
randomly initialised networks; Φ (consistency, :mod:`.phi`) compares a clean network on clean
images with a weight- and input-perturbed copy, layer by layer, after one SGD step each.
:func:`psi` and :func:`phi` work on any ``nn.Module``; :class:`RScore` (registered as
``"rscore"``) runs both on the proxy network of a genotype with the knobs of a preset.
"""
from .phi import fgsm_attack, phi
from .pools import use_shift_pools
from .presets import PRESETS
from .proxy import RScore, make_rscore
from .psi import psi, relu_neurons
from .score import calibrate_components, normalise_over_set, rescale, rscore_value
from .similarity import SIMILARITIES, cosine_similarity, js_similarity, paired_similarities
from .weights import default_init, gaussian_inits, stateless

__all__ = ["PRESETS", "RScore", "SIMILARITIES", "calibrate_components", "cosine_similarity", "default_init",
           "fgsm_attack", "gaussian_inits", "js_similarity", "make_rscore", "normalise_over_set",
           "paired_similarities", "phi", "psi", "relu_neurons", "rescale", "rscore_value", "stateless",
           "use_shift_pools"]
