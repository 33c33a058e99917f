"""The R-Score proxy, registered as ``"rscore"``: builds the proxy network of a genotype
and runs Ψ and Φ on it with the knobs of a preset."""
from __future__ import annotations

import threading
import time

import numpy as np
import torch
from torch import nn

from nas_problem import Genotype, space_of

from ..datasets import CIFAR10_MEAN, CIFAR10_STD, Normalize
from ..registry import Proxy, ProxyError, proxy
from ..runtime import exact_numerics, resolve_device
from .phi import phi
from .pools import use_shift_pools
from .presets import preset_knobs, require
from .psi import psi
from .score import calibrate_components, components_valid, rscore_value


class RScore(Proxy):
    """The R-Score proxy. ``config`` holds every knob that changes the numbers (not the
    device: an archive computed on one device is reused on another)."""

    name = "rscore"
    direction = +1
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
            # oneDNN runs these few-channel convolutions faster channels-last
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
        return components_valid(components)

    def calibrate(self, components_list) -> dict | None:
        return calibrate_components(components_list)

    def score(self, components, calibration=None) -> float:
        return rscore_value(components, calibration)


@proxy("rscore")
def make_rscore(preset: str = "reference", device=None, num_classes: int = 10, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                similarity=None, network=None, n_images=None, psi_inits=None, beta=None, epsilon=None, gamma=None,
                normalised_inputs=None) -> RScore:
    """R-Score with the knobs of ``preset`` ("reference" or "paper", docs/design.md §5); any knob
    given explicitly overrides the preset. ``mean``/``std`` are the data set's statistics
    (images arrive in [0, 1])."""
    knobs = preset_knobs(preset, similarity=similarity, network=network, n_images=n_images, psi_inits=psi_inits,
                         beta=beta, epsilon=epsilon, gamma=gamma, normalised_inputs=normalised_inputs)
    require(isinstance(num_classes, (int, np.integer)) and num_classes >= 2,
            f"num_classes must be an integer >= 2, got {num_classes!r}")
    try:
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ProxyError(f"mean and std must be 3 numbers each, got {mean!r}, {std!r}") from None
    require(len(mean) == 3 and len(std) == 3 and min(std) > 0, "mean and std must be 3 numbers each (std > 0)")
    return RScore(preset, device, int(num_classes), mean, std, **knobs)
