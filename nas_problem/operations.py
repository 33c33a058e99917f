"""The DARTS candidate operations. ``batchnorm=False`` swaps every BatchNorm for an identity
(the `reference` proxy preset runs without normalisation).

``replicas=R`` builds R independent copies of an operation side by side in one module: every
channel count is multiplied by R and every convolution is grouped R times more, so copy r owns
channels r·C … (r+1)·C − 1 of each feature map (copy-major) and never sees another copy's
channels. Ψ uses this to run many weight initialisations as one ordinary forward pass."""
from __future__ import annotations

import torch
from torch import nn


def norm(channels: int, batchnorm: bool, affine: bool = True, replicas: int = 1) -> nn.Module:
    return nn.BatchNorm2d(channels * replicas, affine=affine) if batchnorm else nn.Identity()


def conv(c_in: int, c_out: int, kernel: int, replicas: int = 1, groups: int = 1, **options) -> nn.Conv2d:
    """A bias-free Conv2d, as ``replicas`` independent copies (see the module docstring)."""
    return nn.Conv2d(c_in * replicas, c_out * replicas, kernel, groups=groups * replicas, bias=False, **options)


def channel_concat(tensors, replicas: int = 1) -> torch.Tensor:
    """Concatenate feature maps along channels; with ``replicas`` copies side by side, copy r
    of the result is the concatenation of copy r of each input (channels stay copy-major)."""
    if replicas == 1:
        return torch.cat(tensors, dim=1)
    # concatenating (N, H, W, R, C) views along C comes out channels-last, the layout the
    # grouped convolutions of a replicated network run fastest in on a CPU
    parts = [t.permute(0, 2, 3, 1).unflatten(3, (replicas, -1)) for t in tensors]
    return torch.cat(parts, dim=4).flatten(3).permute(0, 3, 1, 2)


def replicate_input(x: torch.Tensor, replicas: int = 1) -> torch.Tensor:
    """The input image, once per copy (channels-last when copied: see :func:`channel_concat`)."""
    if replicas == 1:
        return x
    return x.repeat(1, replicas, 1, 1).contiguous(memory_format=torch.channels_last)


def classifier(c_in: int, num_classes: int, replicas: int = 1) -> nn.Module:
    """The final linear layer; its copies side by side are a grouped 1x1 convolution."""
    if replicas == 1:
        return nn.Linear(c_in, num_classes)
    return nn.Conv2d(c_in * replicas, num_classes * replicas, 1, groups=replicas)


def classify(layer: nn.Module, pooled: torch.Tensor, replicas: int = 1) -> torch.Tensor:
    """Logits from globally pooled (N, C, 1, 1) features: (N, classes), or (N, R, classes)."""
    if replicas == 1:
        return layer(pooled.flatten(1))
    return layer(pooled).flatten(1).unflatten(1, (replicas, -1))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, batchnorm=True, replicas=1):
        super().__init__(nn.ReLU(inplace=False),
                         conv(c_in, c_out, kernel, replicas, stride=stride, padding=padding),
                         norm(c_out, batchnorm, replicas=replicas))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, batchnorm=True, replicas=1):
        super().__init__(nn.ReLU(inplace=False),
                         conv(c_in, c_in, kernel, replicas, groups=c_in, stride=stride, padding=padding,
                              dilation=dilation),
                         conv(c_in, c_out, 1, replicas),
                         norm(c_out, batchnorm, replicas=replicas))


class SepConv(nn.Sequential):
    """Two stacked dilation-1 depthwise-separable convolutions, the first carrying the stride."""

    def __init__(self, c_in, c_out, kernel, stride, padding, batchnorm=True, replicas=1):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, batchnorm, replicas),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, batchnorm, replicas))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convolutions, the second offset by one pixel,
    their outputs concatenated.

    Each runs as a stride-1 1x1 convolution of the pixels it reads (even rows and columns for
    the first, odd for the second): the same function and parameters, without the strided
    kernel whose weight gradient oneDNN gets wrong on some CPUs (docs/platform-notes.md)."""

    def __init__(self, c_in, c_out, batchnorm=True, replicas=1):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.replicas = replicas
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = conv(c_in, c_out // 2, 1, replicas)
        self.conv_2 = conv(c_in, c_out // 2, 1, replicas)
        self.bn = norm(c_out, batchnorm, replicas=replicas)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(channel_concat([self.conv_1(x[:, :, ::2, ::2]), self.conv_2(x[:, :, 1::2, 1::2])],
                                      self.replicas))


OPERATIONS = {
    "none": lambda c, stride, bn, replicas=1: Zero(stride),
    "max_pool_3x3": lambda c, stride, bn, replicas=1: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, bn, replicas=1: nn.AvgPool2d(3, stride=stride, padding=1,
                                                                    count_include_pad=False),
    "skip_connect": lambda c, stride, bn, replicas=1: (nn.Identity() if stride == 1 else
                                                       FactorizedReduce(c, c, bn, replicas)),
    "sep_conv_3x3": lambda c, stride, bn, replicas=1: SepConv(c, c, 3, stride, 1, bn, replicas),
    "sep_conv_5x5": lambda c, stride, bn, replicas=1: SepConv(c, c, 5, stride, 2, bn, replicas),
    "dil_conv_3x3": lambda c, stride, bn, replicas=1: DilConv(c, c, 3, stride, 2, 2, bn, replicas),
    "dil_conv_5x5": lambda c, stride, bn, replicas=1: DilConv(c, c, 5, stride, 4, 2, bn, replicas),
}
