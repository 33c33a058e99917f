"""The proxy registry: a proxy is a factory registered under a name.

Adding a proxy takes one new module that decorates its factory with ``@proxy("name")``
and one import line in ``evaluation/__init__.py``; nothing else names it.

``get_proxy("rscore:paper", device="cpu")`` is ``get_proxy("rscore", preset="paper",
device="cpu")``. A factory's keyword arguments are its knobs; an unknown name or knob is a
:class:`ProxyError` naming the available ones.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import math
import os
import platform
import threading
from typing import Callable

import torch


class ProxyError(ValueError):
    """An unknown proxy name, an unknown knob or a bad knob value."""


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


def resolve_device(device) -> torch.device:
    """``None`` or ``"auto"``: CUDA when there is one, else the CPU."""
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ProxyError(f"bad device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ProxyError(f"device {device!r} requested, but torch sees no CUDA device (use device=auto or cpu)")
    return resolved


_EXACT_LOCK = threading.Lock()
_exact_users = 0
_exact_settings = None


@contextlib.contextmanager
def exact_numerics():
    """The cuDNN settings proxies measure under (a context manager; no effect on the CPU):
    no TF32, whose rounding flips Ψ's near-zero signs and moves Φ in its 3rd digit; no
    autotuning and deterministic kernels, so the same seed gives the same score in every
    process, a Ray actor's included. The previous settings come back afterwards.

    The settings are process-wide and threads may measure at once (the in-process evaluator):
    the first to enter sets them, the last to leave puts the previous ones back, so one thread
    leaving cannot undo them under another still measuring."""
    global _exact_users, _exact_settings
    with _EXACT_LOCK:
        if _exact_users == 0:
            _exact_settings = torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False,
                                                         deterministic=True, allow_tf32=False)
            _exact_settings.__enter__()
        _exact_users += 1
    try:
        yield
    finally:
        with _EXACT_LOCK:
            _exact_users -= 1
            if _exact_users == 0:
                _exact_settings.__exit__(None, None, None)
                _exact_settings = None


# glibc's mallopt parameters; 32 MB is the largest mmap threshold it accepts on 64-bit machines
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2 ** 20
_TRIM_THRESHOLD = 2 ** 30
# a user's own allocator settings, or another allocator, win over ours
_ALLOCATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def _allocator_left_to_the_user() -> bool:
    if any(key in os.environ for key in _ALLOCATOR_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    return any(name in os.environ.get("LD_PRELOAD", "") for name in _OTHER_ALLOCATORS)


def glibc_allocates_as_shipped() -> bool:
    """Whether this process allocates with glibc's malloc under its default settings: the
    case :func:`retain_freed_memory` tunes."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and not _allocator_left_to_the_user()


@functools.cache
def retain_freed_memory() -> bool:
    """Keep freed CPU memory in this process for reuse (glibc only; True when in effect).

    Scoring on the CPU allocates and frees tensors of 1 to 20 MB hundreds of times per
    architecture (an R-Score's replicated Ψ pass). glibc maps blocks above its threshold afresh
    and hands freed memory at the top of its heap back to the kernel once it exceeds twice that
    threshold, so the pages are faulted in and zeroed again and again: 20-30 thousand page
    faults per `reference`-preset architecture on the 2-core machines measured here, about 500
    with this setting, and 6 % less time per architecture (four alternating runs), with less
    spread. Allocations below 32 MB then come from the heap, which is trimmed only when 1 GB
    lies free at its top. The numbers computed are unchanged; the process's resident memory no
    longer shrinks after a peak. It applies to the whole process, once; where the user set
    glibc's malloc variables or preloads another allocator, it does nothing."""
    if not glibc_allocates_as_shipped():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # on 32-bit glibc the threshold is refused (its maximum is 512 KB) and the trim is left alone
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


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
