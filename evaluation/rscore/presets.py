"""The R-Score's presets and the checks on its knobs.

``reference`` reproduces the official TRNAS code (its similarity, network and ε); ``paper``
follows the paper's text (docs/design.md §5). A knob given explicitly overrides its preset's value.
"""
from __future__ import annotations

import math

import numpy as np

from nas_problem import PROXY_PRESETS

from ..registry import ProxyError
from .similarity import SIMILARITIES

PRESETS = {
    "reference": dict(similarity="js", network="reference", n_images=16, psi_inits=32, beta=2.0,
                      epsilon=0.01, gamma=1e-3, normalised_inputs=True),
    "paper": dict(similarity="cosine", network="paper", n_images=64, psi_inits=8, beta=2.0,
                  epsilon=8 / 255, gamma=1e-3, normalised_inputs=False),
}


def require(condition, message):
    """A :class:`ProxyError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ProxyError(message)


def preset_knobs(preset: str, **given) -> dict:
    """The knobs of ``preset`` with each one in ``given`` that is not None in its place,
    checked and converted (ints, floats, a bool), in the order ``given`` names them."""
    require(preset in PRESETS, f"unknown rscore preset {preset!r} (available: {', '.join(PRESETS)})")
    knobs = {k: PRESETS[preset][k] if v is None else v for k, v in given.items()}
    require(knobs["similarity"] in SIMILARITIES,
            f"unknown similarity {knobs['similarity']!r} (available: {', '.join(SIMILARITIES)})")
    require(knobs["network"] in PROXY_PRESETS,
            f"unknown proxy network {knobs['network']!r} (available: {', '.join(PROXY_PRESETS)})")
    for key in ("n_images", "psi_inits"):
        value = knobs[key]
        require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
                f"{key} must be a positive integer, got {value!r}")
        knobs[key] = int(value)
    for key in ("beta", "epsilon", "gamma"):
        try:
            knobs[key] = float(knobs[key])
        except (TypeError, ValueError):
            raise ProxyError(f"{key} must be a number, got {knobs[key]!r}") from None
        require(math.isfinite(knobs[key]) and knobs[key] >= 0, f"{key} must be finite and >= 0, got {knobs[key]}")
    require(isinstance(knobs["normalised_inputs"], (bool, np.bool_)),
            f"normalised_inputs must be true or false, got {knobs['normalised_inputs']!r}")
    knobs["normalised_inputs"] = bool(knobs["normalised_inputs"])
    return knobs
