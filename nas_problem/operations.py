"""The DARTS candidate operations. ``batchnorm=False`` swaps every BatchNorm for an identity
(the `reference` proxy preset runs without normalisation)."""
from __future__ import annotations

import torch
from torch import nn


def norm(channels: int, batchnorm: bool, affine: bool = True) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=affine) if batchnorm else nn.Identity()


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, batchnorm=True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         norm(c_out, batchnorm))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, batchnorm=True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                                   groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False),
                         norm(c_out, batchnorm))


class SepConv(nn.Sequential):
    """Two stacked dilation-1 depthwise-separable convolutions, the first carrying the stride."""

    def __init__(self, c_in, c_out, kernel, stride, padding, batchnorm=True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, batchnorm),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, batchnorm))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convolutions, so no pixel is skipped."""

    def __init__(self, c_in, c_out, batchnorm=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = norm(c_out, batchnorm)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPERATIONS = {
    "none": lambda c, stride, bn: Zero(stride),
    "max_pool_3x3": lambda c, stride, bn: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, bn: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, bn: nn.Identity() if stride == 1 else FactorizedReduce(c, c, bn),
    "sep_conv_3x3": lambda c, stride, bn: SepConv(c, c, 3, stride, 1, bn),
    "sep_conv_5x5": lambda c, stride, bn: SepConv(c, c, 5, stride, 2, bn),
    "dil_conv_3x3": lambda c, stride, bn: DilConv(c, c, 3, stride, 2, 2, bn),
    "dil_conv_5x5": lambda c, stride, bn: DilConv(c, c, 5, stride, 4, 2, bn),
}
