"""What proxies run under, process-wide: the device, exact cuDNN numerics, and glibc's
allocator settings for scoring on the CPU."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import threading

import torch

from .errors import ProxyError


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
    no TF32, whose rounding flips Ψ's near-zero signs and moves Φ; no autotuning and
    deterministic kernels, so the same seed gives the same score in every process, a Ray
    actor's included. The previous settings come back afterwards.

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

    Scoring on the CPU allocates and frees tensors of a few MB hundreds of times per
    architecture; glibc would hand that memory back to the kernel and fault it in again each
    time. Allocations below 32 MB then come from the heap, trimmed only when 1 GB lies free at
    its top: the numbers are unchanged, the process's resident memory no longer shrinks after
    a peak. It applies to the whole process, once; where the user set glibc's malloc
    variables or preloads another allocator, it does nothing."""
    if not glibc_allocates_as_shipped():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # on 32-bit glibc the threshold is refused (its maximum is 512 KB) and the trim is left alone
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
