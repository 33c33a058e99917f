"""The proxy registry: a proxy is a factory registered under a name.

Adding a proxy takes one new module that decorates its factory with ``@proxy("name")``
and one import line in ``evaluation/__init__.py``; nothing else names it.

``get_proxy("rscore:paper", device="cpu")`` is ``get_proxy("rscore", preset="paper",
device="cpu")``. A factory's keyword arguments are its knobs; an unknown name or knob is a
:class:`ProxyError` naming the available ones.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

from .errors import ProxyError
from .runtime import retain_freed_memory

__all__ = ["Proxy", "ProxyError", "available_proxies", "get_proxy", "knobs_of", "proxy"]

_FACTORIES: dict = {}


def proxy(name: str) -> Callable:
    """Register ``factory(**knobs) -> Proxy`` under ``name``."""
    if not name or ":" in name:
        raise ProxyError(f"proxy names may not be empty or contain ':', got {name!r}")

    def register(factory: Callable) -> Callable:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ProxyError(f"proxy {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return register


def available_proxies() -> list:
    return sorted(_FACTORIES)


def knobs_of(name: str) -> list:
    """The keyword arguments the factory of ``name`` accepts."""
    factory = _factory(name)
    return sorted(p.name for p in inspect.signature(factory).parameters.values()
                  if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _factory(name: str) -> Callable:
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ProxyError(f"unknown proxy {name!r} (available: {', '.join(available_proxies()) or 'none'})") from None


def get_proxy(name: str, **knobs) -> "Proxy":
    base, _, preset = str(name).partition(":")
    factory = _factory(base)
    if preset:
        if knobs.get("preset", preset) != preset:
            raise ProxyError(f"{name!r} names preset {preset!r}, but preset={knobs['preset']!r} was also given")
        knobs["preset"] = preset
    parameters = inspect.signature(factory).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        allowed = knobs_of(base)
        unknown = sorted(set(knobs) - set(allowed))
        if unknown:
            raise ProxyError(f"unknown knob{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for proxy "
                             f"{base!r} (available: {', '.join(allowed)})")
    built = factory(**knobs)
    # every proxy that scores on the CPU, so that their timings compare
    if getattr(getattr(built, "device", None), "type", None) == "cpu":
        retain_freed_memory()
    return built


class Proxy:
    """What the search needs from a proxy. Subclasses set ``name`` and ``config`` and
    implement ``measure``; the others have sensible defaults."""

    name: str = ""
    direction: int = +1
    config: dict
    # the revision of the code behind the numbers: a change that moves a proxy's values, even
    # in their last digits, bumps it, so archives scored before are not reused as if current
    revision: int = 1
    # the batch of a proxy that scores whatever it is given (its config's n_images is None or
    # absent): the R-Score reference preset's B
    default_images: int = 16
    # whether measure() may run in several threads at once: it keeps nothing between calls and
    # its results never depend on torch's global RNG (which concurrent calls would share): every
    # number that counts comes from generators it seeds itself. The in-process evaluator then
    # scores several architectures at a time on the CPU.
    thread_safe: bool = False

    @property
    def batch_size(self) -> int:
        """The images to score with: the proxy's ``n_images`` knob, else ``default_images``."""
        return self.config.get("n_images") or self.default_images

    def measure(self, genotype, images, labels, seed: int) -> dict:
        raise NotImplementedError

    def is_valid(self, components: dict) -> bool:
        """Every component present, finite and positive."""
        try:
            values = [float(v) for v in components.values()]
        except (TypeError, ValueError, AttributeError):
            return False
        return bool(values) and all(math.isfinite(v) and v > 0 for v in values)

    def calibrate(self, components_list) -> dict | None:
        return None

    def score(self, components: dict, calibration=None) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({knobs})"
