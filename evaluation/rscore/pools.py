"""Pools for Ψ on the CPU: MaxPool2d/AvgPool2d computed over shifted strided views, which
runs faster than PyTorch's CPU kernels on small feature maps (Ψ needs no gradients)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ShiftMaxPool2d(nn.Module):
    """MaxPool2d as a running maximum over shifted strided views: the same values."""

    def __init__(self, kernel: int, stride: int, padding: int):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        k, s, p = self.kernel, self.stride, self.padding
        padded = F.pad(x, (p, p, p, p), value=float("-inf"))
        h_out = (x.shape[-2] + 2 * p - k) // s + 1
        w_out = (x.shape[-1] + 2 * p - k) // s + 1
        out = None
        for i in range(k):
            for j in range(k):
                view = padded[..., i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]
                out = view if out is None else torch.maximum(out, view)
        return out


class _ShiftAvgPool2d(nn.Module):
    """AvgPool2d as a sum over shifted strided views divided by the window counts."""

    def __init__(self, kernel: int, stride: int, padding: int, count_include_pad: bool):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.count_include_pad = count_include_pad
        self._divisors = {}

    def _window_sum(self, x, h_out, w_out):
        k, s, p = self.kernel, self.stride, self.padding
        padded = F.pad(x, (p, p, p, p))
        out = None
        for i in range(k):
            for j in range(k):
                view = padded[..., i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]
                out = view if out is None else out + view
        return out

    def forward(self, x):
        k, s, p = self.kernel, self.stride, self.padding
        h, w = x.shape[-2:]
        h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if self.count_include_pad:
            return self._window_sum(x, h_out, w_out) / float(k * k)
        key = (h, w, x.device, x.dtype)
        if key not in self._divisors:
            self._divisors[key] = self._window_sum(torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype),
                                                   h_out, w_out)
        return self._window_sum(x, h_out, w_out) / self._divisors[key]


def _square(value):
    if isinstance(value, tuple):
        return value[0] if len(set(value)) == 1 else None
    return value


def _shift_pool(module):
    """The shifted-view equivalent of a square, non-ceil pool, or None."""
    if not isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) or module.ceil_mode:
        return None
    kernel, stride, padding = (_square(module.kernel_size), _square(module.stride or module.kernel_size),
                               _square(module.padding))
    if None in (kernel, stride, padding):
        return None
    if isinstance(module, nn.MaxPool2d):
        if _square(module.dilation) != 1 or module.return_indices:
            return None
        return _ShiftMaxPool2d(kernel, stride, padding)
    if module.divisor_override is not None:
        return None
    return _ShiftAvgPool2d(kernel, stride, padding, module.count_include_pad)


def use_shift_pools(network: nn.Module) -> nn.Module:
    """Swap square, non-ceil MaxPool2d/AvgPool2d modules of ``network`` in place for
    equivalents that run faster on the CPU (used for Ψ, which needs no gradients:
    the maxima agree exactly, averages up to rounding)."""
    for parent in list(network.modules()):
        for child_name, child in list(parent.named_children()):
            replacement = _shift_pool(child)
            if replacement is not None:
                setattr(parent, child_name, replacement)
    return network
