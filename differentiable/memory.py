"""What a supernet search needs in memory, estimated before it starts, and a clear refusal when the
device has less: a DARTS supernet keeps every candidate operation's activations for the backward
pass, so its batch costs far more than the evaluation network's.

The activations one image leaves for the backward pass are counted exactly, as the bytes autograd
saves during one forward pass of the supernet at the run's width and depth; a step holds
``graphs`` such forward passes at once (clean and perturbed images), plus weights, gradients and
optimiser states, plus a margin for the transient buffers of the backward pass.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

from nas_problem.supernet import Supernet

from .settings import SearchError

# transient buffers of the backward pass and the allocator's slack, over the saved activations
MARGIN = 1.25
# parameter copies alive during a step: weights, gradients, momentum (Adam's two moments are on α only)
PARAMETER_COPIES = 3


class InsufficientMemoryError(SearchError):
    """The batch a search asks for cannot fit the memory its device has."""


@dataclass(frozen=True)
class MemoryEstimate:
    activation_bytes_per_image: int
    parameter_bytes: int
    batch_size: int
    graphs: int
    available_bytes: int | None = None

    @property
    def total_bytes(self) -> int:
        activations = self.graphs * self.batch_size * self.activation_bytes_per_image
        return int(MARGIN * activations + PARAMETER_COPIES * self.parameter_bytes)

    def describe(self) -> str:
        available = "" if self.available_bytes is None else f", {gib(self.available_bytes)} available"
        return (f"about {gib(self.total_bytes)} ({self.activation_bytes_per_image / 2 ** 20:.1f} MiB of "
                f"activations per image x batch {self.batch_size} x {self.graphs} forward passes held at once)"
                f"{available}")

    def as_dict(self) -> dict:
        return dict(asdict(self), total_bytes=self.total_bytes)


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2 ** 30:.2f} GiB"


@lru_cache(maxsize=None)
def activation_bytes_per_image(channels: int, layers: int, num_classes: int = 10) -> tuple[int, int]:
    """(bytes autograd saves for one 32x32 image in a training-mode forward pass, bytes of the
    parameters), measured on the CPU; storages shared by several saved tensors count once."""
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    # measuring must not move the random stream the search draws from
    with torch.random.fork_rng(devices=[]):
        net = Supernet(channels, layers, num_classes).train()
        parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            net(torch.rand(1, 3, 32, 32))
    return sum(saved.values()), sum(p.numel() * p.element_size() for p in net.parameters())


def available_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device, or the memory the operating system can give this process."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def estimate_memory(channels: int, layers: int, num_classes: int, batch_size: int, graphs: int,
                    device: torch.device | None = None) -> MemoryEstimate:
    per_image, parameter_bytes = activation_bytes_per_image(channels, layers, num_classes)
    return MemoryEstimate(per_image, parameter_bytes, batch_size, graphs,
                          None if device is None else available_bytes(device))


def check_memory(channels: int, layers: int, num_classes: int, batch_size: int, graphs: int,
                 device: torch.device) -> MemoryEstimate:
    """The estimate, or :class:`InsufficientMemoryError` when the device cannot hold it."""
    estimate = estimate_memory(channels, layers, num_classes, batch_size, graphs, device)
    if estimate.available_bytes is not None and estimate.total_bytes > estimate.available_bytes:
        per_batch_item = MARGIN * graphs * estimate.activation_bytes_per_image
        fitting = int((estimate.available_bytes - PARAMETER_COPIES * estimate.parameter_bytes) // per_batch_item)
        raise InsufficientMemoryError(
            f"batch_size={batch_size} does not fit {device}: the supernet (C={channels}, {layers} cells) needs "
            f"{estimate.describe()}; use batch_size={max(fitting, 0)} or less, fewer channels= or layers=, "
            f"or a device with more memory")
    return estimate
