"""The weights Ψ and Φ run with: their random initialisations, drawn from a seeded CPU
generator so a score depends on the seed alone, and a stateless call of a network with
given weights, so the network itself is never modified."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd


def _owner(network: nn.Module, name: str):
    module_name, _, parameter_name = name.rpartition(".")
    return network.get_submodule(module_name), parameter_name


def gaussian_inits(network: nn.Module, inits: int, generator: torch.Generator | None = None) -> dict:
    """``inits`` independent Ψ initialisations, stacked: ``{parameter name: tensor of shape
    (inits, *shape)}``. Conv/linear weights are drawn N(0, 1) (docs/design.md §5), in
    ``named_parameters`` order, one ``(inits, *shape)`` draw per tensor from the CPU
    ``generator``; conv/linear biases are 0; normalisation layers get weight 1, bias 0;
    any other parameter keeps its current value in every initialisation."""
    stacked = {}
    for name, parameter in network.named_parameters():
        module, kind = _owner(network, name)
        shape = (inits, *parameter.shape)
        if isinstance(module, (_ConvNd, nn.Linear)) and kind == "weight":
            value = torch.randn(shape, generator=generator)
        elif isinstance(module, (_ConvNd, nn.Linear, _NormBase)) and kind == "bias":
            value = torch.zeros(shape)
        elif isinstance(module, _NormBase) and kind == "weight":
            value = torch.ones(shape)
        else:
            value = parameter.detach().unsqueeze(0).expand(shape)
        stacked[name] = value.to(device=parameter.device, dtype=parameter.dtype)
    return stacked


def default_init(network: nn.Module, generator: torch.Generator | None = None) -> dict:
    """PyTorch's own default initialisation of conv/linear layers (kaiming-uniform with
    a = √5, bias U(±1/√fan_in)) and normalisation layers (1, 0), drawn from ``generator`` on
    the CPU so that the result depends on the seed alone, not on the device or on global
    RNG state. Other parameters keep their values. Returns ``{name: tensor}``."""
    values = {}
    for name, parameter in network.named_parameters():
        module, kind = _owner(network, name)
        value = torch.empty(parameter.shape)
        if isinstance(module, (_ConvNd, nn.Linear)) and kind == "weight":
            nn.init.kaiming_uniform_(value, a=math.sqrt(5), generator=generator)
        elif isinstance(module, (_ConvNd, nn.Linear)) and kind == "bias":
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(value, -bound, bound, generator=generator)
        elif isinstance(module, _NormBase) and kind == "weight":
            value.fill_(1.0)
        elif isinstance(module, _NormBase) and kind == "bias":
            value.fill_(0.0)
        else:
            value = parameter.detach().cpu().clone()
        values[name] = value.to(device=parameter.device, dtype=parameter.dtype)
    return values


def stateless(network: nn.Module):
    """``run(tensors, *args)``: ``network(*args)`` with its parameters and buffers replaced by
    ``tensors`` (``torch.func.functional_call``). functional_call's ``tie_weights`` walks every
    submodule on each call, which is costly; only a network that holds one tensor under two
    names needs it, so that is asked once."""
    tensors = [id(t) for _, t in network.named_parameters(remove_duplicate=False)]
    tensors += [id(t) for _, t in network.named_buffers(remove_duplicate=False)]
    tied = len(tensors) != len(set(tensors))

    def run(values: dict, *args):
        return functional_call(network, values, args, tie_weights=tied)

    return run

