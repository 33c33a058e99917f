"""What the zoo's proxies share: building the scored network, seeding, weight layers, FGSM,
and the Proxy plumbing for single-number proxies (``{"score": value}``, no calibration)."""
from __future__ import annotations

import math

import torch
from torch import nn

from nas_problem import space_of

from ..datasets import NormalizedNet
from ..registry import Proxy, ProxyError
from ..rscore.phi import fgsm_attack
from ..runtime import exact_numerics, resolve_device

PRESETS = ("reference", "paper")


def build_body(genotype, preset: str, num_classes: int) -> nn.Module:
    return space_of(genotype).build_proxy_network(genotype, preset, num_classes=num_classes)


def weight_layers(model: nn.Module) -> list:
    """Every Conv2d / Linear layer, in module order: the "layers" of the zero-cost literature."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def forward_recording(model: nn.Module, modules, x: torch.Tensor, keep) -> list:
    """Run ``model(x)`` without gradients and return ``keep(module, inputs, output)`` of every
    call of ``modules``, in call order."""
    kept = []
    handles = [m.register_forward_hook(lambda module, inputs, output: kept.append(keep(module, inputs, output)))
               for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return kept


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """torchattacks FGSM (through rscore's helper) of step ``eps`` on inputs in [0, 1], the
    model in train mode (BatchNorm on batch statistics, as the proxies score it)."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return fgsm_attack(model, state, x.detach(), y, float(eps), (0.0, 1.0)).detach()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) of the flattened tensors; a zero vector counts as orthogonal (0), as in
    rscore's similarity, while inf/NaN entries still give NaN."""
    a, b = a.flatten().double(), b.flatten().double()
    norms = a.norm() * b.norm()
    if norms == 0:
        return 0.0
    return float((a @ b) / norms)


def finite(value) -> float:
    """A float, with anything non-numeric turned into NaN (never raises)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def constant_output(model: nn.Module, x: torch.Tensor) -> bool:
    """The logits do not depend on the input (e.g. a NAS-Bench-201 cell whose output node is
    disconnected): any proxy value of such a network is degenerate."""
    with torch.no_grad():
        out = model(x)
    return bool(out.shape[0] > 1 and float((out - out[:1]).abs().max()) <= 1e-12 * (1 + float(out.abs().max())))


class ZooProxy(Proxy):
    """A proxy whose measurement is one number, ``components["score"]`` (larger is better), plus
    optional diagnostics. ``measure`` seeds the weight initialisation with ``seed`` and returns
    NaN for numeric trouble or degenerate networks instead of raising."""

    name = ""
    knobs: dict = {}
    flag_constant_output = True

    def __init__(self, device="auto", num_classes=10, mean=None, std=None, preset="reference", n_images=None,
                 **knobs):
        if preset not in PRESETS:
            raise ProxyError(f"unknown preset {preset!r} for proxy {self.name!r} (available: {', '.join(PRESETS)})")
        unknown = set(knobs) - set(self.knobs)
        if unknown:
            raise ProxyError(f"unknown knob {sorted(unknown)[0]!r} for proxy {self.name!r}")
        self.device = resolve_device(device)
        self.num_classes = int(num_classes)
        from ..datasets import CIFAR10_MEAN, CIFAR10_STD
        self.mean = [float(v) for v in (CIFAR10_MEAN if mean is None else mean)]
        self.std = [float(v) for v in (CIFAR10_STD if std is None else std)]
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ProxyError(f"mean and std must be 3 numbers each (std > 0), got {mean!r}, {std!r}")
        self.preset = preset
        self.n_images = None if n_images is None else int(n_images)
        self.params = {**self.knobs, **knobs}
        self.config = {"preset": preset, "num_classes": self.num_classes, "mean": self.mean, "std": self.std,
                       "n_images": self.n_images, **self.params}

    # ----- plumbing -----
    def network(self, genotype, seed: int) -> NormalizedNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = NormalizedNet(build_body(genotype, self.preset, self.num_classes), self.mean, self.std)
        return net.to(self.device).train()

    def batch(self, images, labels):
        if self.n_images is not None:
            images, labels = images[:self.n_images], labels[:self.n_images]
        return images.to(self.device, torch.float32), labels.to(self.device)

    def measure(self, genotype, images, labels, seed: int) -> dict:
        x, y = self.batch(images, labels)
        try:
            with torch.random.fork_rng(devices=[]), exact_numerics():
                torch.manual_seed(int(seed) + 1)
                components = self.compute(genotype, x, y, int(seed))
        except (RuntimeError, ValueError, FloatingPointError, ZeroDivisionError) as error:
            # a broken device or exhausted memory says nothing about the architecture: storing it
            # as a NaN score would flag it for good
            if isinstance(error, (torch.AcceleratorError, torch.OutOfMemoryError)) or \
                    "out of memory" in str(error).lower():
                raise
            return {"score": math.nan, "error": 1.0}
        return {k: finite(v) for k, v in components.items()}

    def compute(self, genotype, x, y, seed) -> dict:
        """Score the seeded network with the subclass's ``score_network(net, x, y)``, flagging a
        degenerate network; proxies that need more than one network override this instead."""
        net = self.network(genotype, seed)
        if self.degenerate(net, x):
            return {"score": math.nan, "degenerate": 1.0}
        return {"score": self.score_network(net, x, y)}

    def is_valid(self, components: dict) -> bool:
        return (math.isfinite(finite(components.get("score"))) and not components.get("degenerate")
                and not components.get("error"))

    def score(self, components: dict, calibration=None) -> float:
        return finite(components["score"]) if self.is_valid(components) else math.nan

    def degenerate(self, net, x) -> bool:
        return self.flag_constant_output and constant_output(net, x)
